// Selection by index (index-select, gather, embedding lookup) and by mask (where, masked fill).
// Token pruning selects subsets of tokens, so each selection scatters its gradient back.

extension Tensor {
    /// The slices at `indices` along `axis`, in the given order (repeats allowed). The result has
    /// `indices.count` in place of the axis length. The gradient scatter-adds back.
    ///
    /// Shapes: `[a…, n, b…]` → `[a…, indices.count, b…]`.
    public func indexSelect(_ indices: [Int], alongAxis axis: Int) -> Tensor {
        let axis = normalizedAxis(axis)
        let (outer, n, inner) = Tensor.split(shape, around: axis)
        for index in indices {
            precondition(index >= 0 && index < n, "indexSelect: index \(index) out of range 0..<\(n) along axis \(axis) of shape \(shape)")
        }
        var newShape = shape
        newShape[axis] = indices.count
        var result = Tensor(uninitializedShape: newShape)
        let source = storage.base, target = result.storage.base
        let m = indices.count
        for o in 0..<outer {
            for (j, index) in indices.enumerated() {
                (target + (o * m + j) * inner).update(from: source + (o * n + index) * inner, count: inner)
            }
        }
        let inputShape = shape
        Tensor.record(&result, self) { g, _ in
            let grad = Tensor(repeating: 0, shape: inputShape)
            let source = g.storage.base, target = grad.storage.base
            for o in 0..<outer {
                for (j, index) in indices.enumerated() {
                    let row = target + (o * n + index) * inner, incoming = source + (o * m + j) * inner
                    for k in 0..<inner { row[k] += incoming[k] }
                }
            }
            return [grad]
        }
        return result
    }

    /// PyTorch's `gather`: `out[a, j, b] = self[a, indices[a, j, b], b]` along `axis`.
    ///
    /// `indices` is row-major with shape `indexShape`, which equals `shape` except along `axis`.
    /// The gradient scatter-adds back.
    public func gathered(alongAxis axis: Int, indices: [Int], indexShape: [Int]) -> Tensor {
        let axis = normalizedAxis(axis)
        precondition(
            indexShape.count == rank && indexShape.enumerated().allSatisfy { $0.offset == axis || $0.element == shape[$0.offset] },
            "gathered: index shape \(indexShape) must equal \(shape) except along axis \(axis)")
        precondition(indices.count == Tensor.elementCount(indexShape), "gathered: \(indices.count) indices for index shape \(indexShape)")
        let (outer, n, inner) = Tensor.split(shape, around: axis)
        let m = indexShape[axis]
        for index in indices { precondition(index >= 0 && index < n, "gathered: index \(index) out of range 0..<\(n) along axis \(axis)") }
        var result = Tensor(uninitializedShape: indexShape)
        let source = storage.base, target = result.storage.base
        for o in 0..<outer {
            for j in 0..<m {
                for k in 0..<inner {
                    let position = (o * m + j) * inner + k
                    target[position] = source[(o * n + indices[position]) * inner + k]
                }
            }
        }
        let inputShape = shape
        Tensor.record(&result, self) { g, _ in
            let grad = Tensor(repeating: 0, shape: inputShape)
            let source = g.storage.base, target = grad.storage.base
            for o in 0..<outer {
                for j in 0..<m {
                    for k in 0..<inner {
                        let position = (o * m + j) * inner + k
                        target[(o * n + indices[position]) * inner + k] += source[position]
                    }
                }
            }
            return [grad]
        }
        return result
    }

    /// Embedding lookup: rows of `table` (`[vocabulary, d]`) at `indices`, shaped `indexShape + [d]`.
    public static func embedding(_ table: Tensor, indices: [Int], indexShape: [Int]) -> Tensor {
        precondition(table.rank == 2, "embedding: table must be [vocabulary, d], got \(table.shape)")
        precondition(indices.count == elementCount(indexShape), "embedding: \(indices.count) indices for shape \(indexShape)")
        return table.indexSelect(indices, alongAxis: 0).reshaped(to: indexShape + [table.shape[1]])
    }

    /// Element-wise choice: `a` where `condition` is non-zero, else `b`. All three broadcast to a
    /// common shape; the condition is a constant (no gradient).
    public static func `where`(_ condition: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
        let shape = Broadcast.shapeOrFail(Broadcast.shapeOrFail(condition.shape, a.shape, "where"), b.shape, "where")
        let mask = condition.expandedKernel(to: shape)
        let left = a.expanded(to: shape), right = b.expanded(to: shape)
        var result = zipped(mask, left, right) { c, x, y in c != 0 ? x : y }
        record(&result, left, right) { g, needs in
            [needs[0] ? zipped(g, mask) { g, c in c != 0 ? g : 0 } : nil,
             needs[1] ? zipped(g, mask) { g, c in c != 0 ? 0 : g } : nil]
        }
        return result
    }

    /// `value` where `mask` (broadcast to this shape) is non-zero; the gradient there is 0.
    public func maskedFill(_ mask: Tensor, with value: Float) -> Tensor {
        precondition(Broadcast.shape(mask.shape, shape) == shape, "maskedFill: mask \(mask.shape) does not broadcast to \(shape)")
        let expandedMask = mask.expandedKernel(to: shape)
        var result = Tensor.zipped(self, expandedMask) { x, m in m != 0 ? value : x }
        Tensor.record(&result, self) { g, _ in [Tensor.zipped(g, expandedMask) { g, m in m != 0 ? 0 : g }] }
        return result
    }
}

/// The indices of the `count` largest of `values`, ascending by index; ties go to the lower
/// index, and a count outside 0…`values.count` is clamped to it. The top-k rule of every
/// score-based pruner (FastV's attention row, the CLS attention, a policy's keep logits).
public func largestIndices(_ values: [Float], count: Int) -> [Int] {
    let count = max(0, min(count, values.count))
    return values.indices.sorted { (values[$0], $1) > (values[$1], $0) }.prefix(count).sorted()
}
