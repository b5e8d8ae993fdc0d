import Foundation
import Gym
import NN
import TensorCore

/// A policy with a value function over flat observation rows `[B, observationWidth]` — what PPO
/// optimises and behaviour cloning pre-trains. Implement it to bring one's own network (the TPRL
/// policy does); `MLPActorCritic` is the default.
public protocol ActorCritic: Module {
    /// π(·|s) for each row.
    func distribution(_ observations: Tensor) -> any ActionDistribution
    /// V(s) for each row: `[B]`.
    func value(_ observations: Tensor) -> Tensor
}

/// The action spaces the generic agents support, and how a flat action row maps to an action.
public enum ActionKind: Sendable, Equatable, Codable {
    /// `Discrete(count, start)`: the row is the class index (0-based) `[1]`.
    case discrete(count: Int, start: Int)
    /// `MultiBinary(count)`: the row is `count` 0/1 entries.
    case multiBinary(count: Int)
    /// `Box(low, high)`: the row is the unclipped Gaussian sample.
    case box(low: [Float], high: [Float])

    /// The kind for an action space; throws for spaces the generic agents do not handle.
    public init(_ descriptor: SpaceDescriptor, agent: String) throws {
        switch descriptor {
        case let .discrete(count, start): self = .discrete(count: count, start: start)
        case let .multiBinary(shape): self = .multiBinary(count: shape.reduce(1, *))
        case let .box(low, high, _): self = .box(low: low, high: high)
        default:
            throw AgentError.unsupportedSpace(agent: agent, space: descriptor.description,
                                              reason: "supported action spaces are Discrete, MultiBinary and Box")
        }
    }

    /// Width of a flat action row.
    public var width: Int {
        switch self {
        case .discrete: return 1
        case let .multiBinary(count): return count
        case let .box(low, _): return low.count
        }
    }

    /// Outputs of the policy head (logits or means).
    public var headWidth: Int {
        switch self {
        case let .discrete(count, _): return count
        case let .multiBinary(count): return count
        case let .box(low, _): return low.count
        }
    }

    /// The environment action for a flat row, via the action space's own `unflatten` (Box rows
    /// are clipped into bounds first, as CleanRL's `ClipAction`; the buffer keeps the unclipped row).
    public func action<Action>(from row: ArraySlice<Float>, space: any Space<Action>) -> Action {
        switch self {
        case let .discrete(_, start): return space.unflatten([row[row.startIndex] + Float(start)])
        case .multiBinary: return space.unflatten(row)
        case let .box(low, high):
            return space.unflatten(ArraySlice(row.enumerated().map { index, value in
                min(max(value, low[index]), high[index])
            }))
        }
    }

    /// The environment actions for every row of `rows` `[B, width]`.
    public func actions<Action>(from rows: Tensor, space: any Space<Action>) -> [Action] {
        let values = rows.scalars
        return (0..<rows.shape[0]).map { action(from: values[$0 * width ..< ($0 + 1) * width], space: space) }
    }

    /// The flat row for an environment action (demonstrations): the inverse of `action(from:)`.
    public func row<Action>(for action: Action, space: any Space<Action>) -> [Float] {
        var row = space.flattened(action)
        if case let .discrete(_, start) = self { row[0] -= Float(start) }
        return row
    }
}

/// CleanRL's actor-critic: separate actor and critic MLPs (default 64-64, tanh) with orthogonal
/// weights — gain √2 on hidden layers, 0.01 on the policy head, 1 on the value head — and zero
/// biases; for a Box action a state-independent log-std parameter initialised to 0.
/// (Huang et al. 2022, "The 37 implementation details of PPO", details 2 and continuous 1–2.)
///
/// `maskRange`: for a `MultiBinary` action, the slice of the observation row holding the
/// validity mask of the action entries (1 = valid).
public final class MLPActorCritic: ActorCritic {
    /// The policy MLP (observation → action parameters).
    public let actor: MLP
    /// The value MLP (observation → V).
    public let critic: MLP
    /// State-independent log σ of a Gaussian policy (Box actions), else nil.
    public let logStandardDeviation: Parameter?
    public let kind: ActionKind
    /// Where a MultiBinary action's validity mask sits in the flat observation.
    public let maskRange: Range<Int>?

