/* Plain C int8 kernels, bit-exact with hardware/reference.py (and so with TFLM's reference
 * kernels). Any C99 compiler; no C library beyond <stdint.h>/<string.h>.
 *
 * Every shape, stride and constant is an argument the generated code passes as a literal; the
 * kernels are forced inline (KWS_KERNEL), so each call compiles to code specialised to its layer.
 *
 * In-place execution: `in` and `out` may overlap (never `restrict`). Each kernel visits output
 * units (pixels, rows or elements) in raster order, or in exactly the reverse order when `rev`
 * is non-zero, and reads only the inputs of the unit it is computing; the planner
 * (hardware/codegen/_inplace.py) places an output over its input only where that order keeps
 * every input byte intact until its last read.
 */
#ifndef KWS_KERNELS_H
#define KWS_KERNELS_H

#include "kws_fixedpoint.h"

/* Loop index i of n, taken forward or backward. */
#define KWS_IDX(i, n, rev) ((rev) ? (n) - 1 - (i) : (i))

/* CONV_2D, NHWC, weights [oc][kh][kw][ic]; taps outside the input are skipped (TFLM). */
KWS_KERNEL void kws_conv(const int8_t *in, int8_t *out, const int8_t *w, const int32_t *bias,
                         const int32_t *mult, const int8_t *shift, int n, int ih, int iw, int ic, int oh,
                         int ow, int oc, int kh, int kw, int sh, int sw, int dh, int dw, int pt, int pl,
                         int32_t in_off, int32_t out_off, int32_t lo, int32_t hi, int rev)
{
    for (int bi = 0; bi < n; bi++) {
        const int b = KWS_IDX(bi, n, rev);
        for (int yi = 0; yi < oh; yi++) {
            const int oy = KWS_IDX(yi, oh, rev), y0 = oy * sh - pt;
            for (int xi = 0; xi < ow; xi++) {
                const int ox = KWS_IDX(xi, ow, rev), x0 = ox * sw - pl;
                int8_t *y = out + ((b * oh + oy) * ow + ox) * oc;
                for (int o = 0; o < oc; o++) {
                    int32_t acc = bias ? bias[o] : 0;
                    for (int ky = 0; ky < kh; ky++) {
                        const int iy = y0 + ky * dh;
                        if (iy < 0 || iy >= ih)
                            continue;
                        for (int kx = 0; kx < kw; kx++) {
                            const int ix = x0 + kx * dw;
                            if (ix < 0 || ix >= iw)
                                continue;
                            const int8_t *xp = in + ((b * ih + iy) * iw + ix) * ic;
                            const int8_t *wp = w + ((o * kh + ky) * kw + kx) * ic;
                            for (int c = 0; c < ic; c++)
                                acc += (xp[c] + in_off) * wp[c];
                        }
                    }
                    y[o] = kws_requant(acc, mult[o], shift[o], out_off, lo, hi);
                }
            }
        }
    }
}

/* DEPTHWISE_CONV_2D, weights [1][kh][kw][ic*dm]; output channel c*dm+j reads input channel c. */
KWS_KERNEL void kws_dwconv(const int8_t *in, int8_t *out, const int8_t *w, const int32_t *bias,
                           const int32_t *mult, const int8_t *shift, int n, int ih, int iw, int ic, int dm,
                           int oh, int ow, int kh, int kw, int sh, int sw, int dh, int dw, int pt, int pl,
                           int32_t in_off, int32_t out_off, int32_t lo, int32_t hi, int rev)
{
    const int oc = ic * dm;
    for (int bi = 0; bi < n; bi++) {
        const int b = KWS_IDX(bi, n, rev);
        for (int yi = 0; yi < oh; yi++) {
            const int oy = KWS_IDX(yi, oh, rev), y0 = oy * sh - pt;
            for (int xi = 0; xi < ow; xi++) {
                const int ox = KWS_IDX(xi, ow, rev), x0 = ox * sw - pl;
                int8_t *y = out + ((b * oh + oy) * ow + ox) * oc;
                for (int o = 0; o < oc; o++) {
                    const int c = o / dm;
                    int32_t acc = bias ? bias[o] : 0;
                    for (int ky = 0; ky < kh; ky++) {
                        const int iy = y0 + ky * dh;
                        if (iy < 0 || iy >= ih)
                            continue;
                        for (int kx = 0; kx < kw; kx++) {
                            const int ix = x0 + kx * dw;
                            if (ix < 0 || ix >= iw)
                                continue;
                            acc += (in[((b * ih + iy) * iw + ix) * ic + c] + in_off) * w[(ky * kw + kx) * oc + o];
                        }
                    }
                    y[o] = kws_requant(acc, mult[o], shift[o], out_off, lo, hi);
                }
            }
        }
    }
}

