import Foundation
import TensorCore

/// Running mean and variance of a stream of vectors, combined batch by batch with Chan et al.'s
/// parallel update (Gymnasium's `RunningMeanStd`: mean 0, variance 1, count 1e-4 at the start).
public struct RunningMeanStd: Sendable, Equatable, Codable {
    /// Running mean per dimension.
    public var mean: [Double]
    /// Running (population) variance per dimension.
    public var variance: [Double]
    /// Samples seen, starting from `epsilon` as Gymnasium's does.
    public var count: Double

    /// Statistics of `dimension` values (mean 0, variance 1, count `epsilon`).
    public init(dimension: Int, epsilon: Double = 1e-4) {
        mean = Array(repeating: 0, count: dimension)
        variance = Array(repeating: 1, count: dimension)
        count = epsilon
    }

    /// Adds one sample.
    public mutating func update(_ sample: [Double]) { update(batchMean: sample, batchVariance: Array(repeating: 0, count: sample.count), batchCount: 1) }

    /// Adds a batch given by its mean, (population) variance and size.
    public mutating func update(batchMean: [Double], batchVariance: [Double], batchCount: Double) {
        precondition(batchMean.count == mean.count, "RunningMeanStd: sample of dimension \(batchMean.count), expected \(mean.count)")
        let total = count + batchCount
        for index in mean.indices {
            let delta = batchMean[index] - mean[index]
            let newMean = mean[index] + delta * batchCount / total
            let m2 = variance[index] * count + batchVariance[index] * batchCount + delta * delta * count * batchCount / total
            mean[index] = newMean
            variance[index] = m2 / total
        }
        count = total
    }

    func save(into snapshot: inout EnvironmentSnapshot, prefix: String) {
        snapshot.set(prefix + ".mean", doubles: mean)
        snapshot.set(prefix + ".variance", doubles: variance)
        snapshot.set(prefix + ".count", doubles: [count])
    }

    mutating func restore(from snapshot: EnvironmentSnapshot, prefix: String, environment: String) throws {
        let mean = try snapshot.doubles(prefix + ".mean", in: environment)
        let variance = try snapshot.doubles(prefix + ".variance", in: environment)
        guard mean.count == self.mean.count, variance.count == self.mean.count else {
            throw GymError.invalidSnapshot(environment: environment, reason: "\(prefix) statistics have dimension \(mean.count), expected \(self.mean.count)")
        }
        self.mean = mean
        self.variance = variance
        count = try snapshot.doubles(prefix + ".count", in: environment).first ?? 1e-4
    }
}

/// Normalises observations to zero mean and unit variance with running statistics
/// (Gymnasium's `NormalizeObservation`): `(obs − mean) / sqrt(var + ε)`, rounded to float32,
/// optionally clipped to ±`clip` (CleanRL's continuous PPO clips at 10). Statistics update on
/// every reset and step unless `updatesStatistics` is false (evaluation); they are part of the
/// snapshot, so checkpoints carry them.
public final class NormalizeObservation<Inner: Environment>: Environment where Inner.Observation == [Float] {
    /// The normalised observation.
    public typealias Observation = [Float]
    /// The wrapped environment's action.
    public typealias Action = Inner.Action

    /// The wrapped environment.
    public let inner: Inner
    /// Added to the variance before the square root.
    public let epsilon: Double
    /// Clip the normalised values to ±clip (nil: no clip).
    public let clip: Float?
    /// The running statistics (saved in snapshots).
    public var statistics: RunningMeanStd
    /// Set to false to freeze the statistics (evaluation).
    public var updatesStatistics = true
    public let observationSpace: any Space<[Float]>

    /// Normalises `inner`'s observations with running statistics updated on every reset and step.
    public init(_ inner: Inner, epsilon: Double = 1e-8, clip: Float? = nil) {
        self.inner = inner
        self.epsilon = epsilon
        self.clip = clip
        let dimension = inner.observationSpace.flatDimension
        statistics = RunningMeanStd(dimension: dimension)
        observationSpace = Box(low: clip.map { -$0 } ?? -.infinity, high: clip ?? .infinity, shape: inner.observationSpace.shape)
    }

    public var name: String { "NormalizeObservation<\(inner.name)>" }
    public var actionSpace: any Space<Action> { inner.actionSpace }

