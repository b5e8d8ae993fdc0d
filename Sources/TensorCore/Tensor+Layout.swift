// Shape and layout operations: reshape, permute, slice, concatenate, stack, split.

extension Tensor {
    /// The same values with a new shape (no copy). One dimension may be −1 (inferred).
    public func reshaped(to newShape: [Int]) -> Tensor {
        var resolved = newShape
        if let inferred = newShape.firstIndex(of: -1) {
            let known = newShape.enumerated().filter { $0.offset != inferred }.reduce(1) { $0 * $1.element }
            precondition(known > 0 && count % known == 0, "reshaped(to: \(newShape)): cannot infer a dimension for \(count) values of shape \(shape)")
            resolved[inferred] = count / known
        }
        precondition(
            Tensor.elementCount(resolved) == count && resolved.allSatisfy { $0 >= 0 },
            "reshaped(to: \(newShape)): shape \(shape) has \(count) values")
        var result = Tensor(shape: resolved, storage: storage)
        let original = shape
        Tensor.record(&result, self) { g, _ in [Tensor(shape: original, storage: g.storage)] }
        return result
    }

    /// Inserts an axis of size 1 at `axis` (which may be `rank`).
    public func unsqueezed(at axis: Int) -> Tensor {
        let position = axis < 0 ? axis + rank + 1 : axis
        precondition(position >= 0 && position <= rank, "unsqueezed(at: \(axis)) out of range for shape \(shape)")
        var newShape = shape
        newShape.insert(1, at: position)
        return reshaped(to: newShape)
    }

    /// Removes the axis `axis`, which must have size 1.
    public func squeezed(at axis: Int) -> Tensor {
        let position = normalizedAxis(axis)
        precondition(shape[position] == 1, "squeezed(at: \(axis)): axis has size \(shape[position]), shape \(shape)")
        var newShape = shape
        newShape.remove(at: position)
        return reshaped(to: newShape)
    }

    /// Axes reordered: result axis `i` is input axis `permutation[i]` (a copy).
    public func permuted(_ permutation: [Int]) -> Tensor {
        let permutation = permutation.map(normalizedAxis)
        precondition(
            permutation.count == rank && Set(permutation).count == rank,
            "permuted(\(permutation)): not a permutation of the \(rank) axes of \(shape)")
        if permutation == Array(0..<rank) { return self }
        var result = permutedKernel(permutation)
        var inverse = [Int](repeating: 0, count: rank)
        for (i, axis) in permutation.enumerated() { inverse[axis] = i }
        Tensor.record(&result, self) { g, _ in [g.permutedKernel(inverse)] }
        return result
    }

    func permutedKernel(_ permutation: [Int]) -> Tensor {
        let newShape = permutation.map { shape[$0] }
        let inputStrides = Broadcast.contiguousStrides(shape)
        let strides = permutation.map { inputStrides[$0] }
        let result = Tensor(uninitializedShape: newShape)
        let source = storage.base, target = result.storage.base
        Broadcast.forEachRow(target: newShape, stridesA: strides, stridesB: strides) { o, i, _, length, stride, _ in
            if stride == 1 {
                (target + o).update(from: source + i, count: length)
            } else {
                for j in 0..<length { target[o + j] = source[i + j * stride] }
            }
        }
        return result
    }

    /// The last two axes swapped (a copy). For a rank-2 tensor, the matrix transpose.
    public func transposed() -> Tensor {
        precondition(rank >= 2, "transposed(): needs rank ≥ 2, shape is \(shape)")
        var permutation = Array(0..<rank)
        permutation.swapAt(rank - 1, rank - 2)
        return permuted(permutation)
    }

    /// Two axes swapped (a copy).
    public func transposed(_ first: Int, _ second: Int) -> Tensor {
        var permutation = Array(0..<rank)
        permutation.swapAt(normalizedAxis(first), normalizedAxis(second))
        return permuted(permutation)
    }

