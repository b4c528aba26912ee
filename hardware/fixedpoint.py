"""Integer primitives of TensorFlow Lite Micro's int8 kernels, bit-exact and vectorised.

Every function takes numpy integer arrays (or Python ints) holding int32 values and returns int64
arrays holding int32 values, so callers can chain them without overflow surprises. The semantics
are those of TFLM built with its default *double rounding* (``TFLITE_SINGLE_ROUNDING`` off):
a rounding doubling high multiply (ties toward +infinity, like ARM's VQRDMULH) followed by a
rounding right shift (ties away from zero), i.e. two roundings where a single-rounding kernel
(XNNPACK, CMSIS-NN built for single rounding) has one. The softmax helpers follow gemmlowp's fixed-point ``exp`` and reciprocal, which TFLM's
int8 softmax (int8 in, int8 out) still uses.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

__all__ = [
    "INT32_MAX",
    "INT32_MIN",
    "count_leading_zeros32",
    "exp_on_negative_values",
    "get_reciprocal",
    "multiply_by_quantized_multiplier",
    "multiply_by_quantized_multiplier_greater_than_one",
    "multiply_by_quantized_multiplier_smaller_than_one",
    "one_over_one_plus_x_for_x_in_0_1",
    "quantize_multiplier",
    "round_half_away",
    "rounding_divide_by_pot",
    "saturating_rounding_doubling_high_mul",
    "saturating_rounding_multiply_by_pot",
    "wrap_int32",
]


def _i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def wrap_int32(x) -> np.ndarray:
    """Two's-complement wrap to int32 (what a C int32 addition or shift does on the target)."""
    return _i64(x).astype(np.int32).astype(np.int64)


def round_half_away(x: np.ndarray) -> np.ndarray:
    """C ``round``/``roundf``: nearest integer, ties away from zero, exact in the input's float type."""
    x = np.asarray(x)
    a = np.abs(x)
    f = np.floor(a)
    # a - f is exact for binary floats, so the tie test needs no extra precision.
    r = f + (a - f >= 0.5)
    return np.copysign(r, x)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """Split a positive real multiplier into (int32 significand in Q0.31, power-of-two exponent).

    ``real ≈ significand * 2**(shift - 31)``; ``shift > 0`` means a left shift. Like TFLM's
    ``QuantizeMultiplier``: frexp, round half away from zero, renormalise a significand that rounded
    up to 2**31, and flush multipliers below 2**-31 to zero.
    """
    real = float(real)
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(math.copysign(math.floor(abs(q) * (1 << 31) + 0.5), q))  # exact: |q|*2^31 < 2^31
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """gemmlowp's SRDHM (ARM VQRDMULH): high 32 bits of 2*a*b, rounded to nearest with ties toward
    +infinity (the nudge is +2^30 for a non-negative product, 1-2^30 otherwise, then C division)."""
    a = _i64(a)
    b = _i64(b)
    ab = a * b  # |a*b| <= 2^62: exact in int64
    s = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    q = s >> 31
    # C integer division truncates toward zero; the shift floors, so fix negative inexact quotients.
    q = q + ((s < 0) & ((s & ((1 << 31) - 1)) != 0))
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return np.where(overflow, INT32_MAX, q)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """Arithmetic right shift by ``exponent`` (0..31) rounding to nearest, ties away from zero."""
    x = _i64(x)
    e = _i64(exponent)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def saturating_rounding_multiply_by_pot(x, exponent: int) -> np.ndarray:
    """gemmlowp's SaturatingRoundingMultiplyByPOT for int32: saturating left shift when the
    exponent is positive, rounding right shift when negative."""
    x = _i64(x)
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    out = x << exponent
    out = np.where(x > threshold, INT32_MAX, out)
    return np.where(x < -threshold, INT32_MIN, out)


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """TFLM's ``MultiplyByQuantizedMultiplier(int32 x, int32 m, int shift)``, double rounding.

    The left part of the shift is applied to ``x`` first (wrapping like the C ``x * (1 << s)``), then
    SRDHM rounds once and the right shift rounds a second time. Broadcasts over per-channel
    ``multiplier``/``shift`` arrays.
    """
    x = _i64(x)
    shift = _i64(shift)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    if np.any(left):
        x = wrap_int32(x << left)
    y = saturating_rounding_doubling_high_mul(x, multiplier)
    if np.any(right):
        y = rounding_divide_by_pot(y, right)
    return y


def multiply_by_quantized_multiplier_smaller_than_one(x, multiplier, shift) -> np.ndarray:
    """``MultiplyByQuantizedMultiplierSmallerThanOneExp``: SRDHM then a rounding right shift (shift <= 0)."""
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), -_i64(shift))


