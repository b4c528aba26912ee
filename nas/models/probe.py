"""`probe_folded(spec)`: the deployed float ops of ``spec`` with random weights, in numpy alone.

A candidate's flash, RAM and latency do not depend on its trained weights, so the search measures an
untrained build of every candidate before training it. Building the flax model for that costs 2-4 s
per new architecture (JAX compiles its random initialisers for every new weight shape); this builds
the same op sequence, with the same layouts and Glorot-uniform ranges, in a few milliseconds.

Contract (tested against ``build_model(spec).folded()`` for every preset and sampled specs): the same
ops in the same order with the same kinds, weight and bias shapes, strides, paddings, activations and
pool windows. Weight *values* differ (numpy's generator, not JAX's), which no cost figure depends on.
Batch norm at initialisation folds to the identity (scale 1, shift 0, mean 0, variance 1), so folded
weights are the raw initial weights scaled by 1/sqrt(1 + eps). Biases are small random values, not the
initial zeros: GCC folds the kernels' loads from an all-zero constant bias to 0 and drops the array, so
zero biases would make an untrained build 1 KB per 256 channels smaller in flash than the network trained.
"""

from __future__ import annotations

import numpy as np

from nas.models.layers import (
    BN_EPSILON,
    HARD_SIGMOID_RANGE,
    FoldedOp,
    attention_pool_op,
    fold_attention_pools,
    se_op,
)
from search_spaces import spec as S


def _glorot(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(np.float32)


def _bias(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(-0.1, 0.1, n).astype(np.float32)  # distinct per layer, like trained biases


def probe_folded(spec: S.ArchSpec, seed: int = 0) -> list[FoldedOp]:
    """The folded ops of an untrained model of ``spec`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    bn = np.float32(1.0 / np.sqrt(1.0 + BN_EPSILON))  # an untouched batch norm: x / sqrt(var + eps)
    ops: list[FoldedOp] = []
    shape = spec.input_shape
    for layer, out_shape in zip(spec.all_layers(), spec.shapes(), strict=True):
        cin = shape[-1]
        if isinstance(layer, S.Conv):
            kh, kw = layer.kernel
            w = _glorot(rng, (layer.filters, kh, kw, cin), kh * kw * cin, kh * kw * layer.filters)
            ops.append(FoldedOp("conv", w * bn if layer.batch_norm else w, _bias(rng, layer.filters),
                                layer.stride, layer.padding, layer.activation))
        elif isinstance(layer, S.DSConv):
            kh, kw = layer.kernel
            dw = _glorot(rng, (1, kh, kw, cin), kh * kw, kh * kw) * bn
            ops.append(FoldedOp("depthwise", dw, _bias(rng, cin), layer.stride, layer.padding, layer.activation))
            first = np.float32(1.0)
            if layer.se is not None:
                s = layer.se
                ops.append(se_op(_glorot(rng, (s, cin), cin, s), _bias(rng, s), _glorot(rng, (cin, s), s, cin),
                                 _bias(rng, cin)))
                first = np.float32(1.0 / HARD_SIGMOID_RANGE)
            pw_in = cin
            if layer.rank is not None:  # the projection: no batch norm, no bias, no activation
                r = pw_in = layer.rank
                ops.append(FoldedOp("conv", _glorot(rng, (r, 1, 1, cin), cin, r) * first, np.zeros(r, np.float32),
                                    (1, 1), "valid", "none"))
                first = np.float32(1.0)
            pw = _glorot(rng, (layer.filters, 1, 1, pw_in), pw_in, layer.filters) * bn * first
            ops.append(FoldedOp("conv", pw, _bias(rng, layer.filters), (1, 1), "valid", layer.activation))
            if layer.residual:
                ops.append(FoldedOp("add", extra={"skip": "block_input"}))
        elif isinstance(layer, S.Dense):
            if layer.rank is not None:  # the projection: no bias, no activation
                r = layer.rank
                ops.append(FoldedOp("dense", _glorot(rng, (r, cin), cin, r), np.zeros(r, np.float32),
                                    activation="none"))
                cin = r
            w = _glorot(rng, (layer.units, cin), cin, layer.units)
            ops.append(FoldedOp("dense", w * bn if layer.batch_norm else w, _bias(rng, layer.units),
                                activation=layer.activation))
        elif isinstance(layer, (S.AvgPool, S.MaxPool)):
            kind = "maxpool" if isinstance(layer, S.MaxPool) else "avgpool"
            ops.append(FoldedOp(kind, stride=layer.stride, size=layer.size))
        elif isinstance(layer, S.GlobalAvgPool):
            ops.append(FoldedOp("mean"))
        elif isinstance(layer, S.AttentionPool):
            ops.append(attention_pool_op(_glorot(rng, (cin,), cin, 1), shape[0] * shape[1]))
        elif isinstance(layer, S.Flatten):
            ops.append(FoldedOp("reshape"))
        elif not isinstance(layer, S.Dropout):  # dropout is nothing at inference
            raise S.SpecError(f"{spec.name}: no deployed op for {layer!r}")
        shape = out_shape
    return fold_attention_pools(ops)
