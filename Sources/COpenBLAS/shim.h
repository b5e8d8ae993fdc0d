// Shim for OpenBLAS's CBLAS interface. Deliberately not guarded by `CBLAS_H`: OpenBLAS's own
// cblas.h uses that guard, and reusing it here would make the module come out empty.
#ifndef PRUNEGYM_COPENBLAS_SHIM_H
#define PRUNEGYM_COPENBLAS_SHIM_H
#include <cblas.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

/// Sets flush-to-zero and denormals-are-zero for the calling thread's SSE/AVX arithmetic (no-op
/// elsewhere): subnormal operands, which sharp softmaxes produce in attention's products, cost
/// x86 cores about a hundred cycles each.
static inline void prunegym_flush_subnormals(void) {
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr(_mm_getcsr() | 0x8040);
#endif
}

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

/// How much of x86-64's vector instruction sets the CPU and the operating system support, as the
/// level of OpenBLAS kernels that can use it: 0 SSE only, 1 AVX (Sandybridge), 2 AVX2 and FMA
/// (Haswell), 3 AVX-512 F/CD/BW/DQ/VL (SkylakeX), 4 those and AVX512_BF16 (Cooperlake). `cpuid`
/// and `xgetbv` directly (registers saved on context switches): no runtime library needed.
static inline int prunegym_vector_level(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & (1u << 27)) || !(c & (1u << 28))) return 0;  // OSXSAVE, AVX
    const int fma = (c & (1u << 12)) != 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6) return 0;  // XMM and YMM state enabled
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 1;
    if (!fma || !(b & (1u << 5))) return 1;  // AVX2
    const unsigned skylakex = (1u << 16) | (1u << 17) | (1u << 28) | (1u << 30) | (1u << 31);  // F DQ CD BW VL
    if ((b & skylakex) != skylakex || (lo & 0xE0) != 0xE0) return 2;  // and opmask/ZMM state enabled
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return 3;
    return (a & (1u << 5)) ? 4 : 3;  // AVX512_BF16
}

/// The lanes 0..<tail of a vector as an all-ones mask (for the masked loads of a row's tail).
__attribute__((target("avx2,fma")))
static inline __m256i prunegym_tail_mask(long tail) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)tail), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// e^x for x already clamped to [−87.33654, 88] (or NaN, which it propagates): the Cephes
/// polynomial, range reduction and 2^n bit trick of FastMath.exp, eight lanes at a time (fused
/// multiply-adds, so results can differ from the scalar form in the last bit).
__attribute__((target("avx2,fma")))
static inline __m256 prunegym_exp8_clamped(__m256 x) {
    const __m256 shifted = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(12582912.0f));
    const __m256 n = _mm256_sub_ps(shifted, _mm256_set1_ps(12582912.0f));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    const __m256 er = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i bits = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_sub_epi32(_mm256_castps_si256(shifted), _mm256_set1_epi32(0x4B400000)), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(er, _mm256_castsi256_ps(bits));
}

/// Eight lanes of FastMath.exp: 0 below −87.33654, ∞ above 88.72283, NaN for NaN.
__attribute__((target("avx2,fma")))
static inline __m256 prunegym_exp8(__m256 value) {
    const __m256 x = _mm256_min_ps(_mm256_max_ps(value, _mm256_set1_ps(-87.33654f)), _mm256_set1_ps(88.0f));
    __m256 result = prunegym_exp8_clamped(x);
    result = _mm256_blendv_ps(result, _mm256_setzero_ps(), _mm256_cmp_ps(value, _mm256_set1_ps(-87.33654f), _CMP_LT_OQ));
    result = _mm256_blendv_ps(result, _mm256_set1_ps(__builtin_inff()), _mm256_cmp_ps(value, _mm256_set1_ps(88.72283f), _CMP_GT_OQ));
    return _mm256_blendv_ps(result, value, _mm256_cmp_ps(value, value, _CMP_UNORD_Q));
}

