"""Write an :class:`~hardware.graph.Int8Graph` as a `.tflite` flatbuffer (schema version 3).

The file loads in TFLM and in LiteRT: int8 (or float32 through QUANTIZE/DEQUANTIZE) IO as the graph
says, operator versions as TensorFlow's converter assigns them, typed options written back as the
constant operands TFLite expects (MEAN axes, RESHAPE shape, PAD paddings, a zero bias for a bias-less
CONV_2D, which LiteRT requires), appended after the graph's tensors so ``read_tflite`` restores the
same indices; metadata entries as `metadata` buffers.

It is small on purpose (microcontroller flash holds it): buffer 0 is the one empty buffer every
activation shares, constant data is 16-byte aligned and stored once, identical vectors (shapes,
per-channel zero points, index lists) are shared, and conv/depthwise biases omit the quantization
TFLM and LiteRT never read when it is the implied ``in_scale * w_scale[c]``.
"""

from __future__ import annotations

import flatbuffers
import numpy as np
import tflite

from hardware.graph import (
    DType,
    Int8Graph,
    Op,
    OpKind,
    Tensor,
    canonical_bias_quantization,
)
from hardware.tflite_schema import (
    ACTIVATION_CODES,
    FILE_IDENTIFIER,
    INT8_OP_VERSION,
    OP_CODES,
    PADDING_CODES,
    PLACEHOLDER_FOR_GREATER_OP_CODES,
    SCHEMA_VERSION,
    TYPE_CODES,
    ZERO_BIAS_NAME,
)

__all__ = ["write_tflite"]

_DATA_ALIGNMENT = 16  # what TFLite's converter uses; enough for any kernel's int32/float loads


def write_tflite(graph: Int8Graph, *, description: str = "kwsnas") -> bytes:
    """Serialize ``graph``; ``read_tflite`` of the result equals ``graph``."""
    return _Writer(graph, description).build()


