import Foundation

/// The approximation used by `gelu`: PyTorch's `approximate="none"` (erf) or `"tanh"`.
public enum GELUApproximation: String, Sendable, Codable {
    case erf
    case tanh
}

extension Tensor {
    /// Records a unary op whose gradient is `g · derivative(x, y)` with `x` the input and `y` the output.
    @inline(__always)
    private static func unary(
        _ x: Tensor, cost: Int = 1, _ f: (Float) -> Float,
        derivative: @escaping (_ x: Float, _ y: Float) -> Float
    ) -> Tensor {
        var result = x.mapped(cost: cost, f)
        if x.node != nil && GradientTape.isRecording {
            let input = x.detached(), output = result.detached()
            record(&result, x) { g, _ in
                [zipped(g, input, output) { g, x, y in g * derivative(x, y) }]
            }
        }
        return result
    }

    /// eˣ element-wise.
    public func exp() -> Tensor { Tensor.unary(self, cost: 4, { Foundation.exp($0) }, derivative: { _, y in y }) }

    /// Natural logarithm element-wise.
    public func log() -> Tensor { Tensor.unary(self, cost: 4, { Foundation.log($0) }, derivative: { x, _ in 1 / x }) }

    /// √x element-wise.
    public func sqrt() -> Tensor { Tensor.unary(self, { $0.squareRoot() }, derivative: { _, y in 0.5 / y }) }

    /// xᵖ element-wise.
    public func pow(_ exponent: Float) -> Tensor {
        if exponent == 2 { return Tensor.unary(self, { $0 * $0 }, derivative: { x, _ in 2 * x }) }
        return Tensor.unary(
            self, cost: 8, { Foundation.pow($0, exponent) },
            derivative: { x, _ in exponent * Foundation.pow(x, exponent - 1) })
    }

    /// x² element-wise.
    public func squared() -> Tensor { pow(2) }

    /// |x| element-wise; the gradient at 0 is 0 (sign convention of PyTorch).
    public func abs() -> Tensor {
        Tensor.unary(self, { Swift.abs($0) }, derivative: { x, _ in x > 0 ? 1 : (x < 0 ? -1 : 0) })
    }

    /// Values limited to `[minimum, maximum]`; the gradient passes where `minimum ≤ x ≤ maximum`
    /// (PyTorch's `clamp`).
    public func clamped(min minimum: Float = -.infinity, max maximum: Float = .infinity) -> Tensor {
        precondition(minimum <= maximum, "clamped: min \(minimum) > max \(maximum)")
        return Tensor.unary(
            self, { Swift.min(Swift.max($0, minimum), maximum) },
            derivative: { x, _ in x >= minimum && x <= maximum ? 1 : 0 })
    }

    /// max(x, 0); gradient 0 at 0.
    public func relu() -> Tensor { Tensor.unary(self, { Swift.max($0, 0) }, derivative: { x, _ in x > 0 ? 1 : 0 }) }

    /// Logistic sigmoid 1/(1+e⁻ˣ), computed without overflow.
    public func sigmoid() -> Tensor { Tensor.unary(self, cost: 4, Tensor.sigmoid, derivative: { _, y in y * (1 - y) }) }

    /// Hyperbolic tangent (`FastMath.tanh`: relative error < 4·10⁻⁷), four lanes at a time;
    /// backward g·(1 − y²). Memory-bound and cheap, so it stays on the calling thread.
    public func tanh() -> Tensor {
        var result = Tensor(uninitializedShape: shape)
        let source = storage.base, target = result.storage.base
        var i = 0
        while i + 4 <= count {
            FastMath4.store(FastMath4.tanh(FastMath4.load(source, i)), target, i)
            i += 4
        }
        while i < count {
            target[i] = FastMath.tanh(source[i])
            i += 1
        }
        guard node != nil && GradientTape.isRecording else { return result }
        let output = result.detached()
        Tensor.record(&result, self) { g, _ in
            let grad = Tensor(uninitializedShape: output.shape)
            let y = output.storage.base, dy = g.storage.base, dx = grad.storage.base
            for k in 0..<output.count { dx[k] = dy[k] * (1 - y[k] * y[k]) }
            return [grad]
        }
        return result
    }

