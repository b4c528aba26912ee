"""`build_model(spec)`: the flax nnx network of an `ArchSpec`, and its pure functional form.

The model takes MFCC features [B, frames, features] (float32) and returns logits [B, num_classes].
`split_model` / `apply_model` give the pure form used by the jitted training step: parameters and
batch statistics are plain pytrees, and ``apply_model`` returns the new batch statistics instead of
mutating anything.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from nas.models import layers as L
from search_spaces import spec as S


class KWSModel(nnx.Module):
    def __init__(self, spec: S.ArchSpec, rngs: nnx.Rngs):
        self.spec = spec
        modules = []
        shape = spec.input_shape
        for layer, out_shape in zip(spec.all_layers(), spec.shapes(), strict=True):
            modules.append(_module_for(layer, shape, rngs))
            shape = out_shape
        self.layers = nnx.List(modules)

    def __call__(self, x: jax.Array, train: bool = False, key: jax.Array | None = None) -> jax.Array:
        """Logits of features ``x`` [B, frames, features]; ``key`` drives dropout in training mode."""
        y = x[..., None]  # (time, frequency, 1 channel), as the reference models read MFCC
        for i, module in enumerate(self.layers):
            if isinstance(module, L.Dropout):
                y = module(y, train, None if key is None else jax.random.fold_in(key, i))
            else:
                y = module(y, train)
        return y

    def folded(self) -> list[L.FoldedOp]:
        """The deployed float network: batch norm folded, dropout gone, TFLite weight layouts."""
        return L.fold_attention_pools([op for module in self.layers for op in module.folded()])


def _module_for(layer: S.Layer, in_shape: tuple[int, ...], rngs: nnx.Rngs) -> nnx.Module:
    if isinstance(layer, S.Conv):
        return L.ConvLayer(layer, in_shape[-1], rngs)
    if isinstance(layer, S.DSConv):
        return L.DSBlock(layer, in_shape[-1], rngs)
    if isinstance(layer, S.Dense):
        return L.DenseLayer(layer, in_shape[-1], rngs)
    if isinstance(layer, (S.AvgPool, S.MaxPool)):
        return L.Pool(layer)
    if isinstance(layer, S.GlobalAvgPool):
        return L.GlobalAvgPool()
    if isinstance(layer, S.AttentionPool):
        return L.AttentionPool(in_shape)
    if isinstance(layer, S.Flatten):
        return L.Flatten()
    if isinstance(layer, S.Dropout):
        return L.Dropout(layer.rate)
    raise S.SpecError(f"no model layer for {layer!r}")


def build_model(spec: S.ArchSpec, seed: int = 0) -> KWSModel:
    """A freshly initialised model; weights depend only on (spec, seed)."""
    return KWSModel(spec, nnx.Rngs(params=seed))


def split_model(model: KWSModel) -> tuple[Any, Any, Any]:
    """(graphdef, params, batch_stats) of a model: the pure pieces a jitted step carries."""
    graphdef, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    return graphdef, params, stats


def apply_model(graphdef: Any, params: Any, stats: Any, x: jax.Array, train: bool,
                key: jax.Array | None = None) -> tuple[jax.Array, Any]:
    """Pure forward pass: (logits, new batch statistics)."""
    # copy=True: fresh Variables at the current trace level, so batch norm may update them under jax.grad.
    model = nnx.merge(graphdef, params, stats, copy=True)
    logits = model(x, train=train, key=key)
    return logits, nnx.state(model, nnx.BatchStat)


def merge_model(graphdef: Any, params: Any, stats: Any) -> KWSModel:
    return nnx.merge(graphdef, params, stats)


def count_params(params: Any) -> int:
    return int(sum(jnp.size(x) for x in jax.tree_util.tree_leaves(params)))