class _Writer:
    def __init__(self, graph: Int8Graph, description: str) -> None:
        self.g = graph
        self.description = description
        size = graph.param_bytes() + sum(len(v) for v in graph.metadata.values()) + 16384
        self.b = flatbuffers.Builder(size)
        self._vectors: dict[tuple, int] = {}

    # ---- shared vectors ----
    def _vector(self, kind: str, values) -> int:
        arr = np.ascontiguousarray(values, dtype={"i32": "<i4", "i64": "<i8", "f32": "<f4"}[kind])
        key = (kind, arr.tobytes())
        if key not in self._vectors:
            self._vectors[key] = self.b.CreateNumpyVector(arr)
        return self._vectors[key]

    def _string(self, s: str) -> int:
        key = ("str", s)
        if key not in self._vectors:
            self._vectors[key] = self.b.CreateString(s, errors="surrogateescape")
        return self._vectors[key]

    def _data(self, raw: bytes) -> int:
        b = self.b
        b.StartVector(1, len(raw), _DATA_ALIGNMENT)
        b.head = b.head - len(raw)
        b.Bytes[b.head:b.head + len(raw)] = raw
        return b.EndVector()

    # ---- model pieces ----
    def _aux_tensors(self) -> tuple[list[Tensor], list[list[int]]]:
        """Constant operands for options TFLite passes as tensors, and each op's full input list."""
        aux: list[Tensor] = []
        cache: dict[tuple, int] = {}
        n = len(self.g.tensors)

        def const(name: str, arr: np.ndarray) -> int:
            key = (name, arr.dtype.str, arr.shape, arr.tobytes())
            if key not in cache:
                cache[key] = n + len(aux)
                aux.append(Tensor(name, arr.shape, DType(arr.dtype.name), None, arr))
            return cache[key]

        op_inputs = []
        for op in self.g.ops:
            ins = list(op.inputs)
            o = op.options
            if op.kind == OpKind.CONV_2D and len(ins) == 2:
                out_channels = self.g.tensors[ins[1]].shape[0]
                dtype = np.float32 if self.g.tensors[ins[0]].dtype == DType.FLOAT32 else np.int32
                ins.append(const(ZERO_BIAS_NAME, np.zeros(out_channels, dtype=dtype)))
            elif op.kind == OpKind.MEAN:
                ins.append(const("axes", np.array(o.axes, dtype=np.int32)))
            elif op.kind == OpKind.RESHAPE:
                ins.append(const("shape", np.array(o.new_shape, dtype=np.int32)))
            elif op.kind == OpKind.PAD:
                ins.append(const("pads", np.array(o.paddings, dtype=np.int32).reshape(-1, 2)))
            op_inputs.append(ins)
        return aux, op_inputs

    def _omit_quantization(self) -> set[int]:
        """Biases of conv/depthwise whose quantization is the implied one (never read by kernels)."""
        omit = set()
        for op in self.g.ops:
            if op.kind in (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D) and len(op.inputs) > 2:
                x, w, bias = (self.g.tensors[i] for i in op.inputs[:3])
                if x.quantization is not None and w.quantization is not None and (
                        bias.quantization == canonical_bias_quantization(x.quantization, w.quantization)):
                    omit.add(op.inputs[2])
        return omit

    def build(self) -> bytes:
        g, b = self.g, self.b
        aux, op_inputs = self._aux_tensors()
        tensors = list(g.tensors) + aux
        # Constant data and metadata first: the builder writes back to front, so these big blocks
        # end up at the end of the file, after the tables that describe them.
        buffer_data: list[int | None] = [None]  # buffer 0: the empty sentinel
        tensor_buffer = []
        for t in tensors:
            if t.is_constant:
                buffer_data.append(self._data(np.ascontiguousarray(t.data).astype(t.data.dtype.newbyteorder("<"))
                                              .tobytes()))
                tensor_buffer.append(len(buffer_data) - 1)
            else:
                tensor_buffer.append(0)
        meta_entries = []
        for name, value in g.metadata.items():
            buffer_data.append(self._data(value.encode("utf-8", errors="surrogateescape")))
            meta_entries.append((name, len(buffer_data) - 1))

        buffers = []
        for data in buffer_data:
            tflite.BufferStart(b)
            if data is not None:
                tflite.BufferAddData(b, data)
            buffers.append(tflite.BufferEnd(b))

        omit = self._omit_quantization()
        tensor_offsets = [self._tensor(t, tensor_buffer[i], i in omit) for i, t in enumerate(tensors)]

        kinds: list[OpKind] = []
        for op in g.ops:
            if op.kind not in kinds:
                kinds.append(op.kind)
        opcodes = [self._opcode(k) for k in kinds]
        operators = [self._operator(op, ins, kinds.index(op.kind)) for op, ins in zip(g.ops, op_inputs, strict=True)]

        name = self._string("main")
        tensors_vec = self._offsets(tflite.SubGraphStartTensorsVector, tensor_offsets)
        ops_vec = self._offsets(tflite.SubGraphStartOperatorsVector, operators)
        inputs_vec, outputs_vec = self._vector("i32", g.inputs), self._vector("i32", g.outputs)
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, tensors_vec)
        tflite.SubGraphAddInputs(b, inputs_vec)
        tflite.SubGraphAddOutputs(b, outputs_vec)
        tflite.SubGraphAddOperators(b, ops_vec)
        tflite.SubGraphAddName(b, name)
        subgraph = tflite.SubGraphEnd(b)

        metadata = []
        for key, index in meta_entries:
            key_off = self._string(key)
            tflite.MetadataStart(b)
            tflite.MetadataAddName(b, key_off)
            tflite.MetadataAddBuffer(b, index)
            metadata.append(tflite.MetadataEnd(b))

        opcodes_vec = self._offsets(tflite.ModelStartOperatorCodesVector, opcodes)
        subgraphs_vec = self._offsets(tflite.ModelStartSubgraphsVector, [subgraph])
        buffers_vec = self._offsets(tflite.ModelStartBuffersVector, buffers)
        metadata_vec = self._offsets(tflite.ModelStartMetadataVector, metadata) if metadata else None
        desc = self._string(self.description) if self.description else None
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, SCHEMA_VERSION)
        tflite.ModelAddOperatorCodes(b, opcodes_vec)
        tflite.ModelAddSubgraphs(b, subgraphs_vec)
        if desc is not None:
            tflite.ModelAddDescription(b, desc)
        tflite.ModelAddBuffers(b, buffers_vec)
        if metadata_vec is not None:
            tflite.ModelAddMetadata(b, metadata_vec)
        b.Finish(tflite.ModelEnd(b), file_identifier=FILE_IDENTIFIER)
        return bytes(b.Output())

    def _offsets(self, start_fn, offsets: list[int]) -> int:
        start_fn(self.b, len(offsets))
        for off in reversed(offsets):
            self.b.PrependUOffsetTRelative(off)
        return self.b.EndVector()

    def _tensor(self, t: Tensor, buffer: int, omit_quantization: bool) -> int:
        b = self.b
        shape = self._vector("i32", t.shape)
        name = self._string(t.name) if t.name else None
        quant = None
        q = t.quantization
        if q is not None and not omit_quantization:
            scale = self._vector("f32", q.scale)
            zp = self._vector("i64", q.zero_point)
            tflite.QuantizationParametersStart(b)
            tflite.QuantizationParametersAddScale(b, scale)
            tflite.QuantizationParametersAddZeroPoint(b, zp)
            if q.is_per_channel:
                tflite.QuantizationParametersAddQuantizedDimension(b, q.axis)
            quant = tflite.QuantizationParametersEnd(b)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, TYPE_CODES[t.dtype])
        if buffer:
            tflite.TensorAddBuffer(b, buffer)
        if name is not None:
            tflite.TensorAddName(b, name)
        if quant is not None:
            tflite.TensorAddQuantization(b, quant)
        return tflite.TensorEnd(b)

    def _opcode(self, kind: OpKind) -> int:
        code = OP_CODES[kind][0]
        int8 = any(op.kind == kind and self.g.tensors[op.outputs[0]].dtype != DType.FLOAT32
                   or op.kind == kind == OpKind.DEQUANTIZE for op in self.g.ops)
        b = self.b
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, PLACEHOLDER_FOR_GREATER_OP_CODES))
        tflite.OperatorCodeAddBuiltinCode(b, code)
        tflite.OperatorCodeAddVersion(b, INT8_OP_VERSION[kind] if int8 else 1)
        return tflite.OperatorCodeEnd(b)

    def _options(self, op: Op) -> int | None:
        b, o, k = self.b, op.options, op.kind
        if k in (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D):
            dw = k == OpKind.DEPTHWISE_CONV_2D
            (tflite.DepthwiseConv2DOptionsStart if dw else tflite.Conv2DOptionsStart)(b)
            if dw:
                tflite.DepthwiseConv2DOptionsAddPadding(b, PADDING_CODES[o.padding])
                tflite.DepthwiseConv2DOptionsAddStrideH(b, o.stride[0])
                tflite.DepthwiseConv2DOptionsAddStrideW(b, o.stride[1])
                tflite.DepthwiseConv2DOptionsAddDepthMultiplier(b, o.depth_multiplier)
                tflite.DepthwiseConv2DOptionsAddFusedActivationFunction(b, ACTIVATION_CODES[o.activation])
                tflite.DepthwiseConv2DOptionsAddDilationHFactor(b, o.dilation[0])
                tflite.DepthwiseConv2DOptionsAddDilationWFactor(b, o.dilation[1])
                return tflite.DepthwiseConv2DOptionsEnd(b)
            tflite.Conv2DOptionsAddPadding(b, PADDING_CODES[o.padding])
            tflite.Conv2DOptionsAddStrideH(b, o.stride[0])
            tflite.Conv2DOptionsAddStrideW(b, o.stride[1])
            tflite.Conv2DOptionsAddFusedActivationFunction(b, ACTIVATION_CODES[o.activation])
            tflite.Conv2DOptionsAddDilationHFactor(b, o.dilation[0])
            tflite.Conv2DOptionsAddDilationWFactor(b, o.dilation[1])
            return tflite.Conv2DOptionsEnd(b)
        if k == OpKind.FULLY_CONNECTED:
            tflite.FullyConnectedOptionsStart(b)
            tflite.FullyConnectedOptionsAddFusedActivationFunction(b, ACTIVATION_CODES[o.activation])
            tflite.FullyConnectedOptionsAddKeepNumDims(b, o.keep_num_dims)
            return tflite.FullyConnectedOptionsEnd(b)
        if k in (OpKind.AVERAGE_POOL_2D, OpKind.MAX_POOL_2D):
            tflite.Pool2DOptionsStart(b)
            tflite.Pool2DOptionsAddPadding(b, PADDING_CODES[o.padding])
            tflite.Pool2DOptionsAddStrideH(b, o.stride[0])
            tflite.Pool2DOptionsAddStrideW(b, o.stride[1])
            tflite.Pool2DOptionsAddFilterHeight(b, o.filter_size[0])
            tflite.Pool2DOptionsAddFilterWidth(b, o.filter_size[1])
            tflite.Pool2DOptionsAddFusedActivationFunction(b, ACTIVATION_CODES[o.activation])
            return tflite.Pool2DOptionsEnd(b)
        if k == OpKind.ADD:
            tflite.AddOptionsStart(b)
            tflite.AddOptionsAddFusedActivationFunction(b, ACTIVATION_CODES[o.activation])
            return tflite.AddOptionsEnd(b)
        if k == OpKind.MUL:
            tflite.MulOptionsStart(b)
            tflite.MulOptionsAddFusedActivationFunction(b, ACTIVATION_CODES[o.activation])
            return tflite.MulOptionsEnd(b)
        if k == OpKind.MEAN:
            tflite.ReducerOptionsStart(b)
            tflite.ReducerOptionsAddKeepDims(b, o.keep_dims)
            return tflite.ReducerOptionsEnd(b)
        if k == OpKind.SOFTMAX:
            tflite.SoftmaxOptionsStart(b)
            tflite.SoftmaxOptionsAddBeta(b, o.beta)
            return tflite.SoftmaxOptionsEnd(b)
        if k == OpKind.RESHAPE:
            shape = self._vector("i32", o.new_shape)
            tflite.ReshapeOptionsStart(b)
            tflite.ReshapeOptionsAddNewShape(b, shape)
            return tflite.ReshapeOptionsEnd(b)
        return None  # PAD, QUANTIZE, DEQUANTIZE: no fields worth a table

    def _operator(self, op: Op, inputs: list[int], opcode_index: int) -> int:
        b = self.b
        options = self._options(op)
        ins, outs = self._vector("i32", inputs), self._vector("i32", op.outputs)
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, opcode_index)
        tflite.OperatorAddInputs(b, ins)
        tflite.OperatorAddOutputs(b, outs)
        if options is not None:
            tflite.OperatorAddBuiltinOptionsType(b, OP_CODES[op.kind][1])
            tflite.OperatorAddBuiltinOptions(b, options)
        return tflite.OperatorEnd(b)

