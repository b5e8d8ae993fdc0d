import Testing
import TensorCore
import TestSupport

/// Finite-difference checks for every differentiable operation.
@Suite("Gradients match finite differences")
struct GradientTests {
    /// Values bounded away from 0 (for log, sqrt, division, abs and kinks).
    static func positive(_ shape: [Int], seed: UInt64) -> Tensor {
        var g = testGenerator(seed)
        return Tensor.uniform(shape, low: 0.5, high: 2, using: &g)
    }

    static func random(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        var g = testGenerator(seed)
        return Tensor.normal(shape, standardDeviation: scale, using: &g)
    }

    /// Normal values pushed at least `margin` away from 0 (for functions with a kink at 0).
    static func awayFromZero(_ shape: [Int], seed: UInt64, margin: Float = 0.1) -> Tensor {
        let x = random(shape, seed: seed)
        return Tensor(shape: shape, scalars: x.scalars.map { $0 >= 0 ? $0 + margin : $0 - margin })
    }

    @Test("broadcasting add, sub, mul, div", arguments: [
        ([3, 4], [3, 4]), ([3, 4], [4]), ([2, 3, 4], [3, 1]), ([4], [2, 3, 4]), ([2, 1, 4], [1, 3, 1]), ([3, 4], []),
    ])
    func broadcastingArithmetic(shapes: ([Int], [Int])) {
        let a = Self.random(shapes.0, seed: 1)
        let b = Self.positive(shapes.1, seed: 2)
        GradientCheck.check([a, b]) { $0[0] + $0[1] }
        GradientCheck.check([a, b]) { $0[0] - $0[1] }
        GradientCheck.check([a, b]) { $0[0] * $0[1] }
        GradientCheck.check([a, b]) { $0[0] / $0[1] }
    }

    @Test("scalar arithmetic and negation")
    func scalarArithmetic() {
        let x = Self.positive([3, 5], seed: 3)
        GradientCheck.check([x]) { $0[0] * 3 + 2 }
        GradientCheck.check([x]) { 2 - $0[0] / 4 }
        GradientCheck.check([x]) { 1.5 / $0[0] }
        GradientCheck.check([x]) { -$0[0] }
    }

    @Test("unary math: exp, log, sqrt, pow, abs, clamp")
    func unaryMath() {
        let p = Self.positive([4, 3], seed: 4)
        let z = Self.awayFromZero([4, 3], seed: 5)
        GradientCheck.check([Self.random([4, 3], seed: 6)]) { $0[0].exp() }
        GradientCheck.check([p]) { $0[0].log() }
        GradientCheck.check([p]) { $0[0].sqrt() }
        GradientCheck.check([p]) { $0[0].pow(2.5) }
        GradientCheck.check([z]) { $0[0].pow(2) }
        GradientCheck.check([z]) { $0[0].abs() }
        // Keep samples away from the clamp bounds (±0.5).
        let c = Tensor(shape: [12], scalars: z.scalars.map { Swift.abs(Swift.abs($0) - 0.5) < 0.05 ? $0 + 0.1 : $0 })
        GradientCheck.check([c]) { $0[0].clamped(min: -0.5, max: 0.5) }
    }

    @Test("activations", arguments: ["relu", "sigmoid", "tanh", "softplus", "silu", "quickGELU", "gelu", "geluTanh"])
    func activations(name: String) {
        let x = Self.awayFromZero([3, 7], seed: 8, margin: 0.05)
        GradientCheck.check([x]) { inputs in
            let v = inputs[0]
            switch name {
            case "relu": return v.relu()
            case "sigmoid": return v.sigmoid()
            case "tanh": return v.tanh()
            case "softplus": return v.softplus()
            case "silu": return v.silu()
            case "quickGELU": return v.quickGELU()
            case "gelu": return v.gelu()
            default: return v.gelu(approximation: .tanh)
            }
        }
    }