    /// CleanRL's actor-critic: separate MLPs, orthogonal init with gains √2 (hidden), 0.01 (policy) and 1 (value).
    public init(observationWidth: Int, action kind: ActionKind, hidden: [Int] = [64, 64], activation: Activation = .tanh,
                maskRange: Range<Int>? = nil, generator: inout SeededGenerator) {
        precondition(maskRange == nil || maskRange!.count == kind.headWidth, "MLPActorCritic: mask range \(maskRange!) does not match \(kind.headWidth) action entries")
        let hiddenInit = Initializer.orthogonal(gain: Float(2).squareRoot())
        critic = MLP(sizes: [observationWidth] + hidden + [1], activation: activation, weightInitializer: hiddenInit,
                     outputWeightInitializer: .orthogonal(gain: 1), biasInitializer: .zeros, generator: &generator)
        actor = MLP(sizes: [observationWidth] + hidden + [kind.headWidth], activation: activation, weightInitializer: hiddenInit,
                    outputWeightInitializer: .orthogonal(gain: 0.01), biasInitializer: .zeros, generator: &generator)
        if case .box = kind {
            logStandardDeviation = Parameter(Tensor.zeros([1, kind.headWidth]))
        } else {
            logStandardDeviation = nil
        }
        self.kind = kind
        self.maskRange = maskRange
    }

    public func distribution(_ observations: Tensor) -> any ActionDistribution {
        let head = actor(observations)
        switch kind {
        case .discrete: return Categorical(logits: head)
        case .multiBinary:
            let mask = maskRange.map { observations.detached().sliced(alongAxis: 1, $0) }
            return Bernoulli(logits: head, mask: mask)
        case .box: return DiagonalGaussian(mean: head, logStandardDeviation: logStandardDeviation!.tensor)
        }
    }

    public func value(_ observations: Tensor) -> Tensor {
        let v = critic(observations)
        return v.reshaped(to: [v.shape[0]])
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        scoped("critic", critic) + scoped("actor", actor) + (logStandardDeviation.map { [("actor_logstd", $0)] } ?? [])
    }

    public var description: String { "MLPActorCritic(actor: \(actor), critic: \(critic), action: \(kind))" }
}

/// Running observation normalisation inside an agent (CleanRL's `NormalizeObservation` +
/// clip ±10), updated on the observations the agent acts on during training and frozen
/// otherwise; its statistics are saved with the agent, so evaluation sees what training saw.
public struct ObservationNormalizer: Sendable, Equatable {
    /// The running statistics.
    public var statistics: RunningMeanStd
    /// Normalised values are clipped to ±clip.
    public let clip: Float
    /// Added to the variance before the square root.
    public let epsilon: Double

    /// Statistics of `dimension` values.
    public init(dimension: Int, clip: Float = 10, epsilon: Double = 1e-8) {
        statistics = RunningMeanStd(dimension: dimension)
        self.clip = clip
        self.epsilon = epsilon
    }

    /// Adds a batch of rows `[count × dimension]` to the statistics.
    public mutating func update(_ rows: [Float], count: Int) {
        let dimension = statistics.mean.count
        var mean = [Double](repeating: 0, count: dimension)
        var variance = [Double](repeating: 0, count: dimension)
        for row in 0..<count { for k in 0..<dimension { mean[k] += Double(rows[row * dimension + k]) } }
        for k in 0..<dimension { mean[k] /= Double(count) }
        for row in 0..<count {
            for k in 0..<dimension {
                let d = Double(rows[row * dimension + k]) - mean[k]
                variance[k] += d * d
            }
        }
        for k in 0..<dimension { variance[k] /= Double(count) }
        statistics.update(batchMean: mean, batchVariance: variance, batchCount: Double(count))
    }

    /// Normalises and clips rows in place.
    public func normalize(_ rows: inout [Float]) {
        let dimension = statistics.mean.count
        let scale = statistics.variance.map { 1 / ($0 + epsilon).squareRoot() }
        for index in rows.indices {
            let k = index % dimension
            rows[index] = min(max(Float((Double(rows[index]) - statistics.mean[k]) * scale[k]), -clip), clip)
        }
    }

    /// The statistics as checkpoint metadata: float64 bit patterns, so the round trip is exact.
    public var metadata: String {
        ([statistics.count] + statistics.mean + statistics.variance).map { String($0.bitPattern) }.joined(separator: ",")
    }

    /// Restores statistics written by `metadata`.
    public mutating func restore(metadata text: String, source: String) throws {
        let values = text.split(separator: ",").compactMap { UInt64($0) }.map(Double.init(bitPattern:))
        let dimension = statistics.mean.count
        guard values.count == 1 + 2 * dimension else {
            throw AgentError.checkpointMismatch(path: source, reason: "observation statistics have \((values.count - 1) / 2) dimensions, expected \(dimension)")
        }
        statistics.count = values[0]
        statistics.mean = Array(values[1...dimension])
        statistics.variance = Array(values[(dimension + 1)...])
    }
}
