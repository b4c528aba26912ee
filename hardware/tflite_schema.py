"""The slice of the TFLite flatbuffer schema (``schema.fbs``, file identifier ``TFL3``, version 3)
that the reader and writer use: field slots, builtin operator codes and enums, and how each
supported :class:`~hardware.graph.OpKind` maps onto them."""

from __future__ import annotations

import tflite

from hardware.graph import Activation, DType, OpKind, Padding

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3

# LiteRT's CONV_2D kernel refuses a convolution without a bias (TFLM accepts one). The writer gives
# a bias-less CONV_2D this all-zero bias, and the reader removes a bias of that name again, so the
# graph round-trips unchanged.
ZERO_BIAS_NAME = "kwsnas/zero_bias"


def _slot(field_id: int) -> int:
    """Vtable byte offset of a field (what the generated accessors pass to ``Offset``)."""
    return 4 + 2 * field_id


class Slot:
    """Field slots per table, from schema.fbs field ids."""

    MODEL_VERSION, MODEL_OPCODES, MODEL_SUBGRAPHS = _slot(0), _slot(1), _slot(2)
    MODEL_BUFFERS, MODEL_METADATA = _slot(4), _slot(6)
    SUBGRAPH_TENSORS, SUBGRAPH_INPUTS, SUBGRAPH_OUTPUTS, SUBGRAPH_OPERATORS = _slot(0), _slot(1), _slot(2), _slot(3)
    TENSOR_SHAPE, TENSOR_TYPE, TENSOR_BUFFER, TENSOR_NAME = _slot(0), _slot(1), _slot(2), _slot(3)
    TENSOR_QUANT, TENSOR_IS_VARIABLE, TENSOR_SPARSITY = _slot(4), _slot(5), _slot(6)
    BUFFER_DATA, BUFFER_OFFSET, BUFFER_SIZE = _slot(0), _slot(1), _slot(2)
    OP_OPCODE, OP_INPUTS, OP_OUTPUTS, OP_OPTIONS_TYPE, OP_OPTIONS = _slot(0), _slot(1), _slot(2), _slot(3), _slot(4)
    OP_INTERMEDIATES = _slot(8)
    OPCODE_DEPRECATED, OPCODE_CUSTOM, OPCODE_BUILTIN = _slot(0), _slot(1), _slot(3)
    QUANT_SCALE, QUANT_ZERO_POINT, QUANT_DETAILS_TYPE, QUANT_DIM = _slot(2), _slot(3), _slot(4), _slot(6)
    METADATA_NAME, METADATA_BUFFER = _slot(0), _slot(1)


_OPS = tflite.BuiltinOperator
_OPTS = tflite.BuiltinOptions

BUILTIN_NAMES: dict[int, str] = {v: k for k, v in vars(_OPS).items() if not k.startswith("_") and isinstance(v, int)}
PLACEHOLDER_FOR_GREATER_OP_CODES = _OPS.PLACEHOLDER_FOR_GREATER_OP_CODES

# kind -> (builtin code, builtin options union type; NONE when the op takes no options table)
OP_CODES: dict[OpKind, tuple[int, int]] = {
    OpKind.CONV_2D: (_OPS.CONV_2D, _OPTS.Conv2DOptions),
    OpKind.DEPTHWISE_CONV_2D: (_OPS.DEPTHWISE_CONV_2D, _OPTS.DepthwiseConv2DOptions),
    OpKind.FULLY_CONNECTED: (_OPS.FULLY_CONNECTED, _OPTS.FullyConnectedOptions),
    OpKind.AVERAGE_POOL_2D: (_OPS.AVERAGE_POOL_2D, _OPTS.Pool2DOptions),
    OpKind.MAX_POOL_2D: (_OPS.MAX_POOL_2D, _OPTS.Pool2DOptions),
    OpKind.MEAN: (_OPS.MEAN, _OPTS.ReducerOptions),
    OpKind.ADD: (_OPS.ADD, _OPTS.AddOptions),
    OpKind.MUL: (_OPS.MUL, _OPTS.MulOptions),
    OpKind.RESHAPE: (_OPS.RESHAPE, _OPTS.ReshapeOptions),
    OpKind.SOFTMAX: (_OPS.SOFTMAX, _OPTS.SoftmaxOptions),
    OpKind.PAD: (_OPS.PAD, _OPTS.PadOptions),
    OpKind.QUANTIZE: (_OPS.QUANTIZE, _OPTS.QuantizeOptions),
    OpKind.DEQUANTIZE: (_OPS.DEQUANTIZE, _OPTS.DequantizeOptions),
}
KIND_OF_CODE: dict[int, OpKind] = {code: kind for kind, (code, _) in OP_CODES.items()}

# Operator versions the TFLite converter assigns for int8 kernels (float kernels are version 1).
# TFLM ignores versions; LiteRT only needs a version its resolver registers.
INT8_OP_VERSION: dict[OpKind, int] = {
    OpKind.CONV_2D: 3, OpKind.DEPTHWISE_CONV_2D: 3, OpKind.FULLY_CONNECTED: 4, OpKind.AVERAGE_POOL_2D: 2,
    OpKind.MAX_POOL_2D: 2, OpKind.MEAN: 2, OpKind.ADD: 2, OpKind.MUL: 2, OpKind.RESHAPE: 1, OpKind.SOFTMAX: 2,
    OpKind.PAD: 2, OpKind.QUANTIZE: 2, OpKind.DEQUANTIZE: 2,
}

TENSOR_TYPES: dict[int, DType] = {
    tflite.TensorType.FLOAT32: DType.FLOAT32, tflite.TensorType.INT32: DType.INT32,
    tflite.TensorType.INT16: DType.INT16, tflite.TensorType.INT8: DType.INT8,
}
TYPE_CODES: dict[DType, int] = {v: k for k, v in TENSOR_TYPES.items()}
TYPE_NAMES: dict[int, str] = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}

ACTIVATIONS: dict[int, Activation] = {
    tflite.ActivationFunctionType.NONE: Activation.NONE,
    tflite.ActivationFunctionType.RELU: Activation.RELU,
    tflite.ActivationFunctionType.RELU6: Activation.RELU6,
}
ACTIVATION_CODES: dict[Activation, int] = {v: k for k, v in ACTIVATIONS.items()}
ACTIVATION_NAMES: dict[int, str] = {v: k for k, v in vars(tflite.ActivationFunctionType).items()
                                    if not k.startswith("_")}

PADDINGS: dict[int, Padding] = {tflite.Padding.SAME: Padding.SAME, tflite.Padding.VALID: Padding.VALID}
PADDING_CODES: dict[Padding, int] = {v: k for k, v in PADDINGS.items()}


def builtin_name(code: int) -> str:
    return BUILTIN_NAMES.get(code, f"UNKNOWN_{code}")
