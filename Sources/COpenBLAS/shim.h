// Shim for OpenBLAS's CBLAS interface. Deliberately not guarded by `CBLAS_H`: OpenBLAS's own
// cblas.h uses that guard, and reusing it here would make the module come out empty.
#ifndef PRUNEGYM_COPENBLAS_SHIM_H
#define PRUNEGYM_COPENBLAS_SHIM_H
#include <cblas.h>
#endif
