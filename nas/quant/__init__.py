"""Int8 quantization of trained models into `hardware.Int8Graph`.

`float_graph` (the deployed float network: batch norm folded) -> `calibrate` (activation ranges) ->
`quantize_graph` (TFLite's int8 scheme, per-channel weights) -> `hardware.write_tflite`; optional
quantization-aware fine-tuning (`nas.quant.qat`) between calibration and quantization.
"""

from nas.quant.float_graph import float_graph
from nas.quant.ptq import Ranges, calibrate, quantize_features, quantize_graph, run_int8
from nas.quant.qat import qat_finetune, qat_logits

__all__ = ["Ranges", "calibrate", "float_graph", "qat_finetune", "qat_logits", "quantize_features", "quantize_graph",
           "run_int8"]
