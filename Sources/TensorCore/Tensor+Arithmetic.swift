// Element-wise arithmetic with NumPy broadcasting, and scalar arithmetic, each with its gradient.

extension Tensor {
    // MARK: Kernels (no tape)

    /// `f` applied to every element.
    @inline(__always)
    func mapped(cost: Int = 1, _ f: (Float) -> Float) -> Tensor {
        let result = Tensor(uninitializedShape: shape)
        let source = storage.base, target = result.storage.base
        Parallel.forRanges(count, cost: cost) { range in
            for i in range { target[i] = f(source[i]) }
        }
        return result
    }

    /// `f` applied to corresponding elements of two tensors of the same shape.
    @inline(__always)
    static func zipped(_ a: Tensor, _ b: Tensor, cost: Int = 1, _ f: (Float, Float) -> Float) -> Tensor {
        precondition(a.shape == b.shape, "element-wise op: shapes \(a.shape) and \(b.shape) differ")
        let result = Tensor(uninitializedShape: a.shape)
        let x = a.storage.base, y = b.storage.base, target = result.storage.base
        Parallel.forRanges(a.count, cost: cost) { range in
            for i in range { target[i] = f(x[i], y[i]) }
        }
        return result
    }

    /// `f` applied to corresponding elements of three tensors of the same shape.
    @inline(__always)
    static func zipped(_ a: Tensor, _ b: Tensor, _ c: Tensor, _ f: (Float, Float, Float) -> Float) -> Tensor {
        precondition(a.shape == b.shape && b.shape == c.shape, "element-wise op: shapes \(a.shape), \(b.shape), \(c.shape) differ")
        let result = Tensor(uninitializedShape: a.shape)
        let x = a.storage.base, y = b.storage.base, z = c.storage.base, target = result.storage.base
        Parallel.forRanges(a.count) { range in
            for i in range { target[i] = f(x[i], y[i], z[i]) }
        }
        return result
    }

    /// `f` over the broadcast of `a` and `b`.
    @inline(__always)
    static func broadcasted(_ a: Tensor, _ b: Tensor, _ name: String, _ f: (Float, Float) -> Float) -> Tensor {
        if a.shape == b.shape { return zipped(a, b, f) }
        let shape = Broadcast.shapeOrFail(a.shape, b.shape, name)
        let result = Tensor(uninitializedShape: shape)
        let x = a.storage.base, y = b.storage.base, target = result.storage.base
        if b.count == 1 && a.count == result.count {
            let scalar = y[0]
            Parallel.forRanges(a.count) { range in
                for i in range { target[i] = f(x[i], scalar) }
            }
            return result
        }
        if a.count == 1 && b.count == result.count {
            let scalar = x[0]
            Parallel.forRanges(b.count) { range in
                for i in range { target[i] = f(scalar, y[i]) }
            }
            return result
        }
        // One operand repeated whole along the leading axes (a bias row, a table of positions):
        // contiguous blocks of its size, on the caller (cost 1: the loop inlined with `f` and
        // vectorised, where a worker would call `f` per element).
        let bTiles = a.count == result.count && b.count > 0 && Broadcast.tiles(b.shape, shape)
        if bTiles || (b.count == result.count && a.count > 0 && Broadcast.tiles(a.shape, shape)) {
            let tile = bTiles ? b.count : a.count
            Parallel.forRanges(result.count / tile) { range in
                for block in range {
                    let o = block * tile
                    if bTiles {
                        for j in 0..<tile { target[o + j] = f(x[o + j], y[j]) }
                    } else {
                        for j in 0..<tile { target[o + j] = f(x[j], y[o + j]) }
                    }
                }
            }
            return result
        }
        let stridesA = Broadcast.strides(of: a.shape, in: shape)
        let stridesB = Broadcast.strides(of: b.shape, in: shape)
        Broadcast.forEachRow(target: shape, stridesA: stridesA, stridesB: stridesB) { o, ia, ib, length, sa, sb in
            if sa == 1 && sb == 1 {
                for j in 0..<length { target[o + j] = f(x[ia + j], y[ib + j]) }
            } else if sa == 1 && sb == 0 {
                let scalar = y[ib]
                for j in 0..<length { target[o + j] = f(x[ia + j], scalar) }
            } else if sa == 0 && sb == 1 {
                let scalar = x[ia]
                for j in 0..<length { target[o + j] = f(scalar, y[ib + j]) }
            } else {
                for j in 0..<length { target[o + j] = f(x[ia + j * sa], y[ib + j * sb]) }
            }
        }
        return result
    }

    /// Adds `other` (same shape) into this tensor's values in place; detaches from the tape.
    public mutating func addInPlace(_ other: Tensor) {
        precondition(shape == other.shape, "addInPlace: shapes \(shape) and \(other.shape) differ")
        makeUniqueForWriting()
        let target = storage.base, source = other.storage.base
        Parallel.forRanges(count) { range in
            for i in range { target[i] += source[i] }
        }
    }

