// Reductions (sum, mean, max, variance) over axes, broadcasting expansion, and their gradients.

extension Tensor {
    /// Views `shape` as `[outer, n, inner]` around `axis`.
    static func split(_ shape: [Int], around axis: Int) -> (outer: Int, n: Int, inner: Int) {
        (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }

    /// Sum over the consecutive axes `first...last` (no tape). Output keeps those axes as size 1.
    private func summedKernel(first: Int, last: Int) -> Tensor {
        let outer = shape[..<first].reduce(1, *)
        let n = shape[first...last].reduce(1, *)
        let inner = shape[(last + 1)...].reduce(1, *)
        var outShape = shape
        for axis in first...last { outShape[axis] = 1 }
        let result = Tensor(repeating: 0, shape: outShape)
        let source = storage.base, target = result.storage.base
        if inner == 1 {
            Parallel.forRanges(outer, cost: n) { range in
                for o in range {
                    var total: Float = 0
                    let row = source + o * n
                    for j in 0..<n { total += row[j] }
                    target[o] = total
                }
            }
        } else {
            Parallel.forRanges(outer, cost: n * inner) { range in
                for o in range {
                    let out = target + o * inner
                    for j in 0..<n {
                        let row = source + (o * n + j) * inner
                        for k in 0..<inner { out[k] += row[k] }
                    }
                }
            }
        }
        return result
    }

    /// Sum over `axes` (negative axes count from the end). Without `keepingDimensions` the reduced
    /// axes are removed. `[]` for axes means no reduction.
    public func sum(alongAxes axes: [Int], keepingDimensions: Bool = false) -> Tensor {
        let resolved = Array(Set(axes.map(normalizedAxis))).sorted()
        guard !resolved.isEmpty else { return self }
        var value = self.detached()
        // Reduce runs of consecutive axes in one pass, from the last run to the first.
        var runs: [(Int, Int)] = []
        for axis in resolved {
            if let last = runs.last, last.1 + 1 == axis { runs[runs.count - 1].1 = axis } else { runs.append((axis, axis)) }
        }
        for (first, last) in runs.reversed() { value = value.summedKernel(first: first, last: last) }
        let keptShape = value.shape
        let finalShape = keepingDimensions ? keptShape : shape.enumerated().filter { !resolved.contains($0.offset) }.map(\.element)
        var result = Tensor(shape: finalShape, storage: value.storage)
        let inputShape = shape
        Tensor.record(&result, self) { g, _ in
            [Tensor(shape: keptShape, storage: g.storage).expandedKernel(to: inputShape)]
        }
        return result
    }

    /// Sum along `axis` (negative counts from the end), dropping it unless `keepingDimensions`.
    public func sum(alongAxis axis: Int, keepingDimensions: Bool = false) -> Tensor {
        sum(alongAxes: [axis], keepingDimensions: keepingDimensions)
    }

    /// Sum of all elements, as a scalar tensor.
    public func sum() -> Tensor { sum(alongAxes: Array(0..<rank)) }

    /// Mean over `axes`.
    public func mean(alongAxes axes: [Int], keepingDimensions: Bool = false) -> Tensor {
        let n = Set(axes.map(normalizedAxis)).reduce(1) { $0 * shape[$1] }
        return sum(alongAxes: axes, keepingDimensions: keepingDimensions) * (1 / Float(n))
    }

    /// Mean along `axis`, dropping it unless `keepingDimensions`.
    public func mean(alongAxis axis: Int, keepingDimensions: Bool = false) -> Tensor {
        mean(alongAxes: [axis], keepingDimensions: keepingDimensions)
    }

    /// Mean of all elements.
    public func mean() -> Tensor { mean(alongAxes: Array(0..<rank)) }

    /// Variance over `axes`: Σ(x − mean)² / (n − correction). `correction` 0 is the population
    /// variance (NumPy's default), 1 the unbiased estimate (PyTorch's default).
    public func variance(alongAxes axes: [Int], keepingDimensions: Bool = false, correction: Int = 0) -> Tensor {
        let n = Set(axes.map(normalizedAxis)).reduce(1) { $0 * shape[$1] }
        precondition(n - correction > 0, "variance: \(n) elements with correction \(correction)")
        let centered = self - mean(alongAxes: axes, keepingDimensions: true)
        return centered.squared().sum(alongAxes: axes, keepingDimensions: keepingDimensions) * (1 / Float(n - correction))
    }

    /// Maximum along one axis. The gradient flows to the first position holding the maximum.
    public func max(alongAxis axis: Int, keepingDimensions: Bool = false) -> Tensor {
        let axis = normalizedAxis(axis)
        let (outer, n, inner) = Tensor.split(shape, around: axis)
        precondition(n > 0, "max: axis \(axis) of shape \(shape) is empty")
        var keptShape = shape
        keptShape[axis] = 1
        let result = Tensor(uninitializedShape: keptShape)
        var argmax = [Int](repeating: 0, count: outer * inner)
        let source = storage.base, target = result.storage.base
        argmax.withUnsafeMutableBufferPointer { indices in
            for o in 0..<outer {
                for k in 0..<inner {
                    var best = source[o * n * inner + k]
                    var bestIndex = 0
                    for j in 1..<Swift.max(n, 1) {
                        let value = source[(o * n + j) * inner + k]
                        if value > best || (best.isNaN == false && value.isNaN) { best = value; bestIndex = j }
                    }
                    target[o * inner + k] = best
                    indices[o * inner + k] = bestIndex
                }
            }
        }
        var finalShape = shape
        if keepingDimensions { finalShape[axis] = 1 } else { finalShape.remove(at: axis) }
        var output = Tensor(shape: finalShape, storage: result.storage)
        let inputShape = shape
        Tensor.record(&output, self) { g, _ in
            let grad = Tensor(repeating: 0, shape: inputShape)
            let source = g.storage.base, target = grad.storage.base
            for o in 0..<outer {
                for k in 0..<inner {
                    target[(o * n + argmax[o * inner + k]) * inner + k] = source[o * inner + k]
                }
            }
            return [grad]
        }
        return output
    }

    /// Maximum over several axes (reduced one after another).
    public func max(alongAxes axes: [Int], keepingDimensions: Bool = false) -> Tensor {
        var value = self
        for axis in Set(axes.map(normalizedAxis)).sorted(by: >) {
            value = value.max(alongAxis: axis, keepingDimensions: true)
        }
        guard !keepingDimensions else { return value }
        let resolved = Set(axes.map(normalizedAxis))
        return value.reshaped(to: shape.enumerated().filter { !resolved.contains($0.offset) }.map(\.element))
    }

    /// Largest element, as a scalar tensor.
    public func max() -> Tensor { reshaped(to: [count]).max(alongAxis: 0) }

    // MARK: Broadcasting helpers

    /// Sum of a broadcast result back to `target` (the shape an operand had before broadcasting).
    func reduced(toShape target: [Int]) -> Tensor {
        if shape == target { return self }
        let offset = rank - target.count
        precondition(offset >= 0, "reduced(toShape:): \(shape) cannot reduce to \(target)")
        var axes = Array(0..<offset)
        for (i, size) in target.enumerated() where size == 1 && shape[i + offset] != 1 { axes.append(i + offset) }
        return sum(alongAxes: axes, keepingDimensions: true).reshaped(to: target)
    }

    /// Copy broadcast to `target` (no tape).
    func expandedKernel(to target: [Int]) -> Tensor {
        if shape == target { return self.detached() }
        let result = Tensor(uninitializedShape: target)
        let source = storage.base, output = result.storage.base
        let strides = Broadcast.strides(of: shape, in: target)
        Broadcast.forEachRow(target: target, stridesA: strides, stridesB: strides) { o, i, _, length, stride, _ in
            if stride == 1 {
                (output + o).update(from: source + i, count: length)
            } else {
                (output + o).update(repeating: source[i], count: length)
            }
        }
        return result
    }

    /// This tensor broadcast to `shape` (a copy); the gradient sums over the broadcast axes.
    public func expanded(to target: [Int]) -> Tensor {
        precondition(Broadcast.shape(shape, target) == target, "expanded(to:): \(shape) does not broadcast to \(target)")
        var result = expandedKernel(to: target)
        let source = shape
        Tensor.record(&result, self) { g, _ in [g.reduced(toShape: source)] }
        return result
    }
}