/* FULLY_CONNECTED over `rows` rows of `depth`; weights [oc][depth] with an optional weight
 * offset (per-tensor asymmetric weights). */
KWS_KERNEL void kws_fc(const int8_t *in, int8_t *out, const int8_t *w, const int32_t *bias, const int32_t *mult,
                       const int8_t *shift, int rows, int depth, int oc, int32_t in_off, int32_t w_off,
                       int32_t out_off, int32_t lo, int32_t hi, int rev)
{
    for (int ri = 0; ri < rows; ri++) {
        const int r = KWS_IDX(ri, rows, rev);
        const int8_t *x = in + r * depth;
        for (int o = 0; o < oc; o++) {
            int32_t acc = bias ? bias[o] : 0;
            const int8_t *wo = w + o * depth;
            for (int k = 0; k < depth; k++)
                acc += (x[k] + in_off) * (wo[k] + w_off);
            out[r * oc + o] = kws_requant(acc, mult[o], shift[o], out_off, lo, hi);
        }
    }
}

/* AVERAGE_POOL_2D (is_max = 0) and MAX_POOL_2D (is_max = 1): window clipped to the input,
 * average rounded half away from zero over the clipped count (TFLM). */
KWS_KERNEL void kws_pool(const int8_t *in, int8_t *out, int is_max, int n, int ih, int iw, int c, int oh, int ow,
                         int fh, int fw, int sh, int sw, int pt, int pl, int32_t lo, int32_t hi, int rev)
{
    for (int bi = 0; bi < n; bi++) {
        const int b = KWS_IDX(bi, n, rev);
        for (int yi = 0; yi < oh; yi++) {
            const int oy = KWS_IDX(yi, oh, rev), y0 = oy * sh - pt;
            const int fy0 = kws_max32(0, -y0), fy1 = kws_min32(fh, ih - y0);
            for (int xi = 0; xi < ow; xi++) {
                const int ox = KWS_IDX(xi, ow, rev), x0 = ox * sw - pl;
                const int fx0 = kws_max32(0, -x0), fx1 = kws_min32(fw, iw - x0);
                int8_t *y = out + ((b * oh + oy) * ow + ox) * c;
                for (int ch = 0; ch < c; ch++) {
                    int32_t acc = is_max ? -128 : 0;
                    for (int fy = fy0; fy < fy1; fy++)
                        for (int fx = fx0; fx < fx1; fx++) {
                            const int32_t v = in[((b * ih + y0 + fy) * iw + x0 + fx) * c + ch];
                            acc = is_max ? kws_max32(acc, v) : acc + v;
                        }
                    if (!is_max) {
                        const int32_t count = (fy1 - fy0) * (fx1 - fx0);
                        acc = (acc > 0 ? acc + count / 2 : acc - count / 2) / count;
                    }
                    y[ch] = (int8_t)kws_clamp32(acc, lo, hi);
                }
            }
        }
    }
}

/* MEAN over the dimensions flagged r0..r3 of a (d0, d1, d2, d3) tensor; outputs in row-major
 * order of the kept dimensions. The 1/count is folded into (mult, shift). */
