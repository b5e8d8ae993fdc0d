// Shim for OpenBLAS's CBLAS interface. Deliberately not guarded by `CBLAS_H`: OpenBLAS's own
// cblas.h uses that guard, and reusing it here would make the module come out empty.
// The kernels below are `static inline`: they are compiled into the Swift modules that call them,
// and SwiftPM does not rebuild those when only this header changes. After editing a kernel's
// body, touch a Swift file of `TensorCore` (or build from clean), or the tests run the old one.
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
    // 2^n's exponent field is n + 127, i.e. shifted's bits − 0x4B400000 + 127, one wrapping add.
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_castps_si256(shifted), _mm256_set1_epi32(127 - 0x4B400000)), 23);
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

/// In-place softmax of `rows` rows (1 or 4, a constant at each call) `ld` floats apart, each
/// `count` long, eight lanes at a time (AVX2 + FMA; call only when `prunegym_vector_level() >= 2`).
/// Each row runs the same instructions in the same order whatever `rows` is, so its bits do not
/// depend on it; with four rows their chains of maxima and sums interleave, so the adds' latency
/// no longer bounds a row. A row of all −∞ becomes zeros (a group of four holding one goes through
/// the one-row form). The tail goes through masked loads, so every element takes the same vector
/// path.
static inline void prunegym_softmax_avx2(float *row, long count);
__attribute__((target("avx2,fma"), always_inline))
static inline void prunegym_softmax_rows_avx2(float *row, long ld, long count, const int rows) {
    const long full = count & ~7L, tail = count - full;
    const __m256i tailMask = prunegym_tail_mask(tail);
    const __m256 negInf = _mm256_set1_ps(-__builtin_inff());
    __m256 m8[4];
#pragma clang loop unroll(full)
    for (int r = 0; r < rows; r++) m8[r] = negInf;
    for (long j = 0; j < full; j += 8) {
#pragma clang loop unroll(full)
        for (int r = 0; r < rows; r++) m8[r] = _mm256_max_ps(m8[r], _mm256_loadu_ps(row + r * ld + j));
    }
    if (tail) {
#pragma clang loop unroll(full)
        for (int r = 0; r < rows; r++)
            m8[r] = _mm256_max_ps(m8[r], _mm256_blendv_ps(negInf, _mm256_maskload_ps(row + r * ld + full, tailMask), _mm256_castsi256_ps(tailMask)));
    }
    __m256 mx[4];
#pragma clang loop unroll(full)
    for (int r = 0; r < rows; r++) {
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m8[r]), _mm256_extractf128_ps(m8[r], 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
        const float maximum = _mm_cvtss_f32(m4);
        if (maximum == -__builtin_inff()) {
            if (rows == 1) {
                for (long j = 0; j < count; j++) row[j] = 0;
            } else {
                for (int k = 0; k < rows; k++) prunegym_softmax_avx2(row + k * ld, count);
            }
            return;
        }
        mx[r] = _mm256_set1_ps(maximum);
    }
    __m256 sum[4];
#pragma clang loop unroll(full)
    for (int r = 0; r < rows; r++) sum[r] = _mm256_setzero_ps();
    for (long j = 0; j < full; j += 8) {
#pragma clang loop unroll(full)
        for (int r = 0; r < rows; r++) {
            const __m256 e = prunegym_exp8_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(row + r * ld + j), mx[r]));
            _mm256_storeu_ps(row + r * ld + j, e);
            sum[r] = _mm256_add_ps(sum[r], e);
        }
    }
    if (tail) {
#pragma clang loop unroll(full)
        for (int r = 0; r < rows; r++) {
            const __m256 e = _mm256_and_ps(prunegym_exp8_nonpositive(_mm256_sub_ps(_mm256_maskload_ps(row + r * ld + full, tailMask), mx[r])),
                                           _mm256_castsi256_ps(tailMask));
            _mm256_maskstore_ps(row + r * ld + full, tailMask, e);
            sum[r] = _mm256_add_ps(sum[r], e);
        }
    }
    __m256 scale[4];
#pragma clang loop unroll(full)
    for (int r = 0; r < rows; r++) {
        __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(sum[r]), _mm256_extractf128_ps(sum[r], 1));
        s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        s4 = _mm_add_ss(s4, _mm_shuffle_ps(s4, s4, 1));
        scale[r] = _mm256_set1_ps(1.0f / _mm_cvtss_f32(s4));
    }
    for (long j = 0; j < full; j += 8) {
#pragma clang loop unroll(full)
        for (int r = 0; r < rows; r++) _mm256_storeu_ps(row + r * ld + j, _mm256_mul_ps(_mm256_loadu_ps(row + r * ld + j), scale[r]));
    }
    if (tail) {
#pragma clang loop unroll(full)
        for (int r = 0; r < rows; r++) _mm256_maskstore_ps(row + r * ld + full, tailMask, _mm256_mul_ps(_mm256_maskload_ps(row + r * ld + full, tailMask), scale[r]));
    }
}

/// In-place softmax of `row[0..<count]` eight lanes at a time (`prunegym_softmax_rows_avx2`).
__attribute__((target("avx2,fma")))
static inline void prunegym_softmax_avx2(float *row, long count) { prunegym_softmax_rows_avx2(row, 0, count, 1); }

/// `prunegym_softmax_avx2` on the four rows `row`, `row + ld`, `row + 2·ld`, `row + 3·ld` at once,
/// to its bits (`prunegym_softmax_rows_avx2`).
__attribute__((target("avx2,fma")))
static inline void prunegym_softmax4_avx2(float *row, long ld, long count) { prunegym_softmax_rows_avx2(row, ld, count, 4); }

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

