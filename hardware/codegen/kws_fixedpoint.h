/* Integer primitives of TFLM's int8 kernels in C (gemmlowp double rounding), bit-exact with
 * hardware/fixedpoint.py, which is their specification. Shared by the plain and DSP kernels.
 *
 * C notes: `>>` of a negative int32 is an arithmetic shift on GCC (implementation-defined in
 * ISO C, documented by GCC); shifts that could overflow go through uint32_t so no signed
 * overflow is ever undefined behaviour.
 */
#ifndef KWS_FIXEDPOINT_H
#define KWS_FIXEDPOINT_H

#include <stdint.h>
#include <string.h>

/* Kernels are specialised at each call site: every shape and constant is a literal argument, so
 * forced inlining lets the compiler fold them. Define KWS_KERNEL as `static` (plus noinline)
 * to trade speed for flash. */
#ifndef KWS_KERNEL
#define KWS_KERNEL static inline __attribute__((always_inline))
#endif
#define KWS_HELPER static inline __attribute__((always_inline))

KWS_HELPER int32_t kws_min32(int32_t a, int32_t b) { return a < b ? a : b; }
KWS_HELPER int32_t kws_max32(int32_t a, int32_t b) { return a > b ? a : b; }
KWS_HELPER int32_t kws_clamp32(int32_t x, int32_t lo, int32_t hi) { return kws_min32(kws_max32(x, lo), hi); }

/* gemmlowp SaturatingRoundingDoublingHighMul: round(2ab / 2^32), ties toward +inf. The
 * truncating division of the original equals this floor form for every product. */
KWS_HELPER int32_t kws_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN)
        return INT32_MAX;
    return (int32_t)(((int64_t)a * b + (1 << 30)) >> 31);
}

/* The same without the saturation test: b is a requantization multiplier (0 or in [2^30, 2^31)),
 * never INT32_MIN. */
KWS_HELPER int32_t kws_srdhm_pos(int32_t a, int32_t b) { return (int32_t)(((int64_t)a * b + (1 << 30)) >> 31); }

/* RoundingDivideByPOT: arithmetic shift right by e (0..31), ties away from zero. */
KWS_HELPER int32_t kws_rdbpot(int32_t x, int e)
{
    const int32_t mask = (int32_t)((1u << e) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0);
    return (x >> e) + (remainder > threshold);
}

/* SaturatingRoundingMultiplyByPOT for a positive exponent: saturating left shift. */
KWS_HELPER int32_t kws_srmbpot_left(int32_t x, int e)
{
    const int32_t threshold = (int32_t)((1u << (31 - e)) - 1u);
    if (x > threshold)
        return INT32_MAX;
    if (x < -threshold)
        return INT32_MIN;
    return (int32_t)((uint32_t)x << e);
}

/* TFLM MultiplyByQuantizedMultiplier (double rounding): wrap(x << left), SRDHM, rounding shift. */
KWS_HELPER int32_t kws_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return kws_rdbpot(kws_srdhm_pos((int32_t)((uint32_t)x << left), multiplier), right);
}

/* MultiplyByQuantizedMultiplierSmallerThanOneExp (shift <= 0), used by ADD. */
KWS_HELPER int32_t kws_mbqm_small(int32_t x, int32_t multiplier, int32_t shift)
{
    return kws_rdbpot(kws_srdhm_pos(x, multiplier), -shift);
}

/* Requantize an accumulator to int8: multiply, add the output zero point, clamp. */
KWS_HELPER int8_t kws_requant(int32_t acc, int32_t multiplier, int32_t shift, int32_t out_off, int32_t lo,
                              int32_t hi)
{
    return (int8_t)kws_clamp32(kws_mbqm(acc, multiplier, shift) + out_off, lo, hi);
}

/* ---- softmax: gemmlowp's exp and Newton-Raphson reciprocal (hardware/fixedpoint.py) ---- */

/* exp(a) for a <= 0 in Q5.26 (TFLM's softmax: 5 integer bits), result in Q0.31: a 4th-order
 * Taylor expansion around -1/8 on [-1/4, 0), then one factor exp(-2^k) per set bit of the rest.
 * Computed per element instead of a 256-word table: 1 KB less flash; a 12-class softmax (24 calls)
 * counts ~1.8 k instructions on the emulated M4 (bench_analytic.py --fit). */
KWS_HELPER int32_t kws_exp_q5(int32_t a)
{
    static const int32_t barrel[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    if (a == 0)
        return INT32_MAX;
    const int32_t quarter = 1 << 24;
    const int32_t r = (a & (quarter - 1)) - quarter;         /* a mod 1/4, minus 1/4: in [-1/4, 0) */
    const int32_t x = (int32_t)(((uint32_t)r << 5) + (1u << 28)); /* in Q0.31 (no saturation), + 1/8 */
    const int32_t x2 = kws_srdhm(x, x), x3 = kws_srdhm(x2, x), x4 = kws_srdhm(x2, x2);
    const int32_t s = kws_srdhm((int32_t)((uint32_t)kws_rdbpot(x4, 2) + (uint32_t)x3), 715827883); /* / 3 */
    const int32_t poly = kws_rdbpot((int32_t)((uint32_t)s + (uint32_t)x2), 1);
    int32_t y = (int32_t)(1895147668u + (uint32_t)kws_srdhm(1895147668, (int32_t)((uint32_t)x + (uint32_t)poly)));
    const int32_t rest = r - a;                               /* >= 0: whole quarters */
    for (int k = 0; k < 7; k++)
        if (rest & (1 << (24 + k)))
            y = kws_srdhm(y, barrel[k]);
    return y;
}

/* exp of -d scaled into Q5.26 as TFLM's softmax does (MultiplyByQuantizedMultiplierGreaterThanOne). */
KWS_HELPER int32_t kws_softmax_exp(int32_t d, int32_t multiplier, int left_shift)
{
    return kws_exp_q5(kws_srdhm((int32_t)((uint32_t)(-d) << left_shift), multiplier));
}

/* 1/(1+a) for a in [0, 1) in Q0.31: three Newton-Raphson steps in Q2.29. */
KWS_HELPER int32_t kws_one_over_one_plus_x(int32_t a)
{
    int64_t s = (int64_t)a + INT32_MAX;
    s += s >= 0 ? 1 : -1;
    const int32_t half_den = (int32_t)(s / 2); /* C division truncates, as gemmlowp's RoundingHalfSum */
    int32_t x = (int32_t)(1515870810u + (uint32_t)kws_srdhm(half_den, -1010580540)); /* 48/17 - 32/17 d */
    for (int i = 0; i < 3; i++) {
        const int32_t one_minus = (int32_t)((uint32_t)(1 << 29) - (uint32_t)kws_srdhm(half_den, x));
        x = (int32_t)((uint32_t)x + (uint32_t)kws_srmbpot_left(kws_srdhm(x, one_minus), 2));
    }
    return kws_srmbpot_left(x, 1);
}

/* TFLM GetReciprocal for x > 0 in Q(integer_digits): raw Q0.31 and the bits over one. */
KWS_HELPER int32_t kws_reciprocal(int32_t x, int integer_digits, int *bits_over_unit)
{
    const int clz = __builtin_clz((uint32_t)x);
    *bits_over_unit = integer_digits - clz;
    return kws_one_over_one_plus_x((int32_t)(((uint32_t)x << clz) - (1u << 31)));
}

#endif