/// `prunegym_exp8` for the arguments a softmax passes (x − max ≤ 0, −∞ or NaN), without the
/// overflow and NaN blends: bit for bit the same values there (e^x below −87.33654, −∞ included,
/// is 0; NaN stays NaN — `max(lo, x)` returns its second operand for NaN, and the polynomial
/// propagates it) in five fewer instructions per eight lanes.
__attribute__((target("avx2,fma")))
static inline __m256 prunegym_exp8_nonpositive(__m256 value) {
    const __m256 lo = _mm256_set1_ps(-87.33654f);
    return _mm256_andnot_ps(_mm256_cmp_ps(value, lo, _CMP_LT_OQ), prunegym_exp8_clamped(_mm256_max_ps(lo, value)));
}

/// y = e^x over `count` elements by `prunegym_exp8` (`nonpositive` 0) or
/// `prunegym_exp8_nonpositive` (1), the tail through masked loads; for the tests that hold the
/// two to the same bits.
__attribute__((target("avx2,fma")))
static inline void prunegym_exp_avx2(const float *x, float *y, long count, int nonpositive) {
    for (long j = 0; j < count; j += 8) {
        const __m256i mask = prunegym_tail_mask(count - j < 8 ? count - j : 8);
        const __m256 v = _mm256_maskload_ps(x + j, mask);
        _mm256_maskstore_ps(y + j, mask, nonpositive ? prunegym_exp8_nonpositive(v) : prunegym_exp8(v));
    }
}

/// In-place softmax of `row[0..<count]` eight lanes at a time (AVX2 + FMA; call only when
/// `prunegym_vector_level() >= 2`); a row of all -inf becomes zeros. The tail goes through masked
/// loads, so every element takes the same vector path.
__attribute__((target("avx2,fma")))
static inline void prunegym_softmax_avx2(float *row, long count) {
    const long full = count & ~7L, tail = count - full;
    const __m256i tailMask = prunegym_tail_mask(tail);
    const __m256 negInf = _mm256_set1_ps(-__builtin_inff());
    __m256 m = negInf;
    for (long j = 0; j < full; j += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(row + j));
    if (tail) m = _mm256_max_ps(m, _mm256_blendv_ps(negInf, _mm256_maskload_ps(row + full, tailMask), _mm256_castsi256_ps(tailMask)));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
    const float maximum = _mm_cvtss_f32(m4);
    if (maximum == -__builtin_inff()) {
        for (long j = 0; j < count; j++) row[j] = 0;
        return;
    }
    const __m256 mx = _mm256_set1_ps(maximum);
    __m256 sum = _mm256_setzero_ps();
    for (long j = 0; j < full; j += 8) {
        const __m256 e = prunegym_exp8_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(row + j), mx));
        _mm256_storeu_ps(row + j, e);
        sum = _mm256_add_ps(sum, e);
    }
    if (tail) {
        const __m256 e = _mm256_and_ps(prunegym_exp8_nonpositive(_mm256_sub_ps(_mm256_maskload_ps(row + full, tailMask), mx)), _mm256_castsi256_ps(tailMask));
        _mm256_maskstore_ps(row + full, tailMask, e);
        sum = _mm256_add_ps(sum, e);
    }
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
    s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    s4 = _mm_add_ss(s4, _mm_shuffle_ps(s4, s4, 1));
    const __m256 scale = _mm256_set1_ps(1.0f / _mm_cvtss_f32(s4));
    for (long j = 0; j < full; j += 8) _mm256_storeu_ps(row + j, _mm256_mul_ps(_mm256_loadu_ps(row + j), scale));
    if (tail) _mm256_maskstore_ps(row + full, tailMask, _mm256_mul_ps(_mm256_maskload_ps(row + full, tailMask), scale));
}

