/* Int8 kernels for cores with the DSP extension (Cortex-M4/M7/M33), bit-exact with the plain
 * kernels in kws_kernels.h. On other targets kws_acle.h supplies the same intrinsics in
 * portable C, so the host tests run exactly this code.
 *
 * Layouts prepared by the generator (hardware/codegen/_lower.py):
 * - GEMM weights (conv, fully connected): int8, [ceil(oc/2)][k4/4][2 channels][4 taps], zero
 *   padded, k4 = K rounded up to 4; or ("wide") int16 with the weight offset added, the 4 taps of
 *   each channel in the activations' order (t0, t2, t1, t3). Bias and requantization arrays
 *   padded to an even length.
 * - Requantization: two int32 per output channel and one int8 shift (see kws_rq).
 * - GEMM activations (im2col, in scratch): int16 (x + input offset), in groups of 4 taps stored
 *   as (t0, t2), (t1, t3): the order SXTB16 produces from a word of 4 int8 weights, so weights
 *   need one SXTB16 per pair and no repacking.
 * - Depthwise weights: int16 pairs per group of 4 channels, per filter column: for each pair of
 *   vertically adjacent taps (ky, ky+1) four words (w[ky][c], w[ky+1][c]) for c = 0..3, then for
 *   an odd last row two words (w[c0], w[c2]), (w[c1], w[c3]); stored so ("wide") or as int8
 *   words that SXTB16 and SXTB16 ror 8 widen to consecutive pair words (the default: half the
 *   flash, widened into scratch at run time).
 *
 * - kws_conv3_dsp / kws_conv3r_dsp (int8 GEMM weights, 3 pixels at a time): in requantization
 *   mode 2 with an even oc, multiplier, rounding term and shifts as one 5-word record per pair of
 *   channels, bias apart.
 * - kws_dwplane_dsp: int8 depthwise weights [C][kh][kw] (the channel's pair words are built in
 *   registers), bias doubled in mode 2, one int32 multiplier per channel (no rounding term: it
 *   loads a channel's constants once per plane and derives it, kws_rq_rnd).
 *
 * The innermost steps (kws_gemm_step, kws_dw_pair, kws_dw_odd in kws_acle.h) are inline asm on
 * DSP cores: GCC 12 neither forms LDRD with post-increment from C nor keeps the accumulators in
 * place across the unrolled steps (measured: 18 and ~30 % more instructions). So are the whole
 * loops of the 3-pixel GEMM (kws_gemm3_loop, kws_gemm3r) and of one depthwise channel plane
 * (kws_dwp3): they hold 14 values in registers, which GCC's allocator only manages for one asm
 * statement.
 */
#ifndef KWS_KERNELS_DSP_H
#define KWS_KERNELS_DSP_H

#include "kws_acle.h"
#include "kws_kernels.h"

#define KWS_MAX_KH 16 /* depthwise windows taller than this use the plain kernel */
#define KWS_MAX_KW 16 /* kws_dwplane_dsp: wider windows use kws_dwconv_dsp */

/* Unroll a loop with literal bounds (GCC does not by itself when the body is large); capped at
 * 4 so that tall windows (10x4) still compile quickly. */
#if defined(__GNUC__) && !defined(__clang__)
#define KWS_UNROLL _Pragma("GCC unroll 4")
#else
#define KWS_UNROLL
#endif

/* Requantization of output channel c from q[2c..2c+1] and the int8 rsh[c], in one of three modes
 * the generator picks per layer from the weights (hardware/codegen/_lower.py, _requant_mode):
 *   0: q = {multiplier, 0}, shift sh: the general TFLM path (kws_mbqm), then + out_off.
 *   1: q = {multiplier, rnd}, right sh, with shift = -right <= -1 and rnd = 2^(right-1) +
 *      (out_off << right): SRDHM in 64 bits, then the rounding shift with the zero point folded
 *      in: (y + rnd - (y < 0)) >> right = rdbpot(y, right) + out_off. Exact whenever the sum
 *      cannot overflow, which the generator checks.
 *   2: as 1, with SRDHM and the rounding sum as one SMMLAR of 2*acc (exact when |acc| < 2^30,
 *      checked): y = SMMULR(2 acc, m) has the sign of acc or is 0, and for y = 0 both
 *      (rnd - 1) >> right and rnd >> right are out_off, so (y < 0) may be read as (acc < 0). */
KWS_HELPER int32_t kws_rq(int32_t acc, const int32_t *q, int32_t sh, int32_t out_off, int mode)
{
    if (mode == 0)
        return kws_mbqm(acc, q[0], sh) + out_off;
    if (mode == 2)
        return kws_smmlar(acc * 2, q[0], q[1] - (int32_t)((uint32_t)acc >> 31)) >> sh;
    const int32_t y = kws_srdhm_pos(acc, q[0]);
    return (y + q[1] + (y >> 31)) >> sh;
}

/* The rounding term q[1] of kws_rq from the shift, for kernels that load a channel's constants
 * once per plane: (1 + 2 out_off) << (sh - 1) = 2^(sh-1) + (out_off << sh) in modes 1 and 2 (the
 * sum wraps like the generator's int32), 0 in mode 0. Saves a word of flash per channel. */
KWS_HELPER int32_t kws_rq_rnd(int32_t sh, int32_t out_off, int mode)
{
    return mode ? (int32_t)((uint32_t)(2 * out_off + 1) << (sh - 1)) : 0;
}

/* kws_rq for the depthwise kernel, whose accumulators are doubled in mode 2 (doubled weights and
 * bias: 2 acc fits, |acc| < 2^30), saving the shift. */
KWS_HELPER int32_t kws_rq_dw(int32_t acc, const int32_t *q, int32_t sh, int32_t out_off, int mode)
{
    if (mode == 2)
        return kws_smmlar(acc, q[0], q[1] - (int32_t)((uint32_t)acc >> 31)) >> sh;
    return kws_rq(acc, q, sh, out_off, mode);
}

/* Clamp to [lo, hi] within int8: SSAT plus at most one compare per bound that is not the int8 limit. */
KWS_HELPER int8_t kws_sat8(int32_t y, int32_t lo, int32_t hi)
{
#ifdef KWS_ASM_DSP
    y = __ssat(y, 8);
    if (lo > -128)
        y = y < lo ? lo : y;
    if (hi < 127)
        y = y > hi ? hi : y;
    return (int8_t)y;
#else
    return (int8_t)kws_clamp32(y, lo, hi);
#endif
}

/* int16 position of tap j inside its group of 4: (t0, t2), (t1, t3). */
#define KWS_PERM(j) (((j) & ~3) | (((j) & 1) << 1) | (((j) >> 1) & 1))

/* Widen k int8 values (+ off) at any address into col[0..k4): a word at a time (unaligned loads), the
 * last group's taps one by one, zeros up to k4. */