    /// Multiplies every value by `factor` in place; detaches from the tape.
    public mutating func scaleInPlace(by factor: Float) {
        makeUniqueForWriting()
        let target = storage.base
        for i in 0..<count { target[i] *= factor }
    }

    // MARK: Differentiable binary operations

    /// Element-wise sum with NumPy broadcasting.
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        var result = broadcasted(a, b, "+") { $0 + $1 }
        let (shapeA, shapeB) = (a.shape, b.shape)
        record(&result, a, b) { g, needs in
            [needs[0] ? g.reduced(toShape: shapeA) : nil, needs[1] ? g.reduced(toShape: shapeB) : nil]
        }
        return result
    }

    /// Element-wise difference with broadcasting.
    public static func - (a: Tensor, b: Tensor) -> Tensor {
        var result = broadcasted(a, b, "-") { $0 - $1 }
        let (shapeA, shapeB) = (a.shape, b.shape)
        record(&result, a, b) { g, needs in
            [needs[0] ? g.reduced(toShape: shapeA) : nil,
             needs[1] ? g.reduced(toShape: shapeB).mapped { -$0 } : nil]
        }
        return result
    }

    /// Element-wise product with broadcasting.
    public static func * (a: Tensor, b: Tensor) -> Tensor {
        var result = broadcasted(a, b, "*") { $0 * $1 }
        let (valueA, valueB) = (a.detached(), b.detached())
        record(&result, a, b) { g, needs in
            [needs[0] ? broadcasted(g, valueB, "*") { $0 * $1 }.reduced(toShape: valueA.shape) : nil,
             needs[1] ? broadcasted(g, valueA, "*") { $0 * $1 }.reduced(toShape: valueB.shape) : nil]
        }
        return result
    }

    /// Element-wise quotient with broadcasting.
    public static func / (a: Tensor, b: Tensor) -> Tensor {
        var result = broadcasted(a, b, "/") { $0 / $1 }
        let (valueA, valueB) = (a.detached(), b.detached())
        let quotient = result.detached()
        record(&result, a, b) { g, needs in
            [needs[0] ? broadcasted(g, valueB, "/") { $0 / $1 }.reduced(toShape: valueA.shape) : nil,
             // d(a/b)/db = −(a/b)/b
             needs[1] ? broadcasted(zipped(g, quotient) { -$0 * $1 }, valueB, "/") { $0 / $1 }
                .reduced(toShape: valueB.shape) : nil]
        }
        return result
    }

    public static prefix func - (x: Tensor) -> Tensor {
        var result = x.mapped { -$0 }
        record(&result, x) { g, _ in [g.mapped { -$0 }] }
        return result
    }

    // MARK: Scalar operations

    /// Adds a scalar.
    public static func + (x: Tensor, s: Float) -> Tensor {
        var result = x.mapped { $0 + s }
        record(&result, x) { g, _ in [g] }
        return result
    }

    /// Adds a scalar.
    public static func + (s: Float, x: Tensor) -> Tensor { x + s }

    /// Subtracts a scalar.
    public static func - (x: Tensor, s: Float) -> Tensor { x + (-s) }

    /// A scalar minus each element.
    public static func - (s: Float, x: Tensor) -> Tensor {
        var result = x.mapped { s - $0 }
        record(&result, x) { g, _ in [g.mapped { -$0 }] }
        return result
    }

    /// Multiplies by a scalar.
    public static func * (x: Tensor, s: Float) -> Tensor {
        var result = x.mapped { $0 * s }
        record(&result, x) { g, _ in [g.mapped { $0 * s }] }
        return result
    }

    /// Multiplies by a scalar.
    public static func * (s: Float, x: Tensor) -> Tensor { x * s }

    /// Divides by a scalar.
    public static func / (x: Tensor, s: Float) -> Tensor { x * (1 / s) }

    /// A scalar divided by each element.
    public static func / (s: Float, x: Tensor) -> Tensor {
        var result = x.mapped { s / $0 }
        let value = x.detached()
        record(&result, x) { g, _ in [zipped(g, value) { g, x in -g * s / (x * x) }] }
        return result
    }

    /// `lhs = lhs + rhs`.
    public static func += (lhs: inout Tensor, rhs: Tensor) { lhs = lhs + rhs }
    /// `lhs = lhs - rhs`.
    public static func -= (lhs: inout Tensor, rhs: Tensor) { lhs = lhs - rhs }
    /// `lhs = lhs * rhs`.
    public static func *= (lhs: inout Tensor, rhs: Tensor) { lhs = lhs * rhs }
    /// `lhs = lhs * rhs`.
    public static func *= (lhs: inout Tensor, rhs: Float) { lhs = lhs * rhs }
}
