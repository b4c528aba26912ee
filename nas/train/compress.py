"""Low-rank compression of a trained model: SVD of its 1x1 convolutions and dense layers, then fine-tuning.

    spec_lr = low_rank_spec(spec, fraction=0.25)        # rank = 1/4 of min(inputs, outputs) per layer
    params, stats = factorize(model, spec_lr)           # the best rank-r approximation of every kernel
    train(spec_lr, data, cfg, initial=(params, stats))  # fine-tune from there

A kernel ``W`` [I, O] becomes ``A = U_r sqrt(S_r)`` [I, r] and ``B = sqrt(S_r) V_r^T`` [r, O]: ``A @ B`` is the
closest rank-r matrix to ``W`` (Eckart-Young), and splitting the singular values evenly keeps both factors
at the same scale. Batch norm stays after the expansion (its statistics are copied), so before
fine-tuning the factorised network computes the original one up to the dropped singular values.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from flax import nnx

from nas.models import KWSModel, build_model, split_model
from nas.models.layers import DenseLayer, DSBlock
from search_spaces.spec import ArchSpec, Dense, DSConv, rank_for


def low_rank_spec(spec: ArchSpec, fraction: float) -> ArchSpec:
    """``spec`` with every full-rank `DSConv` and body `Dense` at rank ``round(fraction * min(in, out))``
    (at least 1); layers where that rank saves nothing stay full."""
    if not 0 < fraction < 1:
        raise ValueError(f"rank fraction must be in (0, 1), got {fraction}")
    shapes = [spec.input_shape, *spec.shapes()]
    layers = []
    for i, layer in enumerate(spec.layers):
        if isinstance(layer, (DSConv, Dense)) and layer.rank is None:
            n_out = layer.filters if isinstance(layer, DSConv) else layer.units
            rank = rank_for(fraction, shapes[i][-1], n_out)
            if rank is not None:
                layer = dataclasses.replace(layer, rank=rank)
        layers.append(layer)
    return dataclasses.replace(spec, name=f"{spec.name}-r{fraction:g}", layers=tuple(layers))


def _factors(w: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    u, s, vt = np.linalg.svd(np.asarray(w, np.float64), full_matrices=False)
    root = np.sqrt(s[:rank])
    return (u[:, :rank] * root).astype(np.float32), (root[:, None] * vt[:rank]).astype(np.float32)


def _variable(module: Any, path: tuple) -> Any:
    """The variable at ``path`` in ``module`` (None where the module has None there: a full-rank layer's
    projection)."""
    for part in path:
        if module is None:
            return None
        module = module[part] if isinstance(part, int) else getattr(module, part)
    return module


def factorize(model: KWSModel, target: ArchSpec) -> tuple[Any, Any]:
    """(params, batch_stats) of ``target`` (a `low_rank_spec` of the model's spec) from the trained ``model``:
    every variable copied, every newly low-rank kernel replaced by its SVD factors."""
    new = build_model(target, 0)
    for old_layer, new_layer in zip(model.layers, new.layers, strict=True):
        for path, _ in nnx.to_flat_state(nnx.state(new_layer)):
            source = _variable(old_layer, path)
            var = _variable(new_layer, path)
            # copied where the old model has the variable with this shape (already low-rank layers included);
            # a newly factorised layer's projection (absent) and expansion (another shape) come from the SVD below
            if source is not None and np.shape(source[...]) == var[...].shape:
                var[...] = np.asarray(source[...])
        if isinstance(new_layer, DSBlock) and new_layer.pw_in is not None and old_layer.pw_in is None:
            a, b = _factors(old_layer.pw[...], new_layer.spec.rank)
            new_layer.pw_in[...], new_layer.pw[...] = a, b
        if isinstance(new_layer, DenseLayer) and new_layer.proj is not None and old_layer.proj is None:
            a, b = _factors(old_layer.kernel[...], new_layer.spec.rank)
            new_layer.proj[...], new_layer.kernel[...] = a, b
    _, params, stats = split_model(new)
    return params, stats