KWS_HELPER void kws_widen_u(const int8_t *x, int16_t *col, int k, int32_t off)
{
    const int k4 = (k + 3) & ~3;
    const uint32_t off2 = (uint16_t)off * 0x00010001u;
    kws_u32a *d = (kws_u32a *)col;
    int j = 0;
    for (; j + 4 <= k; j += 4, d += 2) {
        const uint32_t v = kws_ld32u(x + j);
        d[0] = __sxtab16(off2, v);
        d[1] = kws_sxtab16_ror8(off2, v);
    }
    for (; j < k4; j++)
        col[KWS_PERM(j)] = (int16_t)(j < k ? x[j] + off : 0);
}

/* kws_widen_u, with aligned loads when k % 4 == 0 (x is then word aligned). */
KWS_HELPER void kws_widen(const int8_t *x, int16_t *col, int k, int32_t off)
{
    if (k % 4 != 0) {
        kws_widen_u(x, col, k, off);
        return;
    }
    const uint32_t off2 = (uint16_t)off * 0x00010001u;
    kws_u32a *d = (kws_u32a *)col;
    for (int j = 0; j < k; j += 4) {
        const uint32_t v = kws_ld32(x + j);
        d[0] = __sxtab16(off2, v);
        d[1] = kws_sxtab16_ror8(off2, v);
        d += 2;
    }
}

/* im2col of output pixel p: K = kh*kw*ic values in weight order, 0 for taps outside the input. */
KWS_HELPER void kws_im2col(const int8_t *in, int16_t *col, int p, int ih, int iw, int ic, int oh, int ow, int kh,
                           int kw, int sh, int sw, int dh, int dw, int pt, int pl, int32_t in_off)
{
    const int b = p / (oh * ow), r = p % (oh * ow), y0 = (r / ow) * sh - pt, x0 = (r % ow) * sw - pl;
    if (ic % 4 == 0) { /* every tap starts a group of 4 */
        kws_u32a *d = (kws_u32a *)col;
        for (int ky = 0; ky < kh; ky++) {
            const int iy = y0 + ky * dh;
            for (int kx = 0; kx < kw; kx++) {
                const int ix = x0 + kx * dw;
                if (iy < 0 || iy >= ih || ix < 0 || ix >= iw) {
                    for (int c = 0; c < ic / 2; c++)
                        d[c] = 0;
                } else {
                    kws_widen(in + ((b * ih + iy) * iw + ix) * ic, (int16_t *)d, ic, in_off);
                }
                d += ic / 2;
            }
        }
        return;
    }
    if (x0 == 0 && kw == iw && dw == 1 && dh == 1 && y0 >= 0 && y0 + kh <= ih) {
        /* the window's rows are whole input rows one after another (a 1-D convolution over frames) */
        kws_widen_u(in + (b * ih + y0) * iw * ic, col, kh * kw * ic, in_off);
        return;
    }
    int j = 0;
    for (int ky = 0; ky < kh; ky++) {
        const int iy = y0 + ky * dh;
        if ((kw * ic) % 4 == 0 && dw == 1 && iy >= 0 && iy < ih && x0 >= 0 && x0 + kw <= iw) {
            /* a whole row of the window: kw*ic contiguous bytes, whole groups of 4 (unaligned words) */
            kws_widen_u(in + ((b * ih + iy) * iw + x0) * ic, col + j, kw * ic, in_off);
            j += kw * ic;
            continue;
        }
        for (int kx = 0; kx < kw; kx++) {
            const int ix = x0 + kx * dw;
            const int ok = iy >= 0 && iy < ih && ix >= 0 && ix < iw;
            const int8_t *xp = in + ((b * ih + iy) * iw + ix) * ic;
            for (int c = 0; c < ic; c++, j++)
                col[KWS_PERM(j)] = (int16_t)(ok ? xp[c] + in_off : 0);
        }
    }
    for (; j & 3; j++)
        col[KWS_PERM(j)] = 0;
}

/* The two int16 weight pairs of one channel for one group of 4 taps: widened from one int8
 * word (SXTB16, plus the weight offset) or, with `wide` weights, loaded ready (one LDRD). */
KWS_HELPER void kws_wpairs(const kws_u32a **wp, int wide, int32_t w_off, uint32_t woff2, uint32_t *w02,
                           uint32_t *w13)
{
    if (wide) {
        kws_ld2_inc(wp, w02, w13);
        return;
    }
    const uint32_t v = *(*wp)++;
    *w02 = w_off ? __sxtab16(woff2, v) : __sxtb16(v);
    *w13 = w_off ? kws_sxtab16_ror8(woff2, v) : kws_sxtb16_ror8(v);
}

/* Output channels of one or two activation rows (xa, xb) against all weight rows: blocks of
 * 2 pixels x 2 channels, 4 taps per step: 8 SMLAD on 2 LDRD of activations and either 2 LDR +
 * 4 SXTB16 (int8 weights) or 2 LDRD (`wide`: int16 weights, twice the flash). The block fits
 * the 13 free registers; 2 x 4 (8 accumulators) spills. With `wide`, the weight offset is
 * already added to the weights. */
KWS_HELPER void kws_gemm(const int16_t *xa, const int16_t *xb, int two, const void *w, int wide, const int32_t *bias,
                         const int32_t *q, const int8_t *rsh, int k4, int oc, int32_t w_off, int32_t out_off, int32_t lo, int32_t hi,
                         int mode, int8_t *ya, int8_t *yb)
{
    const uint32_t woff2 = (uint16_t)w_off * 0x00010001u;
    const kws_u32a *wp = (const kws_u32a *)w;
    for (int o = 0; o < oc; o += 2) {
        int32_t a0 = bias ? bias[o] : 0, a1 = bias ? bias[o + 1] : 0, b0 = a0, b1 = a1;
        const kws_u32a *pa = (const kws_u32a *)xa, *pb = (const kws_u32a *)xb;
        if (two && !wide && w_off == 0 && xb == xa + k4 && k4 * 2 <= 1020) {
            /* int8 weights, pixel b right after pixel a: the whole step in one asm block */
            KWS_UNROLL
            for (int g = 0; g < k4 / 4; g++)
                kws_gemm_step(&pa, &wp, k4 * 2, &a0, &a1, &b0, &b1);
        } else if (!two && !wide && w_off == 0) {
            /* one row (a fully connected layer): the same step without pixel b */
            KWS_UNROLL
            for (int g = 0; g < k4 / 4; g++)
                kws_gemm1_step(&pa, &wp, &a0, &a1);
        } else
        for (int g = 0; g < k4 / 4; g++) {
            uint32_t xa02, xa13, xb02 = 0, xb13 = 0, w02, w13;
            kws_ld2_inc(&pa, &xa02, &xa13);
            if (two)
                kws_ld2_inc(&pb, &xb02, &xb13);
            kws_wpairs(&wp, wide, w_off, woff2, &w02, &w13);
            a0 = __smlad(xa02, w02, a0);
            a0 = __smlad(xa13, w13, a0);
            if (two) {
                b0 = __smlad(xb02, w02, b0);
                b0 = __smlad(xb13, w13, b0);
            }
            kws_wpairs(&wp, wide, w_off, woff2, &w02, &w13);
            a1 = __smlad(xa02, w02, a1);
            a1 = __smlad(xa13, w13, a1);
            if (two) {
                b1 = __smlad(xb02, w02, b1);
                b1 = __smlad(xb13, w13, b1);
            }
        }
        const int32_t *q0 = q + 2 * o, *q1 = q0 + 2;
        const int32_t s0 = rsh[o], s1 = rsh[o + 1];
        ya[o] = kws_sat8(kws_rq(a0, q0, s0, out_off, mode), lo, hi);
        if (o + 1 < oc)
            ya[o + 1] = kws_sat8(kws_rq(a1, q1, s1, out_off, mode), lo, hi);
        if (two && yb) {
            yb[o] = kws_sat8(kws_rq(b0, q0, s0, out_off, mode), lo, hi);
            if (o + 1 < oc)
                yb[o + 1] = kws_sat8(kws_rq(b1, q1, s1, out_off, mode), lo, hi);
        }
    }
}

