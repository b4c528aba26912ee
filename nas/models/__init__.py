"""Flax nnx models built from `ArchSpec`s, with CPU-fast depthwise convolutions.

    model = build_model(spec, seed=0)
    logits = model(features)                              # [B, frames, features] -> [B, classes]
    graphdef, params, stats = split_model(model)          # pure pieces for a jitted step
    logits, stats = apply_model(graphdef, params, stats, x, train=True, key=key)
    ops = model.folded()                                  # BN folded: what int8 export consumes
"""

from nas.models.build import KWSModel, apply_model, build_model, count_params, merge_model, split_model
from nas.models.layers import FoldedOp

__all__ = ["FoldedOp", "KWSModel", "apply_model", "build_model", "count_params", "merge_model", "split_model"]
