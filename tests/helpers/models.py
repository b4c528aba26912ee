"""Models and inputs for quantization tests: batch norms with random statistics (so folding matters) and
MFCC-like features."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from nas.models import build_model
from nas.models.layers import AttentionPool, BatchNorm


def randomised_model(spec, seed: int):
    """A model whose batch norms hold random statistics and affine parameters (folding is not trivial), and
    whose attention pools (zero scores when built: uniform weights) weigh positions unevenly."""
    model = build_model(spec, seed)
    rng = np.random.default_rng(seed)
    for _, module in nnx.iter_modules(model):
        if isinstance(module, AttentionPool):
            n = module.score[...].shape[0]
            module.score[...] = jnp.asarray(rng.normal(0, 1.0 / np.sqrt(n), n), jnp.float32)
        if isinstance(module, BatchNorm):
            n = module.mean[...].shape[0]
            module.mean[...] = jnp.asarray(rng.normal(0, 0.3, n), jnp.float32)
            module.var[...] = jnp.asarray(rng.uniform(0.3, 2.0, n), jnp.float32)
            module.scale[...] = jnp.asarray(rng.uniform(0.5, 1.5, n), jnp.float32)
            module.bias[...] = jnp.asarray(rng.normal(0, 0.2, n), jnp.float32)
    return model


def random_features(spec, n: int, seed: int) -> np.ndarray:
    """MFCC-like inputs: a large first coefficient, smaller higher ones."""
    rng = np.random.default_rng(seed)
    frames, coeffs = spec.frontend.feature_shape
    scale = np.concatenate([[40.0], np.full(coeffs - 1, 8.0)])
    return (rng.normal(size=(n, frames, coeffs)) * scale + np.r_[-120.0, np.zeros(coeffs - 1)]).astype(np.float32)