/// The backward of x·σ(a·x), eight lanes at a time: dx = dy·(s + a·x·s·(1 − s)), s = 1 / (1 +
/// e^(−a·x)), with e^x computed as `FastMath4.exp` computes it — a multiply and an add where
/// `prunegym_exp8` fuses them, and ∞ above 88 — so that every lane has the bits of the Swift
/// four-lane backward it replaces (`Tensor.sigmoidGated`'s pullback). `count` must be a multiple of
/// 4 (the Swift path takes the last count % 4). Call only when `prunegym_vector_level() >= 2`.
__attribute__((target("avx2,fma")))
static inline __m256 prunegym_exp8_unfused(__m256 value) {
    const __m256 shifted = _mm256_add_ps(_mm256_mul_ps(value, _mm256_set1_ps(1.44269504088896341f)), _mm256_set1_ps(12582912.0f));
    const __m256 n = _mm256_sub_ps(shifted, _mm256_set1_ps(12582912.0f));
    const __m256 r = _mm256_add_ps(_mm256_sub_ps(value, _mm256_mul_ps(n, _mm256_set1_ps(0.693359375f))), _mm256_mul_ps(n, _mm256_set1_ps(2.12194440e-4f)));
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(5.0000001201e-1f));
    const __m256 er = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(p, r), r), r), _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_castps_si256(shifted), _mm256_set1_epi32(127 - 0x4B400000)), 23);
    __m256 result = _mm256_mul_ps(er, _mm256_castsi256_ps(bits));
    result = _mm256_blendv_ps(result, _mm256_setzero_ps(), _mm256_cmp_ps(value, _mm256_set1_ps(-87.33654f), _CMP_LT_OQ));
    result = _mm256_blendv_ps(result, _mm256_set1_ps(__builtin_inff()), _mm256_cmp_ps(value, _mm256_set1_ps(88.0f), _CMP_GT_OQ));
    return _mm256_blendv_ps(result, value, _mm256_cmp_ps(value, value, _CMP_UNORD_Q));
}

__attribute__((target("avx2,fma")))
static inline __m256 prunegym_sigmoid_gated_backward8(__m256 v, __m256 dy, float a) {
    const __m256 one = _mm256_set1_ps(1.0f), scale = _mm256_set1_ps(a);
    const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, prunegym_exp8_unfused(_mm256_mul_ps(_mm256_set1_ps(-a), v))));
    const __m256 term = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(scale, v), s), _mm256_sub_ps(one, s));
    return _mm256_mul_ps(dy, _mm256_add_ps(s, term));
}

__attribute__((target("avx2,fma")))
static inline void prunegym_sigmoid_gated_backward_avx2(const float *x, const float *dy, float *dx, long count, float a) {
    const long full = count & ~7L, tail = count - full;
    for (long j = 0; j < full; j += 8) {
        _mm256_storeu_ps(dx + j, prunegym_sigmoid_gated_backward8(_mm256_loadu_ps(x + j), _mm256_loadu_ps(dy + j), a));
    }
    if (tail) {
        const __m256i mask = prunegym_tail_mask(tail);
        _mm256_maskstore_ps(dx + full, mask, prunegym_sigmoid_gated_backward8(_mm256_maskload_ps(x + full, mask), _mm256_maskload_ps(dy + full, mask), a));
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

// Sixteen-lane forms of the softmax, x·σ(a·x) and GELU for CPUs with AVX-512 (level ≥ 3). Each
// lane runs the eight-lane kernels' instructions (the same fused multiply-adds), and the softmax
// adds each 16-wide block's exponentials to its eight-lane sum low half first, then high half —
// the order of the eight-lane kernel — so both give the eight-lane kernels' bits on every input.

/// `prunegym_exp8_clamped` sixteen lanes at a time, lanes outside `keep` zero. The last step
/// scales by 2^n with `vscalefps` (one rounding of er·2^n, as the eight-lane kernel's multiply by
/// 2^n's bits: n is an integer in [−126, 127] here, so 2^n is a normal float) where the eight-lane
/// kernel builds 2^n's bits in three integer instructions and multiplies. The same bits on all
/// 2^32 inputs of `prunegym_exp16` and of `prunegym_exp16_nonpositive`'s domain, with and without
/// flush-to-zero (`tools/exp_lanes_exhaustive.c` checks it; the tests keep a sample).
__attribute__((target("avx512f,avx512dq,avx2,fma")))
static inline __m512 prunegym_exp16_clamped(__m512 x, __mmask16 keep) {
    const __m512 shifted = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(12582912.0f));
    const __m512 n = _mm512_sub_ps(shifted, _mm512_set1_ps(12582912.0f));
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    const __m512 er = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_scalef_ps(keep, er, n);
}

/// `prunegym_exp8` sixteen lanes at a time: 0 below −87.33654, ∞ above 88.72283, NaN for NaN.
__attribute__((target("avx512f,avx512dq,avx2,fma")))
static inline __m512 prunegym_exp16(__m512 value) {
    const __m512 x = _mm512_min_ps(_mm512_max_ps(value, _mm512_set1_ps(-87.33654f)), _mm512_set1_ps(88.0f));
    __m512 result = prunegym_exp16_clamped(x, (__mmask16)~_mm512_cmp_ps_mask(value, _mm512_set1_ps(-87.33654f), _CMP_LT_OQ));
    result = _mm512_mask_mov_ps(result, _mm512_cmp_ps_mask(value, _mm512_set1_ps(88.72283f), _CMP_GT_OQ), _mm512_set1_ps(__builtin_inff()));
    return _mm512_mask_mov_ps(result, _mm512_cmp_ps_mask(value, value, _CMP_UNORD_Q), value);
}

/// `prunegym_exp8_nonpositive` sixteen lanes at a time (x ≤ 0, −∞ or NaN).
__attribute__((target("avx512f,avx512dq,avx2,fma")))
static inline __m512 prunegym_exp16_nonpositive(__m512 value) {
    const __m512 lo = _mm512_set1_ps(-87.33654f);
    return prunegym_exp16_clamped(_mm512_max_ps(lo, value), (__mmask16)~_mm512_cmp_ps_mask(value, lo, _CMP_LT_OQ));
}

/// The lanes 0..<tail of a sixteen-lane vector.
static inline __mmask16 prunegym_tail_mask16(long tail) { return (__mmask16)((1u << tail) - 1u); }

/// y = e^x over `count` elements sixteen lanes at a time (`nonpositive` as in `prunegym_exp_avx2`);
/// for the tests that hold it to the eight-lane kernel's bits.
__attribute__((target("avx512f,avx512dq,avx2,fma")))
static inline void prunegym_exp_avx512(const float *x, float *y, long count, int nonpositive) {
    for (long j = 0; j < count; j += 16) {
        const __mmask16 mask = prunegym_tail_mask16(count - j < 16 ? count - j : 16);
        const __m512 v = _mm512_maskz_loadu_ps(mask, x + j);
        _mm512_mask_storeu_ps(y + j, mask, nonpositive ? prunegym_exp16_nonpositive(v) : prunegym_exp16(v));
    }
}

/// `prunegym_softmax_rows_avx2` sixteen lanes at a time, to its bits: each block of sixteen
/// exponentials is added to its row's eight-lane sum low half first, then high half, the order of
/// the eight-lane kernel (call only when `prunegym_vector_level() >= 3`).
static inline void prunegym_softmax_avx512(float *row, long count);
__attribute__((target("avx512f,avx512dq,avx2,fma"), always_inline))
static inline void prunegym_softmax_rows_avx512(float *row, long ld, long count, const int rows) {
    const long full = count & ~15L, tail = count - full;
    const __mmask16 tailMask = prunegym_tail_mask16(tail);
    const __m512 negInf = _mm512_set1_ps(-__builtin_inff());
    __m512 m16[4];
#pragma clang loop unroll(full)
    for (int r = 0; r < rows; r++) m16[r] = negInf;
    for (long j = 0; j < full; j += 16) {
#pragma clang loop unroll(full)
        for (int r = 0; r < rows; r++) m16[r] = _mm512_max_ps(m16[r], _mm512_loadu_ps(row + r * ld + j));
    }
    if (tail) {
#pragma clang loop unroll(full)
        for (int r = 0; r < rows; r++) m16[r] = _mm512_max_ps(m16[r], _mm512_mask_loadu_ps(negInf, tailMask, row + r * ld + full));
    }
    __m512 mx[4];
#pragma clang loop unroll(full)
    for (int r = 0; r < rows; r++) {
        const __m256 m = _mm256_max_ps(_mm512_castps512_ps256(m16[r]), _mm512_extractf32x8_ps(m16[r], 1));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
        const float maximum = _mm_cvtss_f32(m4);
        if (maximum == -__builtin_inff()) {
            if (rows == 1) {
                for (long j = 0; j < count; j++) row[j] = 0;
            } else {
                for (int k = 0; k < rows; k++) prunegym_softmax_avx512(row + k * ld, count);
            }
            return;
        }
        mx[r] = _mm512_set1_ps(maximum);
    }
    __m256 sum[4];
#pragma clang loop unroll(full)
    for (int r = 0; r < rows; r++) sum[r] = _mm256_setzero_ps();
    for (long j = 0; j < full; j += 16) {
#pragma clang loop unroll(full)
        for (int r = 0; r < rows; r++) {
            const __m512 e = prunegym_exp16_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(row + r * ld + j), mx[r]));
            _mm512_storeu_ps(row + r * ld + j, e);
            sum[r] = _mm256_add_ps(sum[r], _mm512_castps512_ps256(e));
            sum[r] = _mm256_add_ps(sum[r], _mm512_extractf32x8_ps(e, 1));
        }
    }
    if (tail) {
        // Masked lanes are +0: the eight-lane kernel adds the same values, one full block of
        // eight and then its masked tail when more than eight remain.
#pragma clang loop unroll(full)
        for (int r = 0; r < rows; r++) {
            const __m512 e = _mm512_maskz_mov_ps(tailMask, prunegym_exp16_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(tailMask, row + r * ld + full), mx[r])));
            _mm512_mask_storeu_ps(row + r * ld + full, tailMask, e);
            sum[r] = _mm256_add_ps(sum[r], _mm512_castps512_ps256(e));
            if (tail > 8) sum[r] = _mm256_add_ps(sum[r], _mm512_extractf32x8_ps(e, 1));
        }
    }
    __m512 scale[4];
