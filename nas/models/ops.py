"""Array operations of the KWS models, written for XLA's CPU backend (NHWC, float32).

XLA's grouped convolution (the obvious depthwise) is ~50x slower per layer on CPU than the same
arithmetic as shifted multiply-adds (GUIDE §3), so the depthwise convolution is a sum over kernel taps
of strided slices of the padded input times one weight vector each, with a hand-written backward
(`_depthwise`); training-mode batch norm + activation has one too (`_bn`). The exported graph is still
a true DEPTHWISE_CONV_2D with the same weights ([kh, kw, C] -> [1, kh, kw, C]).

Padding follows TensorFlow's SAME rule (the extra row/column goes at the end), so trained weights mean
the same thing in TFLite.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from nas.models import _depthwise, native
from nas.models._depthwise import paddings, same_padding  # noqa: F401  (re-exported)
from nas.models._matmul import matmul


def output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    return -(-size // stride) if padding == "same" else (size - kernel) // stride + 1


def pad_for(x: jax.Array, kernel: tuple[int, int], stride: tuple[int, int], padding: str) -> jax.Array:
    """Zero-pad an NHWC tensor so a VALID window walk gives the requested padding's output."""
    ph, pw = paddings(x.shape, kernel, stride, padding)
    if ph == (0, 0) and pw == (0, 0):
        return x
    return jnp.pad(x, ((0, 0), ph, pw, (0, 0)))


def depthwise_conv(x: jax.Array, kernel: jax.Array, stride: tuple[int, int], padding: str) -> jax.Array:
    """Depthwise convolution, NHWC input, kernel [kh, kw, C], as shifted multiply-adds (`_depthwise`)."""
    return _depthwise.depthwise_conv(x, kernel, stride, padding)


def conv2d(x: jax.Array, kernel: jax.Array, stride: tuple[int, int], padding: str) -> jax.Array:
    """Standard convolution, NHWC input, kernel [kh, kw, Cin, Cout] (HWIO)."""
    kh, kw, cin, cout = kernel.shape
    if (kh, kw) == (1, 1) and stride == (1, 1):
        return pointwise_conv(x, kernel.reshape(cin, cout))
    xp = pad_for(x, (kh, kw), stride, padding)
    if kh * kw * cin <= IM2COL_MAX_COLUMNS and native.enabled_for(x, kernel):
        return _im2col_conv(xp, kernel, stride)
    return lax.conv_general_dilated(xp, kernel, stride, "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))


# A convolution with at most this many inputs per output pixel (the stems: 10x4x1 = 40) runs as patches times
# a matrix, so its weight gradient is the native row-unit product; wider ones stay XLA convolutions (their
# patch matrices would be kh*kw times the input).
IM2COL_MAX_COLUMNS = 64


def _im2col_conv(xp: jax.Array, kernel: jax.Array, stride: tuple[int, int]) -> jax.Array:
    """VALID convolution of the padded ``xp`` as [pixels, kh*kw*Cin] patches times [kh*kw*Cin, Cout]."""
    kh, kw, cin, cout = kernel.shape
    b, h, w, _ = xp.shape
    oh, ow = (h - kh) // stride[0] + 1, (w - kw) // stride[1] + 1
    taps = [lax.slice(xp, (0, i, j, 0), (b, i + stride[0] * (oh - 1) + 1, j + stride[1] * (ow - 1) + 1, cin),
                      (1, *stride, 1)) for i in range(kh) for j in range(kw)]
    patches = jnp.concatenate(taps, axis=3).reshape(b * oh * ow, kh * kw * cin)  # (i, j, cin): HWIO's order
    return matmul(patches, kernel.reshape(kh * kw * cin, cout)).reshape(b, oh, ow, cout)


def pointwise_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """1x1 convolution as one matrix product over (batch*H*W, C); kernel [Cin, Cout]."""
    b, h, w, c = x.shape
    return matmul(x.reshape(b * h * w, c), kernel).reshape(b, h, w, kernel.shape[1])


def activation(x: jax.Array, name: str) -> jax.Array:
    if name == "relu":
        return jax.nn.relu(x)
    if name == "relu6":
        return jnp.clip(x, 0.0, 6.0)
    return x


def pool2d(x: jax.Array, size: tuple[int, int], stride: tuple[int, int], kind: str) -> jax.Array:
    """VALID average or max pooling over H and W."""
    window, strides = (1, *size, 1), (1, *stride, 1)
    if kind == "max":
        return lax.reduce_window(x, -jnp.inf, lax.max, window, strides, "VALID")
    summed = lax.reduce_window(x, 0.0, lax.add, window, strides, "VALID")
    return summed / (size[0] * size[1])
