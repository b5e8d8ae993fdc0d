import Foundation
import TensorCore

/// Weight initialisation schemes, following `torch.nn.init` (fan-in = shape[1]·receptive field,
/// fan-out = shape[0]·receptive field for a `[out, in, …]` weight).
public enum Initializer: Sendable {
    case zeros
    case constant(Float)
    case normal(mean: Float = 0, standardDeviation: Float)
    case uniform(low: Float, high: Float)
    /// U(−a, a), a = gain·√(6/(fan_in+fan_out)) (Glorot & Bengio 2010).
    case xavierUniform(gain: Float = 1)
    /// N(0, σ²), σ = gain·√(2/(fan_in+fan_out)).
    case xavierNormal(gain: Float = 1)
    /// U(−b, b), b = gain·√(3/fan_in) with gain = √(2/(1+a²)) for leaky ReLU slope `a` (He et al. 2015).
    case kaimingUniform(negativeSlope: Float = 0)
    /// N(0, σ²), σ = gain/√fan_in.
    case kaimingNormal(negativeSlope: Float = 0)
    /// A (semi-)orthogonal matrix times `gain` (Saxe et al. 2014): QR of a normal matrix with the
    /// signs of R's diagonal folded into Q, as `torch.nn.init.orthogonal_`. PPO uses gain √2 for
    /// hidden layers, 0.01 for the policy head and 1 for the value head.
    case orthogonal(gain: Float = 1)

    /// Fan-in and fan-out of a weight of `shape`.
    public static func fans(_ shape: [Int]) -> (fanIn: Int, fanOut: Int) {
        precondition(shape.count >= 1, "Initializer: a scalar has no fans")
        if shape.count == 1 { return (shape[0], shape[0]) }
        let receptive = shape.dropFirst(2).reduce(1, *)
        return (shape[1] * receptive, shape[0] * receptive)
    }

    /// A tensor of `shape` drawn by this initializer (fan-in and fan-out from the shape).
    public func tensor(_ shape: [Int], using generator: inout SeededGenerator) -> Tensor {
        switch self {
        case .zeros: return Tensor.zeros(shape)
        case let .constant(value): return Tensor(repeating: value, shape: shape)
        case let .normal(mean, deviation): return Tensor.normal(shape, mean: mean, standardDeviation: deviation, using: &generator)
        case let .uniform(low, high): return Tensor.uniform(shape, low: low, high: high, using: &generator)
        case let .xavierUniform(gain):
            let (fanIn, fanOut) = Self.fans(shape)
            let bound = gain * (6 / Float(fanIn + fanOut)).squareRoot()
            return Tensor.uniform(shape, low: -bound, high: bound, using: &generator)
        case let .xavierNormal(gain):
            let (fanIn, fanOut) = Self.fans(shape)
            return Tensor.normal(shape, standardDeviation: gain * (2 / Float(fanIn + fanOut)).squareRoot(), using: &generator)
        case let .kaimingUniform(slope):
            let gain = (2 / (1 + slope * slope)).squareRoot()
            let bound = gain * (3 / Float(Self.fans(shape).fanIn)).squareRoot()
            return Tensor.uniform(shape, low: -bound, high: bound, using: &generator)
        case let .kaimingNormal(slope):
            let gain = (2 / (1 + slope * slope)).squareRoot()
            return Tensor.normal(shape, standardDeviation: gain / Float(Self.fans(shape).fanIn).squareRoot(), using: &generator)
        case let .orthogonal(gain):
            return Self.orthogonal(shape, gain: gain, using: &generator)
        }
    }

    private static func orthogonal(_ shape: [Int], gain: Float, using generator: inout SeededGenerator) -> Tensor {
        precondition(shape.count >= 2, "orthogonal initialisation needs rank ≥ 2, got \(shape)")
        let rows = shape[0]
        let columns = shape.dropFirst().reduce(1, *)
        // Work on the tall orientation (n ≥ m): QR of an n×m normal matrix gives m orthonormal columns.
        let tall = rows < columns
        let (n, m) = tall ? (columns, rows) : (rows, columns)
        var a = [Double](repeating: 0, count: n * m)  // column-major: a[j*n + i]
        for i in 0..<n {
            for j in 0..<m { a[j * n + i] = Double(generator.normal()) }
        }
        // Householder QR in double precision.
        var q = [Double](repeating: 0, count: n * m)
        var reflectors: [[Double]] = []
        var diagonal = [Double](repeating: 0, count: m)
        for k in 0..<m {
            var v = Array(a[(k * n + k)..<(k * n + n)])
            let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let alpha = v[0] >= 0 ? -norm : norm
            diagonal[k] = alpha
            v[0] -= alpha
            let vNorm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            if vNorm > 0 { v = v.map { $0 / vNorm } }
            reflectors.append(v)
            for j in k..<m {
                var dot = 0.0
                for i in k..<n { dot += v[i - k] * a[j * n + i] }
                for i in k..<n { a[j * n + i] -= 2 * v[i - k] * dot }
            }
        }
        // Q = H₀·H₁·…·H_{m−1} applied to the first m columns of the identity.
        for j in 0..<m {
            var column = [Double](repeating: 0, count: n)
            column[j] = 1
            for k in stride(from: m - 1, through: 0, by: -1) {
                let v = reflectors[k]
                var dot = 0.0
                for i in k..<n { dot += v[i - k] * column[i] }
                for i in k..<n { column[i] -= 2 * v[i - k] * dot }
            }
            // Make R's diagonal positive (torch: q *= sign(diag(r))).
            let sign: Double = diagonal[j] < 0 ? -1 : 1
            for i in 0..<n { q[j * n + i] = column[i] * sign }
        }
        var values = [Float](repeating: 0, count: rows * columns)
        for i in 0..<n {
            for j in 0..<m {
                let value = Float(q[j * n + i]) * gain
                if tall { values[j * columns + i] = value } else { values[i * columns + j] = value }
            }
        }
        return Tensor(shape: shape, scalars: values)
    }
}