#pragma clang loop unroll(full)
    for (int r = 0; r < rows; r++) {
        __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(sum[r]), _mm256_extractf128_ps(sum[r], 1));
        s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        s4 = _mm_add_ss(s4, _mm_shuffle_ps(s4, s4, 1));
        scale[r] = _mm512_set1_ps(1.0f / _mm_cvtss_f32(s4));
    }
    for (long j = 0; j < full; j += 16) {
#pragma clang loop unroll(full)
        for (int r = 0; r < rows; r++) _mm512_storeu_ps(row + r * ld + j, _mm512_mul_ps(_mm512_loadu_ps(row + r * ld + j), scale[r]));
    }
    if (tail) {
#pragma clang loop unroll(full)
        for (int r = 0; r < rows; r++) _mm512_mask_storeu_ps(row + r * ld + full, tailMask, _mm512_mul_ps(_mm512_maskz_loadu_ps(tailMask, row + r * ld + full), scale[r]));
    }
}

/// `prunegym_softmax_avx2` sixteen lanes at a time, to its bits (`prunegym_softmax_rows_avx512`).
__attribute__((target("avx512f,avx512dq,avx2,fma")))
static inline void prunegym_softmax_avx512(float *row, long count) { prunegym_softmax_rows_avx512(row, 0, count, 1); }

/// `prunegym_softmax_avx512` on the four rows `row`, `row + ld`, `row + 2·ld`, `row + 3·ld` at
/// once, to its bits (`prunegym_softmax_rows_avx512`).
__attribute__((target("avx512f,avx512dq,avx2,fma")))
static inline void prunegym_softmax4_avx512(float *row, long ld, long count) { prunegym_softmax_rows_avx512(row, ld, count, 4); }

/// `prunegym_sigmoid_gated_avx2` sixteen lanes at a time, to its bits (call only when
/// `prunegym_vector_level() >= 3`).
__attribute__((target("avx512f,avx512dq,avx2,fma")))
static inline void prunegym_sigmoid_gated_avx512(const float *x, float *y, long count, float a) {
    const __m512 minusA = _mm512_set1_ps(-a), one = _mm512_set1_ps(1.0f);
    for (long j = 0; j < count; j += 16) {
        const __mmask16 mask = prunegym_tail_mask16(count - j < 16 ? count - j : 16);
        const __m512 v = _mm512_maskz_loadu_ps(mask, x + j);
        _mm512_mask_storeu_ps(y + j, mask, _mm512_div_ps(v, _mm512_add_ps(one, prunegym_exp16(_mm512_mul_ps(minusA, v)))));
    }
}

/// `prunegym_exp8_unfused` sixteen lanes at a time.
__attribute__((target("avx512f,avx512dq,avx2,fma")))
static inline __m512 prunegym_exp16_unfused(__m512 value) {
    const __m512 shifted = _mm512_add_ps(_mm512_mul_ps(value, _mm512_set1_ps(1.44269504088896341f)), _mm512_set1_ps(12582912.0f));
    const __m512 n = _mm512_sub_ps(shifted, _mm512_set1_ps(12582912.0f));
    const __m512 r = _mm512_add_ps(_mm512_sub_ps(value, _mm512_mul_ps(n, _mm512_set1_ps(0.693359375f))), _mm512_mul_ps(n, _mm512_set1_ps(2.12194440e-4f)));
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(5.0000001201e-1f));
    const __m512 er = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(p, r), r), r), _mm512_set1_ps(1.0f));
    const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_castps_si512(shifted), _mm512_set1_epi32(127 - 0x4B400000)), 23);
    __m512 result = _mm512_mul_ps(er, _mm512_castsi512_ps(bits));
    result = _mm512_mask_mov_ps(result, _mm512_cmp_ps_mask(value, _mm512_set1_ps(-87.33654f), _CMP_LT_OQ), _mm512_setzero_ps());
    result = _mm512_mask_mov_ps(result, _mm512_cmp_ps_mask(value, _mm512_set1_ps(88.0f), _CMP_GT_OQ), _mm512_set1_ps(__builtin_inff()));
    return _mm512_mask_mov_ps(result, _mm512_cmp_ps_mask(value, value, _CMP_UNORD_Q), value);
}

