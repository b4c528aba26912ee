"""The deployed float network of a trained model as a float32 `hardware.Int8Graph`.

`float_graph(spec, model.folded())` walks the batch-norm-folded ops (`nas.models.FoldedOp`) and emits
the TFLite graph a converter would: input ``[1, frames, coeffs, 1]`` (the front end's features, time
first), CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED with fused ReLU/ReLU6, AVERAGE_POOL_2D /
MAX_POOL_2D, global average pooling as a full-window AVERAGE_POOL_2D + RESHAPE (what Arm's DS-CNN
models use; the int8 kernel needs no requantization), RESHAPE for flatten, ADD for residuals, and a
final SOFTMAX; a squeeze-and-excitation gate is AVERAGE_POOL_2D + RESHAPE + FULLY_CONNECTED (ReLU) +
FULLY_CONNECTED (ReLU6) + RESHAPE to [1, 1, 1, C] and a broadcasting MUL of the map by it; attention pooling is
a 1x1 CONV_2D to one channel (the scores) + RESHAPE [1, positions] + SOFTMAX + RESHAPE [1, H, W, 1], a
broadcasting MUL of the map by those weights, and a full-window AVERAGE_POOL_2D + RESHAPE (the next dense
layer's weights carry the number of positions, `nas.models.layers.fold_attention_pools`). This float graph is
both the float `.tflite` and the skeleton the int8 quantizer fills.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hardware.graph import (
    Activation,
    AddOptions,
    Conv2DOptions,
    DepthwiseConv2DOptions,
    DType,
    FullyConnectedOptions,
    Int8Graph,
    MulOptions,
    Op,
    OpKind,
    Padding,
    Pool2DOptions,
    ReshapeOptions,
    SoftmaxOptions,
    Tensor,
)
from hardware.op_params import window_geometry
from nas.models.layers import FoldedOp
from search_spaces.spec import ArchSpec

_ACT = {"none": Activation.NONE, "relu": Activation.RELU, "relu6": Activation.RELU6}
_PAD = {"same": Padding.SAME, "valid": Padding.VALID}


class _Builder:
    def __init__(self) -> None:
        self.tensors: list[Tensor] = []
        self.ops: list[Op] = []

    def tensor(self, name: str, shape: Sequence[int], data: np.ndarray | None = None) -> int:
        self.tensors.append(Tensor(name, tuple(shape), DType.FLOAT32, None,
                                   None if data is None else np.asarray(data, np.float32)))
        return len(self.tensors) - 1

    def shape(self, t: int) -> tuple[int, ...]:
        return self.tensors[t].shape

    def op(self, kind: OpKind, inputs: Sequence[int], out_shape: Sequence[int], options=None) -> int:
        out = self.tensor(f"t{len(self.ops)}", out_shape)
        self.ops.append(Op(kind, tuple(inputs), (out,), options))
        return out

    def weighted(self, f: FoldedOp, x: int) -> int:
        k = len(self.ops)
        act = _ACT[f.activation]
        if f.op == "dense":
            if len(self.shape(x)) != 2:
                x = self.flatten(x)
            wt, b = self.tensor(f"w{k}", f.weights.shape, f.weights), self.tensor(f"b{k}", f.bias.shape, f.bias)
            return self.op(OpKind.FULLY_CONNECTED, (x, wt, b), (1, f.weights.shape[0]), FullyConnectedOptions(act))
        n, h, w, c = self.shape(x)
        kh, kw = f.weights.shape[1:3]
        (oh, ow), _ = window_geometry(_PAD[f.padding], (h, w), (kh, kw), f.stride)
        wt, b = self.tensor(f"w{k}", f.weights.shape, f.weights), self.tensor(f"b{k}", f.bias.shape, f.bias)
        if f.op == "depthwise":
            opts = DepthwiseConv2DOptions(f.stride, _PAD[f.padding], act, depth_multiplier=1)
            return self.op(OpKind.DEPTHWISE_CONV_2D, (x, wt, b), (n, oh, ow, c), opts)
        opts = Conv2DOptions(f.stride, _PAD[f.padding], act)
        return self.op(OpKind.CONV_2D, (x, wt, b), (n, oh, ow, f.weights.shape[0]), opts)

    def squeeze_excite(self, f: FoldedOp, x: int) -> int:
        """The map ``x`` times its gate relu6(excite(relu(squeeze(mean(x))))) (see `nas.models.layers.se_op`)."""
        n, h, w, c = self.shape(x)
        pooled = self.op(OpKind.AVERAGE_POOL_2D, (x,), (n, 1, 1, c), Pool2DOptions((h, w), (h, w), Padding.VALID))
        s = self.op(OpKind.RESHAPE, (pooled,), (1, c), ReshapeOptions((-1, c)))
        for name, act in (("squeeze", "relu"), ("excite", "relu6")):
            weights, bias = f.extra[name]
            s = self.weighted(FoldedOp("dense", weights, bias, activation=act), s)
        gate = self.op(OpKind.RESHAPE, (s,), (1, 1, 1, c), ReshapeOptions((1, 1, 1, c)))
        return self.op(OpKind.MUL, (x, gate), (n, h, w, c), MulOptions())

    def attention_pool(self, f: FoldedOp, x: int) -> int:
        """The mean over positions of ``x`` weighted by softmax(1x1 scores) (see `fold_attention_pools`)."""
        n, h, w, c = self.shape(x)
        scores = self.weighted(FoldedOp("conv", f.weights, f.bias), x)
        flat = self.op(OpKind.RESHAPE, (scores,), (1, h * w), ReshapeOptions((-1, h * w)))
        weights = self.op(OpKind.SOFTMAX, (flat,), (1, h * w), SoftmaxOptions(1.0))
        weights = self.op(OpKind.RESHAPE, (weights,), (n, h, w, 1), ReshapeOptions((n, h, w, 1)))
        y = self.op(OpKind.MUL, (x, weights), (n, h, w, c), MulOptions())
        return self.mean(y)

    def mean(self, x: int) -> int:
        n, h, w, c = self.shape(x)
        x = self.op(OpKind.AVERAGE_POOL_2D, (x,), (n, 1, 1, c), Pool2DOptions((h, w), (h, w), Padding.VALID))
        return self.op(OpKind.RESHAPE, (x,), (1, c), ReshapeOptions((-1, c)))

    def flatten(self, x: int) -> int:
        size = int(np.prod(self.shape(x)))
        return self.op(OpKind.RESHAPE, (x,), (1, size), ReshapeOptions((-1, size)))  # -1: batchable in LiteRT


def float_graph(spec: ArchSpec, folded: Sequence[FoldedOp], metadata: dict[str, str] | None = None) -> Int8Graph:
    """The float32 inference graph of ``folded`` (``KWSModel.folded()`` of a model of ``spec``):
    one input ``[1, frames, coeffs, 1]``, one output: class probabilities ``[1, classes]``."""
    b = _Builder()
    frames, coeffs = spec.frontend.feature_shape
    x = b.tensor("input", (1, frames, coeffs, 1))
    block_input = None
    for f in folded:
        if f.op == "depthwise":
            block_input = x
        if f.op in ("conv", "depthwise", "dense"):
            x = b.weighted(f, x)
        elif f.op == "se":
            x = b.squeeze_excite(f, x)
        elif f.op == "attnpool":
            x = b.attention_pool(f, x)
        elif f.op == "add":
            if block_input is None or b.shape(block_input) != b.shape(x):
                raise ValueError(f"{spec.name}: a residual ADD without a matching block input")
            x = b.op(OpKind.ADD, (x, block_input), b.shape(x), AddOptions())
        elif f.op in ("avgpool", "maxpool"):
            n, h, w, c = b.shape(x)
            (oh, ow), _ = window_geometry(Padding.VALID, (h, w), f.size, f.stride)
            kind = OpKind.AVERAGE_POOL_2D if f.op == "avgpool" else OpKind.MAX_POOL_2D
            x = b.op(kind, (x,), (n, oh, ow, c), Pool2DOptions(f.size, f.stride, Padding.VALID))
        elif f.op == "mean":
            x = b.mean(x)
        elif f.op == "reshape":
            x = b.flatten(x)
        else:
            raise ValueError(f"{spec.name}: no TFLite op for folded op {f.op!r}")
    if len(b.shape(x)) != 2:
        raise ValueError(f"{spec.name}: the network ends in a {b.shape(x)} tensor, not [1, classes]")
    x = b.op(OpKind.SOFTMAX, (x,), b.shape(x), SoftmaxOptions(1.0))
    b.tensors[x] = Tensor("probs", b.shape(x), DType.FLOAT32)
    return Int8Graph(tuple(b.tensors), tuple(b.ops), (0,), (x,), metadata or {})