def multiply_by_quantized_multiplier_greater_than_one(x, multiplier, left_shift) -> np.ndarray:
    """``MultiplyByQuantizedMultiplierGreaterThanOne``: wrap(x << left_shift), then SRDHM."""
    return saturating_rounding_doubling_high_mul(wrap_int32(_i64(x) << _i64(left_shift)), multiplier)


# ---- gemmlowp fixed-point exp and reciprocal (Q-format int32), as used by int8 softmax ----

# Q0.31 constants from gemmlowp: exp(-1/8), 1/3, and exp(-2^k) for k = -2..4.
_EXP_MINUS_ONE_EIGHTH = 1895147668
_ONE_THIRD = 715827883
_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))
# Q2.29 constants of the Newton-Raphson reciprocal: 48/17 and -32/17.
_48_OVER_17 = 1515870810
_NEG_32_OVER_17 = -1010580540


def _exp_on_interval_minus_quarter_to_zero(a: np.ndarray) -> np.ndarray:
    """exp(a) for a in [-1/4, 0), Q0.31 in and out: 4th-order Taylor expansion around -1/8."""
    srdhm = saturating_rounding_doubling_high_mul
    x = wrap_int32(a + (1 << 28))  # a + 1/8
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(wrap_int32(srdhm(wrap_int32(x4_over_4 + x3), _ONE_THIRD) + x2), 1)
    return wrap_int32(_EXP_MINUS_ONE_EIGHTH + srdhm(_EXP_MINUS_ONE_EIGHTH, wrap_int32(x + poly)))


def exp_on_negative_values(a, integer_bits: int) -> np.ndarray:
    """exp(a) for a <= 0 given in Q(integer_bits).(31-integer_bits); result in Q0.31."""
    a = _i64(a)
    frac_bits = 31 - integer_bits
    one_quarter = 1 << (frac_bits - 2)
    a_mod_quarter_minus_quarter = (a & (one_quarter - 1)) - one_quarter
    result = _exp_on_interval_minus_quarter_to_zero(
        saturating_rounding_multiply_by_pot(a_mod_quarter_minus_quarter, integer_bits))
    remainder = a_mod_quarter_minus_quarter - a
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = (remainder & (1 << (frac_bits + exponent))) != 0
            result = np.where(bit, saturating_rounding_doubling_high_mul(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))  # -32.0 in the input format
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, INT32_MAX, result)


def _rounding_half_sum(a, b) -> np.ndarray:
    s = _i64(a) + _i64(b)
    s = s + np.where(s >= 0, 1, -1)
    return np.where(s >= 0, s // 2, -((-s) // 2))  # C division truncates


def one_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """1/(1+a) for a in [0, 1), Q0.31 in and out: three Newton-Raphson steps in Q2.29."""
    srdhm = saturating_rounding_doubling_high_mul
    half_denominator = _rounding_half_sum(a, INT32_MAX)
    x = wrap_int32(_48_OVER_17 + srdhm(half_denominator, _NEG_32_OVER_17))
    one_q2 = 1 << 29
    for _ in range(3):
        one_minus = wrap_int32(one_q2 - srdhm(half_denominator, x))
        x = wrap_int32(x + saturating_rounding_multiply_by_pot(srdhm(x, one_minus), 2))
    # x ~ 1/half_denominator in Q2.29; halving it by reinterpreting as Q1.30 gives 1/(1+a).
    return saturating_rounding_multiply_by_pot(x, 1)


def count_leading_zeros32(x) -> np.ndarray:
    """Leading zero bits of x taken as a uint32 (32 for zero)."""
    u = _i64(x) & 0xFFFFFFFF
    n = np.zeros_like(u)
    for bits in (16, 8, 4, 2, 1):
        top_clear = (u >> (32 - bits)) == 0
        n = n + np.where(top_clear, bits, 0)
        u = np.where(top_clear, (u << bits) & 0xFFFFFFFF, u)
    return np.where(_i64(x) & 0xFFFFFFFF == 0, 32, n)


def get_reciprocal(x, integer_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLM ``GetReciprocal`` for positive x in Q(integer_digits): returns (raw Q0.31 value of
    1/(x scaled into [1, 2)), num_bits_over_unit), so 1/x = raw * 2**-(31 + num_bits_over_unit)."""
    x = _i64(x)
    clz = count_leading_zeros32(x)
    num_bits_over_unit = integer_digits - clz
    shifted_minus_one = wrap_int32(((x & 0xFFFFFFFF) << clz & 0xFFFFFFFF) - (1 << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted_minus_one), num_bits_over_unit