/// `prunegym_sigmoid_gated_backward_avx2` sixteen lanes at a time, to its bits (call only when
/// `prunegym_vector_level() >= 3`).
__attribute__((target("avx512f,avx512dq,avx2,fma")))
static inline void prunegym_sigmoid_gated_backward_avx512(const float *x, const float *dy, float *dx, long count, float a) {
    const __m512 one = _mm512_set1_ps(1.0f), scale = _mm512_set1_ps(a), minusA = _mm512_set1_ps(-a);
    for (long j = 0; j < count; j += 16) {
        const __mmask16 mask = prunegym_tail_mask16(count - j < 16 ? count - j : 16);
        const __m512 v = _mm512_maskz_loadu_ps(mask, x + j);
        const __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, prunegym_exp16_unfused(_mm512_mul_ps(minusA, v))));
        const __m512 term = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(scale, v), s), _mm512_sub_ps(one, s));
        _mm512_mask_storeu_ps(dx + j, mask, _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, dy + j), _mm512_add_ps(s, term)));
    }
}

/// `prunegym_gelu_cdf8` sixteen lanes at a time.
__attribute__((target("avx512f,avx512dq,avx2,fma")))
static inline __m512 prunegym_gelu_cdf16(__m512 v) {
    const __m512 z = _mm512_mul_ps(_mm512_andnot_ps(_mm512_set1_ps(-0.0f), v), _mm512_set1_ps(0.70710678118654752f));
    const __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), z, _mm512_set1_ps(1.0f)));
    __m512 poly = _mm512_set1_ps(1.061405429f);
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-1.453152027f));
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(1.421413741f));
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-0.284496736f));
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(0.254829592f));
    const __m512 erfc = _mm512_mul_ps(_mm512_mul_ps(poly, t), prunegym_exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(z, z))));
    const __m512 half = _mm512_mul_ps(_mm512_set1_ps(0.5f), erfc);
    return _mm512_mask_mov_ps(half, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GE_OQ), _mm512_sub_ps(_mm512_set1_ps(1.0f), half));
}

/// `prunegym_gelu_erf_avx2` sixteen lanes at a time, to its bits (call only when
/// `prunegym_vector_level() >= 3`).
__attribute__((target("avx512f,avx512dq,avx2,fma")))
static inline void prunegym_gelu_erf_avx512(const float *x, float *y, float *cdf, long count) {
    for (long j = 0; j < count; j += 16) {
        const __mmask16 mask = prunegym_tail_mask16(count - j < 16 ? count - j : 16);
        const __m512 v = _mm512_maskz_loadu_ps(mask, x + j);
        const __m512 c = prunegym_gelu_cdf16(v);
        _mm512_mask_storeu_ps(y + j, mask, _mm512_mul_ps(v, c));
        if (cdf) _mm512_mask_storeu_ps(cdf + j, mask, c);
    }
}

/// The mix of `prunegym_attention_head16_avx512`: o[i] = Σ_j p[i, j]·v[j] for the first `n` of
/// `width` (4 or 16, a constant at each call) probability rows in `scratch` (stride `lds`), each
/// sum one fused multiply-add after another from zero in index order, the `width` sums side by
/// side in registers (one value-row load per key). Rows from `n` to `width` sum whatever their
/// scratch rows hold and are not stored.
__attribute__((target("avx512f,avx512dq,avx2,fma"), always_inline))
static inline void prunegym_attention_mix16_avx512(const float *v, long ldv, const float *scratch, long lds, long s, float *o, long ldo,
                                                   long n, const int width) {
    __m512 acc[16];
#pragma clang loop unroll(full)
    for (int i = 0; i < width; i++) acc[i] = _mm512_setzero_ps();
    for (long j = 0; j < s; j++) {
        const __m512 vj = _mm512_loadu_ps(v + j * ldv);
        const float *pj = scratch + j;
#pragma clang loop unroll(full)
        for (int i = 0; i < width; i++) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(pj[i * lds]), vj, acc[i]);
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < width; i++) if (i < n) _mm512_storeu_ps(o + i * ldo, acc[i]);
}

