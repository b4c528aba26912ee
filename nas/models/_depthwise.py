"""Depthwise convolution for training on XLA's CPU backend: shifted multiply-adds with a hand-written backward.

XLA's grouped convolution (``feature_group_count=C``) costs ~50x more per layer on CPU than the same
arithmetic written as kh*kw shifted multiply-adds (GUIDE §3), and autodiff of the multiply-adds is slow
again (every tap's transpose becomes a padded full-size tensor). So the forward, the input gradient and
the weight gradient are each written here as plain slices, multiplies and adds:

* forward ``y[b,h,w,c] = sum_ij xp[b, sh*h+i, sw*w+j, c] * k[i,j,c]`` (``xp``: the zero-padded input);
* input gradient: the same correlation of the zero-dilated, zero-padded output gradient with the
  flipped kernel, cut to exactly the input's shape (for stride 1 this is the forward with the padding
  mirrored);
* weight gradient ``dk[i,j,c] = sum_bhw xp[b, sh*h+i, sw*w+j, c] * g[b,h,w,c]``: per tap, partial sums
  over the output columns inside one loop fusion, then a matrix-vector product with ones (reducing
  the full product per tap makes XLA write out a full-size tap first);
* the padded input and the padded output gradient are written out once (`computed_once`): fused
  into the taps, the pad's bounds checks double their cost.

The math is that of ``lax.conv_general_dilated(..., feature_group_count=C)`` with TensorFlow's SAME
padding (extra row/column at the end); the deployed graph is still a true DEPTHWISE_CONV_2D with the
same weights (`layers.DSBlock.folded`).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from nas.models import native
from nas.models._fusion import computed_once

Pads = tuple[tuple[int, int], tuple[int, int]]


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow SAME padding (before, after) for one spatial axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def paddings(shape: tuple[int, ...], kernel: tuple[int, int], stride: tuple[int, int], padding: str) -> Pads:
    """((top, bottom), (left, right)) zero padding of an NHWC input for ``padding`` ("same" | "valid")."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding != "same":
        raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
    return (same_padding(shape[1], kernel[0], stride[0]), same_padding(shape[2], kernel[1], stride[1]))


def depthwise_conv(x: jax.Array, kernel: jax.Array, stride: tuple[int, int], padding: str) -> jax.Array:
    """Depthwise convolution of NHWC ``x`` with ``kernel`` [kh, kw, C]; differentiable in both."""
    kh, kw, c = kernel.shape
    if x.ndim != 4 or x.shape[3] != c:
        raise ValueError(f"depthwise_conv: input {x.shape} does not match kernel {kernel.shape}")
    pads = paddings(x.shape, (kh, kw), stride, padding)
    oh, ow = _out_size(x.shape[1], kh, stride[0], pads[0]), _out_size(x.shape[2], kw, stride[1], pads[1])
    if oh <= 0 or ow <= 0:
        raise ValueError(f"depthwise_conv: kernel {kh}x{kw} empties the {x.shape[1]}x{x.shape[2]} input")
    if native.enabled_for(x, kernel):
        return _depthwise_native(x, kernel, tuple(stride), pads)
    return _depthwise(x, kernel, tuple(stride), pads)


def _out_size(size: int, k: int, s: int, pad: tuple[int, int]) -> int:
    return (size + pad[0] + pad[1] - k) // s + 1


def _pad(x: jax.Array, pads: tuple[tuple[int, int, int], tuple[int, int, int]]) -> jax.Array:
    """lax.pad of the two spatial axes with (low, high, interior); negative low/high crop."""
    if all(p == (0, 0, 0) for p in pads):
        return x
    return lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), *pads, (0, 0, 0)))


def _tap(xp: jax.Array, i: int, j: int, stride: tuple[int, int], oh: int, ow: int) -> jax.Array:
    sh, sw = stride
    b, _, _, c = xp.shape
    if stride == (1, 1):
        return lax.slice(xp, (0, i, j, 0), (b, i + oh, j + ow, c))
    return lax.slice(xp, (0, i, j, 0), (b, i + sh * (oh - 1) + 1, j + sw * (ow - 1) + 1, c), (1, sh, sw, 1))


def correlate(xp: jax.Array, kernel: jax.Array, stride: tuple[int, int], oh: int, ow: int) -> jax.Array:
    """``sum_ij xp[:, s*h+i, s*w+j, :] * kernel[i, j]`` for an already padded ``xp``: one XLA loop fusion."""
    kh, kw, _ = kernel.shape
    out = None
    for i in range(kh):
        for j in range(kw):
            term = _tap(xp, i, j, stride, oh, ow) * kernel[i, j]
            out = term if out is None else out + term
    return out


def _padded(x: jax.Array, pads: Pads) -> jax.Array:
    """The zero-padded input, written out once (a pad fused into every tap costs ~2x the taps)."""
    if pads == ((0, 0), (0, 0)):
        return x
    return computed_once(lambda a: _pad(a, ((*pads[0], 0), (*pads[1], 0))), x)


def _forward(x: jax.Array, kernel: jax.Array, stride: tuple[int, int], pads: Pads) -> jax.Array:
    kh, kw, _ = kernel.shape
    oh, ow = _out_size(x.shape[1], kh, stride[0], pads[0]), _out_size(x.shape[2], kw, stride[1], pads[1])
    return correlate(_padded(x, pads), kernel, stride, oh, ow)