    @Test("sum, mean, variance and max over axes, with and without keepdims")
    func reductions() {
        let x = Self.random([2, 3, 4], seed: 9)
        for keep in [false, true] {
            GradientCheck.check([x]) { $0[0].sum(alongAxes: [1], keepingDimensions: keep) }
            GradientCheck.check([x]) { $0[0].sum(alongAxes: [0, 2], keepingDimensions: keep) }
            GradientCheck.check([x]) { $0[0].mean(alongAxes: [-1], keepingDimensions: keep) }
            GradientCheck.check([x]) { $0[0].variance(alongAxes: [0, 1], keepingDimensions: keep, correction: 1) }
            GradientCheck.check([x]) { $0[0].max(alongAxis: 1, keepingDimensions: keep) }
            GradientCheck.check([x]) { $0[0].max(alongAxes: [0, 2], keepingDimensions: keep) }
        }
        GradientCheck.check([x]) { $0[0].sum() }
        GradientCheck.check([x]) { $0[0].mean() }
        GradientCheck.check([x]) { $0[0].max() }
    }

    @Test("matmul in every transpose combination, batched and broadcast")
    func matmul() {
        for ta in [false, true] {
            for tb in [false, true] {
                let a = Self.random(ta ? [5, 3] : [3, 5], seed: 10)
                let b = Self.random(tb ? [4, 5] : [5, 4], seed: 11)
                GradientCheck.check([a, b]) { Tensor.matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
                let batchedA = Self.random(ta ? [2, 5, 3] : [2, 3, 5], seed: 12)
                let batchedB = Self.random(tb ? [2, 4, 5] : [2, 5, 4], seed: 13)
                GradientCheck.check([batchedA, batchedB]) { Tensor.matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
                GradientCheck.check([batchedA, b]) { Tensor.matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
                GradientCheck.check([a, batchedB]) { Tensor.matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
            }
        }
    }

    @Test("fused linear, with and without bias, for rank 1 to 3 inputs")
    func linear() {
        let w = Self.random([4, 3], seed: 30), b = Self.random([4], seed: 31)
        for shape in [[3], [5, 3], [2, 5, 3]] {
            let x = Self.random(shape, seed: 32)
            GradientCheck.check([x, w, b]) { Tensor.linear($0[0], weight: $0[1], bias: $0[2]) }
            GradientCheck.check([x, w]) { Tensor.linear($0[0], weight: $0[1], bias: nil) }
            let reference = Tensor.matmul(x.rank == 1 ? x.unsqueezed(at: 0) : x, w, transposeB: true) + b
            expectClose(Tensor.linear(x, weight: w, bias: b).scalars, reference.scalars, absolute: 1e-5)
        }
    }

    @Test("reshape, permute, transpose, slice, concat, stack, split")
    func layout() {
        let x = Self.random([2, 3, 4], seed: 14)
        let y = Self.random([2, 2, 4], seed: 15)
        GradientCheck.check([x]) { $0[0].reshaped(to: [6, -1]) }
        GradientCheck.check([x]) { $0[0].permuted([2, 0, 1]) }
        GradientCheck.check([x]) { $0[0].transposed() }
        GradientCheck.check([x]) { $0[0].sliced(alongAxis: 1, 1..<3) }
        // Several slices of one tensor, overlapping, next to a use of the whole: each slice adds
        // its gradient into its place in the input's.
        GradientCheck.check([x]) { inputs in
            let x = inputs[0]
            return x.sliced(alongAxis: 1, 0..<2) * x.sliced(alongAxis: 1, 1..<3) + x.sliced(alongAxis: 1, 2..<3).exp() + x.sliced(alongAxis: 1, 0..<2)
        }
        GradientCheck.check([x]) { inputs in (inputs[0] * 3).sliced(alongAxis: 0, 1..<2).sum() + inputs[0].tanh().sliced(alongAxis: 2, 1..<4).sum() }
        GradientCheck.check([x, y]) { Tensor.concatenated([$0[0], $0[1], $0[0]], alongAxis: 1) }
        GradientCheck.check([x]) { Tensor.stacked([$0[0], $0[0] * 2], alongAxis: 1) }
        GradientCheck.check([x]) { inputs in
            let parts = inputs[0].split(sizes: [1, 2], alongAxis: 1)
            return parts[0] * 2 + parts[1].sum(alongAxis: 1, keepingDimensions: true)
        }
        GradientCheck.check([x]) { $0[0].expanded(to: [3, 2, 3, 4]) }
    }

    @Test("index-select and gather scatter their gradients back, repeats included")
    func indexing() {
        let tokens = Self.random([2, 6, 3], seed: 16)
        GradientCheck.check([tokens]) { $0[0].indexSelect([5, 0, 2, 2], alongAxis: 1) }
        GradientCheck.check([tokens]) { $0[0].indexSelect([1, 1, 0], alongAxis: 0) }
        let scores = Self.random([3, 5], seed: 17)
        GradientCheck.check([scores]) { $0[0].gathered(alongAxis: 1, indices: [4, 0, 1, 1, 3, 3], indexShape: [3, 2]) }
        let table = Self.random([7, 4], seed: 18)
        GradientCheck.check([table]) { Tensor.embedding($0[0], indices: [3, 1, 3, 6], indexShape: [2, 2]) }
    }

    @Test("where and masked fill")
    func masking() {
        let a = Self.random([3, 4], seed: 19)
        let b = Self.random([4], seed: 20)
        let condition = Tensor(shape: [3, 4], scalars: [1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 0, 0])
        GradientCheck.check([a, b]) { Tensor.where(condition, $0[0], $0[1]) }
        GradientCheck.check([a]) { $0[0].maskedFill(Tensor(shape: [1, 4], scalars: [0, 1, 0, 1]), with: -3) }
    }

    @Test("softmax and log-softmax along any axis, with an additive mask")
    func softmax() {
        let x = Self.random([2, 3, 5], seed: 21)
        let mask = Tensor(shape: [1, 1, 5], scalars: [0, -Float.infinity, 0, 0, -Float.infinity])
        for axis in [-1, 1, 0] {
            GradientCheck.check([x]) { $0[0].softmax(alongAxis: axis) }
            GradientCheck.check([x]) { $0[0].logSoftmax(alongAxis: axis) }
        }
        GradientCheck.check([x]) { $0[0].softmax(alongAxis: -1, additiveMask: mask) }
        // Masked entries are −∞ in log space: check the kept entries only.
        GradientCheck.check([x]) { $0[0].logSoftmax(alongAxis: -1, additiveMask: mask).indexSelect([0, 2, 3], alongAxis: 2) }
    }

    @Test("layer norm and RMS norm (fused backward) for input, weight and bias")
    func normalization() {
        let x = Self.random([2, 3, 6], seed: 22, scale: 2)
        let w = Self.positive([6], seed: 23)
        let b = Self.random([6], seed: 24)
        GradientCheck.check([x, w, b]) { Tensor.layerNorm($0[0], weight: $0[1], bias: $0[2], epsilon: 1e-5) }
        GradientCheck.check([x]) { Tensor.layerNorm($0[0], weight: nil, bias: nil, epsilon: 1e-5) }
        GradientCheck.check([x, w]) { Tensor.rmsNorm($0[0], weight: $0[1], epsilon: 1e-6) }
    }

    @Test("patchify and rotary embedding")
    func visionOps() {
        let images = Self.random([2, 3, 4, 6], seed: 25)
        GradientCheck.check([images]) { $0[0].patchified(patchSize: 2) }
        let x = Self.random([2, 3, 5, 4], seed: 26)
        let (cos, sin) = Tensor.rotaryTables(positions: [0, 1, 2, 3, 4], dimension: 4, base: 10000)
        GradientCheck.check([x]) { $0[0].applyingRotaryEmbedding(cos: cos, sin: sin) }
        let (batchCos, batchSin) = (Tensor.stacked([cos, cos * 0.5]), Tensor.stacked([sin, sin * 2]))
        GradientCheck.check([x]) { $0[0].applyingRotaryEmbedding(cos: batchCos, sin: batchSin) }
    }

    @Test("binary cross-entropy from logits")
    func binaryCrossEntropy() {
        let logits = Self.random([4, 3], seed: 27, scale: 3)
        let targets = Tensor(shape: [4, 3], scalars: [1, 0, 1, 0, 0.3, 1, 1, 1, 0, 0, 0.5, 1])
        GradientCheck.check([logits]) { Tensor.binaryCrossEntropyWithLogits($0[0], targets: targets) }
    }
}