/* Output channels of three activation rows (x, x + k4, x + 2 k4) against all weight rows (int8
 * weights, no weight offset): blocks of 3 pixels x 2 channels (kws_gemm3_loop), each weight
 * word widened once for three pixels. Rows y1, y2 may be 0 (not stored). */
KWS_HELPER void kws_gemm3(const int16_t *x, const void *w, const int32_t *bias, const int32_t *q, const int8_t *rsh,
                          int k4, int oc, int32_t out_off, int32_t lo, int32_t hi, int mode, int8_t *y0, int8_t *y1,
                          int8_t *y2)
{
    const int8_t *wp = (const int8_t *)w;
    for (int o = 0; o < oc; o += 2, wp += 2 * k4) {
        int32_t acc[6];
        acc[0] = acc[2] = acc[4] = bias ? bias[o] : 0;
        acc[1] = acc[3] = acc[5] = bias ? bias[o + 1] : 0;
        kws_gemm3_loop(x, wp, k4 * 2, k4 / 4, acc);
        const int32_t *q0 = q + 2 * o, *q1 = q0 + 2;
        const int32_t s0 = rsh[o], s1 = rsh[o + 1];
        y0[o] = kws_sat8(kws_rq(acc[0], q0, s0, out_off, mode), lo, hi);
        if (o + 1 < oc)
            y0[o + 1] = kws_sat8(kws_rq(acc[1], q1, s1, out_off, mode), lo, hi);
        if (y1) {
            y1[o] = kws_sat8(kws_rq(acc[2], q0, s0, out_off, mode), lo, hi);
            if (o + 1 < oc)
                y1[o + 1] = kws_sat8(kws_rq(acc[3], q1, s1, out_off, mode), lo, hi);
        }
        if (y2) {
            y2[o] = kws_sat8(kws_rq(acc[4], q0, s0, out_off, mode), lo, hi);
            if (o + 1 < oc)
                y2[o + 1] = kws_sat8(kws_rq(acc[5], q1, s1, out_off, mode), lo, hi);
        }
    }
}

/* CONV_2D as im2col + GEMM, three output pixels at a time (kws_gemm3): all three pixels' inputs
 * are in `col` (scratch, 3*k4 int16) before any is written; the last group may be shorter. In
 * reverse order groups are taken from the end. */
KWS_KERNEL void kws_conv3_dsp(const int8_t *in, int8_t *out, const void *w, const int32_t *bias, const int32_t *q,
                              const int8_t *rsh, int16_t *col, int n, int ih, int iw, int ic, int oh, int ow, int oc,
                              int kh, int kw, int sh, int sw, int dh, int dw, int pt, int pl, int32_t in_off,
                              int32_t out_off, int32_t lo, int32_t hi, int rev, int mode)
{
    const int k4 = (kh * kw * ic + 3) & ~3, npix = n * oh * ow;
    for (int i = 0; i < npix; i += 3) {
        const int cnt = npix - i >= 3 ? 3 : npix - i;
        const int p0 = rev ? npix - i - cnt : i;
        for (int k = 0; k < cnt; k++)
            kws_im2col(in, col + k * k4, p0 + k, ih, iw, ic, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, in_off);
        kws_gemm3(col, w, bias, q, rsh, k4, oc, out_off, lo, hi, mode, out + p0 * oc,
                  cnt >= 2 ? out + (p0 + 1) * oc : 0, cnt >= 3 ? out + (p0 + 2) * oc : 0);
    }
}

/* kws_gemm3 for requantization mode 2 and an even oc, constants from per-channel-pair records
 * (see kws_gemm3r in kws_acle.h); cnt pixels (1..3) stored at y + k*oc. */
KWS_HELPER void kws_gemm3r_c(const int16_t *x, const void *w, const int32_t *bias, const int32_t *rec, int k4,
                             int oc, int32_t lo, int32_t hi, int8_t *y, int cnt)
{
    const int8_t *wp = (const int8_t *)w;
    for (int o = 0; o < oc; o += 2, wp += 2 * k4, rec += 5) {
        int32_t acc[6];
        acc[0] = acc[2] = acc[4] = bias ? bias[o] : 0;
        acc[1] = acc[3] = acc[5] = bias ? bias[o + 1] : 0;
        const int32_t *r = rec;
        kws_gemm3_loop(x, wp, k4 * 2, k4 / 4, acc);
        const int32_t s0 = (int8_t)(r[4] & 0xff), s1 = (int8_t)((r[4] >> 8) & 0xff);
        for (int k = 0; k < cnt; k++) {
            y[k * oc + o] = kws_sat8(kws_rq(acc[2 * k], r, s0, 0, 2), lo, hi);
            y[k * oc + o + 1] = kws_sat8(kws_rq(acc[2 * k + 1], r + 2, s1, 0, 2), lo, hi);
        }
    }
}

/* kws_conv3_dsp in requantization mode 2 with an even oc: multipliers, rounding terms and
 * shifts in one 5-word record per pair of channels (the bias apart: equal arrays are shared); groups of 3 pixels run kws_gemm3r (a short
 * last group writes into scratch after the 3 pixels' inputs, 3*oc bytes, then is copied). */
