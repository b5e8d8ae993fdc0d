// Holds the shim's sixteen-lane exponentials to the eight-lane ones' bits on every one of the 2^32
// float inputs (the softmax's form on its domain: x <= 0, -inf and NaN), with and without
// flush-to-zero. The tests keep a sample of this (FusedKernelTests.sixteenLaneExponentialSweep);
// run this after changing either kernel, on a CPU with AVX-512 (about 20 s):
//
//   clang -O2 -o /tmp/exp_lanes tools/exp_lanes_exhaustive.c && /tmp/exp_lanes
//
// It prints the number of differing outputs for each form and mode and exits 1 if any differ.
#include "../Sources/COpenBLAS/shim.h"
#include <stdint.h>
#include <stdio.h>
#include <string.h>

__attribute__((target("avx512f,avx512dq,avx2,fma")))
static __m512 eight_lanes(__m512 v, int nonpositive) {
    const __m256 lo = _mm512_castps512_ps256(v), hi = _mm512_extractf32x8_ps(v, 1);
    const __m256 a = nonpositive ? prunegym_exp8_nonpositive(lo) : prunegym_exp8(lo);
    const __m256 b = nonpositive ? prunegym_exp8_nonpositive(hi) : prunegym_exp8(hi);
    return _mm512_insertf32x8(_mm512_castps256_ps512(a), b, 1);
}

__attribute__((target("avx512f,avx512dq,avx2,fma")))
static uint64_t differing(int nonpositive) {
    uint64_t count = 0;
    uint32_t bits[16];
    for (uint64_t base = 0; base < (1ull << 32); base += 16) {
        for (int i = 0; i < 16; i++) bits[i] = (uint32_t)(base + i);
        __m512 v;
        memcpy(&v, bits, sizeof v);
        __mmask16 domain = 0xFFFF;
        if (nonpositive) domain = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LE_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        const __m512 sixteen = nonpositive ? prunegym_exp16_nonpositive(v) : prunegym_exp16(v);
        count += (uint64_t)__builtin_popcount(_mm512_mask_cmpneq_epi32_mask(domain, _mm512_castps_si512(sixteen), _mm512_castps_si512(eight_lanes(v, nonpositive))));
    }
    return count;
}

int main(void) {
    if (prunegym_vector_level() < 3) {
        fprintf(stderr, "exp_lanes_exhaustive: this CPU has no AVX-512; the sixteen-lane kernels do not run here\n");
        return 2;
    }
    int failed = 0;
    for (int flush = 0; flush < 2; flush++) {
        if (flush) prunegym_flush_subnormals();
        for (int nonpositive = 0; nonpositive < 2; nonpositive++) {
            const uint64_t n = differing(nonpositive);
            printf("%s, %s: %llu of the inputs differ\n", nonpositive ? "e^x for the softmax (x <= 0, -inf, NaN)" : "e^x",
                   flush ? "flush-to-zero" : "subnormals kept", (unsigned long long)n);
            failed |= n != 0;
        }
    }
    return failed;
}