    public func reset(seed: UInt64?, options: ResetOptions) throws -> Reset<[Float]> {
        var reset = try inner.reset(seed: seed, options: options)
        reset.observation = normalize(reset.observation)
        return reset
    }

    public func step(_ action: Action) throws -> Step<[Float]> {
        var step = try inner.step(action)
        step.observation = normalize(step.observation)
        return step
    }

    /// Updates the statistics (unless frozen) and normalises `observation`.
    public func normalize(_ observation: [Float]) -> [Float] {
        if updatesStatistics { statistics.update(observation.map(Double.init)) }
        return observation.indices.map { index in
            let value = Float((Double(observation[index]) - statistics.mean[index]) / (statistics.variance[index] + epsilon).squareRoot())
            guard let clip else { return value }
            return min(max(value, -clip), clip)
        }
    }

    public func snapshot() throws -> EnvironmentSnapshot {
        var snapshot = EnvironmentSnapshot()
        snapshot.embed(try inner.snapshot(), as: "inner")
        statistics.save(into: &snapshot, prefix: "observation")
        return snapshot
    }

    public func restore(_ snapshot: EnvironmentSnapshot) throws {
        try inner.restore(snapshot.nested("inner"))
        try statistics.restore(from: snapshot, prefix: "observation", environment: name)
    }

    public func close() { inner.close() }
}

/// Scales rewards by the running standard deviation of the discounted return (Gymnasium's
/// `NormalizeReward`): `G ← γ·G·(1 − terminated) + r`, then `r / sqrt(var(G) + ε)`; the mean is
/// not subtracted (openai/baselines#538). Optionally clipped to ±`clip`.
public final class NormalizeReward<Inner: Environment>: Environment {
    /// The wrapped environment's observation.
    public typealias Observation = Inner.Observation
    /// The wrapped environment's action.
    public typealias Action = Inner.Action

    /// The wrapped environment.
    public let inner: Inner
    /// Discount of the running return whose variance scales the rewards.
    public let gamma: Double
    /// Added to the variance before the square root.
    public let epsilon: Double
    /// Clip the scaled reward to ±clip (nil: no clip).
    public let clip: Double?
    /// Running statistics of the discounted return.
    public var statistics = RunningMeanStd(dimension: 1)
    /// Set to false to freeze the statistics (evaluation).
    public var updatesStatistics = true
    private var discountedReturn = 0.0

    /// Scales `inner`'s rewards by the standard deviation of the discounted return (Gymnasium's NormalizeReward).
    public init(_ inner: Inner, gamma: Double = 0.99, epsilon: Double = 1e-8, clip: Double? = nil) {
        self.inner = inner
        self.gamma = gamma
        self.epsilon = epsilon
        self.clip = clip
    }

    public var name: String { "NormalizeReward<\(inner.name)>" }
    public var observationSpace: any Space<Observation> { inner.observationSpace }
    public var actionSpace: any Space<Action> { inner.actionSpace }

    public func reset(seed: UInt64?, options: ResetOptions) throws -> Reset<Observation> { try inner.reset(seed: seed, options: options) }

    public func step(_ action: Action) throws -> Step<Observation> {
        var step = try inner.step(action)
        // As Gymnasium 1.x: the running return is cut by this step's `terminated` before it is added.
        discountedReturn = discountedReturn * gamma * (step.terminated ? 0 : 1) + step.reward
        if updatesStatistics { statistics.update([discountedReturn]) }
        var reward = step.reward / (statistics.variance[0] + epsilon).squareRoot()
        if let clip { reward = min(max(reward, -clip), clip) }
        step.reward = reward
        return step
    }

    public func snapshot() throws -> EnvironmentSnapshot {
        var snapshot = EnvironmentSnapshot()
        snapshot.embed(try inner.snapshot(), as: "inner")
        statistics.save(into: &snapshot, prefix: "return")
        snapshot.set("discountedReturn", doubles: [discountedReturn])
        return snapshot
    }

    public func restore(_ snapshot: EnvironmentSnapshot) throws {
        try inner.restore(snapshot.nested("inner"))
        try statistics.restore(from: snapshot, prefix: "return", environment: name)
        discountedReturn = try snapshot.doubles("discountedReturn", in: name).first ?? 0
    }

    public func close() { inner.close() }
}
