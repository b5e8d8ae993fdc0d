// Matrix products through `cblas_sgemm`. Transposes are BLAS flags, never copies.

extension Tensor {
    /// Matrix product op(a)·op(b), where op transposes the last two axes when asked.
    ///
    /// Shapes: `a` is `[batch…, m, k]` (`[batch…, k, m]` when `transposeA`), `b` is `[batch…, k, n]`
    /// (`[batch…, n, k]` when `transposeB`); the result is `[batch…, m, n]`. Either operand may be
    /// rank 2 and is then shared by every batch element; otherwise the batch shapes must be equal.
    /// A batched `a` times a rank-2 `b` is folded into one GEMM.
    ///
    /// - Complexity: 2·batch·m·n·k floating-point operations.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        var result = gemm(a, b, transposeA: transposeA, transposeB: transposeB)
        guard a.node != nil || b.node != nil else { return result }
        let (valueA, valueB) = (a.detached(), b.detached())
        record(&result, a, b) { g, needs in
            var gradA: Tensor?
            var gradB: Tensor?
            if needs[0] {
                gradA = transposeA
                    ? gemm(valueB, g, transposeA: transposeB, transposeB: true)
                    : gemm(g, valueB, transposeA: false, transposeB: !transposeB)
                gradA = gradA!.reduced(toShape: valueA.shape)
            }
            if needs[1] {
                if valueB.rank == 2 && valueA.rank > 2 && !transposeA {
                    // Fold the batch: a is [B·m, k], g is [B·m, n].
                    let foldedA = Tensor(shape: [valueA.count / valueA.shape[valueA.rank - 1], valueA.shape[valueA.rank - 1]], storage: valueA.storage)
                    let foldedG = Tensor(shape: [g.count / g.shape[g.rank - 1], g.shape[g.rank - 1]], storage: g.storage)
                    gradB = transposeB
                        ? gemm(foldedG, foldedA, transposeA: true, transposeB: false)
                        : gemm(foldedA, foldedG, transposeA: true, transposeB: false)
                } else {
                    gradB = transposeB
                        ? gemm(g, valueA, transposeA: true, transposeB: transposeA)
                        : gemm(valueA, g, transposeA: !transposeA, transposeB: false)
                    gradB = gradB!.reduced(toShape: valueB.shape)
                }
            }
            return [gradA, gradB]
        }
        return result
    }

    /// `self · other` (see `Tensor.matmul`).
    public func matmul(_ other: Tensor, transposeSelf: Bool = false, transposeOther: Bool = false) -> Tensor {
        Tensor.matmul(self, other, transposeA: transposeSelf, transposeB: transposeOther)
    }

    /// The GEMM kernel without tape.
    static func gemm(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) -> Tensor {
        precondition(a.rank >= 2 && b.rank >= 2, "matmul: operands need rank ≥ 2, shapes \(a.shape) and \(b.shape)")
        let (rowsA, colsA) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
        let (rowsB, colsB) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
        let (m, k) = transposeA ? (colsA, rowsA) : (rowsA, colsA)
        let (kB, n) = transposeB ? (colsB, rowsB) : (rowsB, colsB)
        precondition(
            k == kB,
            "matmul: inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "")")
        if a.rank == 2 && b.rank == 2 {
            // Fast path: no batch bookkeeping.
            let result = Tensor(uninitializedShape: [m, n])
            if m > 0 && n > 0 {
                if k == 0 {
                    result.storage.base.update(repeating: 0, count: result.count)
                } else {
                    BLAS.parallelGEMM(
                        transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                        a: a.storage.base, lda: colsA, b: b.storage.base, ldb: colsB, c: result.storage.base, ldc: n)
                }
            }
            return result
        }
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        precondition(
            batchA.isEmpty || batchB.isEmpty || batchA == batchB,
            "matmul: batch shapes \(batchA) and \(batchB) differ (broadcasting only a rank-2 operand)")
        let batch = batchA.isEmpty ? batchB : batchA
        let batchCount = batch.reduce(1, *)
        let result = Tensor(uninitializedShape: batch + [m, n])
        let pa = a.storage.base, pb = b.storage.base, pc = result.storage.base
        if m == 0 || n == 0 || batchCount == 0 { return result }
        if k == 0 {
            pc.update(repeating: 0, count: result.count)
            return result
        }
        if batchB.isEmpty && !batchA.isEmpty && !transposeA {
            BLAS.parallelGEMM(
                transposeA: false, transposeB: transposeB, m: batchCount * m, n: n, k: k,
                a: pa, lda: colsA, b: pb, ldb: colsB, c: pc, ldc: n)
            return result
        }
        if batchCount == 1 {
            BLAS.parallelGEMM(
                transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                a: pa, lda: colsA, b: pb, ldb: colsB, c: pc, ldc: n)
            return result
        }
        let strideA = batchA.isEmpty ? 0 : rowsA * colsA
        let strideB = batchB.isEmpty ? 0 : rowsB * colsB
        // One single-threaded GEMM per batch element, batch elements spread over the workers.
        Parallel.forRanges(batchCount, cost: Swift.max(1, 2 * m * n * k / BLAS.parallelThreshold)) { range in
            for i in range {
                BLAS.gemm(
                    transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                    a: pa + i * strideA, lda: colsA, b: pb + i * strideB, ldb: colsB,
                    c: pc + i * m * n, ldc: n)
            }
        }
        return result
    }
}

