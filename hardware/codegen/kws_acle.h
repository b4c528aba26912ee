/* The ACLE DSP intrinsics the DSP kernels use, plus a few helpers GCC does not form from C.
 *
 * On a core with the DSP extension (__ARM_FEATURE_DSP: Cortex-M4/M7/M33) they map to
 * arm_acle.h and to one-instruction inline asm. Everywhere else (the host test build, or with
 * KWS_PORTABLE_DSP defined) they are portable C with the same results bit for bit, so the DSP
 * kernels compile and are tested on the host.
 *
 * Lane conventions (little endian): a 32-bit word holds int8 bytes b0..b3 (b0 lowest) or int16
 * halves (lo, hi).
 */
#ifndef KWS_ACLE_H
#define KWS_ACLE_H

#include <stdint.h>

#if defined(__ARM_FEATURE_DSP) && !defined(KWS_PORTABLE_DSP)
#include <arm_acle.h>
#define KWS_ASM_DSP 1
#endif

/* Layers with at least this many weights get the longer, faster code: a 4-group GEMM pass (kws_gemm3r)
 * and 4 channels a pass in one-row fully connected layers (kws_fc4_loop). Each saves ~1 instruction in
 * 20 but links a few hundred bytes per layer shape, which a layer of a few thousand weights (DS-CNN-S's
 * stem, its 64 x 12 classifier) does not repay against the flash budget (weights + 12 KiB). */
#define KWS_UNROLL_MIN_WEIGHTS 4096

/* A word that may alias any other type: the arena is an int8_t array read and written in words. */
typedef uint32_t __attribute__((may_alias)) kws_u32a;

/* Word access to int8/int16 buffers at 4-byte aligned addresses (one LDR/STR; every caller's
 * address is aligned: tensors start at multiples of 4 and the kernels that use these require
 * channel counts that are multiples of 4). */
static inline __attribute__((always_inline)) uint32_t kws_ld32(const void *p) { return *(const kws_u32a *)p; }
static inline __attribute__((always_inline)) void kws_st32(void *p, uint32_t v) { *(kws_u32a *)p = v; }
/* Word access at any address (unaligned LDR, allowed on v7-M; never merged into LDRD/LDM). */
static inline __attribute__((always_inline)) uint32_t kws_ld32u(const void *p)
{
    uint32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
}

#ifdef KWS_ASM_DSP