KWS_KERNEL void kws_conv3r_dsp(const int8_t *in, int8_t *out, const void *w, const int32_t *bias, const int32_t *rec,
                               int16_t *col, int n,
                               int ih, int iw, int ic, int oh, int ow, int oc, int kh, int kw, int sh, int sw, int dh,
                               int dw, int pt, int pl, int32_t in_off, int32_t lo, int32_t hi, int rev)
{
    const int k4 = (kh * kw * ic + 3) & ~3, npix = n * oh * ow;
    for (int i = 0; i < npix; i += 3) {
        const int cnt = npix - i >= 3 ? 3 : npix - i;
        const int p0 = rev ? npix - i - cnt : i;
        for (int k = 0; k < cnt; k++)
            kws_im2col(in, col + k * k4, p0 + k, ih, iw, ic, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, in_off);
#ifdef KWS_GEMM3R_ASM
        if (2 * oc + 1 <= 4095) { /* a short last group goes through `tmp`: one copy of the code */
            int8_t *tmp = (int8_t *)(col + 3 * k4); /* scratch after the 3 pixels */
            int8_t *dst = cnt == 3 ? out + p0 * oc : tmp;
            kws_gemm3r(col, w, bias, rec, dst, k4, oc, lo, hi);
            for (int j = 0; dst == tmp && j < cnt * oc; j++)
                out[p0 * oc + j] = tmp[j];
            continue;
        }
#endif
        kws_gemm3r_c(col, w, bias, rec, k4, oc, lo, hi, out + p0 * oc, cnt);
    }
}

/* CONV_2D as im2col + GEMM, two output pixels at a time: both pixels' inputs are in `col`
 * (scratch, 2*k4 int16) before either is written. Reverse order pairs pixels from the end. */
KWS_KERNEL void kws_conv_dsp(const int8_t *in, int8_t *out, const void *w, int wide, const int32_t *bias,
                             const int32_t *q, const int8_t *rsh, int16_t *col, int n, int ih, int iw, int ic,
                             int oh, int ow, int oc, int kh, int kw, int sh, int sw, int dh, int dw, int pt, int pl,
                             int32_t in_off, int32_t out_off, int32_t lo, int32_t hi, int rev, int mode)
{
    const int k4 = (kh * kw * ic + 3) & ~3, npix = n * oh * ow;
    for (int i = 0; i < npix; i += 2) {
        const int two = npix - i >= 2;
        const int p0 = rev ? npix - i - 1 - two : i;
        kws_im2col(in, col, p0, ih, iw, ic, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, in_off);
        if (two)
            kws_im2col(in, col + k4, p0 + 1, ih, iw, ic, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, in_off);
        /* pixel b's col stays at col + k4 even without a second pixel (then stale, never stored) */
        kws_gemm(col, col + k4, 1, w, wide, bias, q, rsh, k4, oc, 0, out_off, lo, hi, mode, out + p0 * oc,
                 two ? out + (p0 + 1) * oc : 0);
    }
}

/* CONV_2D whose im2col of two pixels would not fit the scratch (tall windows over many channels,
 * e.g. CNN-S's 10x4 over 28 channels): the GEMM one window row at a time. Per pair of pixels the
 * int32 accumulators of every channel live in `acc` ([oc/2][a0, a1, b0, b1]), each window row is
 * widened into `col` (pixel b right after pixel a) and multiplied by that row's weights (the
 * kws_gemm layout per row, rows one after another), then all channels are requantized: one load
 * and store of the accumulators per row and channel pair, against kw*ic MACs each. */
KWS_KERNEL void kws_convrow_dsp(const int8_t *in, int8_t *out, const int8_t *w, const int32_t *bias, const int32_t *q,
                                const int8_t *rsh, int32_t *acc, int n, int ih, int iw, int ic, int oh, int ow, int oc,
                                int kh, int kw, int sh, int sw, int dh, int dw, int pt, int pl, int32_t in_off,
                                int32_t out_off, int32_t lo, int32_t hi, int rev, int mode)
{
    const int k4 = (kw * ic + 3) & ~3, ocp = oc + (oc & 1), npix = n * oh * ow;
    int16_t *col = (int16_t *)(acc + 2 * ocp);
    for (int i = 0; i < npix; i += 2) {
        const int two = npix - i >= 2;
        const int p0 = rev ? npix - i - 1 - two : i;
        for (int o = 0; o < ocp; o += 2) {
            int32_t *a = acc + 2 * o;
            a[0] = a[2] = bias ? bias[o] : 0;
            a[1] = a[3] = bias && o + 1 < oc ? bias[o + 1] : 0;
        }
        const kws_u32a *wp = (const kws_u32a *)w;
        for (int ky = 0; ky < kh; ky++) {
            /* window row ky = a window of height 1 whose top padding is pt - ky*dh */
            kws_im2col(in, col, p0, ih, iw, ic, oh, ow, 1, kw, sh, sw, dh, dw, pt - ky * dh, pl, in_off);
            if (two)
                kws_im2col(in, col + k4, p0 + 1, ih, iw, ic, oh, ow, 1, kw, sh, sw, dh, dw, pt - ky * dh, pl, in_off);
            for (int o = 0; o < ocp; o += 2) {
                int32_t *a = acc + 2 * o;
                int32_t a0 = a[0], a1 = a[1], b0 = a[2], b1 = a[3];
                const kws_u32a *pa = (const kws_u32a *)col;
                if (k4 * 2 <= 1020) {
                    KWS_UNROLL
                    for (int g = 0; g < k4 / 4; g++)
                        kws_gemm_step(&pa, &wp, k4 * 2, &a0, &a1, &b0, &b1);
                } else {
                    const kws_u32a *pb = (const kws_u32a *)(col + k4);
                    for (int g = 0; g < k4 / 4; g++) {
                        uint32_t xa02, xa13, xb02, xb13, w02, w13;
                        kws_ld2_inc(&pa, &xa02, &xa13);
                        kws_ld2_inc(&pb, &xb02, &xb13);
                        kws_wpairs(&wp, 0, 0, 0, &w02, &w13);
                        a0 = __smlad(xa13, w13, __smlad(xa02, w02, a0));
                        b0 = __smlad(xb13, w13, __smlad(xb02, w02, b0));
                        kws_wpairs(&wp, 0, 0, 0, &w02, &w13);
                        a1 = __smlad(xa13, w13, __smlad(xa02, w02, a1));
                        b1 = __smlad(xb13, w13, __smlad(xb02, w02, b1));
                    }
                }
                a[0] = a0, a[1] = a1, a[2] = b0, a[3] = b1;
            }
        }
        int8_t *ya = out + p0 * oc, *yb = two ? out + (p0 + 1) * oc : 0;
        for (int o = 0; o < oc; o++) {
            const int32_t *a = acc + 2 * (o & ~1) + (o & 1);
            ya[o] = kws_sat8(kws_rq(a[0], q + 2 * o, rsh[o], out_off, mode), lo, hi);
            if (yb)
                yb[o] = kws_sat8(kws_rq(a[2], q + 2 * o, rsh[o], out_off, mode), lo, hi);
        }
    }
}

