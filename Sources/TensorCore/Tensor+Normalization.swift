// Fused layer normalisation and RMS normalisation over the last axis, with their own backward.

extension Tensor {
    /// Layer normalisation over the last axis: (x − mean) / √(var + ε) · weight + bias, with the
    /// population variance (PyTorch's `layer_norm`). `weight` and `bias` are `[d]` or nil.
    ///
    /// Shapes: `[…, d]` → `[…, d]`.
    public static func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, epsilon: Float) -> Tensor {
        let d = x.shape.last ?? 1
        let rows = x.count / Swift.max(d, 1)
        if let weight { precondition(weight.shape == [d], "layerNorm: weight \(weight.shape) must be [\(d)]") }
        if let bias { precondition(bias.shape == [d], "layerNorm: bias \(bias.shape) must be [\(d)]") }
        // x̂ is kept only for the backward pass; otherwise the output row holds it meanwhile.
        let keepsNormalized = willRecord([x, weight, bias])
        var result = Tensor(uninitializedShape: x.shape)
        let normalized = Tensor(uninitializedShape: keepsNormalized ? x.shape : [0])
        let inverseDeviations = Tensor(uninitializedShape: [rows])
        let source = x.storage.base, target = result.storage.base
        let xhat = normalized.storage.base, rstd = inverseDeviations.storage.base
        let w = weight?.storage.base, b = bias?.storage.base
        let hats = keepsNormalized ? xhat : target  // x̂'s rows: their own, or the output's meanwhile
        Parallel.forRanges(rows, cost: d * 4) { range in
            // Four rows at a time: each row's sums in `FastMath4.sum`'s lanes and order (the same
            // bits as one row at a time), the four rows' dependency chains overlapping. A last
            // group of fewer rows repeats its last row in the spare places.
            for r in stride(from: range.lowerBound, to: range.upperBound, by: 4) {
                let group = Swift.min(4, range.upperBound - r)
                func rows(_ base: UnsafeMutablePointer<Float>) -> FastMath4.FourRows { FastMath4.fourRows(base, from: r, count: group, stride: d) }
                let means = FastMath4.sums(rows(source), d) / Float(d)
                for g in 0..<group {
                    let input = source + (r + g) * d, hat = hats + (r + g) * d, mean = means[g]
                    for j in 0..<d { hat[j] = input[j] - mean }
                }
                let normalizedRows = rows(hats)
                let variances = FastMath4.dots(normalizedRows, normalizedRows, d) / Float(d)
                for g in 0..<group {
                    let output = target + (r + g) * d, hat = hats + (r + g) * d
                    let inverse = 1 / (variances[g] + epsilon).squareRoot()
                    rstd[r + g] = inverse
                    for j in 0..<d { hat[j] *= inverse }
                    if let w, let b {
                        for j in 0..<d { output[j] = hat[j] * w[j] + b[j] }
                    } else {
                        for j in 0..<d { output[j] = hat[j] * (w?[j] ?? 1) + (b?[j] ?? 0) }
                    }
                }
            }
        }
        let weightValue = weight?.detached()
        record(&result, x, weight ?? Tensor(0), bias ?? Tensor(0)) { g, needs in
            // Re-derive the pointers from the captured tensors, which keeps them alive.
            let dy = g.storage.base, xhat = normalized.storage.base, rstd = inverseDeviations.storage.base
            var gradX: Tensor?
            if needs[0] {
                let grad = Tensor(uninitializedShape: normalized.shape)
                let dx = grad.storage.base
                let w = weightValue?.storage.base
                Parallel.forRanges(rows, cost: d * 4) { range in
                    // Four rows at a time, as in the forward pass (the same bits as one at a time).
                    for r in stride(from: range.lowerBound, to: range.upperBound, by: 4) {
                        let group = Swift.min(4, range.upperBound - r)
                        func rows(_ base: UnsafeMutablePointer<Float>) -> FastMath4.FourRows { FastMath4.fourRows(base, from: r, count: group, stride: d) }
                        // dx̂ = g·w;  dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ ⊙ x̂))
                        // out ← g·w first, then the two row reductions over it.
                        for g in 0..<group {
                            let gy = dy + (r + g) * d, out = dx + (r + g) * d
                            if let w { for j in 0..<d { out[j] = gy[j] * w[j] } } else { out.update(from: gy, count: d) }
                        }
                        let meanSums = FastMath4.sums(rows(dx), d) / Float(d)
                        let meanDots = FastMath4.dots(rows(dx), rows(xhat), d) / Float(d)
                        for g in 0..<group {
                            let hat = xhat + (r + g) * d, out = dx + (r + g) * d
                            let (scale, meanSum, meanDot) = (rstd[r + g], meanSums[g], meanDots[g])
                            for j in 0..<d { out[j] = scale * (out[j] - meanSum - hat[j] * meanDot) }
                        }
                    }
                }
                gradX = grad
            }
            let gradW: Tensor? = needs[1] ? columnSum(rows: rows, d: d) { r, j in dy[r * d + j] * xhat[r * d + j] } : nil
            let gradB: Tensor? = needs[2] ? columnSum(rows: rows, d: d) { r, j in dy[r * d + j] } : nil
            return [gradX, gradW, gradB]
        }
        return result
    }

    /// RMS normalisation over the last axis: x / √(mean(x²) + ε) · weight (LLaMA's `RMSNorm`).
    ///
    /// Shapes: `[…, d]` → `[…, d]`.
    public static func rmsNorm(_ x: Tensor, weight: Tensor?, epsilon: Float) -> Tensor {
        let d = x.shape.last ?? 1
        let rows = x.count / Swift.max(d, 1)
        if let weight { precondition(weight.shape == [d], "rmsNorm: weight \(weight.shape) must be [\(d)]") }
        // x̂ is kept only for the backward pass.
        let keepsNormalized = willRecord([x, weight])
        var result = Tensor(uninitializedShape: x.shape)
        let normalized = Tensor(uninitializedShape: keepsNormalized ? x.shape : [0])
        let inverseRoots = Tensor(uninitializedShape: [rows])
        let source = x.storage.base, target = result.storage.base
        let xhat = normalized.storage.base, rrms = inverseRoots.storage.base
        let w = weight?.storage.base
        Parallel.forRanges(rows, cost: d * 3) { range in
            // Σx² runs in index order, as PyTorch's reference does on one row; four rows at a time
            // (one lane each) so the four dependency chains overlap — the same bits as one row at
            // a time. A last group of fewer rows repeats its last row in the spare lanes.
            for r in stride(from: range.lowerBound, to: range.upperBound, by: 4) {
                let group = Swift.min(4, range.upperBound - r)
                func row(_ g: Int) -> UnsafeMutablePointer<Float> { source + (r + Swift.min(g, group - 1)) * d }
                let (a, b, c, e) = (row(0), row(1), row(2), row(3))
                var squares = SIMD4<Float>()
                for j in 0..<d {
                    let v = SIMD4(a[j], b[j], c[j], e[j])
                    squares += v * v
                }
                for g in 0..<group {
                    let input = row(g), output = target + (r + g) * d
                    let inverse = 1 / (squares[g] / Float(d) + epsilon).squareRoot()
                    rrms[r + g] = inverse
                    if keepsNormalized {
                        let hat = xhat + (r + g) * d
                        for j in 0..<d { hat[j] = input[j] * inverse }
                    }
                    if let w {
                        for j in 0..<d { output[j] = (input[j] * inverse) * w[j] }
                    } else {
                        for j in 0..<d { output[j] = input[j] * inverse }
                    }
                }
            }
        }
        let weightValue = weight?.detached()
        record(&result, x, weight ?? Tensor(0)) { g, needs in
            let dy = g.storage.base, xhat = normalized.storage.base, rrms = inverseRoots.storage.base
            var gradX: Tensor?
            if needs[0] {
                let grad = Tensor(uninitializedShape: normalized.shape)
                let dx = grad.storage.base
                let w = weightValue?.storage.base
                Parallel.forRanges(rows, cost: d * 3) { range in
                    for r in range {
                        let gy = dy + r * d, hat = xhat + r * d, out = dx + r * d
                        // dx̂ = g·w;  dx = r · (dx̂ − x̂ · mean(dx̂ ⊙ x̂))
                        var dot: Float = 0
                        for j in 0..<d { dot += gy[j] * (w?[j] ?? 1) * hat[j] }
                        let meanDot = dot / Float(d)
                        for j in 0..<d { out[j] = rrms[r] * (gy[j] * (w?[j] ?? 1) - hat[j] * meanDot) }
                    }
                }
                gradX = grad
            }
            let gradW: Tensor? = needs[1] ? columnSum(rows: rows, d: d) { r, j in dy[r * d + j] * xhat[r * d + j] } : nil
            return [gradX, gradW]
        }
        return result
    }

    /// `[d]` with Σ over rows of `term(row, column)`.
    @inline(__always)
    private static func columnSum(rows: Int, d: Int, _ term: (Int, Int) -> Float) -> Tensor {
        let result = Tensor(repeating: 0, shape: [d])
        let target = result.storage.base
        for r in 0..<rows {
            for j in 0..<d { target[j] += term(r, j) }
        }
        return result
    }
}