def input_grad(g: jax.Array, kernel: jax.Array, in_hw: tuple[int, int], stride: tuple[int, int],
               pads: Pads) -> jax.Array:
    """Gradient wrt the input: correlate the dilated, padded ``g`` with the flipped kernel.

    Input row ``r`` (unpadded) received ``g[h] * k[i]`` from every output row ``h`` with
    ``s*h + i == r + pad_top``. With ``gd`` = ``g`` dilated by ``s-1`` zeros and padded by
    ``kh-1-pad_top`` zeros in front, ``dx[r] = sum_i' gd[r + i'] * k[kh-1-i']``.
    """
    kh, kw, _ = kernel.shape
    (h, w), (sh, sw) = in_hw, stride
    oh, ow = g.shape[1], g.shape[2]
    lo_h, lo_w = kh - 1 - pads[0][0], kw - 1 - pads[1][0]
    hi_h = h + kh - 1 - lo_h - ((oh - 1) * sh + 1)
    hi_w = w + kw - 1 - lo_w - ((ow - 1) * sw + 1)
    config = ((lo_h, hi_h, sh - 1), (lo_w, hi_w, sw - 1))
    # written out once: the pad would otherwise be re-evaluated (with bounds checks) in every tap
    gp = computed_once(lambda a: _pad(a, config), g) if any(c != (0, 0, 0) for c in config) else g
    return correlate(gp, kernel[::-1, ::-1], (1, 1), h, w)


def weight_grad(xp: jax.Array, g: jax.Array, kernel_hw: tuple[int, int], stride: tuple[int, int]) -> jax.Array:
    """Gradient wrt the kernel [kh, kw, C] from the padded input ``xp`` and the output gradient ``g``.

    ``dk[i,j,c] = sum_bhw tap_ij(xp)[b,h,w,c] * g[b,h,w,c]``. XLA's CPU reductions do not fuse the
    strided slices of a tap (each tap would be written out in full first) and it never fuses a
    concatenate with its producers, so per tap: one loop fusion multiplies and sums over the output
    columns with explicit adds (partial sums [B*oh, C], a fifth of the tap), and one small
    matrix-vector product with a ones vector finishes the reduction (YNNPACK's dot, measured faster
    than a reduce, a stacked or a padded-slot formulation, or partial sums over rows and columns).
    """
    kh, kw = kernel_hw
    b, oh, ow, c = g.shape
    ones = jnp.ones((b * oh,), g.dtype)
    out = []
    for i in range(kh):
        for j in range(kw):
            p = _tap(xp, i, j, stride, oh, ow) * g
            part = _tree([p[:, :, k] for k in range(ow)])  # [b, oh, c]
            out.append(jnp.dot(ones, part.reshape(b * oh, c)))
    return jnp.stack(out).reshape(kh, kw, c)


def _tree(terms: list[jax.Array]) -> jax.Array:
    """Pairwise sum (shorter dependency chains and rounding than a left fold)."""
    while len(terms) > 1:
        nxt = [terms[k] + terms[k + 1] for k in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
    return terms[0]


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _depthwise(x: jax.Array, kernel: jax.Array, stride: tuple[int, int], pads: Pads) -> jax.Array:
    return _forward(x, kernel, stride, pads)


def _depthwise_fwd(x, kernel, stride, pads):
    kh, kw, _ = kernel.shape
    oh, ow = _out_size(x.shape[1], kh, stride[0], pads[0]), _out_size(x.shape[2], kw, stride[1], pads[1])
    xp = _padded(x, pads)
    return correlate(xp, kernel, stride, oh, ow), (xp, kernel)


def _depthwise_bwd(stride, pads, residuals, g):
    xp, kernel = residuals
    in_hw = (xp.shape[1] - pads[0][0] - pads[0][1], xp.shape[2] - pads[1][0] - pads[1][1])
    dx = input_grad(g, kernel, in_hw, stride, pads)
    dk = weight_grad(xp, g, kernel.shape[:2], stride)
    return dx, dk.astype(kernel.dtype)


_depthwise.defvjp(_depthwise_fwd, _depthwise_bwd)


# --- the compiled kernels (nas.models.native) ------------------------------------------------------------------------
def _native_attrs(stride: tuple[int, int], pads: Pads) -> dict[str, np.int64]:
    return {"sh": np.int64(stride[0]), "sw": np.int64(stride[1]), "pad_top": np.int64(pads[0][0]),
            "pad_left": np.int64(pads[1][0])}


def _native_forward(x, kernel, stride, pads):
    kh, kw, c = kernel.shape
    oh, ow = _out_size(x.shape[1], kh, stride[0], pads[0]), _out_size(x.shape[2], kw, stride[1], pads[1])
    out = jax.ShapeDtypeStruct((x.shape[0], oh, ow, c), x.dtype)
    return jax.ffi.ffi_call("kws_dw_fwd", out)(x, kernel, **_native_attrs(stride, pads))


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _depthwise_native(x: jax.Array, kernel: jax.Array, stride: tuple[int, int], pads: Pads) -> jax.Array:
    return _native_forward(x, kernel, stride, pads)


def _depthwise_native_fwd(x, kernel, stride, pads):
    return _native_forward(x, kernel, stride, pads), (x, kernel)


def _depthwise_native_bwd(stride, pads, residuals, g):
    x, kernel = residuals
    shapes = (jax.ShapeDtypeStruct(x.shape, x.dtype), jax.ShapeDtypeStruct(kernel.shape, kernel.dtype))
    dx, dk = jax.ffi.ffi_call("kws_dw_bwd", shapes)(x, kernel, g.astype(x.dtype), **_native_attrs(stride, pads))
    return dx, dk


_depthwise_native.defvjp(_depthwise_native_fwd, _depthwise_native_bwd)
