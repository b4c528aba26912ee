"""The parts of an int8 graph (see :mod:`hardware.graph`): dtypes, quantization, tensors, op kinds and
their typed options, ops. Validation and op parameters import these without the graph itself, so
``graph`` -> ``_validate`` -> ``op_params`` has no cycle."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

__all__ = [
    "Activation",
    "AddOptions",
    "Conv2DOptions",
    "DType",
    "DepthwiseConv2DOptions",
    "FullyConnectedOptions",
    "GraphError",
    "MeanOptions",
    "MulOptions",
    "NoOptions",
    "Op",
    "OpKind",
    "PadOptions",
    "Padding",
    "Pool2DOptions",
    "Quantization",
    "ReshapeOptions",
    "SoftmaxOptions",
    "Tensor",
    "WEIGHTED_OPS",
    "canonical_bias_quantization",
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
    MUL = "MUL"
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
class MulOptions:
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
             | AddOptions | MulOptions | ReshapeOptions | SoftmaxOptions | PadOptions | NoOptions)

OPTIONS_TYPE: dict[OpKind, type] = {
    OpKind.CONV_2D: Conv2DOptions,
    OpKind.DEPTHWISE_CONV_2D: DepthwiseConv2DOptions,
    OpKind.FULLY_CONNECTED: FullyConnectedOptions,
    OpKind.AVERAGE_POOL_2D: Pool2DOptions,
    OpKind.MAX_POOL_2D: Pool2DOptions,
    OpKind.MEAN: MeanOptions,
    OpKind.ADD: AddOptions,
    OpKind.MUL: MulOptions,
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
