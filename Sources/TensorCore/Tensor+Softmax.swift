import Foundation

extension Tensor {
    /// Softmax along `axis`: exp(xᵢ − max) / Σ exp(xⱼ − max). With `additiveMask` (broadcast to
    /// this shape; 0 to keep, −∞ or a large negative value to drop) the mask is added first. A row
    /// whose entries are all −∞ gives zeros rather than NaN.
    public func softmax(alongAxis axis: Int = -1, additiveMask: Tensor? = nil) -> Tensor {
        let logits = additiveMask.map { self + $0 } ?? self
        return logits.softmaxKernel(alongAxis: axis, logarithm: false)
    }

    /// log-softmax along `axis`: xᵢ − max − log Σ exp(xⱼ − max), with an optional additive mask.
    public func logSoftmax(alongAxis axis: Int = -1, additiveMask: Tensor? = nil) -> Tensor {
        let logits = additiveMask.map { self + $0 } ?? self
        return logits.softmaxKernel(alongAxis: axis, logarithm: true)
    }

    private func softmaxKernel(alongAxis axis: Int, logarithm: Bool) -> Tensor {
        let axis = normalizedAxis(axis)
        let (outer, n, inner) = Tensor.split(shape, around: axis)
        var result = Tensor(uninitializedShape: shape)
        let source = storage.base, target = result.storage.base
        Parallel.forRanges(outer * inner, cost: n * 8) { range in
            for row in range {
                let o = row / inner, k = row % inner
                let base = o * n * inner + k
                var maximum = -Float.infinity
                for j in 0..<n { maximum = Swift.max(maximum, source[base + j * inner]) }
                if maximum == -.infinity {
                    for j in 0..<n { target[base + j * inner] = logarithm ? -.infinity : 0 }
                    continue
                }
                var total: Float = 0
                for j in 0..<n {
                    let e = FastMath.exp(source[base + j * inner] - maximum)
                    total += e
                    if !logarithm { target[base + j * inner] = e }
                }
                if logarithm {
                    let shift = maximum + Foundation.log(total)
                    for j in 0..<n { target[base + j * inner] = source[base + j * inner] - shift }
                } else {
                    let scale = 1 / total
                    for j in 0..<n { target[base + j * inner] *= scale }
                }
            }
        }
        let output = result.detached()
        Tensor.record(&result, self) { g, _ in
            let grad = Tensor(uninitializedShape: output.shape)
            let y = output.storage.base, dy = g.storage.base, dx = grad.storage.base
            Parallel.forRanges(outer * inner, cost: n * 4) { range in
                for row in range {
                    let o = row / inner, k = row % inner
                    let base = o * n * inner + k
                    if logarithm {
                        // dx = g − softmax · Σ g
                        var total: Float = 0
                        for j in 0..<n { total += dy[base + j * inner] }
                        for j in 0..<n {
                            let p = FastMath.exp(y[base + j * inner])
                            dx[base + j * inner] = dy[base + j * inner] - p * total
                        }
                    } else {
                        // dx = y ⊙ (g − Σ g·y)
                        var dot: Float = 0
                        for j in 0..<n { dot += dy[base + j * inner] * y[base + j * inner] }
                        for j in 0..<n { dx[base + j * inner] = y[base + j * inner] * (dy[base + j * inner] - dot) }
                    }
                }
            }
            return [grad]
        }
        return result
    }
}
