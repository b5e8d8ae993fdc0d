import Foundation
import Gym
import TensorCore
import TestSupport
import Testing

@Suite("Rollout buffer and GAE")
struct RolloutBufferTests {
    /// One environment, three steps, rewards 1, values 0.5, γ 0.9, λ 0.8, V(s₃) = 2.
    func buffer(terminated: [Bool] = [false, false, false], truncated: [Bool] = [false, false, false], finalValues: [Float] = [0, 0, 0]) -> RolloutBuffer {
        let buffer = RolloutBuffer(stepCount: 3, environmentCount: 1, observationWidth: 1, actionWidth: 1)
        for t in 0..<3 {
            buffer.add(observations: [Float(t)], actions: [0], logProbabilities: [0], values: [0.5], rewards: [1],
                       terminated: [terminated[t]], truncated: [truncated[t]], finalValues: [finalValues[t]])
        }
        return buffer
    }

    @Test("no episode boundary: A₂ = 2.3, A₁ = 0.95 + 0.72·2.3, A₀ = 0.95 + 0.72·A₁")
    func continuing() {
        let b = buffer()
        b.computeAdvantages(lastValues: [2], gamma: 0.9, lambda: 0.8)
        expectClose(b.advantages, [2.82632, 2.606, 2.3], absolute: 1e-5)
        expectClose(b.returns, [3.32632, 3.106, 2.8], absolute: 1e-5)
    }

    @Test("terminated: no bootstrap and nothing flows back across the boundary")
    func terminated() {
        let b = buffer(terminated: [false, true, false])
        b.computeAdvantages(lastValues: [2], gamma: 0.9, lambda: 0.8)
        // δ₁ = 1 − 0.5 = 0.5; A₀ = 0.95 + 0.72·0.5
        expectClose(b.advantages, [1.31, 0.5, 2.3], absolute: 1e-5)
    }

    @Test("truncated: bootstrap from V(final observation) = 3, nothing flows back across the boundary")
    func truncated() {
        let b = buffer(truncated: [false, true, false], finalValues: [0, 3, 0])
        b.computeAdvantages(lastValues: [2], gamma: 0.9, lambda: 0.8)
        // δ₁ = 1 + 0.9·3 − 0.5 = 3.2; A₀ = 0.95 + 0.72·3.2
        expectClose(b.advantages, [3.254, 3.2, 2.3], absolute: 1e-5)
        let cleanRL = buffer(truncated: [false, true, false], finalValues: [0, 3, 0])
        cleanRL.computeAdvantages(lastValues: [2], gamma: 0.9, lambda: 0.8, bootstrapsTruncation: false)
        expectClose(cleanRL.advantages, [1.31, 0.5, 2.3], absolute: 1e-5)
    }

    @Test("environments are independent: each column has its own boundaries and last value")
    func multipleEnvironments() {
        let b = RolloutBuffer(stepCount: 2, environmentCount: 2, observationWidth: 1, actionWidth: 1)
        b.add(observations: [0, 0], actions: [0, 0], logProbabilities: [0, 0], values: [0, 1], rewards: [1, 2], terminated: [true, false], truncated: [false, false])
        b.add(observations: [0, 0], actions: [0, 0], logProbabilities: [0, 0], values: [0, 1], rewards: [1, 2], terminated: [false, false], truncated: [false, false])
        b.computeAdvantages(lastValues: [10, 20], gamma: 0.5, lambda: 1)
        // env 0: A₀ = 1 (terminated), A₁ = 1 + 5 = 6; env 1: A₁ = 2 + 10 − 1 = 11, A₀ = (2 + 0.5 − 1) + 0.5·11 = 7
        expectClose(b.advantages, [1, 7, 6, 11], absolute: 1e-5)
    }

    @Test("seeded minibatches are a permutation of the buffer, reproducible from the seed")
    func minibatches() {
        let b = RolloutBuffer(stepCount: 5, environmentCount: 2, observationWidth: 2, actionWidth: 1)
        for t in 0..<5 {
            b.add(observations: [Float(t), 0, Float(t), 1], actions: [Float(t), Float(-t)], logProbabilities: [0, 0], values: [0, 0], rewards: [0, 0],
                  terminated: [false, false], truncated: [false, false])
        }
        var g1 = testGenerator(1), g2 = testGenerator(1)
        let batches = b.minibatches(size: 4, using: &g1)
        #expect(batches == b.minibatches(size: 4, using: &g2))
        #expect(batches.map(\.count) == [4, 4, 2])
        #expect(batches.flatMap { $0 }.sorted() == Array(0..<10))
        let batch = b.batch([3])  // step 1, environment 1
        #expect(batch.observations.scalars == [1, 1] && batch.actions.scalars == [-1])
    }
}
