import Foundation
import TensorCore

/// Fixed-size storage of on-policy experience from N environments over T steps, laid out
/// `[T, N, …]` like SB3's `RolloutBuffer`, with GAE(λ).
///
/// Per step and environment it stores the flat observation, the flat action, its
/// log-probability, the value estimate, the reward, `terminated`, `truncated`, and — for a
/// truncated episode — the value of the episode's final observation.
///
/// Returns and advantages (`computeAdvantages`), with δ the TD error:
/// - terminated at t: δₜ = rₜ − V(sₜ); nothing flows back across the boundary (no bootstrap);
/// - truncated at t: δₜ = rₜ + γ·V(s_final) − V(sₜ); nothing flows back across the boundary;
/// - otherwise: δₜ = rₜ + γ·V(sₜ₊₁) − V(sₜ), Aₜ = δₜ + γλ·Aₜ₊₁, with V(s_T) the value of the
///   observation after the last stored step;
/// - returns Rₜ = Aₜ + V(sₜ) (the TD(λ) target).
/// CleanRL treats a time limit as terminal (vwxyzjn/cleanrl#198); this buffer bootstraps it, as
/// SB3 does since DLR-RM/stable-baselines3#633. Pass `bootstrapsTruncation: false` for CleanRL's
/// behaviour.
public final class RolloutBuffer {
    /// Steps per environment the buffer holds (T).
    public let stepCount: Int
    /// Environments per step (N).
    public let environmentCount: Int
    public let observationWidth: Int
    public let actionWidth: Int
    /// T × N transitions.
    public var capacity: Int { stepCount * environmentCount }

    /// Flat observations, [T, N, observationWidth].
    public private(set) var observations: [Float]
    /// Flat actions, [T, N, actionWidth].
    public private(set) var actions: [Float]
    /// log π(a|s) at collection time, [T, N].
    public private(set) var logProbabilities: [Float]
    public private(set) var values: [Float]
    /// Rewards, [T, N].
    public private(set) var rewards: [Float]
    /// Whether each step reached a terminal state, [T, N].
    public private(set) var terminated: [Bool]
    /// Whether each step was truncated, [T, N].
    public private(set) var truncated: [Bool]
    /// V(final observation) of truncated steps (bootstrapped when the settings say so), [T, N].
    public private(set) var finalValues: [Float]
    /// GAE advantages after `computeAdvantages`, [T, N].
    public private(set) var advantages: [Float]
    /// Returns (advantages + values) after `computeAdvantages`, [T, N].
    public private(set) var returns: [Float]
    /// Steps stored so far (each step holds `environmentCount` transitions).
    public private(set) var position = 0

    /// An empty buffer for T steps of N environments.
    public init(stepCount: Int, environmentCount: Int, observationWidth: Int, actionWidth: Int) {
        precondition(stepCount > 0 && environmentCount > 0, "RolloutBuffer: stepCount and environmentCount must be positive")
        self.stepCount = stepCount
        self.environmentCount = environmentCount
        self.observationWidth = observationWidth
        self.actionWidth = actionWidth
        let n = stepCount * environmentCount
        observations = Array(repeating: 0, count: n * observationWidth)
        actions = Array(repeating: 0, count: n * actionWidth)
        logProbabilities = Array(repeating: 0, count: n)
        values = Array(repeating: 0, count: n)
        rewards = Array(repeating: 0, count: n)
        terminated = Array(repeating: false, count: n)
        truncated = Array(repeating: false, count: n)
        finalValues = Array(repeating: 0, count: n)
        advantages = Array(repeating: 0, count: n)
        returns = Array(repeating: 0, count: n)
    }

    /// Whether T steps have been added.
    public var isFull: Bool { position == stepCount }

    /// Empties the buffer (storage is reused).
    public func reset() { position = 0 }