KWS_KERNEL void kws_mean(const int8_t *in, int8_t *out, int d0, int d1, int d2, int d3, int r0, int r1, int r2,
                         int r3, int32_t in_zp, int32_t count, int32_t mult, int32_t shift, int32_t out_zp)
{
    int o = 0;
    for (int a0 = 0; a0 < (r0 ? 1 : d0); a0++)
        for (int a1 = 0; a1 < (r1 ? 1 : d1); a1++)
            for (int a2 = 0; a2 < (r2 ? 1 : d2); a2++)
                for (int a3 = 0; a3 < (r3 ? 1 : d3); a3++) {
                    int32_t sum = 0;
                    for (int b0 = 0; b0 < (r0 ? d0 : 1); b0++)
                        for (int b1 = 0; b1 < (r1 ? d1 : 1); b1++)
                            for (int b2 = 0; b2 < (r2 ? d2 : 1); b2++)
                                for (int b3 = 0; b3 < (r3 ? d3 : 1); b3++)
                                    sum += in[(((r0 ? b0 : a0) * d1 + (r1 ? b1 : a1)) * d2 + (r2 ? b2 : a2)) * d3
                                              + (r3 ? b3 : a3)];
                    const int32_t centred = (int32_t)((uint32_t)sum - (uint32_t)in_zp * (uint32_t)count);
                    out[o++] = (int8_t)kws_clamp32(kws_mbqm(centred, mult, shift) + out_zp, -128, 127);
                }
}

/* ADD with broadcasting: (d0..d3) output dims, per-input element strides (0 where broadcast).
 * Inputs are rescaled to a common scale after a left shift (TFLM's int8 ADD). */
KWS_KERNEL void kws_add(const int8_t *a, const int8_t *bb, int8_t *out, int d0, int d1, int d2, int d3, int sa0,
                        int sa1, int sa2, int sa3, int sb0, int sb1, int sb2, int sb3, int left_shift,
                        int32_t a_off, int32_t a_mult, int32_t a_shift, int32_t b_off, int32_t b_mult,
                        int32_t b_shift, int32_t out_off, int32_t out_mult, int32_t out_shift, int32_t lo,
                        int32_t hi, int rev)
{
    for (int i0 = 0; i0 < d0; i0++) {
        const int j0 = KWS_IDX(i0, d0, rev);
        for (int i1 = 0; i1 < d1; i1++) {
            const int j1 = KWS_IDX(i1, d1, rev);
            for (int i2 = 0; i2 < d2; i2++) {
                const int j2 = KWS_IDX(i2, d2, rev);
                for (int i3 = 0; i3 < d3; i3++) {
                    const int j3 = KWS_IDX(i3, d3, rev);
                    const int32_t x = a[j0 * sa0 + j1 * sa1 + j2 * sa2 + j3 * sa3] + a_off;
                    const int32_t z = bb[j0 * sb0 + j1 * sb1 + j2 * sb2 + j3 * sb3] + b_off;
                    const int32_t sx = kws_mbqm_small(x * (1 << left_shift), a_mult, a_shift);
                    const int32_t sz = kws_mbqm_small(z * (1 << left_shift), b_mult, b_shift);
                    const int32_t y = kws_mbqm_small(sx + sz, out_mult, out_shift) + out_off;
                    out[((j0 * d1 + j1) * d2 + j2) * d3 + j3] = (int8_t)kws_clamp32(y, lo, hi);
                }
            }
        }
    }
}

/* MUL with broadcasting (TFLM's int8 MUL): the product of the offset inputs (|.| < 2^16), rescaled once.
 * Dims and strides as in kws_add; the squeeze-and-excitation gate is a [C] vector over an [H, W, C] map. */
KWS_KERNEL void kws_mul(const int8_t *a, const int8_t *bb, int8_t *out, int d0, int d1, int d2, int d3, int sa0,
                        int sa1, int sa2, int sa3, int sb0, int sb1, int sb2, int sb3, int32_t a_off, int32_t b_off,
                        int32_t out_off, int32_t mult, int32_t shift, int32_t lo, int32_t hi, int rev)
{
    for (int i0 = 0; i0 < d0; i0++) {
        const int j0 = KWS_IDX(i0, d0, rev);
        for (int i1 = 0; i1 < d1; i1++) {
            const int j1 = KWS_IDX(i1, d1, rev);
            for (int i2 = 0; i2 < d2; i2++) {
                const int j2 = KWS_IDX(i2, d2, rev);
                for (int i3 = 0; i3 < d3; i3++) {
                    const int j3 = KWS_IDX(i3, d3, rev);
                    const int32_t x = a[j0 * sa0 + j1 * sa1 + j2 * sa2 + j3 * sa3] + a_off;
                    const int32_t z = bb[j0 * sb0 + j1 * sb1 + j2 * sb2 + j3 * sb3] + b_off;
                    const int32_t y = kws_mbqm(x * z, mult, shift) + out_off;
                    out[((j0 * d1 + j1) * d2 + j2) * d3 + j3] = (int8_t)kws_clamp32(y, lo, hi);
                }
            }
        }
    }
}