/* sxtb16 / sxtab16 with the operand rotated right by 8: bytes 1 and 3. */
static inline __attribute__((always_inline)) uint32_t kws_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
static inline __attribute__((always_inline)) uint32_t kws_sxtab16_ror8(uint32_t a, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
}
/* (lo half of a, lo half of b) and (hi half of a, hi half of b). */
static inline __attribute__((always_inline)) uint32_t kws_pkhbt(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
static inline __attribute__((always_inline)) uint32_t kws_pkhtb(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(b), "r"(a));
    return r;
}
/* (a * b + 2^31) >> 32, the rounded high word of the 64-bit product. */
static inline __attribute__((always_inline)) int32_t kws_smmulr(int32_t a, int32_t b)
{
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
/* (a * b + (c << 32) + 2^31) >> 32: c plus the rounded high word of the product. */
static inline __attribute__((always_inline)) int32_t kws_smmlar(int32_t a, int32_t b, int32_t c)
{
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}
/* Depthwise steps over int16 pairs (kws_dwconv_dsp): x and w advance as they are read (LDRD
 * with post-increment). kws_dw_pair: a0..a3 += SMLAD(x[i], w[i]) for 4 words; kws_dw_odd:
 * a0 += x0.lo*w0.lo, a2 += x0.hi*w0.hi, a1 += x1.lo*w1.lo, a3 += x1.hi*w1.hi. The "memory"
 * clobber orders them after the stores that filled x. */
static inline __attribute__((always_inline)) void kws_dw_pair(const kws_u32a **x, const kws_u32a **w, int32_t *a0,
                                                             int32_t *a1, int32_t *a2, int32_t *a3)
{
    uint32_t x0, x1, w0, w1;
    __asm__ volatile("ldrd %[x0], %[x1], [%[xp]], #8\n\t"
                     "ldrd %[w0], %[w1], [%[wp]], #8\n\t"
                     "smlad %[a0], %[x0], %[w0], %[a0]\n\t"
                     "smlad %[a1], %[x1], %[w1], %[a1]\n\t"
                     "ldrd %[x0], %[x1], [%[xp]], #8\n\t"
                     "ldrd %[w0], %[w1], [%[wp]], #8\n\t"
                     "smlad %[a2], %[x0], %[w0], %[a2]\n\t"
                     "smlad %[a3], %[x1], %[w1], %[a3]"
                     : [x0] "=&r"(x0), [x1] "=&r"(x1), [w0] "=&r"(w0), [w1] "=&r"(w1), [xp] "+r"(*x), [wp] "+r"(*w),
                       [a0] "+r"(*a0), [a1] "+r"(*a1), [a2] "+r"(*a2), [a3] "+r"(*a3)
                     :
                     : "memory");
}
static inline __attribute__((always_inline)) void kws_dw_odd(const kws_u32a **x, const kws_u32a **w, int32_t *a0,
                                                            int32_t *a1, int32_t *a2, int32_t *a3)
{
    uint32_t x0, x1, w0, w1;
    __asm__ volatile("ldrd %[x0], %[x1], [%[xp]], #8\n\t"
                     "ldrd %[w0], %[w1], [%[wp]], #8\n\t"
                     "smlabb %[a0], %[x0], %[w0], %[a0]\n\t"
                     "smlatt %[a2], %[x0], %[w0], %[a2]\n\t"
                     "smlabb %[a1], %[x1], %[w1], %[a1]\n\t"
                     "smlatt %[a3], %[x1], %[w1], %[a3]"
                     : [x0] "=&r"(x0), [x1] "=&r"(x1), [w0] "=&r"(w0), [w1] "=&r"(w1), [xp] "+r"(*x), [wp] "+r"(*w),
                       [a0] "+r"(*a0), [a1] "+r"(*a1), [a2] "+r"(*a2), [a3] "+r"(*a3)
                     :
                     : "memory");
}
/* One channel of kws_dwplane_dsp for a 3-row filter in requantization mode 2, the whole plane
 * in one block: per output column, groups of 4 vertically adjacent outputs (then a last group
 * of `rem` = oh % 4), each taking per filter column 1 LDRD of weights (E, O), 1 LDRD + 1 LDR of
 * row pairs and 8 SMLAxy, then 5 instructions per output (SMMLAR with the rounding term, ASR,
 * SSAT, STRB) plus a compare per bound that is not the int8 limit. col: the channel's plane,
 * word 0 of column 0; y: output (0, 0) of the channel; wp: kw (E, O) word pairs, then bias,
 * rounding term and the end of the plane (col + iw * colb). Needs (kw-1)*colb + 8 <= 1020. */
#define KWS_DWP3_ASM 1
static inline __attribute__((always_inline)) void kws_dwp3(const void *col, int8_t *y, const int32_t *wp, int32_t m,
                                                          int32_t sh, const int ng, const int rem, const int kw,
                                                          const int colb, const int rowb, const int ic, const int lo,
                                                          const int hi)
{
    const int8_t *cp = (const int8_t *)col, *end = cp + ng * 8;
    uint32_t a0, a1, a2, a3, e, o, d0, d1;
    __asm__ volatile(
        ".macro kws_addk%= r, v\n\t"          /* r += v for any |v| < 2^20 */
        ".if (\\v) > 0\n\t"
        ".if ((\\v) & 0xfff)\n\tadd \\r, \\r, #((\\v) & 0xfff)\n\t.endif\n\t"
        ".if ((\\v) & ~0xfff)\n\tadd \\r, \\r, #((\\v) & ~0xfff)\n\t.endif\n\t"
        ".elseif (\\v) < 0\n\t"
        ".if ((-(\\v)) & 0xfff)\n\tsub \\r, \\r, #((-(\\v)) & 0xfff)\n\t.endif\n\t"
        ".if ((-(\\v)) & ~0xfff)\n\tsub \\r, \\r, #((-(\\v)) & ~0xfff)\n\t.endif\n\t"
        ".endif\n\t"
        ".endm\n\t"
        ".macro kws_rq%= a, k\n\t"            /* requantize, clamp, store output row k */
        "sub %[d0], %[e], \\a, lsr #31\n\t"
        "smmlar \\a, \\a, %[m], %[d0]\n\t"
        "asr \\a, \\a, %[sh]\n\t"
        "ssat \\a, #8, \\a\n\t"
        ".if %c[lo] > -128\n\tcmp \\a, #%c[lo]\n\tit lt\n\tmovlt \\a, #%c[lo]\n\t.endif\n\t"
        ".if %c[hi] < 127\n\tcmp \\a, #%c[hi]\n\tit gt\n\tmovgt \\a, #%c[hi]\n\t.endif\n\t"
        ".if 3 * %c[rowb] <= 4095\n\t"
        "strb \\a, [%[y], #(\\k * %c[rowb])]\n\t"
        ".else\n\t"
        ".if \\k\n\tkws_addk%= %[y], %c[rowb]\n\t.endif\n\t"
        "strb \\a, [%[y]]\n\t"
        ".endif\n\t"
        ".endm\n\t"
        ".macro kws_grp%= n\n\t"              /* 4 outputs, the first n stored */
        "ldr %[a0], [%[wp], #(8 * %c[kw])]\n\t"
        ".if \\n >= 2\n\tmov %[a1], %[a0]\n\t.endif\n\t"
        ".if \\n >= 3\n\tmov %[a2], %[a0]\n\t.endif\n\t"
        ".if \\n >= 4\n\tmov %[a3], %[a0]\n\t.endif\n\t"
        ".set kws_kx%=, 0\n\t"
        ".rept %c[kw]\n\t"
        "ldrd %[e], %[o], [%[wp], #(8 * kws_kx%=)]\n\t"
        "ldrd %[d0], %[d1], [%[col], #(kws_kx%= * %c[colb])]\n\t"
        "smlad %[a0], %[d0], %[e], %[a0]\n\t"
        ".if \\n >= 2\n\tsmlatb %[a1], %[d0], %[e], %[a1]\n\t.endif\n\t"
        ".if \\n >= 3\n\tldr %[d0], [%[col], #(kws_kx%= * %c[colb] + 8)]\n\t.endif\n\t"
        "smlabt %[a0], %[d1], %[o], %[a0]\n\t"
        ".if \\n >= 2\n\tsmlad %[a1], %[d1], %[o], %[a1]\n\t.endif\n\t"
        ".if \\n >= 3\n\tsmlad %[a2], %[d1], %[e], %[a2]\n\t"
        "smlabt %[a2], %[d0], %[o], %[a2]\n\t.endif\n\t"
        ".if \\n >= 4\n\tsmlatb %[a3], %[d1], %[e], %[a3]\n\t"
        "smlad %[a3], %[d0], %[o], %[a3]\n\t.endif\n\t"
        ".set kws_kx%=, kws_kx%= + 1\n\t"
        ".endr\n\t"
        "ldr %[e], [%[wp], #(8 * %c[kw] + 4)]\n\t"
        "kws_rq%= %[a0], 0\n\t"
        ".if \\n >= 2\n\tkws_rq%= %[a1], 1\n\t.endif\n\t"
        ".if \\n >= 3\n\tkws_rq%= %[a2], 2\n\t.endif\n\t"
        ".if \\n >= 4\n\tkws_rq%= %[a3], 3\n\t.endif\n\t"
        ".if 3 * %c[rowb] > 4095\n\tkws_addk%= %[y], (5 - \\n) * %c[rowb]\n\t.endif\n\t" /* y: 4 rows on */
        ".if 3 * %c[rowb] <= 4095\n\tkws_addk%= %[y], 4 * %c[rowb]\n\t.endif\n\t"
        ".endm\n\t"
        "0:\n\t"
        ".if %c[ng]\n\t"
        "1:\n\t"
        "kws_grp%= 4\n\t"
        "add %[col], %[col], #8\n\t"
        "cmp %[col], %[end]\n\t"
        "bne 1b\n\t"
        ".endif\n\t"
        ".if %c[rem]\n\t"
        "kws_grp%= %c[rem]\n\t"
        ".endif\n\t"
        "kws_addk%= %[col], (%c[colb] - 8 * %c[ng])\n\t"
        "kws_addk%= %[end], %c[colb]\n\t"
        "kws_addk%= %[y], %c[ystep]\n\t"
        "ldr %[d0], [%[wp], #(8 * %c[kw] + 8)]\n\t"
        "cmp %[col], %[d0]\n\t"
        "bne 0b\n\t"
        ".purgem kws_addk%=\n\t"
        ".purgem kws_rq%=\n\t"
        ".purgem kws_grp%="
        : [col] "+r"(cp), [y] "+r"(y), [end] "+r"(end), [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2),
          [a3] "=&r"(a3), [e] "=&r"(e), [o] "=&r"(o), [d0] "=&r"(d0), [d1] "=&r"(d1)
        : [wp] "r"(wp), [m] "r"(m), [sh] "r"(sh), [ng] "i"(ng), [rem] "i"(rem), [kw] "i"(kw), [colb] "i"(colb),
          [rowb] "i"(rowb), [ystep] "i"(ic - 4 * rowb * (ng + (rem != 0))), [lo] "i"(lo), [hi] "i"(hi)
        : "cc", "memory");
}
/* The whole K loop of the DSP GEMM for 3 pixels x 2 output channels (kws_gemm3): per group of
 * 4 taps 1 LDRD of int8 weights (two channels), 4 SXTB16, 3 LDRD of activations (pixels a, b,
 * c at x, x + off, x + 2 off) and 12 SMLAD; `u` groups per loop iteration after `r` single
 * groups, the loop's end compared from memory (all 14 registers are in use). */
#define KWS_GEMM3_ASM 1
static inline __attribute__((always_inline)) void kws_gemm3_loop(const void *x, const void *w, const int off,
                                                                const int n, int32_t *acc)
{
    /* r single groups, then u a pass: 4, or 2 for n = 2 mod 4 (the code of two more groups costs more flash than
     * the loop's 3 instructions a pass save), but never 1 (K = 140: 3 + 8 x 4, not 35 x 1) */
    const int u = n % 4 == 2 ? 2 : 4, r = n % u;
    const void *end = (const int8_t *)x + 8 * n;
    int32_t a0 = acc[0], a1 = acc[1], b0 = acc[2], b1 = acc[3], c0 = acc[4], c1 = acc[5];
    uint32_t v0, v1, t0, t1, x0, x1;
    __asm__ volatile(
        ".macro kws_g3s%=\n\t"
        "ldrd %[v0], %[v1], [%[wp]], #8\n\t"
        "sxtb16 %[t0], %[v0]\n\t"
        "sxtb16 %[v0], %[v0], ror #8\n\t"
        "sxtb16 %[t1], %[v1]\n\t"
        "sxtb16 %[v1], %[v1], ror #8\n\t"
        "ldrd %[x0], %[x1], [%[xp], #%c[off]]\n\t"
        "smlad %[b0], %[x0], %[t0], %[b0]\n\t"
        "smlad %[b0], %[x1], %[v0], %[b0]\n\t"
        "smlad %[b1], %[x0], %[t1], %[b1]\n\t"
        "smlad %[b1], %[x1], %[v1], %[b1]\n\t"
        "ldrd %[x0], %[x1], [%[xp], #(2 * %c[off])]\n\t"
        "smlad %[c0], %[x0], %[t0], %[c0]\n\t"
        "smlad %[c0], %[x1], %[v0], %[c0]\n\t"
        "smlad %[c1], %[x0], %[t1], %[c1]\n\t"
        "smlad %[c1], %[x1], %[v1], %[c1]\n\t"
        "ldrd %[x0], %[x1], [%[xp]], #8\n\t"
        "smlad %[a0], %[x0], %[t0], %[a0]\n\t"
        "smlad %[a0], %[x1], %[v0], %[a0]\n\t"
        "smlad %[a1], %[x0], %[t1], %[a1]\n\t"
        "smlad %[a1], %[x1], %[v1], %[a1]\n\t"
        ".endm\n\t"
        ".rept %c[r]\n\tkws_g3s%=\n\t.endr\n\t"
        ".if %c[n] > %c[r]\n\t"
        "1:\n\t"
        ".rept %c[u]\n\tkws_g3s%=\n\t.endr\n\t"
        "ldr %[x0], %[end]\n\t"
        "cmp %[xp], %[x0]\n\t"
        "bne 1b\n\t"
        ".endif\n\t"
        ".purgem kws_g3s%="
        : [xp] "+r"(x), [wp] "+r"(w), [a0] "+r"(a0), [a1] "+r"(a1), [b0] "+r"(b0), [b1] "+r"(b1), [c0] "+r"(c0),
          [c1] "+r"(c1), [v0] "=&r"(v0), [v1] "=&r"(v1), [t0] "=&r"(t0), [t1] "=&r"(t1), [x0] "=&r"(x0),
          [x1] "=&r"(x1)
        : [end] "m"(end), [off] "i"(off), [n] "i"(n), [u] "i"(u), [r] "i"(r)
        : "cc", "memory");
    acc[0] = a0, acc[1] = a1, acc[2] = b0, acc[3] = b1, acc[4] = c0, acc[5] = c1;
}
/* Every output channel of three pixels (kws_conv3r_dsp), requantization mode 2: per pair of
 * channels the bias pair (if any), the K loop of kws_gemm3_loop, then, with the channel pair's
 * record `rec` (5 words: m0, rnd0, m1, rnd1, the two int8 shifts), the K loop of kws_gemm3_loop, then per output LSL, SMMLAR with the
 * rounding term, ASR, SSAT (and a compare per bound that is not the int8 limit), STRB into y
 * (pixel k at y + k*oc). Pointers that do not fit the 14 registers live in memory. */
#define KWS_GEMM3R_ASM 1
static inline __attribute__((always_inline)) void kws_gemm3r(const void *x, const void *w, const int32_t *bias,
                                                            const int32_t *rec, int8_t *y, const int k4, const int oc,
                                                            const int lo, const int hi)
{
    const void *xend = (const int8_t *)x + 2 * k4, *wend = (const int8_t *)w + oc * k4;
    const int32_t *rp = rec, *bp = bias;
    int8_t *yp = y;
    uint32_t a0, a1, b0, b1, c0, c1, v0, v1, t0, t1, x0, x1;
    __asm__ volatile(
        ".macro kws_g3s%=\n\t"
        "ldrd %[v0], %[v1], [%[wp]], #8\n\t"
        "sxtb16 %[t0], %[v0]\n\t"
        "sxtb16 %[v0], %[v0], ror #8\n\t"
        "sxtb16 %[t1], %[v1]\n\t"
        "sxtb16 %[v1], %[v1], ror #8\n\t"
        "ldrd %[x0], %[x1], [%[xp], #(2 * %c[k4])]\n\t"
        "smlad %[b0], %[x0], %[t0], %[b0]\n\t"
        "smlad %[b0], %[x1], %[v0], %[b0]\n\t"
        "smlad %[b1], %[x0], %[t1], %[b1]\n\t"
        "smlad %[b1], %[x1], %[v1], %[b1]\n\t"
        "ldrd %[x0], %[x1], [%[xp], #(4 * %c[k4])]\n\t"
        "smlad %[c0], %[x0], %[t0], %[c0]\n\t"
        "smlad %[c0], %[x1], %[v0], %[c0]\n\t"
        "smlad %[c1], %[x0], %[t1], %[c1]\n\t"
        "smlad %[c1], %[x1], %[v1], %[c1]\n\t"
        "ldrd %[x0], %[x1], [%[xp]], #8\n\t"
        "smlad %[a0], %[x0], %[t0], %[a0]\n\t"
        "smlad %[a0], %[x1], %[v0], %[a0]\n\t"
        "smlad %[a1], %[x0], %[t1], %[a1]\n\t"
        "smlad %[a1], %[x1], %[v1], %[a1]\n\t"
        ".endm\n\t"
        ".macro kws_g3q%= a, off\n\t"
        "sub %[t0], %[v1], \\a, lsr #31\n\t"
        "lsl \\a, \\a, #1\n\t"
        "smmlar \\a, \\a, %[v0], %[t0]\n\t"
        "asr \\a, \\a, %[t1]\n\t"
        "ssat \\a, #8, \\a\n\t"
        ".if %c[lo] > -128\n\tcmp \\a, #%c[lo]\n\tit lt\n\tmovlt \\a, #%c[lo]\n\t.endif\n\t"
        ".if %c[hi] < 127\n\tcmp \\a, #%c[hi]\n\tit gt\n\tmovgt \\a, #%c[hi]\n\t.endif\n\t"
        "strb \\a, [%[x0], #(\\off)]\n\t"
        ".endm\n\t"
        ".set kws_n%=, %c[k4] / 4\n\t"     /* groups of 4 taps, kws_u%= a pass after n % u single ones (as kws_gemm3_loop) */
        ".set kws_u%=, 4\n\t"           /* 2 for n = 2 mod 4 in a layer of few weights: less code */
        ".if kws_n%= %% 4 == 2\n\t.if %c[k4] * %c[oc] < %c[big]\n\t.set kws_u%=, 2\n\t.endif\n\t.endif\n\t"
        "2:\n\t"
        ".if %c[hb]\n\t"
        "ldr %[x1], %[bp]\n\t"
        "ldrd %[a0], %[a1], [%[x1]], #8\n\t"
        "str %[x1], %[bp]\n\t"
        "mov %[b0], %[a0]\n\tmov %[c0], %[a0]\n\tmov %[b1], %[a1]\n\tmov %[c1], %[a1]\n\t"
        ".else\n\t"
        "mov %[a0], #0\n\tmov %[b0], #0\n\tmov %[c0], #0\n\tmov %[a1], #0\n\tmov %[b1], #0\n\tmov %[c1], #0\n\t"
        ".endif\n\t"
        ".rept (kws_n%= %% kws_u%=)\n\tkws_g3s%=\n\t.endr\n\t"
        ".if kws_n%= >= kws_u%=\n\t"
        "1:\n\t"
        ".rept kws_u%=\n\tkws_g3s%=\n\t.endr\n\t"
        "ldr %[x0], %[xend]\n\t"
        "cmp %[xp], %[x0]\n\t"
        "bne 1b\n\t"
        ".endif\n\t"
        "sub %[xp], %[xp], #(2 * %c[k4])\n\t"
        "ldr %[x1], %[rp]\n\t"
        "ldr %[x0], %[yp]\n\t"
        "ldrd %[v0], %[v1], [%[x1]]\n\t"
        "ldrsb %[t1], [%[x1], #16]\n\t"
        "kws_g3q%= %[a0], 0\n\t"
        "kws_g3q%= %[b0], %c[oc]\n\t"
        "kws_g3q%= %[c0], (2 * %c[oc])\n\t"
        "ldrd %[v0], %[v1], [%[x1], #8]\n\t"
        "ldrsb %[t1], [%[x1], #17]\n\t"
        "kws_g3q%= %[a1], 1\n\t"
        "kws_g3q%= %[b1], (%c[oc] + 1)\n\t"
        "kws_g3q%= %[c1], (2 * %c[oc] + 1)\n\t"
        "add %[x0], %[x0], #2\n\t"
        "str %[x0], %[yp]\n\t"
        "add %[x1], %[x1], #20\n\t"
        "str %[x1], %[rp]\n\t"
        "ldr %[x0], %[wend]\n\t"
        "cmp %[wp], %[x0]\n\t"
        "bne 2b\n\t"
        ".purgem kws_g3s%=\n\t"
        ".purgem kws_g3q%="
        : [xp] "+r"(x), [wp] "+r"(w), [a0] "=&r"(a0), [a1] "=&r"(a1), [b0] "=&r"(b0), [b1] "=&r"(b1),
          [c0] "=&r"(c0), [c1] "=&r"(c1), [v0] "=&r"(v0), [v1] "=&r"(v1), [t0] "=&r"(t0), [t1] "=&r"(t1),
          [x0] "=&r"(x0), [x1] "=&r"(x1), [rp] "+m"(rp), [yp] "+m"(yp), [bp] "+m"(bp)
        : [xend] "m"(xend), [wend] "m"(wend), [k4] "i"(k4), [oc] "i"(oc), [big] "i"(KWS_UNROLL_MIN_WEIGHTS),
          [lo] "i"(lo), [hi] "i"(hi), [hb] "i"(bias != 0)
        : "cc", "memory");
}
/* One step of the DSP GEMM, 2 pixels x 2 output channels x 4 taps (kws_gemm): int8 weights
 * (two words, one per channel, taps t0..t3) widened with SXTB16, activations of pixel a at *x
 * and of pixel b `off` bytes further, int16 pairs (t0, t2), (t1, t3). x and w advance. */
#define KWS_GEMM_STEP_ASM 1
static inline __attribute__((always_inline)) void kws_gemm_step(const kws_u32a **x, const kws_u32a **w, int off,
                                                               int32_t *a0, int32_t *a1, int32_t *b0, int32_t *b1)
{
    uint32_t xa0, xa1, xb0, xb1, v0, v1, t;
    __asm__ volatile("ldrd %[v0], %[v1], [%[wp]], #8\n\t"
                     "ldrd %[xb0], %[xb1], [%[xp], %[off]]\n\t"
                     "ldrd %[xa0], %[xa1], [%[xp]], #8\n\t"
                     "sxtb16 %[t], %[v0]\n\t"
                     "sxtb16 %[v0], %[v0], ror #8\n\t"
                     "smlad %[a0], %[xa0], %[t], %[a0]\n\t"
                     "smlad %[b0], %[xb0], %[t], %[b0]\n\t"
                     "smlad %[a0], %[xa1], %[v0], %[a0]\n\t"
                     "smlad %[b0], %[xb1], %[v0], %[b0]\n\t"
                     "sxtb16 %[t], %[v1]\n\t"
                     "sxtb16 %[v1], %[v1], ror #8\n\t"
                     "smlad %[a1], %[xa0], %[t], %[a1]\n\t"
                     "smlad %[b1], %[xb0], %[t], %[b1]\n\t"
                     "smlad %[a1], %[xa1], %[v1], %[a1]\n\t"
                     "smlad %[b1], %[xb1], %[v1], %[b1]"
                     : [xa0] "=&r"(xa0), [xa1] "=&r"(xa1), [xb0] "=&r"(xb0), [xb1] "=&r"(xb1), [v0] "=&r"(v0),
                       [v1] "=&r"(v1), [t] "=&r"(t), [xp] "+r"(*x), [wp] "+r"(*w), [a0] "+r"(*a0), [a1] "+r"(*a1),
                       [b0] "+r"(*b0), [b1] "+r"(*b1)
                     : [off] "i"(off)
                     : "memory");
}
/* kws_gemm_step for one pixel (a fully connected layer over one row): 10 instructions per 8 MACs. */
static inline __attribute__((always_inline)) void kws_gemm1_step(const kws_u32a **x, const kws_u32a **w, int32_t *a0,
                                                                int32_t *a1)
{
    uint32_t xa0, xa1, v0, v1, t;
    __asm__ volatile("ldrd %[v0], %[v1], [%[wp]], #8\n\t"
                     "ldrd %[xa0], %[xa1], [%[xp]], #8\n\t"
                     "sxtb16 %[t], %[v0]\n\t"
                     "sxtb16 %[v0], %[v0], ror #8\n\t"
                     "smlad %[a0], %[xa0], %[t], %[a0]\n\t"
                     "smlad %[a0], %[xa1], %[v0], %[a0]\n\t"
                     "sxtb16 %[t], %[v1]\n\t"
                     "sxtb16 %[v1], %[v1], ror #8\n\t"
                     "smlad %[a1], %[xa0], %[t], %[a1]\n\t"
                     "smlad %[a1], %[xa1], %[v1], %[a1]"
                     : [xa0] "=&r"(xa0), [xa1] "=&r"(xa1), [v0] "=&r"(v0), [v1] "=&r"(v1), [t] "=&r"(t),
                       [xp] "+r"(*x), [wp] "+r"(*w), [a0] "+r"(*a0), [a1] "+r"(*a1)
                     :
                     : "memory");
}
/* The whole K loop of a one-row fully connected layer for 4 output channels (two channel pairs,
 * the second one's weights `off` bytes after the first's): per group of 4 taps 1 LDRD of
 * activations, 2 LDRD of int8 weights, 8 SXTB16 and 8 SMLAD (19 instructions per 16 MACs, where
 * kws_gemm1_step takes 20); n % 4 single groups, then 4 per loop iteration. (Six channels a pass
 * measured worse on DNN-S: 1.36 against 1.34 instructions/MAC, the requantization spilling.) */
#define KWS_FC4_ASM 1
static inline __attribute__((always_inline)) void kws_fc4_loop(const void *x, const void *w, const int off,
                                                              const int n, int32_t *acc0, int32_t *acc1,
                                                              int32_t *acc2, int32_t *acc3)
{
    const int r = n % 4;
    const void *end = (const int8_t *)x + 8 * n;
    int32_t a0 = *acc0, a1 = *acc1, a2 = *acc2, a3 = *acc3;
    uint32_t v0, v1, t, x0, x1;
    __asm__ volatile(
        ".macro kws_f4s%=\n\t"
        "ldrd %[x0], %[x1], [%[xp]], #8\n\t"
        "ldrd %[v0], %[v1], [%[wp], #%c[off]]\n\t"
        "sxtb16 %[t], %[v0]\n\t"
        "sxtb16 %[v0], %[v0], ror #8\n\t"
        "smlad %[a2], %[x0], %[t], %[a2]\n\t"
        "smlad %[a2], %[x1], %[v0], %[a2]\n\t"
        "sxtb16 %[t], %[v1]\n\t"
        "sxtb16 %[v1], %[v1], ror #8\n\t"
        "smlad %[a3], %[x0], %[t], %[a3]\n\t"
        "smlad %[a3], %[x1], %[v1], %[a3]\n\t"
        "ldrd %[v0], %[v1], [%[wp]], #8\n\t"
        "sxtb16 %[t], %[v0]\n\t"
        "sxtb16 %[v0], %[v0], ror #8\n\t"
        "smlad %[a0], %[x0], %[t], %[a0]\n\t"
        "smlad %[a0], %[x1], %[v0], %[a0]\n\t"
        "sxtb16 %[t], %[v1]\n\t"
        "sxtb16 %[v1], %[v1], ror #8\n\t"
        "smlad %[a1], %[x0], %[t], %[a1]\n\t"
        "smlad %[a1], %[x1], %[v1], %[a1]\n\t"
        ".endm\n\t"
        ".rept %c[r]\n\tkws_f4s%=\n\t.endr\n\t"
        ".if %c[n] > %c[r]\n\t"
        "1:\n\t"
        ".rept 4\n\tkws_f4s%=\n\t.endr\n\t"
        "cmp %[xp], %[end]\n\t"
        "bne 1b\n\t"
        ".endif\n\t"
        ".purgem kws_f4s%="
        : [xp] "+r"(x), [wp] "+r"(w), [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [v0] "=&r"(v0),
          [v1] "=&r"(v1), [t] "=&r"(t), [x0] "=&r"(x0), [x1] "=&r"(x1)
        : [end] "r"(end), [off] "i"(off), [n] "i"(n), [r] "i"(r)
        : "cc", "memory");
    *acc0 = a0, *acc1 = a1, *acc2 = a2, *acc3 = a3;
}
/* Two words from a word-aligned address with one LDRD. */
static inline __attribute__((always_inline)) void kws_ld2(const void *p, uint32_t *lo, uint32_t *hi)
{
    __asm__("ldrd %0, %1, [%2]" : "=r"(*lo), "=r"(*hi) : "r"(p), "m"(*(const kws_u32a(*)[2])p));
}
/* Two words from a word-aligned address with one LDRD, then p += 2 words. */
static inline __attribute__((always_inline)) void kws_ld2_inc(const kws_u32a **p, uint32_t *lo, uint32_t *hi)
{
    const kws_u32a *q = *p;
    __asm__("ldrd %0, %1, [%2], #8" : "=r"(*lo), "=r"(*hi), "+r"(q) : "m"(*(const kws_u32a(*)[2])q));
    *p = q;
}

#else /* portable C */

static inline int32_t kws_lo16(uint32_t x) { return (int16_t)(uint16_t)x; }
static inline int32_t kws_hi16(uint32_t x) { return (int16_t)(uint16_t)(x >> 16); }
static inline uint32_t kws_pack16(int32_t lo, int32_t hi) { return (uint16_t)lo | (uint32_t)(uint16_t)hi << 16; }

static inline uint32_t __sxtb16(uint32_t x) { return kws_pack16((int8_t)x, (int8_t)(x >> 16)); }
static inline uint32_t __sxtab16(uint32_t a, uint32_t x)
{
    return kws_pack16(kws_lo16(a) + (int8_t)x, kws_hi16(a) + (int8_t)(x >> 16));
}
static inline int32_t __smlad(uint32_t x, uint32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(kws_lo16(x) * kws_lo16(y)) + (uint32_t)(kws_hi16(x) * kws_hi16(y)));
}
static inline int32_t __smlabb(uint32_t x, uint32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(kws_lo16(x) * kws_lo16(y)));
}
static inline int32_t __smlatt(uint32_t x, uint32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(kws_hi16(x) * kws_hi16(y)));
}
static inline int32_t __smlabt(uint32_t x, uint32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(kws_lo16(x) * kws_hi16(y)));
}
static inline int32_t __smlatb(uint32_t x, uint32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(kws_hi16(x) * kws_lo16(y)));
}
static inline uint32_t __sadd16(uint32_t x, uint32_t y) { return kws_pack16(kws_lo16(x) + kws_lo16(y), kws_hi16(x) + kws_hi16(y)); }
static inline uint32_t kws_ror8(uint32_t x) { return (x >> 8) | (x << 24); } /* no __ror in GCC 12's arm_acle.h */
static inline uint32_t kws_sxtb16_ror8(uint32_t x) { return __sxtb16(kws_ror8(x)); }
static inline uint32_t kws_sxtab16_ror8(uint32_t a, uint32_t x) { return __sxtab16(a, kws_ror8(x)); }
static inline uint32_t kws_pkhbt(uint32_t a, uint32_t b) { return (a & 0xFFFFu) | (b << 16); }
static inline uint32_t kws_pkhtb(uint32_t a, uint32_t b) { return (b & 0xFFFF0000u) | (a >> 16); }
static inline int32_t kws_smmulr(int32_t a, int32_t b) { return (int32_t)(((int64_t)a * b + 0x80000000LL) >> 32); }
static inline int32_t kws_smmlar(int32_t a, int32_t b, int32_t c)
{
    return (int32_t)(((int64_t)a * b + (int64_t)c * 4294967296LL + 0x80000000LL) >> 32);
}
static inline void kws_dw_pair(const kws_u32a **x, const kws_u32a **w, int32_t *a0, int32_t *a1, int32_t *a2,
                               int32_t *a3)
{
    const kws_u32a *xp = *x, *wp = *w;
    *a0 = __smlad(xp[0], wp[0], *a0);
    *a1 = __smlad(xp[1], wp[1], *a1);
    *a2 = __smlad(xp[2], wp[2], *a2);
    *a3 = __smlad(xp[3], wp[3], *a3);
    *x = xp + 4;
    *w = wp + 4;
}
static inline void kws_dw_odd(const kws_u32a **x, const kws_u32a **w, int32_t *a0, int32_t *a1, int32_t *a2,
                              int32_t *a3)
{
    const kws_u32a *xp = *x, *wp = *w;
    *a0 = __smlabb(xp[0], wp[0], *a0);
    *a2 = __smlatt(xp[0], wp[0], *a2);
    *a1 = __smlabb(xp[1], wp[1], *a1);
    *a3 = __smlatt(xp[1], wp[1], *a3);
    *x = xp + 2;
    *w = wp + 2;
}
static inline void kws_gemm3_loop(const void *x, const void *w, const int off, const int n, int32_t *acc)
{
    const kws_u32a *xp = (const kws_u32a *)x, *wp = (const kws_u32a *)w;
    for (int g = 0; g < n; g++, xp += 2, wp += 2) {
        const kws_u32a *xb = (const kws_u32a *)((const int8_t *)xp + off), *xc = (const kws_u32a *)((const int8_t *)xp + 2 * off);
        const uint32_t w0 = wp[0], w1 = wp[1];
        const uint32_t t0 = __sxtb16(w0), u0 = kws_sxtb16_ror8(w0), t1 = __sxtb16(w1), u1 = kws_sxtb16_ror8(w1);
        acc[0] = __smlad(xp[1], u0, __smlad(xp[0], t0, acc[0]));
        acc[1] = __smlad(xp[1], u1, __smlad(xp[0], t1, acc[1]));
        acc[2] = __smlad(xb[1], u0, __smlad(xb[0], t0, acc[2]));
        acc[3] = __smlad(xb[1], u1, __smlad(xb[0], t1, acc[3]));
        acc[4] = __smlad(xc[1], u0, __smlad(xc[0], t0, acc[4]));
        acc[5] = __smlad(xc[1], u1, __smlad(xc[0], t1, acc[5]));
    }
}
static inline void kws_gemm_step(const kws_u32a **x, const kws_u32a **w, int off, int32_t *a0, int32_t *a1,
                                 int32_t *b0, int32_t *b1)
{
    const kws_u32a *xa = *x, *xb = (const kws_u32a *)((const int8_t *)xa + off), *wp = *w;
    const uint32_t w0 = wp[0], w1 = wp[1];
    *a0 = __smlad(xa[1], kws_sxtb16_ror8(w0), __smlad(xa[0], __sxtb16(w0), *a0));
    *b0 = __smlad(xb[1], kws_sxtb16_ror8(w0), __smlad(xb[0], __sxtb16(w0), *b0));
    *a1 = __smlad(xa[1], kws_sxtb16_ror8(w1), __smlad(xa[0], __sxtb16(w1), *a1));
    *b1 = __smlad(xb[1], kws_sxtb16_ror8(w1), __smlad(xb[0], __sxtb16(w1), *b1));
    *x = xa + 2;
    *w = wp + 2;
}
static inline void kws_gemm1_step(const kws_u32a **x, const kws_u32a **w, int32_t *a0, int32_t *a1)
{
    const kws_u32a *xa = *x, *wp = *w;
    const uint32_t w0 = wp[0], w1 = wp[1];
    *a0 = __smlad(xa[1], kws_sxtb16_ror8(w0), __smlad(xa[0], __sxtb16(w0), *a0));
    *a1 = __smlad(xa[1], kws_sxtb16_ror8(w1), __smlad(xa[0], __sxtb16(w1), *a1));
    *x = xa + 2;
    *w = wp + 2;
}
static inline void kws_fc4_loop(const void *x, const void *w, const int off, const int n, int32_t *acc0,
                                int32_t *acc1, int32_t *acc2, int32_t *acc3)
{
    const kws_u32a *xp = (const kws_u32a *)x, *wp = (const kws_u32a *)w;
    const kws_u32a *wq = (const kws_u32a *)((const int8_t *)w + off);
    for (int g = 0; g < n; g++, xp += 2, wp += 2, wq += 2) {
        *acc0 = __smlad(xp[1], kws_sxtb16_ror8(wp[0]), __smlad(xp[0], __sxtb16(wp[0]), *acc0));
        *acc1 = __smlad(xp[1], kws_sxtb16_ror8(wp[1]), __smlad(xp[0], __sxtb16(wp[1]), *acc1));
        *acc2 = __smlad(xp[1], kws_sxtb16_ror8(wq[0]), __smlad(xp[0], __sxtb16(wq[0]), *acc2));
        *acc3 = __smlad(xp[1], kws_sxtb16_ror8(wq[1]), __smlad(xp[0], __sxtb16(wq[1]), *acc3));
    }
}
static inline void kws_ld2(const void *p, uint32_t *lo, uint32_t *hi)
{
    *lo = ((const kws_u32a *)p)[0];
    *hi = ((const kws_u32a *)p)[1];
}
static inline void kws_ld2_inc(const kws_u32a **p, uint32_t *lo, uint32_t *hi)
{
    *lo = (*p)[0];
    *hi = (*p)[1];
    *p += 2;
}

#endif
#endif