/// Attention without a mask for one head 16 wide (the vision tower's), sixteen query rows at a
/// time: scores, softmax and the mix without a call into OpenBLAS. `q` holds `rows` query rows
/// (stride `ldq`), `keys_t` the head's s keys transposed to [16, s] (stride `ldk`), `v` its s value
/// rows (stride `ldv`), and `o` receives the `rows` output rows (stride `ldo`, 16 columns each);
/// `scratch` holds 16 rows of stride `lds` ≥ s. Each score is α·Σ_c q_c·k_c and each output
/// Σ_j p_j·v_j, summed one fused multiply-add after another from zero in index order — the order of
/// OpenBLAS's AVX-512 small-matrix kernels for these shapes, so the bits of its two GEMMs (a test
/// holds the kernel to both) — and the softmax is `prunegym_softmax_avx512`. The scores take four
/// rows by 32 keys at a time (eight sums, two key loads and four broadcasts per step), the mix
/// sixteen rows side by side (one value load per key). Call only when `prunegym_vector_level() >= 3`.
__attribute__((target("avx512f,avx512dq,avx2,fma")))
static inline void prunegym_attention_head16_avx512(const float *q, long ldq, const float *keys_t, long ldk, const float *v, long ldv,
                                                    float *o, long ldo, long rows, long s, float alpha, float *scratch, long lds) {
    const long full = s & ~15L, tail = s - full;
    const __mmask16 tailMask = prunegym_tail_mask16(tail);
    const __m512 scale = _mm512_set1_ps(alpha);
    for (long first = 0; first < rows; first += 16) {
        const long n = rows - first < 16 ? rows - first : 16;
        for (long g = 0; g < n; g += 4) {
            // Rows past the block's end repeat its row g; their scores land in unused scratch rows.
            const float *q0 = q + (first + g) * ldq;
            const float *q1 = q + (first + (g + 1 < n ? g + 1 : g)) * ldq;
            const float *q2 = q + (first + (g + 2 < n ? g + 2 : g)) * ldq;
            const float *q3 = q + (first + (g + 3 < n ? g + 3 : g)) * ldq;
            float *s0 = scratch + g * lds, *s1 = s0 + lds, *s2 = s1 + lds, *s3 = s2 + lds;
            long j = 0;
            for (; j + 32 <= full; j += 32) {
                __m512 a00 = _mm512_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
                for (int c = 0; c < 16; c++) {
                    const float *kc = keys_t + c * ldk + j;
                    const __m512 k0 = _mm512_loadu_ps(kc), k1 = _mm512_loadu_ps(kc + 16);
                    const __m512 b0 = _mm512_set1_ps(q0[c]), b1 = _mm512_set1_ps(q1[c]), b2 = _mm512_set1_ps(q2[c]), b3 = _mm512_set1_ps(q3[c]);
                    a00 = _mm512_fmadd_ps(b0, k0, a00); a01 = _mm512_fmadd_ps(b0, k1, a01);
                    a10 = _mm512_fmadd_ps(b1, k0, a10); a11 = _mm512_fmadd_ps(b1, k1, a11);
                    a20 = _mm512_fmadd_ps(b2, k0, a20); a21 = _mm512_fmadd_ps(b2, k1, a21);
                    a30 = _mm512_fmadd_ps(b3, k0, a30); a31 = _mm512_fmadd_ps(b3, k1, a31);
                }
                _mm512_storeu_ps(s0 + j, _mm512_mul_ps(scale, a00)); _mm512_storeu_ps(s0 + j + 16, _mm512_mul_ps(scale, a01));
                _mm512_storeu_ps(s1 + j, _mm512_mul_ps(scale, a10)); _mm512_storeu_ps(s1 + j + 16, _mm512_mul_ps(scale, a11));
                _mm512_storeu_ps(s2 + j, _mm512_mul_ps(scale, a20)); _mm512_storeu_ps(s2 + j + 16, _mm512_mul_ps(scale, a21));
                _mm512_storeu_ps(s3 + j, _mm512_mul_ps(scale, a30)); _mm512_storeu_ps(s3 + j + 16, _mm512_mul_ps(scale, a31));
            }
            for (; j < s; j += 16) {
                const __mmask16 mask = j < full ? (__mmask16)0xFFFF : tailMask;
                __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
                for (int c = 0; c < 16; c++) {
                    const __m512 k0 = _mm512_maskz_loadu_ps(mask, keys_t + c * ldk + j);
                    a0 = _mm512_fmadd_ps(_mm512_set1_ps(q0[c]), k0, a0);
                    a1 = _mm512_fmadd_ps(_mm512_set1_ps(q1[c]), k0, a1);
                    a2 = _mm512_fmadd_ps(_mm512_set1_ps(q2[c]), k0, a2);
                    a3 = _mm512_fmadd_ps(_mm512_set1_ps(q3[c]), k0, a3);
                }
                _mm512_mask_storeu_ps(s0 + j, mask, _mm512_mul_ps(scale, a0));
                _mm512_mask_storeu_ps(s1 + j, mask, _mm512_mul_ps(scale, a1));
                _mm512_mask_storeu_ps(s2 + j, mask, _mm512_mul_ps(scale, a2));
                _mm512_mask_storeu_ps(s3 + j, mask, _mm512_mul_ps(scale, a3));
            }
        }
        // Rows g..<g+4 with g < n all hold scores (rows past n repeat row g's), so the softmax
        // takes them four at a time.
        for (long i = 0; i < n; i += 4) prunegym_softmax4_avx512(scratch + i * lds, lds, s);
        // The mix: sixteen rows' sums side by side, four when the block has at most four rows
        // (e.g. the last of 257; the same sums in the same order).
        if (n <= 4) prunegym_attention_mix16_avx512(v, ldv, scratch, lds, s, o + first * ldo, ldo, n, 4);
        else prunegym_attention_mix16_avx512(v, ldv, scratch, lds, s, o + first * ldo, ldo, n, 16);
    }
}
/// `prunegym_attention_head16_avx512` eight lanes at a time, to its bits (the same sums in the same
/// order): the scores four rows by 16 keys (eight sums, two key loads and four broadcasts per
/// step), the softmax `prunegym_softmax_avx2`, the mix four rows at a time (eight sums, two
/// value loads per key). Call only when `prunegym_vector_level() >= 2`.
__attribute__((target("avx2,fma")))
static inline void prunegym_attention_head16_avx2(const float *q, long ldq, const float *keys_t, long ldk, const float *v, long ldv,
                                                  float *o, long ldo, long rows, long s, float alpha, float *scratch, long lds) {
    const long full = s & ~7L, tail = s - full;
    const __m256i tailMask = prunegym_tail_mask(tail);
    const __m256 scale = _mm256_set1_ps(alpha);
    for (long first = 0; first < rows; first += 16) {
        const long n = rows - first < 16 ? rows - first : 16;
        for (long g = 0; g < n; g += 4) {
            // Rows past the block's end repeat its row g; their scores land in unused scratch rows.
            const float *q0 = q + (first + g) * ldq;
            const float *q1 = q + (first + (g + 1 < n ? g + 1 : g)) * ldq;
            const float *q2 = q + (first + (g + 2 < n ? g + 2 : g)) * ldq;
            const float *q3 = q + (first + (g + 3 < n ? g + 3 : g)) * ldq;
            float *s0 = scratch + g * lds, *s1 = s0 + lds, *s2 = s1 + lds, *s3 = s2 + lds;
            long j = 0;
            for (; j + 16 <= full; j += 16) {
                __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
                for (int c = 0; c < 16; c++) {
                    const float *kc = keys_t + c * ldk + j;
                    const __m256 k0 = _mm256_loadu_ps(kc), k1 = _mm256_loadu_ps(kc + 8);
                    __m256 b = _mm256_broadcast_ss(q0 + c);
                    a00 = _mm256_fmadd_ps(b, k0, a00); a01 = _mm256_fmadd_ps(b, k1, a01);
                    b = _mm256_broadcast_ss(q1 + c);
                    a10 = _mm256_fmadd_ps(b, k0, a10); a11 = _mm256_fmadd_ps(b, k1, a11);
                    b = _mm256_broadcast_ss(q2 + c);
                    a20 = _mm256_fmadd_ps(b, k0, a20); a21 = _mm256_fmadd_ps(b, k1, a21);
                    b = _mm256_broadcast_ss(q3 + c);
                    a30 = _mm256_fmadd_ps(b, k0, a30); a31 = _mm256_fmadd_ps(b, k1, a31);
                }
                _mm256_storeu_ps(s0 + j, _mm256_mul_ps(scale, a00)); _mm256_storeu_ps(s0 + j + 8, _mm256_mul_ps(scale, a01));
                _mm256_storeu_ps(s1 + j, _mm256_mul_ps(scale, a10)); _mm256_storeu_ps(s1 + j + 8, _mm256_mul_ps(scale, a11));
                _mm256_storeu_ps(s2 + j, _mm256_mul_ps(scale, a20)); _mm256_storeu_ps(s2 + j + 8, _mm256_mul_ps(scale, a21));
                _mm256_storeu_ps(s3 + j, _mm256_mul_ps(scale, a30)); _mm256_storeu_ps(s3 + j + 8, _mm256_mul_ps(scale, a31));
            }
            for (; j < s; j += 8) {
                const __m256i mask = j < full ? _mm256_set1_epi32(-1) : tailMask;
                __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
                for (int c = 0; c < 16; c++) {
                    const __m256 k0 = _mm256_maskload_ps(keys_t + c * ldk + j, mask);
                    a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(q0 + c), k0, a0);
                    a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(q1 + c), k0, a1);
                    a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(q2 + c), k0, a2);
                    a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(q3 + c), k0, a3);
                }
                _mm256_maskstore_ps(s0 + j, mask, _mm256_mul_ps(scale, a0));
                _mm256_maskstore_ps(s1 + j, mask, _mm256_mul_ps(scale, a1));
                _mm256_maskstore_ps(s2 + j, mask, _mm256_mul_ps(scale, a2));
                _mm256_maskstore_ps(s3 + j, mask, _mm256_mul_ps(scale, a3));
            }
        }
        // Rows g..<g+4 with g < n all hold scores (rows past n repeat row g's), so the softmax
        // takes them four at a time.
        for (long i = 0; i < n; i += 4) prunegym_softmax4_avx2(scratch + i * lds, lds, s);
        // The mix, four rows' sums side by side; rows past the block's end are not stored.
        for (long g = 0; g < n; g += 4) {
            const float *p = scratch + g * lds;
            __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
            for (long j = 0; j < s; j++) {
                const __m256 v0 = _mm256_loadu_ps(v + j * ldv), v1 = _mm256_loadu_ps(v + j * ldv + 8);
                __m256 b = _mm256_broadcast_ss(p + j);
                a00 = _mm256_fmadd_ps(b, v0, a00); a01 = _mm256_fmadd_ps(b, v1, a01);
                b = _mm256_broadcast_ss(p + lds + j);
                a10 = _mm256_fmadd_ps(b, v0, a10); a11 = _mm256_fmadd_ps(b, v1, a11);
                b = _mm256_broadcast_ss(p + 2 * lds + j);
                a20 = _mm256_fmadd_ps(b, v0, a20); a21 = _mm256_fmadd_ps(b, v1, a21);
                b = _mm256_broadcast_ss(p + 3 * lds + j);
                a30 = _mm256_fmadd_ps(b, v0, a30); a31 = _mm256_fmadd_ps(b, v1, a31);
            }
            float *out = o + (first + g) * ldo;
            _mm256_storeu_ps(out, a00); _mm256_storeu_ps(out + 8, a01);
            if (g + 1 < n) { _mm256_storeu_ps(out + ldo, a10); _mm256_storeu_ps(out + ldo + 8, a11); }
            if (g + 2 < n) { _mm256_storeu_ps(out + 2 * ldo, a20); _mm256_storeu_ps(out + 2 * ldo + 8, a21); }
            if (g + 3 < n) { _mm256_storeu_ps(out + 3 * ldo, a30); _mm256_storeu_ps(out + 3 * ldo + 8, a31); }
        }
    }
}

