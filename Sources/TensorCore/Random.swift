import Foundation

/// The seeded pseudo-random generator every stochastic API in PruneGym takes explicitly.
///
/// Algorithm: **xoshiro256\*\*** (Blackman & Vigna, 2018; 256-bit state, period 2²⁵⁶ − 1), its
/// state filled from the 64-bit seed by **SplitMix64** as the authors recommend. Derived draws:
/// - `nextFloat()`: the top 24 bits of `next()` scaled by 2⁻²⁴, uniform on [0, 1);
/// - `nextDouble()`: the top 53 bits scaled by 2⁻⁵³;
/// - `integer(below:)`: Lemire's multiply-and-reject method, unbiased;
/// - `normal`: Box–Muller in double precision, one variate per pair of uniforms (no cached
///   second variate, so the state is exactly the four words);
/// - `shuffle`: Fisher–Yates from the last element down.
/// Nothing in PruneGym uses the system generator, so the same seed gives the same run.
public struct SeededGenerator: RandomNumberGenerator, Sendable, Equatable {
    /// The four state words; save them to resume a stream exactly.
    public private(set) var state: (UInt64, UInt64, UInt64, UInt64)

    /// A generator whose state is derived from `seed` by SplitMix64.
    public init(seed: UInt64) {
        var splitMix = SplitMix64(state: seed)
        state = (splitMix.next(), splitMix.next(), splitMix.next(), splitMix.next())
    }

    /// Restores a saved state. - Precondition: not all zero (the one invalid xoshiro state).
    public init(state: [UInt64]) {
        precondition(state.count == 4 && state.contains { $0 != 0 }, "SeededGenerator(state:) needs four words, not all zero")
        self.state = (state[0], state[1], state[2], state[3])
    }

    /// The state as an array (for checkpoints).
    public var stateWords: [UInt64] { [state.0, state.1, state.2, state.3] }

    /// Generators are equal when their states are.
    public static func == (lhs: SeededGenerator, rhs: SeededGenerator) -> Bool { lhs.stateWords == rhs.stateWords }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        let result = rotateLeft(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotateLeft(state.3, 45)
        return result
    }

    @inline(__always) private func rotateLeft(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// A new generator for a sub-stream, seeded by SplitMix64 from this generator's next output.
    public mutating func fork() -> SeededGenerator { SeededGenerator(seed: next()) }

    /// Uniform on [0, 1) with 24 random bits.
    public mutating func nextFloat() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// Uniform on [0, 1) with 53 random bits.
    public mutating func nextDouble() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// Uniform on [low, high).
    public mutating func uniform(_ low: Float, _ high: Float) -> Float { low + (high - low) * nextFloat() }

    /// Uniform integer in 0..<bound (Lemire's method).
    public mutating func integer(below bound: Int) -> Int {
        precondition(bound > 0, "integer(below:): bound \(bound) must be positive")
        let range = UInt64(bound)
        var product = next().multipliedFullWidth(by: range)
        if product.low < range {
            let threshold = (0 &- range) % range
            while product.low < threshold { product = next().multipliedFullWidth(by: range) }
        }
        return Int(product.high)
    }

    /// A normal variate (Box–Muller, double precision).
    public mutating func normal(mean: Float = 0, standardDeviation: Float = 1) -> Float {
        let u1 = 1 - nextDouble()  // (0, 1]: log stays finite
        let u2 = nextDouble()
        let z = (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
        return mean + standardDeviation * Float(z)
    }

    /// True with probability `p`.
    public mutating func bernoulli(_ p: Float) -> Bool {
        precondition(p >= 0 && p <= 1, "bernoulli: probability \(p) outside [0, 1]")
        return nextFloat() < p
    }

    /// An index drawn with the given (non-negative, not necessarily normalised) weights.
    public mutating func categorical(probabilities: [Float]) -> Int {
        precondition(!probabilities.isEmpty, "categorical: no probabilities")
        precondition(probabilities.allSatisfy { $0 >= 0 && $0.isFinite }, "categorical: probabilities must be finite and ≥ 0: \(probabilities)")
        let total = probabilities.reduce(0.0) { $0 + Double($1) }
        precondition(total > 0, "categorical: probabilities sum to 0")
        let target = nextDouble() * total
        var cumulative = 0.0
        for (index, p) in probabilities.enumerated() {
            cumulative += Double(p)
            if target < cumulative { return index }
        }
        return probabilities.lastIndex { $0 > 0 }!
    }

    /// An index drawn from softmax(logits).
    public mutating func categorical(logits: [Float]) -> Int {
        let maximum = logits.max() ?? 0
        return categorical(probabilities: logits.map { Foundation.exp($0 - maximum) })
    }

    /// Shuffles in place (Fisher–Yates, from the end).
    public mutating func shuffle<T>(_ elements: inout [T]) {
        guard elements.count > 1 else { return }
        for i in stride(from: elements.count - 1, to: 0, by: -1) {
            elements.swapAt(i, integer(below: i + 1))
        }
    }

    /// A random permutation of 0..<count.
    public mutating func permutation(_ count: Int) -> [Int] {
        var values = Array(0..<count)
        shuffle(&values)
        return values
    }
}

/// SplitMix64 (Steele, Lea & Flood 2014; Vigna's reference constants), used to seed xoshiro.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The generator's state.
    public var state: UInt64
    /// A SplitMix64 generator at `state`.
    public init(state: UInt64) { self.state = state }
    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Tensor {
    /// Uniform values on [low, high).
    public static func uniform(_ shape: [Int], low: Float = 0, high: Float = 1, using generator: inout SeededGenerator) -> Tensor {
        var result = Tensor(uninitializedShape: shape)
        result.withUnsafeMutableBufferPointer { values in
            for i in values.indices { values[i] = generator.uniform(low, high) }
        }
        return result
    }

    /// Normal values N(mean, standardDeviation²).
    public static func normal(_ shape: [Int], mean: Float = 0, standardDeviation: Float = 1, using generator: inout SeededGenerator) -> Tensor {
        var result = Tensor(uninitializedShape: shape)
        result.withUnsafeMutableBufferPointer { values in
            for i in values.indices { values[i] = generator.normal(mean: mean, standardDeviation: standardDeviation) }
        }
        return result
    }

    /// 1 with probability `p`, else 0.
    public static func bernoulli(_ shape: [Int], probability p: Float, using generator: inout SeededGenerator) -> Tensor {
        var result = Tensor(uninitializedShape: shape)
        result.withUnsafeMutableBufferPointer { values in
            for i in values.indices { values[i] = generator.bernoulli(p) ? 1 : 0 }
        }
        return result
    }
}