/* FULLY_CONNECTED: rows widened into `col` (one or two at a time), then the same GEMM. */
KWS_KERNEL void kws_fc_dsp(const int8_t *in, int8_t *out, const void *w, int wide, const int32_t *bias,
                           const int32_t *q, const int8_t *rsh, int16_t *col, int rows, int depth, int oc, int32_t in_off,
                           int32_t w_off, int32_t out_off, int32_t lo, int32_t hi, int rev, int mode)
{
    const int k4 = (depth + 3) & ~3;
    if (wide)
        w_off = 0; /* folded into the int16 weights */
    if (rows == 1) {
        kws_widen(in, col, depth, in_off);
        int o = 0;
        if (!wide && w_off == 0 && 2 * k4 + 8 <= 1020 && oc * k4 >= KWS_UNROLL_MIN_WEIGHTS) /* LDRD offset */
            for (; o + 4 <= oc; o += 4) { /* scalar accumulators stay in registers through the requantization */
                int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
                if (bias)
                    a0 = bias[o], a1 = bias[o + 1], a2 = bias[o + 2], a3 = bias[o + 3];
                kws_fc4_loop(col, (const int8_t *)w + o * k4, 2 * k4, k4 / 4, &a0, &a1, &a2, &a3);
                out[o] = kws_sat8(kws_rq(a0, q + 2 * o, rsh[o], out_off, mode), lo, hi);
                out[o + 1] = kws_sat8(kws_rq(a1, q + 2 * o + 2, rsh[o + 1], out_off, mode), lo, hi);
                out[o + 2] = kws_sat8(kws_rq(a2, q + 2 * o + 4, rsh[o + 2], out_off, mode), lo, hi);
                out[o + 3] = kws_sat8(kws_rq(a3, q + 2 * o + 6, rsh[o + 3], out_off, mode), lo, hi);
            }
        if (o < oc)
            kws_gemm(col, col, 0, (const int8_t *)w + o * k4 * (wide ? 2 : 1), wide, bias ? bias + o : 0, q + 2 * o,
                     rsh + o, k4, oc - o, w_off, out_off, lo, hi, mode, out + o, 0);
        return;
    }
    for (int i = 0; i < rows; i += 2) {
        const int two = rows - i >= 2;
        const int r0 = rev ? rows - i - 1 - two : i;
        kws_widen(in + r0 * depth, col, depth, in_off);
        if (two)
            kws_widen(in + (r0 + 1) * depth, col + k4, depth, in_off);
        kws_gemm(col, two ? col + k4 : col, 1, w, wide, bias, q, rsh, k4, oc, w_off, out_off, lo, hi, mode,
                 out + r0 * oc, two ? out + (r0 + 1) * oc : 0);
    }
}

/* Padded input row r (input row r - pt) into window row k: `pl` zero-point pixels, the row,
 * zero-point pixels up to the padded width `pw`; rows outside the input are all zero point, so
 * their taps add exactly 0 once the input offset is applied. */
KWS_HELPER void kws_win_load(const int8_t *in, int8_t *win, int k, int b, int r, int ih, int iw, int ic, int pt,
                             int pl, int pw, uint32_t zp4)
{
    kws_u32a *d = (kws_u32a *)(win + k * pw * ic);
    const int ir = r - pt;
    if (ir < 0 || ir >= ih) {
        for (int j = 0; j < pw * ic / 4; j++)
            d[j] = zp4;
        return;
    }
    const kws_u32a *s = (const kws_u32a *)(in + (b * ih + ir) * iw * ic);
    for (int j = 0; j < pl * ic / 4; j++)
        *d++ = zp4;
    for (int j = 0; j < iw * ic / 4; j++)
        *d++ = s[j];
    for (int j = 0; j < (pw - pl - iw) * ic / 4; j++)
        *d++ = zp4;
}

/* Window rows [top, top + nrows) in order in `win`, keeping rows already held (moved up or down
 * by whole rows) and loading the others; returns the new first held row. */
KWS_HELPER int kws_win_slide(const int8_t *in, int8_t *win, int held, int top, int nrows, int b, int ih, int iw,
                             int ic, int pt, int pl, int pw, uint32_t zp4)
{
    const int words = pw * ic / 4;
    kws_u32a *w = (kws_u32a *)win;
    const int d = top - held; /* rows moved by */
    if (d >= 0 && d < nrows) {      /* forward: keep rows d.., shift them to the front */
        for (int j = 0; j < (nrows - d) * words; j++)
            w[j] = w[j + d * words];
        for (int k = nrows - d; k < nrows; k++)
            kws_win_load(in, win, k, b, top + k, ih, iw, ic, pt, pl, pw, zp4);
    } else if (d < 0 && -d < nrows) { /* reverse: keep rows ..nrows+d, shift them to the back */
        for (int j = (nrows + d) * words - 1; j >= 0; j--)
            w[j - d * words] = w[j];
        for (int k = -d - 1; k >= 0; k--)
            kws_win_load(in, win, k, b, top + k, ih, iw, ic, pt, pl, pw, zp4);
    } else if (d != 0 || held < -nrows) { /* nothing to keep (or the first row): load all */
        if (top < held)
            for (int k = nrows - 1; k >= 0; k--)
                kws_win_load(in, win, k, b, top + k, ih, iw, ic, pt, pl, pw, zp4);
        else
            for (int k = 0; k < nrows; k++)
                kws_win_load(in, win, k, b, top + k, ih, iw, ic, pt, pl, pw, zp4);
    }
    return top;
}

/* The int16 pair buffer of one group of 4 channels for the current window: for each padded
 * column x of `win`, 2*kh words in the depthwise weights' order: for each pair of window rows
 * (ky, ky+1) the four words (x[ky][c] + off, x[ky+1][c] + off), c = 0..3, then for an odd last
 * row (x[c0], x[c2]), (x[c1], x[c3]) (+ off). Built once per output row and group, it is read
 * by every output pixel whose window covers the column. */
KWS_HELPER void kws_dw_pairs(const int8_t *win, kws_u32a *pb, int x0, int x1, int ic, int kh, int dh, int pw,
                             uint32_t off2)
{
    const int row = dh * pw * ic;
    win += x0 * ic;
    pb += x0 * 2 * kh;
    for (int x = x0; x < x1; x++, win += ic) {
        const int8_t *px = win;
        KWS_UNROLL
        for (int ky = 0; ky + 1 < kh; ky += 2, px += 2 * row) {
            const uint32_t u = kws_ld32(px), v = kws_ld32(px + row);
            const uint32_t l = kws_pkhbt(u, v), h = kws_pkhtb(u, v); /* [u0 u1 v0 v1], [u2 u3 v2 v3] */
            pb[0] = __sxtab16(off2, l);
            pb[1] = kws_sxtab16_ror8(off2, l);
            pb[2] = __sxtab16(off2, h);
            pb[3] = kws_sxtab16_ror8(off2, h);
            pb += 4;
        }
        if (kh & 1) {
            const uint32_t u = kws_ld32(px);
            pb[0] = __sxtab16(off2, u);
            pb[1] = kws_sxtab16_ror8(off2, u);
            pb += 2;
        }
    }
}