/// Σ of sixteen partial sums as OpenBLAS's AVX-512 kernels add them up: adjacent pairs, then
/// adjacent pairs of those, …: ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + … .
__attribute__((target("avx512f,avx512dq,avx2,fma"), always_inline))
static inline float prunegym_pair_tree16_avx512(__m512 a) {
    a = _mm512_add_ps(a, _mm512_permute_ps(a, 0xB1));        // lane i with lane i ^ 1
    a = _mm512_add_ps(a, _mm512_permute_ps(a, 0x4E));        // i ^ 2
    a = _mm512_add_ps(a, _mm512_shuffle_f32x4(a, a, 0xB1));  // i ^ 4
    a = _mm512_add_ps(a, _mm512_shuffle_f32x4(a, a, 0x4E));  // i ^ 8
    return _mm512_cvtss_f32(a);
}

/// The body of `prunegym_attention_narrow_avx512` for heads `d` wide (4 or 8, a constant).
__attribute__((target("avx512f,avx512dq,avx2,fma"), always_inline))
static inline void prunegym_attention_narrow_rows_avx512(const float *q, long ldq, const float *keys_t, const float *values_t, long ldt,
                                                         const float *mask, long ldm, float *o, long ldo, long rows, long s, float alpha,
                                                         float *scratch, long lds, const int d) {
    const long full = s & ~15L, tail = s - full;
    const __mmask16 tailMask = prunegym_tail_mask16(tail);
    const __m512 scale = _mm512_set1_ps(alpha);
    for (long g = 0; g < rows; g += 4) {
        const long n = rows - g < 4 ? rows - g : 4;
        for (long r = 0; r < n; r++) {
            const float *qr = q + (g + r) * ldq, *mr = mask ? mask + (g + r) * ldm : 0;
            float *sr = scratch + r * lds;
            __m512 qc[8];
#pragma clang loop unroll(full)
            for (int c = 0; c < d; c++) qc[c] = _mm512_set1_ps(qr[c]);
            for (long j = 0; j < s; j += 16) {
                const __mmask16 m = j < full ? (__mmask16)0xFFFF : tailMask;
                __m512 acc = _mm512_setzero_ps();
#pragma clang loop unroll(full)
                for (int c = 0; c < d; c++) acc = _mm512_fmadd_ps(qc[c], _mm512_maskz_loadu_ps(m, keys_t + c * ldt + j), acc);
                __m512 score = _mm512_mul_ps(scale, acc);
                if (mr) score = _mm512_add_ps(score, _mm512_maskz_loadu_ps(m, mr + j));
                _mm512_mask_storeu_ps(sr + j, m, score);
            }
        }
        if (n == 4) prunegym_softmax4_avx512(scratch, lds, s);
        else for (long r = 0; r < n; r++) prunegym_softmax_avx512(scratch + r * lds, s);
        for (long r = 0; r < n; r++) {
            const float *p = scratch + r * lds;
            float *out = o + (g + r) * ldo;
            if (s < 32) {
#pragma clang loop unroll(full)
                for (int c = 0; c < d; c++) {
                    float t = 0;
                    for (long j = 0; j < s; j++) t = __builtin_fmaf(p[j], values_t[c * ldt + j], t);
                    out[c] = t;
                }
                continue;
            }
            __m512 acc[8];
#pragma clang loop unroll(full)
            for (int c = 0; c < d; c++) acc[c] = _mm512_setzero_ps();
            long j = 0;
            for (; j < full; j += 16) {
                const __m512 pj = _mm512_loadu_ps(p + j);
#pragma clang loop unroll(full)
                for (int c = 0; c < d; c++) acc[c] = _mm512_fmadd_ps(pj, _mm512_loadu_ps(values_t + c * ldt + j), acc[c]);
            }
            if (tail) {
                const __m512 pj = _mm512_maskz_loadu_ps(tailMask, p + j);
#pragma clang loop unroll(full)
                for (int c = 0; c < d; c++) acc[c] = _mm512_mask3_fmadd_ps(pj, _mm512_maskz_loadu_ps(tailMask, values_t + c * ldt + j), acc[c], tailMask);
            }
#pragma clang loop unroll(full)
            for (int c = 0; c < d; c++) out[c] = prunegym_pair_tree16_avx512(acc[c]);
        }
    }
}

