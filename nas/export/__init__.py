"""Export of trained models: int8/float32 `.tflite`, C arrays, and the metadata that travels with them;
and the accuracy of any exported `.tflite` on a dataset (``evaluate_tflite``).

    from nas.export.quantize import quantize_checkpoint
    report = quantize_checkpoint("runs/train/x", "out/x")
"""
