"""`estimate(spec)`: parameters, MACs and peak activation memory of a spec's int8 deployment.

The spec is lowered to the op sequence an int8 ``.tflite`` of it holds (what TFLM runs), and every figure
is computed over that sequence:

- batch norm is folded into the preceding convolution or dense layer, activations are fused, so each
  weight layer is one op with int8 weights and an int32 bias (``params`` = weights + biases);
- a `DSConv` block lowers to DEPTHWISE_CONV_2D then a 1×1 CONV_2D, plus an ADD when it is residual; with
  a ``rank`` the 1×1 CONV_2D is two: a projection to ``rank`` channels (no activation) and the expansion
  (a low-rank `Dense` likewise becomes two FULLY_CONNECTED); with ``se`` a squeeze-and-excitation gate sits
  between them: AVERAGE_POOL_2D over the map, RESHAPE, FULLY_CONNECTED to ``se`` units, FULLY_CONNECTED back
  (hard sigmoid as ReLU6 of z + 3, its 1/6 folded into the next 1×1 weights), RESHAPE, and a broadcasting
  MUL of the depthwise output by the gate;
- `GlobalAvgPool` is an AVERAGE_POOL_2D over the whole map; `AttentionPool` is a 1×1 CONV_2D to one channel
  (the scores), RESHAPE, SOFTMAX, RESHAPE, a broadcasting MUL of the map by the weights, then the same
  AVERAGE_POOL_2D; `Flatten` is a RESHAPE, which aliases its
  input (no new tensor); `Dropout` is nothing at inference;
- ``macs`` counts the multiply-accumulates of weight layers (conv, depthwise, dense) over every output
  position, padding included; pooling and ADD are counted as 0 MACs. Papers that quote "ops" (Hello Edge,
  MicroNets) count a MAC as two ops, so ``ops ≈ 2 * macs``.

Peak activation memory is a *tensor liveness* bound, as TFLM's memory planner sees it without in-place
tricks: at each op, its input(s), its output and every tensor still needed by a later op (a residual skip,
say) are live; the peak is the largest sum of live int8 tensor bytes over all ops, the int8 model input
included. It is a lower bound of the tensor arena: TFLM's greedy planner may fragment, and kernel scratch
buffers (CMSIS-NN im2col) and the interpreter's own structures are not counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from search_spaces.spec import (
    ArchSpec,
    AttentionPool,
    AvgPool,
    Conv,
    Dense,
    Dropout,
    DSConv,
    Flatten,
    GlobalAvgPool,
    Layer,
    MaxPool,
    Shape,
    SpecError,
)

ACTIVATION_BYTES = 1  # int8 activations
WEIGHT_BYTES = 1  # int8 weights
BIAS_BYTES = 4  # int32 biases (TFLite's int8 scheme)


@dataclass(frozen=True)
class LayerEstimate:
    """One op of the deployed sequence.

    ``index`` is the op's position in the deployed sequence, ``spec_layer`` the index in
    ``spec.all_layers()`` it comes from; ``live_bytes`` is the activation memory live while it runs.
    An alias op (a reshape) allocates nothing: its ``output_bytes`` is the size of the tensor it renames.
    """

    index: int
    spec_layer: int
    op: str
    output_shape: Shape
    params: int
    macs: int
    output_bytes: int
    live_bytes: int
    alias: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "spec_layer": self.spec_layer,
            "op": self.op,
            "output_shape": list(self.output_shape),
            "params": self.params,
            "macs": self.macs,
            "output_bytes": self.output_bytes,
            "live_bytes": self.live_bytes,
            "alias": self.alias,
        }


@dataclass(frozen=True)
class Estimate:
    """Static cost of a spec's int8 deployment (see the module docstring for the conventions)."""

    params: int  # weights + biases after batch-norm folding
    macs: int
    peak_activation_bytes: int
    weight_bytes: int  # int8 weights + int32 biases
    input_shape: Shape
    layers: tuple[LayerEstimate, ...]

    @property
    def peak_op(self) -> LayerEstimate:
        """The first op at which the activation peak is reached."""
        return max(self.layers, key=lambda layer: layer.live_bytes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "macs": self.macs,
            "peak_activation_bytes": self.peak_activation_bytes,
            "weight_bytes": self.weight_bytes,
            "input_shape": list(self.input_shape),
            "layers": [layer.to_dict() for layer in self.layers],
        }


@dataclass
class _Op:
    spec_layer: int
    name: str
    inputs: list[int]  # tensor ids read
    output: int  # tensor id written (the input's id for an alias)
    shape: Shape
    weights: int = 0
    biases: int = 0
    macs: int = 0
    alias: bool = False


class _Lowering:
    """Builds the op list and the tensor table of one spec."""

    def __init__(self, input_shape: Shape) -> None:
        self.sizes: list[int] = [math.prod(input_shape) * ACTIVATION_BYTES]  # tensor 0: the model input
        self.ops: list[_Op] = []

    def tensor(self, shape: Shape) -> int:
        self.sizes.append(math.prod(shape) * ACTIVATION_BYTES)
        return len(self.sizes) - 1

    def op(self, spec_layer: int, name: str, inputs: list[int], shape: Shape, *, weights: int = 0,
           biases: int = 0, macs: int = 0) -> int:
        out = self.tensor(shape)
        self.ops.append(_Op(spec_layer, name, inputs, out, shape, weights, biases, macs))
        return out

    def alias(self, spec_layer: int, name: str, source: int, shape: Shape) -> int:
        self.ops.append(_Op(spec_layer, name, [source], source, shape, alias=True))
        return source


def _hw(pair: tuple[int, int]) -> str:
    return f"{pair[0]}x{pair[1]}"


