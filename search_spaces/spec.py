"""`ArchSpec`: a whole keyword-spotting network as frozen data.

One spec is read by several interpreters: the flax model builder, `estimate` (parameters, MACs, peak
activation memory), and through the int8 graph the exporters. It holds the front end (its
`FrontEndConfig`), the body as a tuple of layers, and the number of classes; the classifier (a dense
layer with ``num_classes`` outputs and no activation) is implied and always last, so one body serves
the 12-class and the 10-class protocols.

Layers (all frozen dataclasses, JSON ``{"kind": ..., ...}``):

- `Conv`: a standard 2-D convolution (+ batch norm + activation). The input is (time, frequency, 1).
- `DSConv`: a depthwise-separable block: depthwise k×k (+BN+act), pointwise 1×1 (+BN+act), with an
  optional residual connection (stride 1, equal widths only), an optional low-rank pointwise (``rank``) and
  an optional squeeze-and-excitation gate between the two (``se``).
- `Dense`: a fully-connected layer (+ optional BN + activation); needs a flat input.
- `Flatten`, `GlobalAvgPool` (average over time and frequency), `AvgPool`, `MaxPool`, `Dropout`.
- `AttentionPool`: the head's attention pooling, in place of `GlobalAvgPool`: a learned score per
  position (a 1×1 convolution to one channel), a softmax over all positions, and the map summed with those
  weights; a dense layer must follow (the classifier, or a hidden one).

`ArchSpec.digest()` is the content hash (the name excluded): the cache key of every trained model,
measurement and artifact.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from search_spaces.frontend import FrontEndConfig

ACTIVATIONS = ("relu", "relu6", "none")
PADDINGS = ("same", "valid")


class SpecError(ValueError):
    """A malformed or impossible architecture; the message names the layer and the cause."""


def _pair(v: Any, what: str) -> tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    try:
        a, b = v
    except (TypeError, ValueError):
        raise SpecError(f"{what} must be an integer or a pair of integers, got {v!r}") from None
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (a, b)):
        raise SpecError(f"{what} must be integers, got {v!r}")
    return (a, b)


def _check_positive(layer: Any, *names: str) -> None:
    for name in names:
        value = getattr(layer, name)
        values = value if isinstance(value, tuple) else (value,)
        if any(not isinstance(x, int) or isinstance(x, bool) or x <= 0 for x in values):
            raise SpecError(f"{layer.kind}: {name} must be positive integers, got {value!r}")


def _check_rank(layer: Any) -> None:
    if layer.rank is not None:
        _check_positive(layer, "rank")


def _check_low_rank(layer: Any, n_in: int, n_out: int, where: str) -> None:
    """A factorisation pays only below min(in, out): at or above it, it is a full layer that costs more."""
    if layer.rank is not None and layer.rank >= min(n_in, n_out):
        raise SpecError(f"{where}: rank {layer.rank} must be below min(inputs {n_in}, outputs {n_out}) to save "
                        "anything (leave it out for a full-rank layer)")


def rank_for(fraction: float, n_in: int, n_out: int) -> int | None:
    """The rank ``fraction`` of min(``n_in``, ``n_out``) (at least 1) for a low-rank layer, or None (full rank)
    where that rank would save nothing."""
    rank = max(1, round(fraction * min(n_in, n_out)))
    return rank if rank < min(n_in, n_out) else None


def _check_choice(layer: Any, name: str, choices: tuple[str, ...]) -> None:
    if getattr(layer, name) not in choices:
        raise SpecError(f"{layer.kind}: {name} must be one of {choices}, got {getattr(layer, name)!r}")


@dataclass(frozen=True)
class Conv:
    filters: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: str = "same"
    activation: str = "relu"
    batch_norm: bool = True
    kind: ClassVar[str] = "conv"

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel", _pair(self.kernel, "conv kernel"))
        object.__setattr__(self, "stride", _pair(self.stride, "conv stride"))
        _check_positive(self, "filters", "kernel", "stride")
        _check_choice(self, "padding", PADDINGS)
        _check_choice(self, "activation", ACTIVATIONS)


@dataclass(frozen=True)
class DSConv:
    filters: int
    kernel: tuple[int, int] = (3, 3)
    stride: tuple[int, int] = (1, 1)
    padding: str = "same"
    activation: str = "relu"
    residual: bool = False
    # Low rank (SVD-style): the 1x1 convolution as a rank-r projection then an expansion, cin*r + r*filters
    # weights instead of cin*filters; None: full rank (omitted from the JSON, so digests of older specs hold).
    rank: int | None = field(default=None, metadata={"omit_if_none": True})
    # Squeeze-and-excitation (Hu et al. 2018, as MobileNetV3 places it): after the depthwise, the global mean
    # of each channel -> dense to `se` units + ReLU -> dense back + hard sigmoid -> a per-channel gate that
    # scales the depthwise output. None: no gate (omitted from the JSON, so older digests hold).
    se: int | None = field(default=None, metadata={"omit_if_none": True})
    kind: ClassVar[str] = "ds"

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel", _pair(self.kernel, "ds kernel"))
        object.__setattr__(self, "stride", _pair(self.stride, "ds stride"))
        _check_positive(self, "filters", "kernel", "stride")
        _check_choice(self, "padding", PADDINGS)
        _check_choice(self, "activation", ACTIVATIONS)
        _check_rank(self)
        if self.se is not None:
            _check_positive(self, "se")


@dataclass(frozen=True)
class Dense:
    units: int
    activation: str = "relu"
    batch_norm: bool = False
    rank: int | None = field(default=None, metadata={"omit_if_none": True})  # low rank, as in DSConv
    kind: ClassVar[str] = "dense"

    def __post_init__(self) -> None:
        _check_positive(self, "units")
        _check_choice(self, "activation", ACTIVATIONS)
        _check_rank(self)


@dataclass(frozen=True)
class Flatten:
    kind: ClassVar[str] = "flatten"


@dataclass(frozen=True)
class GlobalAvgPool:
    kind: ClassVar[str] = "gap"


@dataclass(frozen=True)
class AttentionPool:
    kind: ClassVar[str] = "attnpool"


@dataclass(frozen=True)
class AvgPool:
    size: tuple[int, int]
    stride: tuple[int, int] | None = None  # None: equal to size
    kind: ClassVar[str] = "avgpool"

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _pair(self.size, "avgpool size"))
        object.__setattr__(self, "stride", _pair(self.stride if self.stride is not None else self.size,
                                                 "avgpool stride"))
        _check_positive(self, "size", "stride")


@dataclass(frozen=True)
class MaxPool:
    size: tuple[int, int]
    stride: tuple[int, int] | None = None
    kind: ClassVar[str] = "maxpool"

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _pair(self.size, "maxpool size"))
        object.__setattr__(self, "stride", _pair(self.stride if self.stride is not None else self.size,
                                                 "maxpool stride"))
        _check_positive(self, "size", "stride")


@dataclass(frozen=True)
class Dropout:
    rate: float
    kind: ClassVar[str] = "dropout"

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or not isinstance(self.rate, int | float) or not 0 <= self.rate < 1:
            raise SpecError(f"dropout: rate must be in [0, 1), got {self.rate!r}")
        object.__setattr__(self, "rate", float(self.rate))


Layer = Conv | DSConv | Dense | Flatten | GlobalAvgPool | AttentionPool | AvgPool | MaxPool | Dropout
LAYER_KINDS: dict[str, type] = {
    t.kind: t for t in (Conv, DSConv, Dense, Flatten, GlobalAvgPool, AttentionPool, AvgPool, MaxPool, Dropout)
}


def layer_to_dict(layer: Layer) -> dict[str, Any]:
    d: dict[str, Any] = {"kind": layer.kind}
    for f in dataclasses.fields(layer):
        v = getattr(layer, f.name)
        if v is None and f.metadata.get("omit_if_none"):
            continue
        d[f.name] = list(v) if isinstance(v, tuple) else v
    return d


def layer_from_dict(d: Any, where: str = "layer") -> Layer:
    if not isinstance(d, dict):
        raise SpecError(f"{where}: expected an object with a 'kind', got {type(d).__name__}")
    kind = d.get("kind")
    if not isinstance(kind, str) or kind not in LAYER_KINDS:
        raise SpecError(f"{where}: unknown layer kind {kind!r} (known: {', '.join(LAYER_KINDS)})")
    cls = LAYER_KINDS[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    extra = set(d) - names - {"kind"}
    if extra:
        raise SpecError(f"{where} ({kind}): unknown field(s) {sorted(extra)}")
    try:
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k != "kind"})
    except SpecError as e:
        raise SpecError(f"{where}: {e}") from None
    except TypeError as e:
        raise SpecError(f"{where} ({kind}): {e}") from None


Shape = tuple[int, ...]


def _conv_out(n: int, k: int, s: int, padding: str) -> int:
    return math.ceil(n / s) if padding == "same" else (n - k) // s + 1


@dataclass(frozen=True)
class ArchSpec:
    name: str
    family: str
    frontend: FrontEndConfig
    layers: tuple[Layer, ...]
    num_classes: int = 12
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)  # provenance, notes

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise SpecError(f"{self.name}: num_classes must be an integer >= 2, got {self.num_classes!r}")
        self.shapes()  # validates the whole network

    @property
    def input_shape(self) -> Shape:
        """(time frames, features, 1): the int8 model's input."""
        return (*self.frontend.feature_shape, 1)

    @property
    def classifier(self) -> Dense:
        return Dense(self.num_classes, activation="none")

    def all_layers(self) -> tuple[Layer, ...]:
        """The body followed by the implied classifier."""
        return (*self.layers, self.classifier)

    def shapes(self) -> list[Shape]:
        """Output shape of every layer of `all_layers()`; raises `SpecError` naming the first bad layer."""
        shape: Shape = self.input_shape
        out = []
        for i, layer in enumerate(self.all_layers()):
            where = f"{self.name}: layer {i} ({layer.kind})" if i < len(self.layers) else f"{self.name}: classifier"
            shape = _next_shape(layer, shape, where)
            out.append(shape)
        if len(shape) != 1:
            raise SpecError(f"{self.name}: the body must end flat (gap, flatten or dense), ends with {shape}")
        layers = [layer for layer in self.all_layers() if not isinstance(layer, Dropout)]
        for here, after in zip(layers, layers[1:], strict=False):
            if isinstance(here, AttentionPool) and not isinstance(after, Dense):
                # the deployed pool averages where the trained one sums: the next dense layer's weights
                # take the factor (time x frequency positions), so that layer must be a dense one
                raise SpecError(f"{self.name}: attention pooling must feed a dense layer, not {after.kind}")
        return out

    def with_classes(self, num_classes: int) -> ArchSpec:
        return dataclasses.replace(self, num_classes=num_classes)

    def with_frontend(self, frontend: FrontEndConfig) -> ArchSpec:
        return dataclasses.replace(self, frontend=frontend)

    def widened(self, factor: float) -> ArchSpec:
        """Every body layer's width (filters, units; a low rank in proportion) times ``factor``, rounded, at
        least 1: the uniform width multiplier of MobileNet. Equal widths stay equal, so residual blocks stay
        legal; a space snaps the result to its own grid (`SearchSpace.params_of` with ``snap=True``)."""
        if not (isinstance(factor, int | float) and factor > 0):
            raise SpecError(f"{self.name}: a width factor must be > 0, got {factor!r}")

        def times(n: int) -> int:
            return max(1, round(n * factor))

        def scaled(layer: Layer) -> Layer:
            if isinstance(layer, Conv):
                return dataclasses.replace(layer, filters=times(layer.filters))
            if isinstance(layer, DSConv | Dense):
                width = times(layer.filters if isinstance(layer, DSConv) else layer.units)
                rank = None if layer.rank is None else times(layer.rank)
                return dataclasses.replace(layer, **{"filters" if isinstance(layer, DSConv) else "units": width},
                                           rank=rank)
            return layer

        return dataclasses.replace(self, name=f"{self.name}-x{factor:g}", layers=tuple(map(scaled, self.layers)))

    # --- JSON -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {
            "name": self.name,
            "family": self.family,
            "num_classes": self.num_classes,
            "frontend": self.frontend.to_dict(),
            "layers": [layer_to_dict(layer) for layer in self.layers],
        }
        if self.meta:
            d["meta"] = dict(self.meta)
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_dict(cls, d: Any) -> ArchSpec:
        if not isinstance(d, dict):
            raise SpecError(f"an architecture spec is a JSON object, got {type(d).__name__}")
        missing = [k for k in ("name", "family", "frontend", "layers") if k not in d]
        if missing:
            raise SpecError(f"spec is missing field(s): {', '.join(missing)}")
        if not isinstance(d["layers"], list):
            raise SpecError("spec field 'layers' must be a list")
        try:
            frontend = FrontEndConfig.from_dict(d["frontend"])
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise SpecError(f"spec frontend: {e}") from None
        layers = tuple(layer_from_dict(x, f"layer {i}") for i, x in enumerate(d["layers"]))
        return cls(name=str(d["name"]), family=str(d["family"]), frontend=frontend, layers=layers,
                   num_classes=d.get("num_classes", 12), meta=dict(d.get("meta") or {}))

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError(f"spec is not valid JSON: {e}") from None
        return cls.from_dict(data)

    def digest(self) -> str:
        """Stable content hash of the network (the name and meta excluded), 16 hex digits."""
        d = self.to_dict()
        d.pop("name")
        d.pop("meta", None)
        blob = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _next_shape(layer: Layer, shape: Shape, where: str) -> Shape:
    if isinstance(layer, (Conv, DSConv, AvgPool, MaxPool)):
        if len(shape) != 3:
            raise SpecError(f"{where}: needs a (time, freq, channels) input, got the flat shape {shape}")
        h, w, c = shape
        k = layer.size if isinstance(layer, (AvgPool, MaxPool)) else layer.kernel
        padding = getattr(layer, "padding", "valid")
        oh, ow = (_conv_out(h, k[0], layer.stride[0], padding), _conv_out(w, k[1], layer.stride[1], padding))
        if oh <= 0 or ow <= 0:
            raise SpecError(f"{where}: kernel {k[0]}x{k[1]} stride {layer.stride[0]}x{layer.stride[1]} "
                            f"({padding}) empties the {h}x{w} feature map")
        if isinstance(layer, Conv):
            return (oh, ow, layer.filters)
        if isinstance(layer, DSConv):
            if layer.residual and (layer.stride != (1, 1) or layer.filters != c):
                raise SpecError(f"{where}: a residual connection needs stride 1x1 and equal widths "
                                f"(input {c}, output {layer.filters}, stride {layer.stride})")
            _check_low_rank(layer, c, layer.filters, where)
            return (oh, ow, layer.filters)
        return (oh, ow, c)
    if isinstance(layer, GlobalAvgPool | AttentionPool):
        if len(shape) != 3:
            what = "attention" if isinstance(layer, AttentionPool) else "global average"
            raise SpecError(f"{where}: {what} pooling needs a (time, freq, channels) input")
        return (shape[2],)
    if isinstance(layer, Flatten):
        return (math.prod(shape),)
    if isinstance(layer, Dense):
        if len(shape) != 1:
            raise SpecError(f"{where}: a dense layer needs a flat input (add flatten or gap), got {shape}")
        _check_low_rank(layer, shape[0], layer.units, where)
        return (layer.units,)
    if isinstance(layer, Dropout):
        return shape
    raise SpecError(f"{where}: unknown layer {layer!r}")