/* n int8 weight words into 2n int16 pair words (see dw_weights in _lower.py), doubled if dbl. */
KWS_HELPER void kws_dw_widen(const void *w8, kws_u32a *w16, int n, int dbl)
{
    const kws_u32a *s = (const kws_u32a *)w8;
    for (int j = 0; j < n; j++) {
        const uint32_t v = s[j];
        const uint32_t lo = __sxtb16(v), hi = kws_sxtb16_ror8(v);
        w16[2 * j] = dbl ? (uint32_t)__sadd16(lo, lo) : lo;
        w16[2 * j + 1] = dbl ? (uint32_t)__sadd16(hi, hi) : hi;
    }
}

/* One output pixel of 4 channels for the pair-word depthwise kernels (kws_dwconv_dsp, kws_dwrow_dsp):
 * from its first window column's pair words `pp` (kws_dw_pairs' layout) and the group's weights `wg`,
 * kw columns of kws_dw_pair / kws_dw_odd steps, then requantization into y[0..3]. */
KWS_HELPER void kws_dw_px4(const kws_u32a *pp, const kws_u32a *wg, const int32_t *bias, const int32_t *qc,
                           const int8_t *sc, int kh, int kw, int dw, int32_t out_off, int32_t lo, int32_t hi,
                           int mode, int8_t *y)
{
    const kws_u32a *wp = wg;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    if (bias) {
        uint32_t u0, u1, u2, u3;
        kws_ld2(bias, &u0, &u1);
        kws_ld2(bias + 2, &u2, &u3);
        a0 = (int32_t)u0, a1 = (int32_t)u1, a2 = (int32_t)u2, a3 = (int32_t)u3;
    }
    const int wpc = 2 * kh;
    KWS_UNROLL
    for (int kx = 0; kx < kw; kx++) {
        KWS_UNROLL
        for (int ky = 0; ky + 1 < kh; ky += 2)
            kws_dw_pair(&pp, &wp, &a0, &a1, &a2, &a3);
        if (kh & 1)
            kws_dw_odd(&pp, &wp, &a0, &a1, &a2, &a3);
        pp += (dw - 1) * wpc;
    }
    y[0] = kws_sat8(kws_rq_dw(a0, qc, sc[0], out_off, mode), lo, hi);
    y[1] = kws_sat8(kws_rq_dw(a1, qc + 2, sc[1], out_off, mode), lo, hi);
    y[2] = kws_sat8(kws_rq_dw(a2, qc + 4, sc[2], out_off, mode), lo, hi);
    y[3] = kws_sat8(kws_rq_dw(a3, qc + 6, sc[3], out_off, mode), lo, hi);
}

/* DEPTHWISE_CONV_2D, depth multiplier 1, ic % 4 == 0. The (kh-1)*dh+1 input rows under the
 * current output row are held in `win` (scratch) padded to `pw` pixels with the input zero point,
 * so every output pixel reads its window the same way and padding contributes exactly 0. Each
 * input row is copied in once, when the first output row needing it starts, and the output row
 * is written after that: the output may overlap input rows already copied. Then, per group of 4
 * channels, the window is widened once into int16 pairs (`pb`, after `win` in scratch; see
 * kws_dw_pairs) and every output pixel of the row takes 2 LDRD + 4 SMLAD per pair of taps
 * (SMLABB/SMLATT for an odd last row), weights in the same order: int16 weights (wide = 1) as
 * they are, int8 weights (half the flash) widened into scratch after `pb`, all at once
 * (wide = 0) or one group per output row where that does not fit (wide = 2). In requantization
 * mode 2 weights and bias come doubled (int16 weights doubled by the generator, int8 ones when
 * widened), so the accumulators hold 2 acc, which kws_rq_dw takes as is. In reverse order rows come in
 * from the bottom up and pixels run right to left. */
KWS_KERNEL void kws_dwconv_dsp(const int8_t *in, int8_t *out, const void *w, int wide, const int32_t *bias,
                               const int32_t *q, const int8_t *rsh, int8_t *win, int n, int ih, int iw, int ic, int oh, int ow, int kh,
                               int kw, int sh, int sw, int dh, int dw, int pt, int pl, int pw, int32_t in_off,
                               int32_t out_off, int32_t lo, int32_t hi, int rev, int mode)
{
    const uint32_t off2 = (uint16_t)in_off * 0x00010001u;
    const uint32_t zp4 = (uint8_t)(-in_off) * 0x01010101u;
    const int nrows = (kh - 1) * dh + 1, ncols = (ow - 1) * sw + (kw - 1) * dw + 1, wpc = 2 * kh;
    kws_u32a *pb = (kws_u32a *)(win + ((nrows * pw * ic + 7) & ~7));
    kws_u32a *wb = pb + ncols * wpc;
    const kws_u32a *w16 = wide == 1 ? (const kws_u32a *)w : wb;
    if (wide == 0)
        kws_dw_widen(w, wb, ic / 4 * kw * kh, mode == 2);
    const int cx0 = pl < ncols ? pl : ncols, cx1 = pl + iw < ncols ? pl + iw : ncols; /* input columns */
    for (int j = 0; j < cx0 * wpc; j++)
        pb[j] = 0;
    for (int j = cx1 * wpc; j < ncols * wpc; j++)
        pb[j] = 0;
    for (int bi = 0; bi < n; bi++) {
        const int b = KWS_IDX(bi, n, rev);
        int held = -(1 << 30); /* first padded row held in win; none yet */
        for (int yi = 0; yi < oh; yi++) {
            const int oy = KWS_IDX(yi, oh, rev);
            held = kws_win_slide(in, win, held, oy * sh, nrows, b, ih, iw, ic, pt, pl, pw, zp4);
            int8_t *y = out + (b * oh + oy) * ow * ic;
            for (int c = 0; c < ic; c += 4) {
                kws_dw_pairs(win + c, pb, cx0, cx1, ic, kh, dh, pw, off2);
                const kws_u32a *wg = w16 + c / 4 * kw * wpc;
                if (wide == 2) {
                    kws_dw_widen((const kws_u32a *)w + c / 4 * kw * kh, wb, kw * kh, mode == 2);
                    wg = wb;
                }
                for (int xi = 0; xi < ow; xi++) {
                    const int ox = KWS_IDX(xi, ow, rev);
                    kws_dw_px4(pb + ox * sw * wpc, wg, bias ? bias + c : 0, q + 2 * c, rsh + c, kh, kw, dw,
                               out_off, lo, hi, mode, y + ox * ic + c);
                }
            }
        }
    }
}


/* The int16 pair words of filter rows (ky, ky + 1) (or the odd last row, v = 0) for the padded
 * columns [x0, x1) of one group of 4 channels, in kws_dw_pairs' layout (word `slot` of each
 * column's 2*kh). u, v: the rows' words at column x0 stepping `su`, `sv` bytes a column (0 and a
 * zero-point word for a row outside the input, whose pairs come out exactly 0). */