    /// log(1+eˣ), with PyTorch's threshold: x > 20 returns x.
    public func softplus() -> Tensor {
        Tensor.unary(
            self, cost: 4, { $0 > 20 ? $0 : Foundation.log1p(Foundation.exp($0)) },
            derivative: { x, _ in x > 20 ? 1 : Tensor.sigmoid(x) })
    }

    /// SiLU (swish): x·σ(x), four lanes at a time.
    public func silu() -> Tensor { sigmoidGated(scale: 1) }

    /// quick_gelu of CLIP: x·σ(1.702x), four lanes at a time.
    public func quickGELU() -> Tensor { sigmoidGated(scale: 1.702) }

    /// x·σ(a·x) with `FastMath4.exp` (relative error of σ below 10⁻⁶) — sixteen or eight lanes
    /// in the shim's AVX-512 or AVX2 kernel (the same bits), split over the workers (an
    /// exponential and a division per element: compute-bound, 2 ns per element on four lanes),
    /// where the CPU has it; backward g·(s + a·x·s·(1 − s)) with s = σ(a·x).
    func sigmoidGated(scale a: Float) -> Tensor {
        var result = Tensor(uninitializedShape: shape)
        let source = storage.base, target = result.storage.base
        var i = 0
        if BLAS.avx2 {
            Parallel.forRanges(count, cost: 8) { range in
                BLAS.sigmoidGated(source + range.lowerBound, target + range.lowerBound, count: range.count, scale: a)
            }
            i = count
        }
        while i + 4 <= count {
            let x = FastMath4.load(source, i)
            FastMath4.store(x / (1 + FastMath4.exp(-a * x)), target, i)
            i += 4
        }
        while i < count {
            target[i] = source[i] * Tensor.sigmoid(a * source[i])
            i += 1
        }
        guard node != nil && GradientTape.isRecording else { return result }
        let input = detached()
        Tensor.record(&result, self) { g, _ in
            let grad = Tensor(uninitializedShape: input.shape)
            let x = input.storage.base, dy = g.storage.base, dx = grad.storage.base
            // Groups of four over the workers: each element takes the same four-lane path whatever
            // the thread count (or the shim's kernel, to its bits); the last count % 4 take the
            // scalar one.
            Parallel.forRanges(input.count / 4, cost: 32) { groups in
                if BLAS.avx2 {
                    let k = groups.lowerBound * 4
                    BLAS.sigmoidGatedBackward(x + k, dy + k, dx + k, count: groups.count * 4, scale: a)
                    return
                }
                for group in groups {
                    let k = group * 4
                    let v = FastMath4.load(x, k)
                    let s = 1 / (1 + FastMath4.exp(-a * v))
                    FastMath4.store(FastMath4.load(dy, k) * (s + a * v * s * (1 - s)), dx, k)
                }
            }
            var k = input.count / 4 * 4
            while k < input.count {
                let s = Tensor.sigmoid(a * x[k])
                dx[k] = dy[k] * (s + a * x[k] * s * (1 - s))
                k += 1
            }
            return [grad]
        }
        return result
    }