    /// Stores one step of every environment. `observations` and `actions` are flat rows
    /// (`environmentCount` × width); `finalValues[i]` is V(final observation) for an environment
    /// truncated on this step (ignored otherwise).
    public func add(
        observations: [Float], actions: [Float], logProbabilities: [Float], values: [Float],
        rewards: [Double], terminated: [Bool], truncated: [Bool], finalValues: [Float]? = nil
    ) {
        precondition(position < stepCount, "RolloutBuffer.add: the buffer is full (\(stepCount) steps); call reset()")
        let n = environmentCount
        precondition(observations.count == n * observationWidth && actions.count == n * actionWidth,
                     "RolloutBuffer.add: \(observations.count) observation and \(actions.count) action floats for \(n) environments of widths \(observationWidth)/\(actionWidth)")
        precondition(logProbabilities.count == n && values.count == n && rewards.count == n && terminated.count == n && truncated.count == n,
                     "RolloutBuffer.add: per-environment arrays must have \(n) entries")
        let base = position * n
        self.observations.replaceSubrange(base * observationWidth ..< (base + n) * observationWidth, with: observations)
        self.actions.replaceSubrange(base * actionWidth ..< (base + n) * actionWidth, with: actions)
        for i in 0..<n {
            self.logProbabilities[base + i] = logProbabilities[i]
            self.values[base + i] = values[i]
            self.rewards[base + i] = Float(rewards[i])
            self.terminated[base + i] = terminated[i]
            self.truncated[base + i] = truncated[i]
            self.finalValues[base + i] = finalValues?[i] ?? 0
        }
        position += 1
    }

    /// Computes GAE(λ) advantages and returns for the full buffer. `lastValues[i]` is V of
    /// environment i's current observation (after the last stored step).
    public func computeAdvantages(lastValues: [Float], gamma: Double, lambda: Double, bootstrapsTruncation: Bool = true) {
        precondition(isFull, "RolloutBuffer.computeAdvantages: the buffer holds \(position) of \(stepCount) steps")
        precondition(lastValues.count == environmentCount, "RolloutBuffer.computeAdvantages: \(lastValues.count) last values for \(environmentCount) environments")
        let n = environmentCount
        for i in 0..<n {
            var next = 0.0  // A_{t+1}
            for t in stride(from: stepCount - 1, through: 0, by: -1) {
                let index = t * n + i
                let value = Double(values[index])
                let reward = Double(rewards[index])
                let delta: Double
                if terminated[index] {
                    delta = reward - value
                    next = delta
                } else if truncated[index] {
                    delta = reward + (bootstrapsTruncation ? gamma * Double(finalValues[index]) : 0) - value
                    next = delta
                } else {
                    let nextValue = t == stepCount - 1 ? Double(lastValues[i]) : Double(values[index + n])
                    delta = reward + gamma * nextValue - value
                    next = t == stepCount - 1 ? delta : delta + gamma * lambda * next
                }
                advantages[index] = Float(next)
                returns[index] = Float(next + value)
            }
        }
    }

    /// Shuffled minibatches of transition indices covering the buffer once (the last one smaller
    /// when `size` does not divide the capacity), drawn from `generator`.
    public func minibatches(size: Int, using generator: inout SeededGenerator) -> [[Int]] {
        precondition(size > 0, "RolloutBuffer.minibatches: size must be positive")
        let order = generator.permutation(capacity)
        return stride(from: 0, to: capacity, by: size).map { Array(order[$0 ..< min($0 + size, capacity)]) }
    }

    /// The stored data of `indices`, as tensors ready for a loss.
    public func batch(_ indices: [Int]) -> RolloutBatch {
        let count = indices.count
        var observationRows = [Float](repeating: 0, count: count * observationWidth)
        var actionRows = [Float](repeating: 0, count: count * actionWidth)
        for (row, index) in indices.enumerated() {
            for k in 0..<observationWidth { observationRows[row * observationWidth + k] = observations[index * observationWidth + k] }
            for k in 0..<actionWidth { actionRows[row * actionWidth + k] = actions[index * actionWidth + k] }
        }
        return RolloutBatch(
            observations: Tensor(shape: [count, observationWidth], scalars: observationRows),
            actions: Tensor(shape: [count, actionWidth], scalars: actionRows),
            logProbabilities: Tensor(shape: [count], scalars: indices.map { logProbabilities[$0] }),
            values: Tensor(shape: [count], scalars: indices.map { values[$0] }),
            advantages: Tensor(shape: [count], scalars: indices.map { advantages[$0] }),
            returns: Tensor(shape: [count], scalars: indices.map { returns[$0] }))
    }
}

/// A minibatch from a `RolloutBuffer`: observations `[B, obs]`, actions `[B, act]`, and `[B]`
/// log-probabilities, values, advantages and returns.
public struct RolloutBatch {
    /// Observations `[B, observationWidth]`.
    public var observations: Tensor
    /// Actions `[B, actionWidth]`.
    public var actions: Tensor
    /// Old log-probabilities `[B]`.
    public var logProbabilities: Tensor
    public var values: Tensor
    /// Advantages `[B]`.
    public var advantages: Tensor
    /// Returns `[B]`.
    public var returns: Tensor
}
