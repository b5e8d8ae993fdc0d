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
#endif
