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
