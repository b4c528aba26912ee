"""Read any int8 `.tflite` of the supported op set into an :class:`~hardware.graph.Int8Graph`.

Takes files from TensorFlow's converter as well as our writer's: subgraph 0, buffers (inline or
by file offset), operator codes (``builtin_code`` and ``deprecated_builtin_code``), per-channel
quantization (a single zero point stands for all channels, as TFLM allows), absent optional
biases, float32 IO through QUANTIZE/DEQUANTIZE, and model metadata. Constant operands TFLite keeps
as tensors (MEAN axes, RESHAPE shape, PAD paddings) become typed op options.

Every failure is a :class:`TfliteError`: :class:`UnsupportedModelError` for a well-formed model
outside the supported set (it names the operator or feature), :class:`ModelFormatError` for a
damaged or inconsistent file. Parsing is bounds-checked throughout (``hardware._flatbuf``), so a
corrupt file cannot crash or hang the reader.
"""

from __future__ import annotations

import numpy as np

from hardware import _flatbuf
from hardware.graph import (
    WEIGHTED_OPS,
    AddOptions,
    Conv2DOptions,
    DepthwiseConv2DOptions,
    DType,
    FullyConnectedOptions,
    GraphError,
    Int8Graph,
    MeanOptions,
    MulOptions,
    NoOptions,
    Op,
    OpKind,
    PadOptions,
    Pool2DOptions,
    Quantization,
    ReshapeOptions,
    SoftmaxOptions,
    Tensor,
)
from hardware.tflite_schema import (
    ACTIVATION_NAMES,
    ACTIVATIONS,
    FILE_IDENTIFIER,
    KIND_OF_CODE,
    OP_CODES,
    PADDINGS,
    TENSOR_TYPES,
    TYPE_NAMES,
    ZERO_BIAS_NAME,
    Slot,
    builtin_name,
)

__all__ = ["ModelFormatError", "TfliteError", "UnsupportedModelError", "read_tflite"]


class TfliteError(ValueError):
    """A `.tflite` that cannot become an :class:`Int8Graph`."""


class ModelFormatError(TfliteError):
    """The bytes are not a well-formed, self-consistent TFLite model."""


class UnsupportedModelError(TfliteError):
    """A well-formed model using an operator, type or feature outside the supported set."""


_CUSTOM = 32  # BuiltinOperator.CUSTOM