    /// The elements with index in `range` along `axis` (a copy).
    public func sliced(alongAxis axis: Int, _ range: Range<Int>) -> Tensor {
        let axis = normalizedAxis(axis)
        precondition(
            range.lowerBound >= 0 && range.upperBound <= shape[axis],
            "sliced(alongAxis: \(axis), \(range)): out of bounds for shape \(shape)")
        let (outer, n, inner) = Tensor.split(shape, around: axis)
        var newShape = shape
        newShape[axis] = range.count
        var result = Tensor(uninitializedShape: newShape)
        let rowLength = range.count * inner
        let source = storage.base, target = result.storage.base
        for o in 0..<outer {
            (target + o * rowLength).update(from: source + (o * n + range.lowerBound) * inner, count: rowLength)
        }
        let inputShape = shape
        // The pullback adds the slice's gradient into its place in the input's gradient itself (the
        // input's node runs after every node that reads it), instead of returning a full-size
        // gradient that is zero outside the slice.
        if let parent = node {
            Tensor.record(&result, self) { g, _ in
                parent.accumulate(slice: g, of: inputShape, outer: outer, n: n, inner: inner, range: range)
                return [nil]
            }
        }
        return result
    }

    /// `tensors` joined along `axis`; all other dimensions must agree.
    public static func concatenated(_ tensors: [Tensor], alongAxis axis: Int) -> Tensor {
        precondition(!tensors.isEmpty, "concatenated: no tensors")
        let first = tensors[0]
        let axis = first.normalizedAxis(axis)
        for tensor in tensors {
            precondition(
                tensor.rank == first.rank
                    && tensor.shape.enumerated().allSatisfy { $0.offset == axis || $0.element == first.shape[$0.offset] },
                "concatenated(alongAxis: \(axis)): shapes \(tensors.map(\.shape)) differ off the axis")
        }
        let sizes = tensors.map { $0.shape[axis] }
        let total = sizes.reduce(0, +)
        var newShape = first.shape
        newShape[axis] = total
        let outer = first.shape[..<axis].reduce(1, *)
        let inner = first.shape[(axis + 1)...].reduce(1, *)
        var result = Tensor(uninitializedShape: newShape)
        let target = result.storage.base
        var start = 0
        for (tensor, size) in zip(tensors, sizes) {
            let source = tensor.storage.base
            for o in 0..<outer {
                (target + (o * total + start) * inner).update(from: source + o * size * inner, count: size * inner)
            }
            start += size
        }
        Tensor.record(&result, inputs: tensors) { g, needs in
            var grads: [Tensor?] = []
            var start = 0
            for (size, need) in zip(sizes, needs) {
                grads.append(need ? g.sliced(alongAxis: axis, start..<(start + size)) : nil)
                start += size
            }
            return grads
        }
        return result
    }

    /// `tensors` (all the same shape) stacked along a new axis `axis`.
    public static func stacked(_ tensors: [Tensor], alongAxis axis: Int = 0) -> Tensor {
        precondition(!tensors.isEmpty, "stacked: no tensors")
        precondition(tensors.allSatisfy { $0.shape == tensors[0].shape }, "stacked: shapes \(tensors.map(\.shape)) differ")
        return concatenated(tensors.map { $0.unsqueezed(at: axis) }, alongAxis: axis)
    }

    /// Pieces of the given sizes along `axis`; the sizes must add up to the axis length.
    public func split(sizes: [Int], alongAxis axis: Int) -> [Tensor] {
        let axis = normalizedAxis(axis)
        precondition(sizes.reduce(0, +) == shape[axis], "split(sizes: \(sizes)): axis \(axis) of \(shape) has length \(shape[axis])")
        var start = 0
        return sizes.map { size in
            defer { start += size }
            return sliced(alongAxis: axis, start..<(start + size))
        }
    }

    /// `count` equal pieces along `axis`.
    public func split(into count: Int, alongAxis axis: Int) -> [Tensor] {
        let length = size(axis)
        precondition(count > 0 && length % count == 0, "split(into: \(count)): axis length \(length) is not divisible")
        return split(sizes: Array(repeating: length / count, count: count), alongAxis: axis)
    }
}

extension Tensor {
    /// The rows of a rank-2 tensor `[R, C]` as R arrays of C scalars (answer logits, one per request).
    public func scalarRows() -> [[Float]] {
        precondition(rank == 2, "scalarRows: expected a rank-2 tensor, got \(shape)")
        let c = shape[1], values = scalars
        return (0..<shape[0]).map { Array(values[($0 * c)..<(($0 + 1) * c)]) }
    }
}
