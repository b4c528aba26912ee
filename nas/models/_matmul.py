"""Matrix products of the models (1x1 convolutions, dense layers) with the weight gradient computed natively.

The weight gradient of ``x @ w`` is ``x^T g``: a product whose contraction runs over every row of the batch
(12,500 rows for DS-CNN-S at batch 100). XLA's CPU dot libraries run that shape at about a third of the
speed of the forward product and on one thread; `nas.models.native`'s ``kws_matmul_tn`` cuts the rows into
fixed units (register-blocked, both threads) and sums the units in order. Where the compiled kernels are not
available this is plain ``jnp.dot`` with autodiff.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nas.models import native


def matmul(x2: jax.Array, w: jax.Array) -> jax.Array:
    """``x2 @ w`` for x2 [N, I] and w [I, O]; differentiable in both."""
    if native.enabled_for(x2, w):
        return _matmul_native(x2, w)
    return jnp.dot(x2, w)


@jax.custom_vjp
def _matmul_native(x2: jax.Array, w: jax.Array) -> jax.Array:
    return jnp.dot(x2, w)


def _matmul_native_fwd(x2, w):
    return jnp.dot(x2, w), (x2, w)


def _matmul_native_bwd(residuals, g):
    x2, w = residuals
    g = g.astype(x2.dtype)
    dw = jax.ffi.ffi_call("kws_matmul_tn", jax.ShapeDtypeStruct(w.shape, w.dtype))(x2, g)
    return jnp.dot(g, w.T), dw


_matmul_native.defvjp(_matmul_native_fwd, _matmul_native_bwd)
