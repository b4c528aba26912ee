"""Training-mode batch norm + activation with a hand-written backward (XLA CPU friendly).

Autodiff of ``act(scale * (x - mean) / sqrt(var + eps) + bias)`` with batch statistics keeps several
full-size intermediates alive and XLA re-computes cheap elementwise producers inside each of their
consumers. The backward written out is two per-channel sums and one elementwise pass::

    gz = g * act'(y),  xc = x - mean
    dbias  = sum(gz),  dscale = rstd * sum(gz * xc)
    dx     = scale * rstd * (gz - dbias / n - xc * rstd * dscale / n)

The saved activations are the input ``x`` and the output ``y`` (which the next layer keeps alive
anyway; it gives the exact activation mask: ReLU passes where ``y > 0`` as `jax.nn.relu` does, ReLU6
where ``0 < y < 6`` (autodiff of a clip gives 1/2 at exact ties, which a float practically never
hits), "none" everywhere). The masked gradient and the input gradient are each written out once
(`computed_once`). The statistics are the exact two-pass ones (mean, then mean of squared
deviations). The batch mean and biased variance are returned for the running statistics; they are
not outputs to differentiate (their cotangents are ignored, and `bn_act_train` stops their gradients).

Where the compiled kernels are available (`nas.models.native`), forward and backward are one FFI call
each (`_bn_act_native`): statistics from per-chunk sums merged in a fixed order (Chan's update), then
one apply pass; the backward's two sums per chunk, then one pass for the input gradient.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from nas.models import native
from nas.models._fusion import computed_once


def batch_stats(x2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and biased variance over rows of ``x2`` [n, C] (two passes: var = mean((x - mean)^2))."""
    mean = jnp.mean(x2, axis=0)
    var = jnp.mean(jnp.square(x2 - mean), axis=0)
    return mean, var


def _act(z: jax.Array, activation: str) -> jax.Array:
    if activation == "relu":
        return jnp.maximum(z, 0.0)
    if activation == "relu6":
        return jnp.clip(z, 0.0, 6.0)
    return z


def bn_act_train(x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float,
                 activation: str) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(act(batchnorm(x)), batch mean, batch variance)`` with statistics over every axis but the last."""
    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    if activation in _NATIVE_ACT and native.enabled_for(x2, scale, bias):
        y, mean, var = _bn_act_native(x2, scale, bias, float(eps), activation)
    elif activation in ("relu", "relu6", "none"):
        y, mean, var = _bn_act(x2, scale, bias, float(eps), activation)
    else:
        y, mean, var = _bn_act_plain(x2, scale, bias, float(eps), activation)
    return y.reshape(shape), lax.stop_gradient(mean), lax.stop_gradient(var)


def _bn_act_plain(x2, scale, bias, eps, activation):
    mean, var = batch_stats(x2)
    inv = scale * lax.rsqrt(var + eps)
    return _act(x2 * inv + (bias - mean * inv), activation), mean, var


@partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _bn_act(x2, scale, bias, eps, activation):
    return _bn_act_plain(x2, scale, bias, eps, activation)


def _bn_act_fwd(x2, scale, bias, eps, activation):
    mean, var = batch_stats(x2)
    rstd = lax.rsqrt(var + eps)
    inv = scale * rstd
    y = _act(x2 * inv + (bias - mean * inv), activation)
    # y is kept alive anyway (it is the next layer's input), so its sign gives the exact ReLU mask.
    return (y, mean, var), (x2, y, mean, rstd, scale)


def _bn_act_bwd(eps, activation, residuals, cotangents):
    x2, y, mean, rstd, scale = residuals
    g = cotangents[0]
    n = x2.shape[0]
    if activation in ("relu", "relu6"):
        # the masked gradient feeds two reductions and the input gradient: write it once
        gz = computed_once(_relu6_mask if activation == "relu6" else _relu_mask, g, y)
    else:
        gz = g
    dbias = jnp.sum(gz, axis=0)
    dscale = jnp.sum(gz * (x2 - mean), axis=0) * rstd
    k, c1, c2 = scale * rstd, dbias / n, dscale * rstd / n

    def input_grad(gz, x2):
        return k * (gz - c1 - (x2 - mean) * c2)

    dx = computed_once(input_grad, gz, x2)  # the next op's input (a dot or the depthwise taps)
    return dx, dscale, dbias


def _relu_mask(g, y):
    return jnp.where(y > 0, g, 0.0)


def _relu6_mask(g, y):
    return jnp.where((y > 0) & (y < 6), g, 0.0)


_bn_act.defvjp(_bn_act_fwd, _bn_act_bwd)


# --- the compiled kernels (nas.models.native) ------------------------------------------------------------------------
_NATIVE_ACT = {"none": 0, "relu": 1, "relu6": 2}  # kernels.cc's Activation codes


def _native_forward(x2, scale, bias, eps, activation):
    n, c = x2.shape
    shapes = (jax.ShapeDtypeStruct((n, c), x2.dtype), jax.ShapeDtypeStruct((c,), x2.dtype),
              jax.ShapeDtypeStruct((c,), x2.dtype))
    return jax.ffi.ffi_call("kws_bn_fwd", shapes)(x2, scale, bias, eps=np.float32(eps),
                                                  act=np.int64(_NATIVE_ACT[activation]))


@partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _bn_act_native(x2, scale, bias, eps, activation):
    return tuple(_native_forward(x2, scale, bias, eps, activation))


def _bn_act_native_fwd(x2, scale, bias, eps, activation):
    y, mean, var = _native_forward(x2, scale, bias, eps, activation)
    return (y, mean, var), (x2, y, mean, var, scale)


def _bn_act_native_bwd(eps, activation, residuals, cotangents):
    x2, y, mean, var, scale = residuals
    c = x2.shape[1]
    shapes = (jax.ShapeDtypeStruct(x2.shape, x2.dtype), jax.ShapeDtypeStruct((c,), x2.dtype),
              jax.ShapeDtypeStruct((c,), x2.dtype))
    dx, dscale, dbias = jax.ffi.ffi_call("kws_bn_bwd", shapes)(
        x2, y, cotangents[0].astype(x2.dtype), scale, mean, var, eps=np.float32(eps),
        act=np.int64(_NATIVE_ACT[activation]))
    return dx, dscale, dbias


_bn_act_native.defvjp(_bn_act_native_fwd, _bn_act_native_bwd)