extension Tensor {
    /// Affine map y = x·Wᵀ + b in one GEMM: the bias is written into the output first and the
    /// product accumulated onto it (β = 1), so there is no separate bias pass; each thread writes
    /// the bias into its own part of the output just before its part of the product. PyTorch layout:
    /// `weight` is `[out, in]`, `bias` is `[out]`.
    ///
    /// Shapes: `[…, in]` → `[…, out]`. Backward: dx = g·W, dW = gᵀ·x, db = Σ_rows g.
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        precondition(weight.rank == 2, "linear: weight must be [out, in], got \(weight.shape)")
        let (outputs, inputs) = (weight.shape[0], weight.shape[1])
        precondition(x.rank >= 1 && x.shape[x.rank - 1] == inputs, "linear: input \(x.shape) does not end in \(inputs)")
        if let bias { precondition(bias.shape == [outputs], "linear: bias \(bias.shape) must be [\(outputs)]") }
        let rows = x.count / Swift.max(inputs, 1)
        var outShape = x.shape
        outShape[outShape.count - 1] = outputs
        var result = Tensor(uninitializedShape: outShape)
        let y = result.storage.base
        if rows > 0 && outputs > 0 {
            if inputs == 0 {
                if let bias {
                    for r in 0..<rows { (y + r * outputs).update(from: bias.storage.base, count: outputs) }
                } else {
                    y.update(repeating: 0, count: rows * outputs)
                }
            } else {
                // Each part of the product writes the bias into its own rows first (β = 1).
                BLAS.parallelGEMM(
                    transposeA: false, transposeB: true, m: rows, n: outputs, k: inputs,
                    a: x.storage.base, lda: inputs, b: weight.storage.base, ldb: inputs,
                    beta: bias == nil ? 0 : 1, c: y, ldc: outputs, rowsStartAs: bias.map { UnsafePointer($0.storage.base) })
            }
        }
        guard x.node != nil || weight.node != nil || bias?.node != nil else { return result }
        let (input, w) = (x.detached(), weight.detached())
        record(&result, x, weight, bias ?? Tensor(0)) { g, needs in
            let flatG = Tensor(shape: [rows, outputs], storage: g.storage)
            let flatX = Tensor(shape: [rows, inputs], storage: input.storage)
            let dx = needs[0] ? Tensor(shape: input.shape, storage: gemm(flatG, w, transposeA: false, transposeB: false).storage) : nil
            let dw = needs[1] ? gemm(flatG, flatX, transposeA: true, transposeB: false) : nil
            let db = needs[2] ? flatG.sum(alongAxis: 0) : nil
            return [dx, dw, db]
        }
        return result
    }
}
