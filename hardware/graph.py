"""The in-memory int8 graph: the one language of the hardware side.

An :class:`Int8Graph` is frozen data: tensors (shape, dtype, quantization, constant data), ops of a
small supported set with typed options, graph inputs/outputs and string metadata. The `.tflite`
reader and writer, the golden numpy reference, and later the C code generator and the memory
planner all walk this one structure. Constructing a graph validates it (indices, producers, shapes,
dtypes, the quantization TFLM's int8 kernels require) and raises :class:`GraphError` with the tensor
or op at fault named.

Conventions (those of TFLite): activations are NHWC; conv weights are ``[O, kh, kw, I]`` quantized
per channel along axis 0; depthwise weights ``[1, kh, kw, C*m]`` along axis 3; fully-connected
weights ``[O, I]`` along axis 0; biases int32 ``[O]`` with scale ``in_scale * w_scale[c]`` and zero
point 0. A float32 graph (same ops, float32 tensors, no quantization) is allowed too, for the
float `.tflite` the exporter writes beside the int8 one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import json
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum

import numpy as np

__all__ = [
    "Activation", "AddOptions", "Conv2DOptions", "DType", "DepthwiseConv2DOptions",
    "FullyConnectedOptions", "GraphError", "Int8Graph", "MeanOptions", "NoOptions", "Op", "OpKind",
    "PadOptions", "Padding", "Pool2DOptions", "Quantization", "ReshapeOptions", "SoftmaxOptions",
    "Tensor", "canonical_bias_quantization",
]


class GraphError(ValueError):
    """An inconsistent graph: the message names the op or tensor at fault."""


class DType(StrEnum):
    INT8 = "int8"
    INT16 = "int16"
    INT32 = "int32"
    FLOAT32 = "float32"

    @property
    def numpy(self) -> np.dtype:
        return np.dtype(self.value)

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize


class Padding(StrEnum):
    SAME = "SAME"
    VALID = "VALID"


class Activation(StrEnum):
    NONE = "NONE"
    RELU = "RELU"
    RELU6 = "RELU6"


class OpKind(StrEnum):
    CONV_2D = "CONV_2D"
    DEPTHWISE_CONV_2D = "DEPTHWISE_CONV_2D"
    FULLY_CONNECTED = "FULLY_CONNECTED"
    AVERAGE_POOL_2D = "AVERAGE_POOL_2D"
    MAX_POOL_2D = "MAX_POOL_2D"
    MEAN = "MEAN"
    ADD = "ADD"
    RESHAPE = "RESHAPE"
    SOFTMAX = "SOFTMAX"
    PAD = "PAD"
    QUANTIZE = "QUANTIZE"
    DEQUANTIZE = "DEQUANTIZE"


def _f32(x: float) -> float:
    """The float32 value a `.tflite` file would store (scales are float32 on disk and in TFLM)."""
    return float(np.float32(x))


@dataclass(frozen=True)
class Quantization:
    """Affine quantization ``real = scale * (q - zero_point)``.

    One scale is per-tensor (``axis`` is None); several are per-channel along ``axis``. Scales are
    stored rounded to float32, as a `.tflite` file holds them, so a graph and its file agree.
    """

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None

    def __post_init__(self) -> None:
        scale = tuple(_f32(s) for s in np.atleast_1d(np.asarray(self.scale, dtype=np.float64)))
        zp = tuple(int(z) for z in np.atleast_1d(np.asarray(self.zero_point, dtype=np.int64)))
        if not scale:
            raise GraphError("quantization needs at least one scale")
        if len(zp) == 1 and len(scale) > 1:
            zp = zp * len(scale)
        if len(zp) != len(scale):
            raise GraphError(f"quantization has {len(scale)} scales but {len(zp)} zero points")
        if not all(np.isfinite(s) and s > 0 for s in scale):
            raise GraphError(f"quantization scales must be finite and positive, got {scale[:4]}...")
        axis = None if len(scale) == 1 else (0 if self.axis is None else int(self.axis))
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "zero_point", zp)
        object.__setattr__(self, "axis", axis)

    @classmethod
    def per_tensor(cls, scale: float, zero_point: int = 0) -> Quantization:
        return cls((scale,), (zero_point,))

    @classmethod
    def per_channel(cls, scales: Sequence[float], axis: int, zero_points: Sequence[int] | None = None
                    ) -> Quantization:
        return cls(tuple(scales), tuple(zero_points) if zero_points is not None else (0,), axis)

    @property
    def is_per_channel(self) -> bool:
        return self.axis is not None

    @property
    def scales(self) -> np.ndarray:
        return np.asarray(self.scale, dtype=np.float32)

    @property
    def zero_points(self) -> np.ndarray:
        return np.asarray(self.zero_point, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Tensor:
    """A tensor: ``data`` is None for activations, a read-only array of ``shape``/``dtype`` for constants."""

    name: str
    shape: tuple[int, ...]
    dtype: DType
    quantization: Quantization | None = None
    data: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        try:
            object.__setattr__(self, "dtype", DType(self.dtype))
        except ValueError:
            raise GraphError(f"tensor {self.name!r}: unsupported dtype {self.dtype!r}") from None
        if any(d < 0 for d in self.shape):
            raise GraphError(f"tensor {self.name!r}: negative dimension in shape {self.shape}")
        if self.data is not None:
            arr = np.asarray(self.data)
            if arr.size != int(np.prod(self.shape, dtype=np.int64)):
                raise GraphError(f"tensor {self.name!r}: data has {arr.size} elements, shape {self.shape} "
                                 f"needs {int(np.prod(self.shape))}")
            if arr.dtype != self.dtype.numpy and not np.can_cast(arr.dtype, self.dtype.numpy, "same_kind"):
                raise GraphError(f"tensor {self.name!r}: data of dtype {arr.dtype} for a {self.dtype.value} tensor")
            if np.issubdtype(self.dtype.numpy, np.integer) and arr.size:
                info = np.iinfo(self.dtype.numpy)
                if arr.min() < info.min or arr.max() > info.max:
                    raise GraphError(f"tensor {self.name!r}: data outside the {self.dtype.value} range")
            arr = np.array(arr, dtype=self.dtype.numpy).reshape(self.shape)
            arr.setflags(write=False)
            object.__setattr__(self, "data", arr)

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def _key(self) -> tuple:
        data = None if self.data is None else hashlib.sha256(self.data.tobytes()).hexdigest()
        return (self.name, self.shape, self.dtype, self.quantization, data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tensor):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


# ---- op options: one frozen dataclass per kind (NoOptions where TFLite has none) ----

def _pair(v) -> tuple[int, int]:
    t = (int(v), int(v)) if np.isscalar(v) else tuple(int(x) for x in v)
    if len(t) != 2:
        raise GraphError(f"expected an (h, w) pair, got {v!r}")
    return t  # type: ignore[return-value]


@dataclass(frozen=True)
class Conv2DOptions:
    stride: tuple[int, int] = (1, 1)          # (h, w)
    padding: Padding = Padding.SAME
    activation: Activation = Activation.NONE
    dilation: tuple[int, int] = (1, 1)        # (h, w)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stride", _pair(self.stride))
        object.__setattr__(self, "dilation", _pair(self.dilation))
        object.__setattr__(self, "padding", Padding(self.padding))
        object.__setattr__(self, "activation", Activation(self.activation))


@dataclass(frozen=True)
class DepthwiseConv2DOptions(Conv2DOptions):
    depth_multiplier: int = 1


@dataclass(frozen=True)
class FullyConnectedOptions:
    activation: Activation = Activation.NONE
    keep_num_dims: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "activation", Activation(self.activation))
        object.__setattr__(self, "keep_num_dims", bool(self.keep_num_dims))


@dataclass(frozen=True)
class Pool2DOptions:
    filter_size: tuple[int, int] = (1, 1)     # (h, w)
    stride: tuple[int, int] = (1, 1)
    padding: Padding = Padding.VALID
    activation: Activation = Activation.NONE

    def __post_init__(self) -> None:
        object.__setattr__(self, "filter_size", _pair(self.filter_size))
        object.__setattr__(self, "stride", _pair(self.stride))
        object.__setattr__(self, "padding", Padding(self.padding))
        object.__setattr__(self, "activation", Activation(self.activation))


@dataclass(frozen=True)
class MeanOptions:
    axes: tuple[int, ...] = (1, 2)
    keep_dims: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "axes", tuple(int(a) for a in np.atleast_1d(self.axes)))
        object.__setattr__(self, "keep_dims", bool(self.keep_dims))


@dataclass(frozen=True)
class AddOptions:
    activation: Activation = Activation.NONE

    def __post_init__(self) -> None:
        object.__setattr__(self, "activation", Activation(self.activation))


@dataclass(frozen=True)
class ReshapeOptions:
    new_shape: tuple[int, ...] = ()           # may hold one -1

    def __post_init__(self) -> None:
        object.__setattr__(self, "new_shape", tuple(int(d) for d in self.new_shape))


@dataclass(frozen=True)
class SoftmaxOptions:
    beta: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", _f32(self.beta))


@dataclass(frozen=True)
class PadOptions:
    paddings: tuple[tuple[int, int], ...] = ()  # (before, after) per dimension

    def __post_init__(self) -> None:
        object.__setattr__(self, "paddings", tuple((int(a), int(b)) for a, b in self.paddings))


@dataclass(frozen=True)
class NoOptions:
    pass


OpOptions = (Conv2DOptions | DepthwiseConv2DOptions | FullyConnectedOptions | Pool2DOptions | MeanOptions
             | AddOptions | ReshapeOptions | SoftmaxOptions | PadOptions | NoOptions)

OPTIONS_TYPE: dict[OpKind, type] = {
    OpKind.CONV_2D: Conv2DOptions,
    OpKind.DEPTHWISE_CONV_2D: DepthwiseConv2DOptions,
    OpKind.FULLY_CONNECTED: FullyConnectedOptions,
    OpKind.AVERAGE_POOL_2D: Pool2DOptions,
    OpKind.MAX_POOL_2D: Pool2DOptions,
    OpKind.MEAN: MeanOptions,
    OpKind.ADD: AddOptions,
    OpKind.RESHAPE: ReshapeOptions,
    OpKind.SOFTMAX: SoftmaxOptions,
    OpKind.PAD: PadOptions,
    OpKind.QUANTIZE: NoOptions,
    OpKind.DEQUANTIZE: NoOptions,
}


@dataclass(frozen=True)
class Op:
    """One operator. ``inputs``/``outputs`` index ``Int8Graph.tensors``; a missing optional input
    (a conv's bias) is simply left out (trailing ``-1`` entries, TFLite's marker, are dropped)."""

    kind: OpKind
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: OpOptions | None = None

    def __post_init__(self) -> None:
        try:
            kind = OpKind(self.kind)
        except ValueError:
            raise GraphError(f"unsupported op kind {self.kind!r}") from None
        inputs = [int(i) for i in self.inputs]
        while inputs and inputs[-1] == -1:
            inputs.pop()
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "inputs", tuple(inputs))
        object.__setattr__(self, "outputs", tuple(int(i) for i in self.outputs))
        options = self.options if self.options is not None else OPTIONS_TYPE[kind]()
        if type(options) is not OPTIONS_TYPE[kind]:
            raise GraphError(f"{kind.value} needs {OPTIONS_TYPE[kind].__name__}, got {type(options).__name__}")
        object.__setattr__(self, "options", options)

    @property
    def activation(self) -> Activation:
        return getattr(self.options, "activation", Activation.NONE)


def canonical_bias_quantization(input_q: Quantization, weight_q: Quantization) -> Quantization:
    """Bias quantization implied by TFLite's int8 spec: scale ``in_scale * w_scale[c]`` (float32
    product), zero point 0, per channel along axis 0 when the weights are per channel."""
    scales = np.float32(input_q.scale[0]) * weight_q.scales
    if weight_q.is_per_channel:
        return Quantization(tuple(float(s) for s in scales), (0,) * len(scales), 0)
    return Quantization((float(scales[0]),), (0,))


WEIGHTED_OPS = (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D, OpKind.FULLY_CONNECTED)


@dataclass(frozen=True, eq=False)
class Int8Graph:
    """A validated graph; see the module docstring. Equality compares every field (tensor data
    included); ``digest()`` is a stable content hash."""

    tensors: tuple[Tensor, ...]
    ops: tuple[Op, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tensors", tuple(self.tensors))
        object.__setattr__(self, "ops", tuple(self.ops))
        object.__setattr__(self, "inputs", tuple(int(i) for i in self.inputs))
        object.__setattr__(self, "outputs", tuple(int(i) for i in self.outputs))
        meta = dict(self.metadata)
        for k, v in meta.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise GraphError(f"metadata must map str to str, got {type(k).__name__} -> {type(v).__name__}")
        object.__setattr__(self, "metadata", types.MappingProxyType(meta))
        from hardware import _validate

        _validate.check_structure(self)
        object.__setattr__(self, "tensors", _validate.fill_bias_quantization(self))
        _validate.check_ops(self)

    # ---- equality and identity ----
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Int8Graph):
            return NotImplemented
        return (self.tensors == other.tensors and self.ops == other.ops and self.inputs == other.inputs
                and self.outputs == other.outputs and dict(self.metadata) == dict(other.metadata))

    def __hash__(self) -> int:
        return hash(self.digest())

    def replace(self, **changes) -> Int8Graph:
        """A modified copy (validated again)."""
        return dataclasses.replace(self, **changes)

    def digest(self) -> str:
        """SHA-256 (hex) of the graph's full content, stable across processes and versions of numpy."""
        h = hashlib.sha256()

        def enc(obj) -> str:
            if isinstance(obj, Enum):
                return obj.value
            if dataclasses.is_dataclass(obj):
                return [type(obj).__name__, {f.name: enc(getattr(obj, f.name)) for f in dataclasses.fields(obj)}]
            if isinstance(obj, tuple | list):
                return [enc(x) for x in obj]
            return obj

        for t in self.tensors:
            h.update(json.dumps([t.name, list(t.shape), t.dtype.value, enc(t.quantization)]).encode())
            if t.data is not None:
                h.update(np.ascontiguousarray(t.data).astype(t.data.dtype.newbyteorder("<")).tobytes())
            h.update(b"\x00")
        for op in self.ops:
            h.update(json.dumps([op.kind.value, list(op.inputs), list(op.outputs), enc(op.options)]).encode())
        h.update(json.dumps([list(self.inputs), list(self.outputs), sorted(self.metadata.items())]).encode())
        return h.hexdigest()

    # ---- structure queries ----
    @property
    def is_float(self) -> bool:
        """True when the ops compute in float32 (a float model, possibly with float IO only)."""
        compute = [op for op in self.ops if op.kind not in (OpKind.QUANTIZE, OpKind.DEQUANTIZE)]
        return bool(compute) and all(self.tensors[op.outputs[0]].dtype == DType.FLOAT32 for op in compute)

    def producer(self, tensor: int) -> int | None:
        """Index of the op writing ``tensor`` (None for inputs and constants)."""
        for i, op in enumerate(self.ops):
            if tensor in op.outputs:
                return i
        return None

    def consumers(self, tensor: int) -> list[int]:
        return [i for i, op in enumerate(self.ops) if tensor in op.inputs]

    def topological_order(self) -> tuple[int, ...]:
        """Op indices so that every op follows the producers of its inputs; ties keep list order."""
        producer = {t: i for i, op in enumerate(self.ops) for t in op.outputs}
        deps = [{producer[t] for t in op.inputs if t in producer} for op in self.ops]
        users: dict[int, list[int]] = {i: [] for i in range(len(self.ops))}
        for i, d in enumerate(deps):
            for j in d:
                users[j].append(i)
        pending = [len(d) for d in deps]
        ready = [i for i, n in enumerate(pending) if n == 0]
        heapq.heapify(ready)
        order: list[int] = []
        while ready:
            i = heapq.heappop(ready)
            order.append(i)
            for u in users[i]:
                pending[u] -= 1
                if pending[u] == 0:
                    heapq.heappush(ready, u)
        if len(order) != len(self.ops):
            raise GraphError("the graph has a cycle")
        return tuple(order)

    def tensor_lifetimes(self) -> dict[int, tuple[int, int]]:
        """For each activation (non-constant) tensor: (first, last) positions in
        ``topological_order()`` during which it must be held, inclusive. Graph inputs start at 0;
        graph outputs last until the final op."""
        order = self.topological_order()
        last_pos = len(order) - 1
        life: dict[int, list[int]] = {t: [0, 0] for t in self.inputs}
        for pos, i in enumerate(order):
            op = self.ops[i]
            for t in op.inputs:
                if not self.tensors[t].is_constant:
                    life.setdefault(t, [pos, pos])[1] = pos
            for t in op.outputs:
                life.setdefault(t, [pos, pos])
        for t in self.outputs:
            if t in life:
                life[t][1] = last_pos
        return {t: (a, b) for t, (a, b) in sorted(life.items())}

    # ---- cost figures ----
    def weight_tensors(self) -> list[int]:
        """Constant weight tensors (input 1 of conv, depthwise and fully-connected ops)."""
        return sorted({op.inputs[1] for op in self.ops if op.kind in WEIGHTED_OPS})

    def bias_tensors(self) -> list[int]:
        return sorted({op.inputs[2] for op in self.ops if op.kind in WEIGHTED_OPS and len(op.inputs) > 2})

    def weight_bytes(self) -> int:
        return sum(self.tensors[t].nbytes for t in self.weight_tensors())

    def bias_bytes(self) -> int:
        return sum(self.tensors[t].nbytes for t in self.bias_tensors())

    def param_bytes(self) -> int:
        """Bytes of all constant tensors the ops read (weights, biases)."""
        return sum(t.nbytes for t in self.tensors if t.is_constant)

    def param_count(self) -> int:
        return sum(t.size for t in self.tensors if t.is_constant)

    def op_macs(self, index: int) -> int:
        """Multiply-accumulates of one op: conv, depthwise and fully-connected only (pools, MEAN
        and ADD do additions and count 0)."""
        op = self.ops[index]
        out = self.tensors[op.outputs[0]]
        if op.kind == OpKind.CONV_2D:
            w = self.tensors[op.inputs[1]].shape
            return out.size * w[1] * w[2] * w[3]
        if op.kind == OpKind.DEPTHWISE_CONV_2D:
            w = self.tensors[op.inputs[1]].shape
            return out.size * w[1] * w[2]
        if op.kind == OpKind.FULLY_CONNECTED:
            return out.size * self.tensors[op.inputs[1]].shape[1]
        return 0

    def macs(self) -> int:
        return sum(self.op_macs(i) for i in range(len(self.ops)))
