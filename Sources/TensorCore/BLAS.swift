import COpenBLAS

/// The C boundary: the only file that imports `COpenBLAS`.
///
/// Integer arguments are converted to `Int32` with a check (CBLAS takes 32-bit ints); pointers
/// stay inside the callers' `withUnsafe…` scopes.
public enum BLAS {
    /// C ← α·op(A)·op(B) + β·C for row-major matrices, where op transposes when asked.
    /// `A` is `m×k` (stored `k×m` when transposed) with leading dimension `lda`; likewise `B`, `C`.
    public static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(
            CblasRowMajor,
            transposeA ? CblasTrans : CblasNoTrans,
            transposeB ? CblasTrans : CblasNoTrans,
            int32(m, "m"), int32(n, "n"), int32(k, "k"),
            alpha, a, int32(lda, "lda"), b, int32(ldb, "ldb"),
            beta, c, int32(ldc, "ldc"))
    }

    /// Threads OpenBLAS uses for one GEMM.
    public static var threadCount: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(int32(newValue, "threadCount")) }
    }

    private static func int32(_ value: Int, _ name: String) -> Int32 {
        guard let converted = Int32(exactly: value) else {
            preconditionFailure("BLAS: \(name) = \(value) does not fit the 32-bit CBLAS interface")
        }
        return converted
    }
}