/// Attention for one head 4 or 8 wide (`d`; the TPRL policy's, 32 or 64 wide over 8 heads), with
/// an optional additive mask, four query rows at a time: scores, softmax and the mix without a
/// call into OpenBLAS. `q` holds `rows` query rows (stride `ldq`); `keys_t` and `values_t` the
/// head's s keys and values transposed to [d, s] (stride `ldt`); `mask`, when not NULL, the row
/// added to query row i's scores at `mask + i·ldm` (`ldm` 0: one row for all); `o` receives the
/// output rows (stride `ldo`, d columns each); `scratch` holds 4 rows of stride `lds` ≥ s. The
/// bits are those of OpenBLAS 0.3's AVX-512 kernels' two products around the softmax: each score
/// is α·Σ_c q_c·k_c, one fused multiply-add after another from zero, then the mask added; each
/// output Σ_j p_j·v_j, for s < 32 likewise, for s ≥ 32 in sixteen partial sums (key j in sum j mod
/// 16) added up by `prunegym_pair_tree16_avx512` (a test holds the kernel to both products). The
/// softmax is `prunegym_softmax4_avx512`. Call only when `prunegym_vector_level() >= 3`.
__attribute__((target("avx512f,avx512dq,avx2,fma")))
static inline void prunegym_attention_narrow_avx512(const float *q, long ldq, const float *keys_t, const float *values_t, long ldt,
                                                    const float *mask, long ldm, float *o, long ldo, long rows, long s, long d,
                                                    float alpha, float *scratch, long lds) {
    if (d == 4) prunegym_attention_narrow_rows_avx512(q, ldq, keys_t, values_t, ldt, mask, ldm, o, ldo, rows, s, alpha, scratch, lds, 4);
    else prunegym_attention_narrow_rows_avx512(q, ldq, keys_t, values_t, ldt, mask, ldm, o, ldo, rows, s, alpha, scratch, lds, 8);
}

/// `prunegym_pair_tree16_avx512` of the sixteen partial sums in `lo` (0–7) and `hi` (8–15).
__attribute__((target("avx2,fma"), always_inline))
static inline float prunegym_pair_tree16_avx2(__m256 lo, __m256 hi) {
    lo = _mm256_add_ps(lo, _mm256_permute_ps(lo, 0xB1)); hi = _mm256_add_ps(hi, _mm256_permute_ps(hi, 0xB1));
    lo = _mm256_add_ps(lo, _mm256_permute_ps(lo, 0x4E)); hi = _mm256_add_ps(hi, _mm256_permute_ps(hi, 0x4E));
    lo = _mm256_add_ps(lo, _mm256_permute2f128_ps(lo, lo, 0x01)); hi = _mm256_add_ps(hi, _mm256_permute2f128_ps(hi, hi, 0x01));
    return _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(lo), _mm256_castps256_ps128(hi)));
}

/// The body of `prunegym_attention_narrow_avx2` for heads `d` wide (4 or 8, a constant).
__attribute__((target("avx2,fma"), always_inline))
static inline void prunegym_attention_narrow_rows_avx2(const float *q, long ldq, const float *keys_t, const float *values_t, long ldt,
                                                       const float *mask, long ldm, float *o, long ldo, long rows, long s, float alpha,
                                                       float *scratch, long lds, const int d) {
    const long full8 = s & ~7L, full16 = s & ~15L;
    const __m256i tailMask = prunegym_tail_mask(s - full8);
    const __m256 scale = _mm256_set1_ps(alpha);
    for (long g = 0; g < rows; g += 4) {
        const long n = rows - g < 4 ? rows - g : 4;
        for (long r = 0; r < n; r++) {
            const float *qr = q + (g + r) * ldq, *mr = mask ? mask + (g + r) * ldm : 0;
            float *sr = scratch + r * lds;
            __m256 qc[8];
#pragma clang loop unroll(full)
            for (int c = 0; c < d; c++) qc[c] = _mm256_broadcast_ss(qr + c);
            for (long j = 0; j < s; j += 8) {
                const __m256i m = j < full8 ? _mm256_set1_epi32(-1) : tailMask;
                __m256 acc = _mm256_setzero_ps();
#pragma clang loop unroll(full)
                for (int c = 0; c < d; c++) acc = _mm256_fmadd_ps(qc[c], _mm256_maskload_ps(keys_t + c * ldt + j, m), acc);
                __m256 score = _mm256_mul_ps(scale, acc);
                if (mr) score = _mm256_add_ps(score, _mm256_maskload_ps(mr + j, m));
                _mm256_maskstore_ps(sr + j, m, score);
            }
        }
        if (n == 4) prunegym_softmax4_avx2(scratch, lds, s);
        else for (long r = 0; r < n; r++) prunegym_softmax_avx2(scratch + r * lds, s);
        for (long r = 0; r < n; r++) {
            const float *p = scratch + r * lds;
            float *out = o + (g + r) * ldo;
            if (s < 32) {
#pragma clang loop unroll(full)
                for (int c = 0; c < d; c++) {
                    float t = 0;
                    for (long j = 0; j < s; j++) t = __builtin_fmaf(p[j], values_t[c * ldt + j], t);
                    out[c] = t;
                }
                continue;
            }
            // Partial sums 0–7 in lo, 8–15 in hi; the tail's keys go to the sums their index mod
            // 16 names, the sums past the tail kept as they are.
            __m256 lo[8], hi[8];
#pragma clang loop unroll(full)
            for (int c = 0; c < d; c++) { lo[c] = _mm256_setzero_ps(); hi[c] = _mm256_setzero_ps(); }
            long j = 0;
            for (; j < full16; j += 16) {
                const __m256 p0 = _mm256_loadu_ps(p + j), p1 = _mm256_loadu_ps(p + j + 8);
#pragma clang loop unroll(full)
                for (int c = 0; c < d; c++) {
                    lo[c] = _mm256_fmadd_ps(p0, _mm256_loadu_ps(values_t + c * ldt + j), lo[c]);
                    hi[c] = _mm256_fmadd_ps(p1, _mm256_loadu_ps(values_t + c * ldt + j + 8), hi[c]);
                }
            }
            for (; j < s; j += 8) {
                const __m256i m = j < full8 ? _mm256_set1_epi32(-1) : tailMask;
                const __m256 pj = _mm256_maskload_ps(p + j, m);
                const int upper = (j - full16) >= 8;
#pragma clang loop unroll(full)
                for (int c = 0; c < d; c++) {
                    const __m256 vj = _mm256_maskload_ps(values_t + c * ldt + j, m), keep = _mm256_castsi256_ps(m);
                    if (upper) hi[c] = _mm256_blendv_ps(hi[c], _mm256_fmadd_ps(pj, vj, hi[c]), keep);
                    else lo[c] = _mm256_blendv_ps(lo[c], _mm256_fmadd_ps(pj, vj, lo[c]), keep);
                }
            }
#pragma clang loop unroll(full)
            for (int c = 0; c < d; c++) out[c] = prunegym_pair_tree16_avx2(lo[c], hi[c]);
        }
    }
}

