"""Flax nnx modules, one per `ArchSpec` layer kind, and their batch-norm-folded export form.

Every module is called as ``module(x, train)`` and, with batch norm, keeps running statistics in
`nnx.BatchStat` variables (updated in training mode, used in inference mode). ``folded()`` returns the
layer as deployed: `FoldedOp`s with batch norm folded into weights and biases, weights in TFLite's
layouts (conv [O, kh, kw, I], depthwise [1, kh, kw, C], dense [O, I]).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from nas.models import ops
from nas.models._bn import bn_act_train
from search_spaces.spec import AvgPool, Conv, Dense, DSConv, MaxPool

BN_MOMENTUM = 0.9  # running = 0.9 running + 0.1 batch (PyTorch's default): short search trainings need fresh stats
BN_EPSILON = 1e-3  # TensorFlow's default, so folded weights match what TF-trained reference models do
# The squeeze-and-excitation gate is MobileNetV3's hard sigmoid, relu6(z + 3) / 6: in int8 the excite layer is a
# FULLY_CONNECTED with a fused ReLU6 (bias + 3), and the 1/6 goes into the next 1x1 convolution's weights, so
# the gate needs no LOGISTIC op and the float and int8 graphs compute the same function.
HARD_SIGMOID_OFFSET, HARD_SIGMOID_RANGE = 3.0, 6.0


@dataclass(frozen=True)
class FoldedOp:
    """One deployed float op: what the int8 quantizer and the exporters consume."""

    op: str  # conv | depthwise | dense | add | se | attnpool | avgpool | maxpool | mean | reshape
    weights: np.ndarray | None = None
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: str = "valid"
    activation: str = "none"
    size: tuple[int, int] = (1, 1)  # pooling window
    extra: dict = field(default_factory=dict)


class BatchNorm(nnx.Module):
    """Batch norm over every axis but the last, with running statistics."""

    def __init__(self, features: int):
        self.scale = nnx.Param(jnp.ones((features,), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((features,), jnp.float32))
        self.mean = nnx.BatchStat(jnp.zeros((features,), jnp.float32))
        self.var = nnx.BatchStat(jnp.ones((features,), jnp.float32))

    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        return self.with_activation(x, train, "none")

    def with_activation(self, x: jax.Array, train: bool, activation: str) -> jax.Array:
        """``activation(bn(x))``; in training one fused op with a hand-written backward (`_bn`)."""
        if train:
            y, mean, var = bn_act_train(x, self.scale[...], self.bias[...], BN_EPSILON, activation)
            self.mean[...] = BN_MOMENTUM * self.mean[...] + (1 - BN_MOMENTUM) * mean
            self.var[...] = BN_MOMENTUM * self.var[...] + (1 - BN_MOMENTUM) * var
            return y
        inv = self.scale[...] * jax.lax.rsqrt(self.var[...] + BN_EPSILON)
        return ops.activation(x * inv + (self.bias[...] - self.mean[...] * inv), activation)

    def fold(self) -> tuple[np.ndarray, np.ndarray]:
        """(multiplier, offset) per channel: bn(x) == x * multiplier + offset in inference mode."""
        inv = np.asarray(self.scale[...]) / np.sqrt(np.asarray(self.var[...]) + BN_EPSILON)
        return inv, np.asarray(self.bias[...]) - np.asarray(self.mean[...]) * inv


def _glorot(rngs: nnx.Rngs, shape: tuple[int, ...], fan_in: int, fan_out: int) -> nnx.Param:
    limit = float(np.sqrt(6.0 / (fan_in + fan_out)))  # Xavier/Glorot uniform, as the reference models use
    return nnx.Param(jax.random.uniform(rngs.params(), shape, jnp.float32, -limit, limit))


class ConvLayer(nnx.Module):
    def __init__(self, spec: Conv, in_channels: int, rngs: nnx.Rngs):
        kh, kw = spec.kernel
        self.spec = spec
        self.kernel = _glorot(rngs, (kh, kw, in_channels, spec.filters), kh * kw * in_channels,
                              kh * kw * spec.filters)
        self.bn = BatchNorm(spec.filters) if spec.batch_norm else None
        self.bias = None if spec.batch_norm else nnx.Param(jnp.zeros((spec.filters,), jnp.float32))

    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        y = ops.conv2d(x, self.kernel[...], self.spec.stride, self.spec.padding)
        if self.bn is not None:
            return self.bn.with_activation(y, train, self.spec.activation)
        return ops.activation(y + self.bias[...], self.spec.activation)

    def folded(self) -> list[FoldedOp]:
        w = np.asarray(self.kernel[...])  # [kh, kw, I, O]
        mult, off = _bn_or_bias(self.bn, self.bias, w.shape[-1])
        w = np.transpose(w * mult, (3, 0, 1, 2))  # -> [O, kh, kw, I]
        return [FoldedOp("conv", w, off, self.spec.stride, self.spec.padding, self.spec.activation)]


class DSBlock(nnx.Module):
    def __init__(self, spec: DSConv, in_channels: int, rngs: nnx.Rngs):
        kh, kw = spec.kernel
        self.spec = spec
        self.dw = _glorot(rngs, (kh, kw, in_channels), kh * kw, kh * kw)
        self.dw_bn = BatchNorm(in_channels)
        # low rank: pw_in [I, r] (no bias, no activation) then pw [r, O]; batch norm only after the expansion
        pw_in = in_channels if spec.rank is None else spec.rank
        self.pw_in = None if spec.rank is None else _glorot(rngs, (in_channels, spec.rank), in_channels, spec.rank)
        self.pw = _glorot(rngs, (pw_in, spec.filters), pw_in, spec.filters)
        self.pw_bn = BatchNorm(spec.filters)
        if spec.se is not None:  # squeeze [C, se] + bias, excite [se, C] + bias
            self.se_in = _glorot(rngs, (in_channels, spec.se), in_channels, spec.se)
            self.se_in_bias = nnx.Param(jnp.zeros((spec.se,), jnp.float32))
            self.se_out = _glorot(rngs, (spec.se, in_channels), spec.se, in_channels)
            self.se_out_bias = nnx.Param(jnp.zeros((in_channels,), jnp.float32))

    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        act = self.spec.activation
        y = ops.depthwise_conv(x, self.dw[...], self.spec.stride, self.spec.padding)
        y = self.dw_bn.with_activation(y, train, act)
        if self.spec.se is not None:
            s = jax.nn.relu(ops.matmul(jnp.mean(y, axis=(1, 2)), self.se_in[...]) + self.se_in_bias[...])
            z = ops.matmul(s, self.se_out[...]) + self.se_out_bias[...]
            gate = jnp.clip(z + HARD_SIGMOID_OFFSET, 0.0, HARD_SIGMOID_RANGE) / HARD_SIGMOID_RANGE
            y = y * gate[:, None, None, :]
        if self.pw_in is not None:
            y = ops.pointwise_conv(y, self.pw_in[...])
        y = self.pw_bn.with_activation(ops.pointwise_conv(y, self.pw[...]), train, act)
        return y + x if self.spec.residual else y

    def folded(self) -> list[FoldedOp]:
        dm, do = self.dw_bn.fold()
        pm, po = self.pw_bn.fold()
        dw = (np.asarray(self.dw[...]) * dm)[None]  # [1, kh, kw, C]
        pw = (np.asarray(self.pw[...]) * pm).T[:, None, None, :]  # [O, 1, 1, I]
        out = [FoldedOp("depthwise", dw, do, self.spec.stride, self.spec.padding, self.spec.activation)]
        first = 1.0  # the next 1x1's weights take the hard sigmoid's 1/6 (the int8 gate is relu6(z + 3))
        if self.spec.se is not None:
            out.append(se_op(np.asarray(self.se_in[...]).T, np.asarray(self.se_in_bias[...]),
                             np.asarray(self.se_out[...]).T, np.asarray(self.se_out_bias[...])))
            first = 1.0 / HARD_SIGMOID_RANGE
        if self.pw_in is not None:
            proj = np.asarray(self.pw_in[...]).T[:, None, None, :] * first  # [r, 1, 1, I]
            out.append(FoldedOp("conv", proj, np.zeros(proj.shape[0], np.float32), (1, 1), "valid", "none"))
            first = 1.0
        pw = pw * first
        out += [
            FoldedOp("conv", pw, po, (1, 1), "valid", self.spec.activation),
        ]
        if self.spec.residual:
            out.append(FoldedOp("add", extra={"skip": "block_input"}))
        return out


def se_op(squeeze_w: np.ndarray, squeeze_b: np.ndarray, excite_w: np.ndarray, excite_b: np.ndarray) -> FoldedOp:
    """The folded squeeze-and-excitation gate (weights [out, in]): the excite bias carries the hard sigmoid's +3,
    so the deployed gate is relu6(excite(relu(squeeze(mean)))), 6x the trained one (see `HARD_SIGMOID_RANGE`)."""
    return FoldedOp("se", extra={"squeeze": (squeeze_w.astype(np.float32), squeeze_b.astype(np.float32)),
                                 "excite": (excite_w.astype(np.float32),
                                            (excite_b + HARD_SIGMOID_OFFSET).astype(np.float32))})


class DenseLayer(nnx.Module):
    def __init__(self, spec: Dense, in_features: int, rngs: nnx.Rngs):
        self.spec = spec
        # low rank: proj [I, r] (no bias, no activation), then kernel [r, O]
        self.proj = None if spec.rank is None else _glorot(rngs, (in_features, spec.rank), in_features, spec.rank)
        k_in = in_features if spec.rank is None else spec.rank
        self.kernel = _glorot(rngs, (k_in, spec.units), k_in, spec.units)
        self.bn = BatchNorm(spec.units) if spec.batch_norm else None
        self.bias = None if spec.batch_norm else nnx.Param(jnp.zeros((spec.units,), jnp.float32))

    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if self.proj is not None:
            x = ops.matmul(x, self.proj[...])
        y = ops.matmul(x, self.kernel[...])
        if self.bn is not None:
            return self.bn.with_activation(y, train, self.spec.activation)
        return ops.activation(y + self.bias[...], self.spec.activation)

    def folded(self) -> list[FoldedOp]:
        w = np.asarray(self.kernel[...])  # [I, O]
        mult, off = _bn_or_bias(self.bn, self.bias, w.shape[-1])
        out = [FoldedOp("dense", (w * mult).T, off, activation=self.spec.activation)]
        if self.proj is not None:
            proj = np.asarray(self.proj[...]).T  # [r, I]
            out.insert(0, FoldedOp("dense", proj, np.zeros(proj.shape[0], np.float32), activation="none"))
        return out


def _bn_or_bias(bn: BatchNorm | None, bias: nnx.Param | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    if bn is not None:
        return bn.fold()
    return np.ones(n, np.float32), np.asarray(bias[...])


class Pool(nnx.Module):
    def __init__(self, spec: AvgPool | MaxPool):
        self.spec = spec
        self.kind = "max" if isinstance(spec, MaxPool) else "avg"

    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        return ops.pool2d(x, self.spec.size, self.spec.stride, self.kind)

    def folded(self) -> list[FoldedOp]:
        return [FoldedOp(f"{self.kind}pool", stride=self.spec.stride, size=self.spec.size)]


class GlobalAvgPool(nnx.Module):
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        return jnp.mean(x, axis=(1, 2))

    def folded(self) -> list[FoldedOp]:
        return [FoldedOp("mean")]


class AttentionPool(nnx.Module):
    """Attention pooling: a score per position (the map times a learned vector), softmax over all positions,
    the map summed with those weights. The scores start at zero, so training starts from average pooling
    (scaled by the number of positions)."""

    def __init__(self, in_shape: tuple[int, int, int]):
        h, w, c = in_shape
        self.positions = h * w
        self.score = nnx.Param(jnp.zeros((c,), jnp.float32))  # no bias: a shared shift leaves the softmax as is

    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        b, h, w, _ = x.shape
        scores = jnp.einsum("bhwc,c->bhw", x, self.score[...])
        weights = jax.nn.softmax(scores.reshape(b, h * w), axis=-1).reshape(b, h, w, 1)
        return jnp.sum(weights * x, axis=(1, 2))

    def folded(self) -> list[FoldedOp]:
        return [attention_pool_op(np.asarray(self.score[...]), self.positions)]


def attention_pool_op(score: np.ndarray, positions: int) -> FoldedOp:
    """The folded attention pool: score weights as a 1x1 convolution to one channel ([1, 1, 1, C]), zero bias
    (the int8 CONV_2D carries one)."""
    return FoldedOp("attnpool", score.reshape(1, 1, 1, -1).astype(np.float32), np.zeros(1, np.float32),
                    extra={"positions": int(positions)})


def fold_attention_pools(folded: list[FoldedOp]) -> list[FoldedOp]:
    """The deployed attention pool averages its weighted map (AVERAGE_POOL_2D: no SUM op needed) where the
    trained one sums it: the first dense op after it takes the factor (positions) in its weights."""
    out, factor = [], None
    for f in folded:
        if f.op == "attnpool":
            factor = f.extra["positions"]
        elif f.op == "dense" and factor is not None:
            f, factor = dataclasses.replace(f, weights=f.weights * np.float32(factor)), None
        out.append(f)
    return out


class Flatten(nnx.Module):
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        return x.reshape(x.shape[0], -1)

    def folded(self) -> list[FoldedOp]:
        return [FoldedOp("reshape")]


class Dropout(nnx.Module):
    def __init__(self, rate: float):
        self.rate = rate

    def __call__(self, x: jax.Array, train: bool, key: jax.Array | None = None) -> jax.Array:
        if not train or self.rate == 0.0 or key is None:
            return x
        keep = jax.random.bernoulli(key, 1.0 - self.rate, x.shape)
        return jnp.where(keep, x / (1.0 - self.rate), 0.0)

    def folded(self) -> list[FoldedOp]:
        return []