    /// GELU: x·Φ(x) with the erf form, or PyTorch's tanh approximation
    /// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715x³))).
    public func gelu(approximation: GELUApproximation = .erf) -> Tensor {
        switch approximation {
        case .erf:
            return geluErf()
        case .tanh:
            let k = Float((2 / Double.pi).squareRoot())
            return Tensor.unary(
                self, cost: 4, { 0.5 * $0 * (1 + Foundation.tanh(k * ($0 + 0.044715 * $0 * $0 * $0))) },
                derivative: { x, _ in
                    let t = Foundation.tanh(k * (x + 0.044715 * x * x * x))
                    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x)
                })
        }
    }

    /// GELU (erf form) x·Φ(x) with Φ(x) = ½·erfc(−x/√2) from a vectorisable erfc (absolute
    /// error ≤ 1.5·10⁻⁷), sixteen or eight lanes in the shim's AVX-512 or AVX2 kernel (the same
    /// bits) where the CPU has it; Φ is kept for the backward Φ(x) + x·φ(x) when recording.
    private func geluErf() -> Tensor {
        var result = Tensor(uninitializedShape: shape)
        let recording = node != nil && GradientTape.isRecording
        let cdfValues: Tensor? = recording ? Tensor(uninitializedShape: shape) : nil
        let source = storage.base, target = result.storage.base, cdfTarget = cdfValues?.storage.base
        let invSqrt2: Float = 0.70710678118654752
        let avx2 = BLAS.avx2
        Parallel.forRanges(count, cost: 4) { range in
            if avx2 {
                BLAS.geluErf(source + range.lowerBound, target + range.lowerBound, cdf: cdfTarget.map { $0 + range.lowerBound }, count: range.count)
                return
            }
            var i = range.lowerBound
            while i + 4 <= range.upperBound {
                let x = FastMath4.load(source, i)
                let half = 0.5 * FastMath4.erfcNonNegativeShort(FastMath4.abs(x) * invSqrt2)
                var cdf = half
                cdf.replace(with: 1 - half, where: x .>= 0)
                FastMath4.store(x * cdf, target, i)
                if let cdfTarget { FastMath4.store(cdf, cdfTarget, i) }
                i += 4
            }
            while i < range.upperBound {
                let x = source[i]
                let half = 0.5 * FastMath.erfcNonNegativeShort(Swift.abs(x) * invSqrt2)
                let cdf = x >= 0 ? 1 - half : half
                target[i] = x * cdf
                cdfTarget?[i] = cdf
                i += 1
            }
        }
        guard let cdfValues else { return result }
        let input = detached()
        Tensor.record(&result, self) { g, _ in
            let grad = Tensor(uninitializedShape: input.shape)
            let x = input.storage.base, cdf = cdfValues.storage.base, dy = g.storage.base, dx = grad.storage.base
            let invSqrt2Pi: Float = 0.39894228040143268
            Parallel.forRanges(input.count, cost: 2) { range in
                // dx = g · (Φ(x) + x·φ(x)), φ(x) = e^(−x²/2)/√(2π)
                var i = range.lowerBound
                while i + 4 <= range.upperBound {
                    let v = FastMath4.load(x, i)
                    let d = FastMath4.load(cdf, i) + v * FastMath4.exp(-0.5 * v * v) * invSqrt2Pi
                    FastMath4.store(d * FastMath4.load(dy, i), dx, i)
                    i += 4
                }
                while i < range.upperBound {
                    dx[i] = dy[i] * (cdf[i] + x[i] * FastMath.exp(-0.5 * x[i] * x[i]) * invSqrt2Pi)
                    i += 1
                }
            }
            return [grad]
        }
        return result
    }

    @inline(__always)
    static func sigmoid(_ x: Float) -> Float {
        if x >= 0 { return 1 / (1 + Foundation.exp(-x)) }
        let e = Foundation.exp(x)
        return e / (1 + e)
    }
}

extension Tensor {
    /// Element-wise binary cross-entropy from logits, in the overflow-free form
    /// max(x, 0) − x·t + log(1 + e^(−|x|)), with the exact gradient σ(x) − t with respect to the
    /// logits (PyTorch's `binary_cross_entropy_with_logits`, no reduction). Targets are constants.
    public static func binaryCrossEntropyWithLogits(_ logits: Tensor, targets: Tensor) -> Tensor {
        precondition(logits.shape == targets.shape, "binaryCrossEntropyWithLogits: logits \(logits.shape) and targets \(targets.shape) differ")
        var result = zipped(logits, targets, cost: 4) { x, t in
            Swift.max(x, 0) - x * t + Foundation.log1p(Foundation.exp(-Swift.abs(x)))
        }
        let (x, t) = (logits.detached(), targets.detached())
        record(&result, logits) { g, _ in [zipped(g, x, t) { g, x, t in g * (Tensor.sigmoid(x) - t) }] }
        return result
    }
}