/* SOFTMAX over rows of `depth`: exp of -(row max - x), scaled by TFLM's input multiplier and left
 * shift into Q5.26 (kws_softmax_exp, per element); differences beyond `lim` count as exp = 0 and
 * give -128. Each row is read twice, then written element by element, each element read just before
 * it is overwritten. */
KWS_KERNEL void kws_softmax(const int8_t *in, int8_t *out, int rows, int depth, int32_t multiplier, int left_shift,
                            int lim, int rev)
{
    for (int ri = 0; ri < rows; ri++) {
        const int r = KWS_IDX(ri, rows, rev);
        const int8_t *x = in + r * depth;
        int8_t *y = out + r * depth;
        int32_t mx = -128;
        for (int i = 0; i < depth; i++)
            mx = kws_max32(mx, x[i]);
        uint32_t sum = 0; /* Q12.19, wrapping like TFLM's int32 sum */
        int32_t recip = 0;
        int e = 0;
        for (int pass = 0; pass < 2; pass++) { /* sum, then outputs: one inlined copy of exp */
            for (int ii = 0; ii < depth; ii++) {
                const int i = KWS_IDX(ii, depth, rev);
                const int32_t d = mx - x[i];
                const int32_t ex = d <= lim ? kws_softmax_exp(d, multiplier, left_shift) : 0;
                if (pass == 0)
                    sum += (uint32_t)kws_rdbpot(ex, 12);
                else
                    y[i] = (int8_t)(d <= lim ? kws_clamp32(kws_rdbpot(kws_srdhm(recip, ex), e) - 128, -128, 127)
                                             : -128);
            }
            if (pass == 0) {
                int bits;
                recip = kws_reciprocal((int32_t)sum, 12, &bits);
                e = kws_min32(bits + 31 - 8, 31); /* > 31 only for rows TFLM rejects */
            }
        }
    }
}

/* PAD of a (i0, i1, i2, i3) tensor to (o0, o1, o2, o3) with p* elements before, filled with
 * `fill`; one output pixel (innermost row) at a time. */
KWS_KERNEL void kws_pad(const int8_t *in, int8_t *out, int i0, int i1, int i2, int i3, int o0, int o1, int o2,
                        int o3, int p0, int p1, int p2, int p3, int8_t fill, int rev)
{
    for (int a0 = 0; a0 < o0; a0++) {
        const int b0 = KWS_IDX(a0, o0, rev), s0 = b0 - p0;
        for (int a1 = 0; a1 < o1; a1++) {
            const int b1 = KWS_IDX(a1, o1, rev), s1 = b1 - p1;
            for (int a2 = 0; a2 < o2; a2++) {
                const int b2 = KWS_IDX(a2, o2, rev), s2 = b2 - p2;
                int8_t *y = out + ((b0 * o1 + b1) * o2 + b2) * o3;
                if (s0 < 0 || s0 >= i0 || s1 < 0 || s1 >= i1 || s2 < 0 || s2 >= i2) {
                    for (int k = 0; k < o3; k++)
                        y[k] = fill;
                    continue;
                }
                const int8_t *x = in + ((s0 * i1 + s1) * i2 + s2) * i3;
                for (int k = 0; k < p3; k++)
                    y[k] = fill;
                for (int k = 0; k < i3; k++)
                    y[p3 + k] = x[k];
                for (int k = p3 + i3; k < o3; k++)
                    y[k] = fill;
            }
        }
    }
}

#endif
