// Checks the order in which OpenBLAS sums the two products of attention for heads 4 or 8 wide,
// the order `prunegym_attention_narrow_avx512` (Sources/COpenBLAS/shim.h) reproduces:
//   scores  C = α·A·B, A [m, d], B [d, s]: each element one fused multiply-add after another from
//           zero in index order, then scaled by α;
//   mix     C = P·V, P [m, s], V [s, d]: below 32 keys likewise (from zero, in index order); from
//           32 keys on, sixteen partial sums (key j in sum j mod 16), each from zero in index
//           order, added in adjacent pairs, then adjacent pairs of those, and so on.
// Every m ≤ 33 with every key count up to 300, and key counts up to 1100 for every fourth m, with
// random inputs and strides that are not the row length. It prints the shapes whose bits differ
// and a count; release 0.7.9 found none on OpenBLAS 0.3.21's Cooperlake kernels.
//
//   clang -O2 -o /tmp/narrow_order tools/openblas_narrow_order.c -lopenblas -lm
//   OPENBLAS_CORETYPE=Cooperlake OPENBLAS_NUM_THREADS=1 /tmp/narrow_order
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float uniform(void) { return (float)rand() / (float)RAND_MAX * 2.0f - 1.0f; }

static int same(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

static float score(const float *a, const float *b, long ldb, int d, float alpha) {
    float sum = 0;
    for (int c = 0; c < d; c++) sum = fmaf(a[c], b[c * ldb], sum);
    return alpha * sum;
}

static float mix(const float *p, const float *v, long ldv, int s) {
    if (s < 32) {
        float sum = 0;
        for (int j = 0; j < s; j++) sum = fmaf(p[j], v[j * ldv], sum);
        return sum;
    }
    float partial[16] = {0};
    for (int j = 0; j < s; j++) partial[j % 16] = fmaf(p[j], v[j * ldv], partial[j % 16]);
    for (int width = 16; width > 1; width /= 2)
        for (int i = 0; i < width / 2; i++) partial[i] = partial[2 * i] + partial[2 * i + 1];
    return partial[0];
}

int main(void) {
    srand(3);
    enum { maxKeys = 1100, maxRows = 33, lda = 40 };
    float *a = malloc(sizeof(float) * maxRows * (maxKeys + 8));
    float *b = malloc(sizeof(float) * (maxKeys + 8) * 64);
    float *c = malloc(sizeof(float) * maxRows * (maxKeys + 8));
    long differ = 0, shapes = 0;
    for (int d = 4; d <= 8; d += 4) {
        for (int m = 1; m <= maxRows; m++) {
            for (int s = 1; s <= maxKeys; s++) {
                if (s > 300 && m % 4 != 1) continue;
                // Scores: A [m, d] (stride lda), B [d, s] (stride s + 5), C [m, s].
                const long ldb = s + 5;
                for (long i = 0; i < (long)m * lda; i++) a[i] = uniform();
                for (long i = 0; i < (long)d * ldb; i++) b[i] = uniform();
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, s, d, 0.5f, a, lda, b, ldb, 0, c, s);
                int ok = 1;
                for (int i = 0; i < m && ok; i++)
                    for (int j = 0; j < s && ok; j++) ok = same(score(a + i * lda, b + j, ldb, d, 0.5f), c[i * s + j]);
                // Mix: P [m, s] (stride s + m % 3, non-negative), V [s, d] (stride 32 or 64), C [m, d].
                const long ldp = s + m % 3, ldv = 8 * d;
                for (long i = 0; i < (long)m * ldp; i++) a[i] = fabsf(uniform());
                for (long i = 0; i < (long)s * ldv; i++) b[i] = uniform();
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, d, s, 1.0f, a, ldp, b, ldv, 0, c, d);
                for (int i = 0; i < m && ok; i++)
                    for (int j = 0; j < d && ok; j++) ok = same(mix(a + i * ldp, b + j, ldv, s), c[i * d + j]);
                shapes++;
                if (!ok && ++differ <= 10) printf("d %d, m %d, s %d: OpenBLAS sums in another order\n", d, m, s);
            }
        }
    }
    printf("%ld of %ld shapes differ from the documented order\n", differ, shapes);
    free(a); free(b); free(c);
    return differ != 0;
}
