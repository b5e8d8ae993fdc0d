/// NumPy broadcasting rules: shapes are aligned at the trailing axis; each pair of sizes must be
/// equal or one of them 1.
enum Broadcast {
    /// The broadcast shape of `a` and `b`, or nil when they are incompatible.
    static func shape(_ a: [Int], _ b: [Int]) -> [Int]? {
        let rank = max(a.count, b.count)
        var result = [Int](repeating: 1, count: rank)
        for i in 0..<rank {
            let x = i < rank - a.count ? 1 : a[i - (rank - a.count)]
            let y = i < rank - b.count ? 1 : b[i - (rank - b.count)]
            guard x == y || x == 1 || y == 1 else { return nil }
            result[i] = x == 1 ? y : x
        }
        return result
    }

    static func shapeOrFail(_ a: [Int], _ b: [Int], _ operation: String) -> [Int] {
        guard let result = shape(a, b) else {
            preconditionFailure("\(operation): shapes \(a) and \(b) cannot be broadcast together")
        }
        return result
    }

    /// Whether `shape`, its leading 1s dropped, is the trailing part of `target`: broadcast to
    /// `target`, its values repeat whole, one copy after another.
    static func tiles(_ shape: [Int], _ target: [Int]) -> Bool {
        let core = shape.drop { $0 == 1 }
        return core.count <= target.count && target.suffix(core.count).elementsEqual(core)
    }

    /// Element strides of a contiguous `shape` viewed as `target` (0 along broadcast axes).
    static func strides(of shape: [Int], in target: [Int]) -> [Int] {
        let offset = target.count - shape.count
        precondition(offset >= 0, "broadcast: shape \(shape) has more axes than \(target)")
        var result = [Int](repeating: 0, count: target.count)
        var step = 1
        for i in Swift.stride(from: shape.count - 1, through: 0, by: -1) {
            result[i + offset] = shape[i] == 1 && target[i + offset] != 1 ? 0 : step
            step *= shape[i]
        }
        return result
    }

    /// Contiguous strides of a row-major shape.
    static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var result = [Int](repeating: 1, count: shape.count)
        var step = 1
        for i in Swift.stride(from: shape.count - 1, through: 0, by: -1) {
            result[i] = step
            step *= shape[i]
        }
        return result
    }

    /// Calls `body(outputOffset, aOffset, bOffset, length, aStride, bStride)` for each run along the
    /// last axis of `target`, where `a` and `b` are read with the given broadcast strides.
    @inline(__always)
    static func forEachRow(
        target: [Int], stridesA: [Int], stridesB: [Int],
        _ body: (_ output: Int, _ a: Int, _ b: Int, _ length: Int, _ strideA: Int, _ strideB: Int) -> Void
    ) {
        let rank = target.count
        if rank == 0 {
            body(0, 0, 0, 1, 0, 0)
            return
        }
        let length = target[rank - 1]
        let rows = target.dropLast().reduce(1, *)
        guard length > 0, rows > 0 else { return }
        var index = [Int](repeating: 0, count: max(rank - 1, 0))
        var offsetA = 0, offsetB = 0
        for row in 0..<rows {
            body(row * length, offsetA, offsetB, length, stridesA[rank - 1], stridesB[rank - 1])
            // Advance the odometer over the leading axes.
            var axis = rank - 2
            while axis >= 0 {
                index[axis] += 1
                offsetA += stridesA[axis]
                offsetB += stridesB[axis]
                if index[axis] < target[axis] { break }
                offsetA -= stridesA[axis] * target[axis]
                offsetB -= stridesB[axis] * target[axis]
                index[axis] = 0
                axis -= 1
            }
        }
    }
}
