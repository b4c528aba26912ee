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
static inline uint32_t kws_ror8(uint32_t x) { return (x >> 8) | (x << 24); } /* no __ror in GCC 12's arm_acle.h */
static inline uint32_t kws_sxtb16_ror8(uint32_t x) { return __sxtb16(kws_ror8(x)); }
static inline uint32_t kws_sxtab16_ror8(uint32_t a, uint32_t x) { return __sxtab16(a, kws_ror8(x)); }
static inline uint32_t kws_pkhbt(uint32_t a, uint32_t b) { return (a & 0xFFFFu) | (b << 16); }
static inline uint32_t kws_pkhtb(uint32_t a, uint32_t b) { return (b & 0xFFFF0000u) | (a >> 16); }
static inline int32_t kws_smmulr(int32_t a, int32_t b) { return (int32_t)(((int64_t)a * b + 0x80000000LL) >> 32); }
static inline void kws_ld2_inc(const kws_u32a **p, uint32_t *lo, uint32_t *hi)
{
    *lo = (*p)[0];
    *hi = (*p)[1];
    *p += 2;
}

#endif
#endif