def _lower_layer(low: _Lowering, i: int, layer: Layer, x: int, in_shape: Shape, out_shape: Shape) -> int:
    """Appends the ops of one spec layer reading tensor ``x``; returns the tensor holding its output."""
    if isinstance(layer, Conv):
        kh, kw = layer.kernel
        cin, (oh, ow, cout) = in_shape[2], out_shape
        return low.op(i, f"conv {_hw(layer.kernel)}/{_hw(layer.stride)}", [x], out_shape,
                      weights=kh * kw * cin * cout, biases=cout, macs=oh * ow * cout * kh * kw * cin)
    if isinstance(layer, DSConv):
        kh, kw = layer.kernel
        cin, (oh, ow, cout) = in_shape[2], out_shape
        dw = low.op(i, f"dwconv {_hw(layer.kernel)}/{_hw(layer.stride)}", [x], (oh, ow, cin),
                    weights=kh * kw * cin, biases=cin, macs=oh * ow * cin * kh * kw)
        if layer.se is not None:  # squeeze and excitation: a per-channel gate on the depthwise output
            s = layer.se
            pooled = low.alias(i, "reshape", low.op(i, f"avgpool {oh}x{ow} (squeeze)", [dw], (1, 1, cin)), (cin,))
            squeezed = low.op(i, f"dense (squeeze to {s})", [pooled], (s,), weights=cin * s, biases=s, macs=cin * s)
            gate = low.op(i, "dense (excite)", [squeezed], (cin,), weights=s * cin, biases=cin, macs=s * cin)
            dw = low.op(i, "mul (gate)", [dw, low.alias(i, "reshape", gate, (1, 1, cin))], (oh, ow, cin))
        if layer.rank is not None:  # low rank: a 1x1 projection to `rank` channels, then the 1x1 expansion
            r = layer.rank
            dw = low.op(i, f"conv 1x1/1x1 (rank {r})", [dw], (oh, ow, r), weights=cin * r, biases=r,
                        macs=oh * ow * cin * r)
            cin = r
        pw = low.op(i, "conv 1x1/1x1", [dw], out_shape, weights=cin * cout, biases=cout, macs=oh * ow * cin * cout)
        return low.op(i, "add", [x, pw], out_shape) if layer.residual else pw
    if isinstance(layer, Dense):
        (n_in,), (n_out,) = in_shape, out_shape
        if layer.rank is not None:
            x = low.op(i, f"dense (rank {layer.rank})", [x], (layer.rank,), weights=n_in * layer.rank,
                       biases=layer.rank, macs=n_in * layer.rank)
            n_in = layer.rank
        return low.op(i, "dense", [x], out_shape, weights=n_in * n_out, biases=n_out, macs=n_in * n_out)
    if isinstance(layer, GlobalAvgPool | AttentionPool):
        h, w, c = in_shape
        pooled = x
        if isinstance(layer, AttentionPool):
            scores = low.alias(i, "reshape", low.op(i, "conv 1x1/1x1 (attention scores)", [x], (h, w, 1),
                                                    weights=c, biases=1, macs=h * w * c), (h * w,))
            weights = low.alias(i, "reshape", low.op(i, "softmax (attention)", [scores], (h * w,)), (h, w, 1))
            pooled = low.op(i, "mul (attention)", [x, weights], in_shape)
        pooled = low.op(i, f"avgpool {h}x{w} (global)", [pooled], (1, 1, c))
        return low.alias(i, "reshape", pooled, out_shape)
    if isinstance(layer, (AvgPool, MaxPool)):
        kind = "avgpool" if isinstance(layer, AvgPool) else "maxpool"
        return low.op(i, f"{kind} {_hw(layer.size)}/{_hw(layer.stride)}", [x], out_shape)
    if isinstance(layer, Flatten):
        return low.alias(i, "reshape", x, out_shape)
    if isinstance(layer, Dropout):
        return x
    raise SpecError(f"estimate: no lowering for layer {i} ({layer!r})")


def _live_bytes(low: _Lowering) -> list[int]:
    """Live activation bytes at each op: tensors from their producer to their last reader (inclusive)."""
    first = [0] * len(low.sizes)  # the model input is live from the first op
    last = [0] * len(low.sizes)
    for k, op in enumerate(low.ops):
        if not op.alias:
            first[op.output] = k
        last[op.output] = max(last[op.output], k)
        for t in op.inputs:
            last[t] = max(last[t], k)
    return [sum(size for t, size in enumerate(low.sizes) if first[t] <= k <= last[t])
            for k in range(len(low.ops))]


def estimate(spec: ArchSpec) -> Estimate:
    """Parameters, MACs, weight bytes and peak activation bytes of ``spec`` deployed in int8."""
    shapes = spec.shapes()
    low = _Lowering(spec.input_shape)
    x, in_shape = 0, spec.input_shape
    for i, (layer, out_shape) in enumerate(zip(spec.all_layers(), shapes, strict=True)):
        x = _lower_layer(low, i, layer, x, in_shape, out_shape)
        in_shape = out_shape
    live = _live_bytes(low)
    layers = tuple(
        LayerEstimate(index=k, spec_layer=op.spec_layer, op=op.name, output_shape=op.shape,
                      params=op.weights + op.biases, macs=op.macs, output_bytes=low.sizes[op.output],
                      live_bytes=live[k], alias=op.alias)
        for k, op in enumerate(low.ops)
    )
    weights = sum(op.weights for op in low.ops)
    biases = sum(op.biases for op in low.ops)
    return Estimate(
        params=weights + biases,
        macs=sum(op.macs for op in low.ops),
        peak_activation_bytes=max(live),
        weight_bytes=weights * WEIGHT_BYTES + biases * BIAS_BYTES,
        input_shape=spec.input_shape,
        layers=layers,
    )