KWS_HELPER void kws_dwr_put(kws_u32a *pb, int wpc, int slot, int x0, int x1, const int8_t *u, int su,
                            const int8_t *v, int sv, uint32_t off2)
{
    kws_u32a *d = pb + x0 * wpc + slot;
    if (!v) {
        for (int x = x0; x < x1; x++, u += su, d += wpc) {
            const uint32_t a = kws_ld32(u);
            d[0] = __sxtab16(off2, a);
            d[1] = kws_sxtab16_ror8(off2, a);
        }
        return;
    }
    for (int x = x0; x < x1; x++, u += su, v += sv, d += wpc) {
        const uint32_t a = kws_ld32(u), b = kws_ld32(v);
        const uint32_t l = kws_pkhbt(a, b), h = kws_pkhtb(a, b); /* [a0 a1 b0 b1], [a2 a3 b2 b3] */
        d[0] = __sxtab16(off2, l);
        d[1] = kws_sxtab16_ror8(off2, l);
        d[2] = __sxtab16(off2, h);
        d[3] = kws_sxtab16_ror8(off2, h);
    }
}

/* DEPTHWISE_CONV_2D, depth multiplier 1, ic % 4 == 0, any stride, dilation and padding, in a
 * small scratch (where kws_dwconv_dsp's window of whole input rows does not fit): one output row
 * at a time; per group of 4 channels the pair words of the row's window columns are built
 * straight from the input (kws_dwr_put; rows and columns outside the input give pairs of 0, as
 * padding must), every output pixel takes kws_dwconv_dsp's MACs and requantization, and its 4
 * outputs go to a row buffer, copied to the output once the whole row is done: the output may
 * overlap any input row that later rows do not read (one buffered group per output row).
 * Scratch: the pair words (ncols * 2 kh), the row (ow * ic bytes), then the weights widened all
 * at once (wide = 0) or one group at a time (wide = 2). Rows bottom up in reverse order. */
KWS_KERNEL void kws_dwrow_dsp(const int8_t *in, int8_t *out, const void *w, int wide, const int32_t *bias,
                              const int32_t *q, const int8_t *rsh, int8_t *scratch, int n, int ih, int iw, int ic,
                              int oh, int ow, int kh, int kw, int sh, int sw, int dh, int dw, int pt, int pl,
                              int32_t in_off, int32_t out_off, int32_t lo, int32_t hi, int rev, int mode)
{
    const uint32_t off2 = (uint16_t)in_off * 0x00010001u;
    const uint32_t zp4 = (uint8_t)(-in_off) * 0x01010101u;
    const int ncols = (ow - 1) * sw + (kw - 1) * dw + 1, wpc = 2 * kh, rowb = ow * ic;
    kws_u32a *pb = (kws_u32a *)scratch;
    int8_t *rb = (int8_t *)(pb + ncols * wpc);
    kws_u32a *wb = (kws_u32a *)(rb + rowb);
    const kws_u32a *w16 = wide == 1 ? (const kws_u32a *)w : wb;
    if (wide == 0)
        kws_dw_widen(w, wb, ic / 4 * kw * kh, mode == 2);
    const int cx0 = pl < ncols ? pl : ncols, cx1 = pl + iw < ncols ? pl + iw : ncols; /* input columns */
    for (int j = 0; j < cx0 * wpc; j++)
        pb[j] = 0;
    for (int j = cx1 * wpc; j < ncols * wpc; j++)
        pb[j] = 0;
    const int8_t *zw = (const int8_t *)&zp4;
    for (int bi = 0; bi < n; bi++) {
        const int b = KWS_IDX(bi, n, rev);
        for (int yi = 0; yi < oh; yi++) {
            const int oy = KWS_IDX(yi, oh, rev), top = oy * sh - pt;
            for (int c = 0; c < ic; c += 4) {
                for (int ky = 0; ky < kh; ky += 2) {
                    const int r0 = top + ky * dh, r1 = r0 + dh;
                    const int in0 = r0 >= 0 && r0 < ih, in1 = ky + 1 < kh && r1 >= 0 && r1 < ih;
                    const int8_t *u = in0 ? in + ((b * ih + r0) * iw + cx0 - pl) * ic + c : zw;
                    const int8_t *v = ky + 1 >= kh ? 0 : in1 ? in + ((b * ih + r1) * iw + cx0 - pl) * ic + c : zw;
                    kws_dwr_put(pb, wpc, 2 * ky, cx0, cx1, u, in0 ? ic : 0, v, in1 ? ic : 0, off2);
                }
                const kws_u32a *wg = w16 + c / 4 * kw * wpc;
                if (wide == 2) {
                    kws_dw_widen((const kws_u32a *)w + c / 4 * kw * kh, wb, kw * kh, mode == 2);
                    wg = wb;
                }
                for (int ox = 0; ox < ow; ox++)
                    kws_dw_px4(pb + ox * sw * wpc, wg, bias ? bias + c : 0, q + 2 * c, rsh + c, kh, kw, dw,
                               out_off, lo, hi, mode, rb + ox * ic + c);
            }
            kws_u32a *y = (kws_u32a *)(out + (b * oh + oy) * rowb);
            const kws_u32a *s = (const kws_u32a *)rb;
            for (int j = 0; j < rowb / 4; j++)
                y[j] = s[j];
        }
    }
}

/* ---- depthwise over whole channel planes (kws_dwplane_dsp) ---- */

/* Four int8 channels of two vertically adjacent pixels (words u above v) into the four channel
 * planes' pair words (u[c] + off, v[c] + off), word k of each column at d[0], d[ps], ... */
KWS_HELPER void kws_dwp_put(kws_u32a *d, int ps, uint32_t u, uint32_t v, uint32_t off2)
{
    const uint32_t u02 = __sxtab16(off2, u), u13 = kws_sxtab16_ror8(off2, u);
    const uint32_t v02 = __sxtab16(off2, v), v13 = kws_sxtab16_ror8(off2, v);
    d[0] = kws_pkhbt(u02, v02);
    d[ps] = kws_pkhbt(u13, v13);
    d[2 * ps] = kws_pkhtb(u02, v02);
    d[3 * ps] = kws_pkhtb(u13, v13);
}

/* (a, b) as one int16 pair word, each times s. */
KWS_HELPER uint32_t kws_pair16(int32_t a, int32_t b, int32_t s)
{
    return (uint16_t)(a * s) | (uint32_t)(b * s) << 16;
}

/* DEPTHWISE_CONV_2D, depth multiplier 1, stride 1, dilation 1, output shape = input shape
 * (SAME padding), ic % 4 == 0, one group of 4 channels at a time over the whole plane:
 * - the group's input is widened (+ input offset) into 4 int16 planes in scratch, column-major,
 *   `ph` rows per column (even), padded with zeros (padding taps add exactly 0), each word a
 *   pair of vertically adjacent values: 2 LDR, 4 SXTAB16, 4 PKH, 4 STR per 8 values;
 * - then per channel, with its kw * (kh - 1) weight pair words in registers (int8 weights
 *   [C][kh][kw] in flash, widened and, in requantization mode 2, doubled once per channel),
 *   two vertically adjacent outputs at a time: per filter column, the words D_i (rows oy + 2i,
 *   oy + 2i + 1) against E_i = (w[2i], w[2i+1]) give output oy and against O_i = (w[2i-1], w[2i])
 *   output oy + 1 (SMLAD, plus one SMLABT/SMLATB for the odd tap at either end).
 * A group reads all its input before writing its output, and the output of channel c lands only
 * on the input bytes of channel c at the same pixel: exactly in place (output at the input's
 * offset) and nothing else overlapping. */