/// `prunegym_attention_narrow_avx512` eight lanes at a time, to its bits (the same sums in the
/// same order; the softmax `prunegym_softmax4_avx2`). Call only when `prunegym_vector_level() >= 2`.
__attribute__((target("avx2,fma")))
static inline void prunegym_attention_narrow_avx2(const float *q, long ldq, const float *keys_t, const float *values_t, long ldt,
                                                  const float *mask, long ldm, float *o, long ldo, long rows, long s, long d,
                                                  float alpha, float *scratch, long lds) {
    if (d == 4) prunegym_attention_narrow_rows_avx2(q, ldq, keys_t, values_t, ldt, mask, ldm, o, ldo, rows, s, alpha, scratch, lds, 4);
    else prunegym_attention_narrow_rows_avx2(q, ldq, keys_t, values_t, ldt, mask, ldm, o, ldo, rows, s, alpha, scratch, lds, 8);
}
#else
static inline int prunegym_vector_level(void) { return 0; }
static inline void prunegym_gelu_erf_avx2(const float *x, float *y, float *cdf, long count) { (void)x; (void)y; (void)cdf; (void)count; }
static inline void prunegym_softmax_avx2(float *row, long count) { (void)row; (void)count; }
static inline void prunegym_softmax4_avx2(float *row, long ld, long count) { (void)row; (void)ld; (void)count; }
static inline void prunegym_exp_avx2(const float *x, float *y, long count, int nonpositive) { (void)x; (void)y; (void)count; (void)nonpositive; }
static inline void prunegym_sigmoid_gated_avx2(const float *x, float *y, long count, float a) { (void)x; (void)y; (void)count; (void)a; }
static inline void prunegym_softmax_avx512(float *row, long count) { (void)row; (void)count; }
static inline void prunegym_softmax4_avx512(float *row, long ld, long count) { (void)row; (void)ld; (void)count; }
static inline void prunegym_exp_avx512(const float *x, float *y, long count, int nonpositive) { (void)x; (void)y; (void)count; (void)nonpositive; }
static inline void prunegym_sigmoid_gated_avx512(const float *x, float *y, long count, float a) { (void)x; (void)y; (void)count; (void)a; }
static inline void prunegym_sigmoid_gated_backward_avx2(const float *x, const float *dy, float *dx, long count, float a) { (void)x; (void)dy; (void)dx; (void)count; (void)a; }
static inline void prunegym_sigmoid_gated_backward_avx512(const float *x, const float *dy, float *dx, long count, float a) { (void)x; (void)dy; (void)dx; (void)count; (void)a; }
static inline void prunegym_gelu_erf_avx512(const float *x, float *y, float *cdf, long count) { (void)x; (void)y; (void)cdf; (void)count; }
static inline void prunegym_attention_head16_avx2(const float *q, long ldq, const float *keys_t, long ldk, const float *v, long ldv,
                                                  float *o, long ldo, long rows, long s, float alpha, float *scratch, long lds) {
    (void)q; (void)ldq; (void)keys_t; (void)ldk; (void)v; (void)ldv; (void)o; (void)ldo; (void)rows; (void)s; (void)alpha; (void)scratch; (void)lds;
}
static inline void prunegym_attention_head16_avx512(const float *q, long ldq, const float *keys_t, long ldk, const float *v, long ldv,
                                                    float *o, long ldo, long rows, long s, float alpha, float *scratch, long lds) {
    (void)q; (void)ldq; (void)keys_t; (void)ldk; (void)v; (void)ldv; (void)o; (void)ldo; (void)rows; (void)s; (void)alpha; (void)scratch; (void)lds;
}
static inline void prunegym_attention_narrow_avx2(const float *q, long ldq, const float *keys_t, const float *values_t, long ldt,
                                                  const float *mask, long ldm, float *o, long ldo, long rows, long s, long d,
                                                  float alpha, float *scratch, long lds) {
    (void)q; (void)ldq; (void)keys_t; (void)values_t; (void)ldt; (void)mask; (void)ldm; (void)o; (void)ldo; (void)rows; (void)s; (void)d;
    (void)alpha; (void)scratch; (void)lds;
}
static inline void prunegym_attention_narrow_avx512(const float *q, long ldq, const float *keys_t, const float *values_t, long ldt,
                                                    const float *mask, long ldm, float *o, long ldo, long rows, long s, long d,
                                                    float alpha, float *scratch, long lds) {
    (void)q; (void)ldq; (void)keys_t; (void)values_t; (void)ldt; (void)mask; (void)ldm; (void)o; (void)ldo; (void)rows; (void)s; (void)d;
    (void)alpha; (void)scratch; (void)lds;
}
#endif
#endif