def read_tflite(data: bytes, *, allow_float: bool = False) -> Int8Graph:
    """Parse a `.tflite` flatbuffer. A float-only model raises :class:`UnsupportedModelError`
    unless ``allow_float`` (then it returns the float32 graph)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"read_tflite takes the model's bytes, got {type(data).__name__}")
    buf = bytes(data)
    if buf.startswith(b"version https://git-lfs"):
        raise ModelFormatError("a Git LFS pointer file, not a model (fetch the real file: git lfs pull)")
    try:
        graph = _Reader(buf).graph()
    except TfliteError:
        raise
    except _flatbuf.FlatbufferError as e:
        raise ModelFormatError(f"corrupt .tflite: {e}") from None
    except GraphError as e:
        raise ModelFormatError(f"the model is not a consistent graph: {e}") from None
    except (ValueError, TypeError, OverflowError, IndexError, KeyError, MemoryError) as e:
        # Safety net for inconsistencies the checks above did not anticipate.
        raise ModelFormatError(f"corrupt .tflite ({type(e).__name__}: {e})") from None
    if graph.is_float and not allow_float:
        raise UnsupportedModelError("float-only model: its operators compute in float32 (expected an int8 "
                                    "model; pass allow_float=True to read it as a float graph)")
    return graph


class _Reader:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.model = _flatbuf.root(buf, FILE_IDENTIFIER)
        version = self.model.scalar(Slot.MODEL_VERSION, "I")
        if version != 3:
            raise ModelFormatError(f"schema version {version}, expected 3")
        self.buffers = self.model.tables(Slot.MODEL_BUFFERS, "buffers")
        # Per file tensor: name, type name, and (type code, shape, raw bytes) for folded operands.
        self._names: list[str] = []
        self._types: list[str] = []
        self._raw: list[tuple[int, tuple[int, ...], bytes]] = []

    def buffer_bytes(self, index: int, what: str) -> bytes:
        if not 0 <= index < len(self.buffers):
            raise ModelFormatError(f"{what} refers to buffer {index}, the model has {len(self.buffers)}")
        b = self.buffers[index]
        raw = b.bytes_(Slot.BUFFER_DATA)
        if raw:
            return raw
        offset, size = b.scalar(Slot.BUFFER_OFFSET, "Q"), b.scalar(Slot.BUFFER_SIZE, "Q")
        if offset > 1:  # data stored after the flatbuffer (models over 2 GB)
            if offset + size > len(self.buf):
                raise ModelFormatError(f"{what}: buffer {index} lies outside the file")
            return self.buf[offset:offset + size]
        return b""

    def graph(self) -> Int8Graph:
        subgraphs = self.model.tables(Slot.MODEL_SUBGRAPHS, "subgraphs")
        if not subgraphs:
            raise ModelFormatError("the model has no subgraph")
        sg = subgraphs[0]
        codes = [self._opcode(t) for t in self.model.tables(Slot.MODEL_OPCODES, "operator_codes")]
        raw_tensors = sg.tables(Slot.SUBGRAPH_TENSORS, "tensors")
        tensors = [self._tensor(i, t) for i, t in enumerate(raw_tensors)]
        n = len(tensors)

        def indices(table: _flatbuf.Table, slot: int, what: str) -> list[int]:
            arr = table.array(slot, "int32")
            out = [] if arr is None else [int(v) for v in arr]
            for v in out:
                if not -1 <= v < n:
                    raise ModelFormatError(f"{what} refers to tensor {v}, the subgraph has {n}")
            return out

        ops: list[Op] = []
        aux: set[int] = set()  # constant operands folded into options
        for k, t in enumerate(sg.tables(Slot.SUBGRAPH_OPERATORS, "operators")):
            ops.append(self._op(k, t, codes, tensors, indices, aux))
        inputs = indices(sg, Slot.SUBGRAPH_INPUTS, "subgraph inputs")
        outputs = indices(sg, Slot.SUBGRAPH_OUTPUTS, "subgraph outputs")
        if -1 in inputs or -1 in outputs:
            raise ModelFormatError("subgraph inputs/outputs contain -1")
        # Drop folded operands that nothing else uses, and renumber.
        used = {i for op in ops for i in op.inputs + op.outputs} | set(inputs) | set(outputs)
        keep = [i for i in range(n) if i not in aux or i in used]
        new = {old: j for j, old in enumerate(keep)}
        final_tensors = []
        for i in keep:
            t = tensors[i]
            if t is None:
                raise UnsupportedModelError(f"tensor {i} ({self._names[i]!r}) has unsupported type "
                                            f"{self._types[i]}")
            final_tensors.append(t)
        for k, op in enumerate(ops):
            if any(tensors[i] is not None and tensors[i].dtype == DType.INT16 for i in op.inputs + op.outputs):
                raise UnsupportedModelError(f"operator {k} ({op.kind.value}) has int16 activations (16x8 "
                                            "quantization is unsupported)")
            if op.kind in WEIGHTED_OPS and len(op.inputs) > 1:
                x, w = tensors[op.inputs[0]], tensors[op.inputs[1]]
                if x is not None and w is not None and x.dtype == DType.FLOAT32 and w.dtype != DType.FLOAT32:
                    raise UnsupportedModelError(f"operator {k} ({op.kind.value}) is hybrid (float32 activations, "
                                                f"{w.dtype.value} weights): TFLM does not run hybrid models")
        ops = [Op(op.kind, tuple(new[i] for i in op.inputs), tuple(new[i] for i in op.outputs), op.options)
               for op in ops]
        return Int8Graph(tuple(final_tensors), tuple(ops), tuple(new[i] for i in inputs),
                         tuple(new[i] for i in outputs), self._metadata())

    def _metadata(self) -> dict[str, str]:
        meta: dict[str, str] = {}
        for t in self.model.tables(Slot.MODEL_METADATA, "metadata"):
            name = t.string(Slot.METADATA_NAME) or ""
            index = t.scalar(Slot.METADATA_BUFFER, "I")
            meta[name] = self.buffer_bytes(index, f"metadata {name!r}").decode("utf-8", errors="surrogateescape")
        return meta

    def _opcode(self, t: _flatbuf.Table) -> tuple[int, str | None]:
        deprecated = t.scalar(Slot.OPCODE_DEPRECATED, "b")
        code = max(deprecated, t.scalar(Slot.OPCODE_BUILTIN, "i"))
        return code, t.string(Slot.OPCODE_CUSTOM) if code == _CUSTOM else None

    def _tensor(self, i: int, t: _flatbuf.Table) -> Tensor | None:
        name = t.string(Slot.TENSOR_NAME) or ""
        type_code = t.scalar(Slot.TENSOR_TYPE, "b")
        shape_arr = t.array(Slot.TENSOR_SHAPE, "int32")
        shape = () if shape_arr is None else tuple(int(d) for d in shape_arr)
        if any(d < 0 for d in shape):
            raise ModelFormatError(f"tensor {i} ({name!r}) has a negative dimension in {shape}")
        raw = self.buffer_bytes(t.scalar(Slot.TENSOR_BUFFER, "I"), f"tensor {i} ({name!r})")
        self._names.append(name)
        self._types.append(TYPE_NAMES.get(type_code, f"code {type_code}"))
        self._raw.append((type_code, shape, raw))
        if t.scalar(Slot.TENSOR_IS_VARIABLE, "B"):
            raise UnsupportedModelError(f"tensor {i} ({name!r}) is a variable (stateful models are unsupported)")
        if t.table(Slot.TENSOR_SPARSITY, f"tensor {i} sparsity") is not None:
            raise UnsupportedModelError(f"tensor {i} ({name!r}) is sparse")
        dtype = TENSOR_TYPES.get(type_code)
        if dtype is None:
            return None  # only an error if the tensor survives as a graph tensor (see graph())
        quant = self._quantization(i, name, t)
        data = None
        if raw:
            size = int(np.prod(shape, dtype=np.int64))
            if len(raw) != size * dtype.itemsize:
                raise ModelFormatError(f"tensor {i} ({name!r}): buffer of {len(raw)} bytes for shape {shape} "
                                       f"of {dtype.value}")
            data = np.frombuffer(raw, dtype=dtype.numpy.newbyteorder("<")).reshape(shape)
        return Tensor(name, shape, dtype, quant, data)

    def _quantization(self, i: int, name: str, t: _flatbuf.Table) -> Quantization | None:
        q = t.table(Slot.TENSOR_QUANT, f"tensor {i} quantization")
        if q is None:
            return None
        if q.scalar(Slot.QUANT_DETAILS_TYPE, "B"):
            raise UnsupportedModelError(f"tensor {i} ({name!r}) uses custom quantization details")
        scale = q.array(Slot.QUANT_SCALE, "float32")
        if scale is None or scale.size == 0:
            return None
        zp = q.array(Slot.QUANT_ZERO_POINT, "int64")
        if zp is None or zp.size == 0:
            raise ModelFormatError(f"tensor {i} ({name!r}) has scales but no zero points")
        if zp.size not in (1, scale.size):
            raise ModelFormatError(f"tensor {i} ({name!r}): {zp.size} zero points for {scale.size} scales")
        axis = q.scalar(Slot.QUANT_DIM, "i")
        try:
            return Quantization(tuple(float(s) for s in scale), tuple(int(z) for z in zp), axis)
        except GraphError as e:
            raise ModelFormatError(f"tensor {i} ({name!r}): {e}") from None

    def _const_ints(self, k: int, kind: OpKind, index: int, what: str) -> np.ndarray:
        type_code, shape, raw = self._raw[index]
        dt = {2: "<i4", 4: "<i8"}.get(type_code)  # INT32, INT64
        if dt is None or not raw:
            raise UnsupportedModelError(f"operator {k} ({kind.value}): {what} must be a constant int32/int64 "
                                        "tensor")
        arr = np.frombuffer(raw, dtype=dt)
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise ModelFormatError(f"operator {k} ({kind.value}): {what} buffer does not match its shape")
        return arr.astype(np.int64).reshape(shape)

    def _op(self, k: int, t: _flatbuf.Table, codes, tensors, indices, aux: set[int]) -> Op:
        opcode_index = t.scalar(Slot.OP_OPCODE, "I")
        if not 0 <= opcode_index < len(codes):
            raise ModelFormatError(f"operator {k} uses opcode {opcode_index}, the model has {len(codes)}")
        code, custom = codes[opcode_index]
        if code == _CUSTOM:
            raise UnsupportedModelError(f"unsupported custom operator {custom!r} (op {k})")
        kind = KIND_OF_CODE.get(code)
        if kind is None:
            raise UnsupportedModelError(f"unsupported operator {builtin_name(code)} (op {k})")
        ins = indices(t, Slot.OP_INPUTS, f"operator {k} ({kind.value}) inputs")
        outs = indices(t, Slot.OP_OUTPUTS, f"operator {k} ({kind.value}) outputs")
        if not ins or not outs or -1 in outs or ins[0] == -1:
            raise ModelFormatError(f"operator {k} ({kind.value}) lacks its input or output tensor")
        inter = t.array(Slot.OP_INTERMEDIATES, "int32")
        if inter is not None and inter.size:
            raise UnsupportedModelError(f"operator {k} ({kind.value}) has intermediate tensors")
        options_type = t.scalar(Slot.OP_OPTIONS_TYPE, "B")
        table = t.table(Slot.OP_OPTIONS, f"operator {k} options")
        expected = OP_CODES[kind][1]
        if table is not None and options_type != expected:
            raise ModelFormatError(f"operator {k} ({kind.value}) carries options of union type {options_type}, "
                                   f"expected {expected}")
        options = self._options(k, kind, table, ins, outs, tensors, aux)
        return Op(kind, tuple(ins), tuple(outs), options)

    def _options(self, k, kind, table, ins, outs, tensors, aux):
        def need():
            if table is None:
                raise ModelFormatError(f"operator {k} ({kind.value}) has no options table")
            return table

        def act(slot):
            code = table.scalar(slot, "b") if table is not None else 0
            if code not in ACTIVATIONS:
                raise UnsupportedModelError(f"operator {k} ({kind.value}): unsupported fused activation "
                                            f"{ACTIVATION_NAMES.get(code, code)}")
            return ACTIVATIONS[code]

        def padding(tb):
            code = tb.scalar(4, "b")
            if code not in PADDINGS:
                raise ModelFormatError(f"operator {k} ({kind.value}): unknown padding {code}")
            return PADDINGS[code]

        s = lambda tb, slot, default: tb.scalar(slot, "i", default)  # noqa: E731
        if kind == OpKind.CONV_2D:
            tb = need()
            if len(ins) == 3 and ins[2] >= 0 and self._names[ins[2]] == ZERO_BIAS_NAME:
                _, _, raw = self._raw[ins[2]]
                if not any(raw):
                    aux.add(ins.pop())  # our writer's stand-in for "no bias"
            return Conv2DOptions((s(tb, 8, 0), s(tb, 6, 0)), padding(tb), act(10), (s(tb, 14, 1), s(tb, 12, 1)))
        if kind == OpKind.DEPTHWISE_CONV_2D:
            tb = need()
            w = tensors[ins[1]] if len(ins) > 1 and ins[1] >= 0 else None
            mult = s(tb, 10, 0)
            if w is not None and len(w.shape) == 4 and tensors[ins[0]] is not None and tensors[ins[0]].shape:
                c_in = tensors[ins[0]].shape[-1]
                if c_in and w.shape[3] % c_in == 0:
                    mult = w.shape[3] // c_in  # TFLM derives it from the shapes; some files store 0
            return DepthwiseConv2DOptions((s(tb, 8, 0), s(tb, 6, 0)), padding(tb), act(12),
                                          (s(tb, 16, 1), s(tb, 14, 1)), mult)
        if kind == OpKind.FULLY_CONNECTED:
            if table is not None and table.scalar(6, "b"):
                raise UnsupportedModelError(f"operator {k} (FULLY_CONNECTED): shuffled weights format")
            keep = bool(table.scalar(8, "B")) if table is not None else False
            return FullyConnectedOptions(act(4), keep)
        if kind in (OpKind.AVERAGE_POOL_2D, OpKind.MAX_POOL_2D):
            tb = need()
            return Pool2DOptions((s(tb, 12, 0), s(tb, 10, 0)), (s(tb, 8, 0), s(tb, 6, 0)), padding(tb), act(14))
        if kind == OpKind.ADD:
            return AddOptions(act(4))
        if kind == OpKind.MUL:
            return MulOptions(act(4))
        if kind == OpKind.SOFTMAX:
            return SoftmaxOptions(need().scalar(4, "f", 0.0))
        if kind == OpKind.MEAN:
            if len(ins) != 2:
                raise ModelFormatError(f"operator {k} (MEAN) needs input and axis tensors")
            axes = self._const_ints(k, kind, ins[1], "the axis")
            aux.add(ins.pop())
            keep = bool(table.scalar(4, "B")) if table is not None else False
            return MeanOptions(tuple(int(a) for a in axes.reshape(-1)), keep)
        if kind == OpKind.RESHAPE:
            if len(ins) == 2 and ins[1] >= 0:
                shape = self._const_ints(k, kind, ins[1], "the shape")
                aux.add(ins.pop())
                return ReshapeOptions(tuple(int(d) for d in shape.reshape(-1)))
            del ins[1:]
            new_shape = table.array(4, "int32") if table is not None else None
            if new_shape is not None and new_shape.size:
                return ReshapeOptions(tuple(int(d) for d in new_shape))
            out = tensors[outs[0]]
            return ReshapeOptions(out.shape if out is not None else ())
        if kind == OpKind.PAD:
            if len(ins) != 2:
                raise UnsupportedModelError(f"operator {k} (PAD) with {len(ins)} inputs (constant value input "
                                            "is unsupported)")
            pads = self._const_ints(k, kind, ins[1], "the paddings")
            if pads.ndim != 2 or pads.shape[1] != 2:
                raise ModelFormatError(f"operator {k} (PAD): paddings of shape {pads.shape}, expected [rank, 2]")
            aux.add(ins.pop())
            return PadOptions(tuple((int(a), int(b)) for a, b in pads))
        return NoOptions()