KWS_KERNEL void kws_dwplane_dsp(const int8_t *in, int8_t *out, const int8_t *w, const int32_t *bias,
                                const int32_t *mul, const int8_t *rsh, int8_t *scratch, int n, int ih, int iw, int ic,
                                int kh, int kw, int pt, int pl, int ph, int32_t in_off, int32_t out_off, int32_t lo,
                                int32_t hi, int mode)
{
    const uint32_t off2 = (uint16_t)in_off * 0x00010001u;
    const uint32_t zp4 = (uint8_t)(-in_off) * 0x01010101u;
    const int pw = iw + kw - 1, ps = pw * ph / 2; /* plane size in words */
    const int m = kh / 2, nw = kh > 1 ? kh - 1 : 1; /* E_0..E_{m-1}, then O_1.. (kh == 1: (w0, 0)) */
    const int32_t dbl = mode == 2 ? 2 : 1;
    kws_u32a *planes = (kws_u32a *)scratch;
    for (int j = 0; j < 4 * ps; j++)
        planes[j] = 0;
    const int k0 = pt / 2, k1 = (pt + ih - 1) / 2; /* pair words holding input rows */
    for (int b = 0; b < n; b++) {
        const int8_t *xb = in + b * ih * iw * ic;
        int8_t *yb = out + b * ih * iw * ic;
        for (int c = 0; c < ic; c += 4) {
            /* widen the group's 4 channels into the planes */
            for (int x = 0; x < iw; x++) {
                const int8_t *s = xb + x * ic + c;
                kws_u32a *d = planes + (x + pl) * ph / 2 + k0;
                int k = k0;
                if (pt & 1) { /* the first word pairs a padding row with row 0 */
                    kws_dwp_put(d++, ps, zp4, kws_ld32(s), off2);
                    k++;
                }
                const int kend = (pt + ih) & 1 ? k1 : k1 + 1;
                for (; k < kend; k++) {
                    const int8_t *r = s + (2 * k - pt) * iw * ic;
                    kws_dwp_put(d++, ps, kws_ld32(r), kws_ld32(r + iw * ic), off2);
                }
                if ((pt + ih) & 1) /* the last word pairs row ih - 1 with a padding row */
                    kws_dwp_put(d, ps, kws_ld32(s + (ih - 1) * iw * ic), zp4, off2);
            }
            for (int j = 0; j < 4; j++) {
                const int cc = c + j;
                const int8_t *wc = w + cc * kh * kw;
#ifdef KWS_DWP3_ASM
                if (kh == 3 && mode == 2 && (kw - 1) * ph * 2 + 8 <= 1020) {
                    int32_t wv[2 * KWS_MAX_KW + 3];
                    for (int kx = 0; kx < kw; kx++) {
                        wv[2 * kx] = (int32_t)kws_pair16(wc[kx], wc[kw + kx], 2);
                        wv[2 * kx + 1] = (int32_t)kws_pair16(wc[kw + kx], wc[2 * kw + kx], 2);
                    }
                    wv[2 * kw] = bias ? bias[cc] : 0;
                    wv[2 * kw + 1] = kws_rq_rnd(rsh[cc], out_off, mode);
                    wv[2 * kw + 2] = (int32_t)(uintptr_t)((const int8_t *)(planes + j * ps) + iw * ph * 2);
                    kws_dwp3(planes + j * ps, yb + cc, wv, mul[cc], rsh[cc], ih / 4, ih % 4, kw, ph * 2, iw * ic, ic,
                             lo, hi);
                    continue;
                }
#endif
                uint32_t ww[KWS_MAX_KW][KWS_MAX_KH];
                KWS_UNROLL
                for (int kx = 0; kx < kw; kx++) {
                    if (kh == 1) {
                        ww[kx][0] = kws_pair16(wc[kx], 0, dbl);
                        continue;
                    }
                    for (int i = 0; i < m; i++)
                        ww[kx][i] = kws_pair16(wc[2 * i * kw + kx], wc[(2 * i + 1) * kw + kx], dbl);
                    for (int i = 1; i < kh - m; i++) /* O_i, i = 1..nw-m */
                        ww[kx][m + i - 1] = kws_pair16(wc[(2 * i - 1) * kw + kx], 2 * i < kh ? wc[2 * i * kw + kx] : 0,
                                                       dbl);
                }
                (void)nw;
                const int32_t bc = bias ? bias[cc] : 0;
                const int32_t sc = rsh[cc];
                const int32_t qc[2] = {mul[cc], kws_rq_rnd(sc, out_off, mode)};
                const kws_u32a *pj = planes + j * ps;
                for (int ox = 0; ox < iw; ox++) {
                    int8_t *y = yb + ox * ic + cc;
                    const kws_u32a *col = pj + ox * ph / 2;
                    for (int oy = 0; oy < ih; oy += 2, col++, y += 2 * iw * ic) {
                        int32_t a0 = bc, a1 = bc;
                        KWS_UNROLL
                        for (int kx = 0; kx < kw; kx++) {
                            const kws_u32a *p = col + kx * ph / 2;
                            uint32_t d[KWS_MAX_KH / 2 + 2];
                            for (int i = 0; i <= m; i += 2)
                                kws_ld2(p + i, &d[i], &d[i + 1]);
                            const uint32_t *e = ww[kx], *o = ww[kx] + m - 1; /* o[i] = O_i */
                            if (kh == 1) {
                                a0 = __smlabb(d[0], e[0], a0);
                                a1 = __smlatb(d[0], e[0], a1);
                                continue;
                            }
                            for (int i = 0; i < m; i++)
                                a0 = __smlad(d[i], e[i], a0);
                            a1 = __smlatb(d[0], e[0], a1);
                            if (kh & 1) {
                                for (int i = 1; i <= m; i++)
                                    a1 = __smlad(d[i], o[i], a1);
                                a0 = __smlabt(d[m], o[m], a0);
                            } else {
                                for (int i = 1; i < m; i++)
                                    a1 = __smlad(d[i], o[i], a1);
                                a1 = __smlabt(d[m], e[m - 1], a1);
                            }
                        }
                        y[0] = kws_sat8(kws_rq_dw(a0, qc, sc, out_off, mode), lo, hi);
                        if (oy + 1 < ih)
                            y[iw * ic] = kws_sat8(kws_rq_dw(a1, qc, sc, out_off, mode), lo, hi);
                    }
                }
            }
        }
    }
}

#endif