/// y = x·σ(a·x) = x / (1 + e^(−a·x)) eight lanes at a time (quick_gelu with a = 1.702, SiLU with
/// a = 1); the tail through masked loads. Call only when `prunegym_vector_level() >= 2`.
__attribute__((target("avx2,fma")))
static inline void prunegym_sigmoid_gated_avx2(const float *x, float *y, long count, float a) {
    const long full = count & ~7L, tail = count - full;
    const __m256 minusA = _mm256_set1_ps(-a), one = _mm256_set1_ps(1.0f);
    for (long j = 0; j < full; j += 8) {
        const __m256 v = _mm256_loadu_ps(x + j);
        _mm256_storeu_ps(y + j, _mm256_div_ps(v, _mm256_add_ps(one, prunegym_exp8(_mm256_mul_ps(minusA, v)))));
    }
    if (tail) {
        const __m256i mask = prunegym_tail_mask(tail);
        const __m256 v = _mm256_maskload_ps(x + full, mask);
        _mm256_maskstore_ps(y + full, mask, _mm256_div_ps(v, _mm256_add_ps(one, prunegym_exp8(_mm256_mul_ps(minusA, v)))));
    }
}

/// GELU in the erf form, y = x·Φ(x), eight lanes at a time: Φ from erfc by Abramowitz & Stegun
/// 7.1.26, as `FastMath4.erfcNonNegativeShort`. Writes Φ(x) to `cdf` too unless it is NULL (the
/// backward pass reads it). Call only when `prunegym_vector_level() >= 2`.
__attribute__((target("avx2,fma")))
static inline __m256 prunegym_gelu_cdf8(__m256 v) {
    const __m256 z = _mm256_mul_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), v), _mm256_set1_ps(0.70710678118654752f));
    const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), z, _mm256_set1_ps(1.0f)));
    __m256 poly = _mm256_set1_ps(1.061405429f);
    poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(-1.453152027f));
    poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(1.421413741f));
    poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(-0.284496736f));
    poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(0.254829592f));
    const __m256 erfc = _mm256_mul_ps(_mm256_mul_ps(poly, t), prunegym_exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(z, z))));
    const __m256 half = _mm256_mul_ps(_mm256_set1_ps(0.5f), erfc);
    return _mm256_blendv_ps(half, _mm256_sub_ps(_mm256_set1_ps(1.0f), half), _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ));
}

__attribute__((target("avx2,fma")))
static inline void prunegym_gelu_erf_avx2(const float *x, float *y, float *cdf, long count) {
    const long full = count & ~7L, tail = count - full;
    for (long j = 0; j < full; j += 8) {
        const __m256 v = _mm256_loadu_ps(x + j);
        const __m256 c = prunegym_gelu_cdf8(v);
        _mm256_storeu_ps(y + j, _mm256_mul_ps(v, c));
        if (cdf) _mm256_storeu_ps(cdf + j, c);
    }
    if (tail) {
        const __m256i mask = prunegym_tail_mask(tail);
        const __m256 v = _mm256_maskload_ps(x + full, mask);
        const __m256 c = prunegym_gelu_cdf8(v);
        _mm256_maskstore_ps(y + full, mask, _mm256_mul_ps(v, c));
        if (cdf) _mm256_maskstore_ps(cdf + full, mask, c);
    }
}
#else
static inline int prunegym_vector_level(void) { return 0; }
static inline void prunegym_gelu_erf_avx2(const float *x, float *y, float *cdf, long count) { (void)x; (void)y; (void)cdf; (void)count; }
static inline void prunegym_softmax_avx2(float *row, long count) { (void)row; (void)count; }
static inline void prunegym_exp_avx2(const float *x, float *y, long count, int nonpositive) { (void)x; (void)y; (void)count; (void)nonpositive; }
static inline void prunegym_sigmoid_gated_avx2(const float *x, float *y, long count, float a) { (void)x; (void)y; (void)count; (void)a; }
#endif
#endif
