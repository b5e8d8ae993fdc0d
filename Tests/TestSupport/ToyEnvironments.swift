import Gym
import TensorCore

/// A small, correct environment for tests: a walker on a line of `length` cells starting at a
/// random cell; action 1 steps right, 0 left; reward +1 on reaching the right end (terminated),
/// −0.1 per step otherwise; the observation is `[position / length, noise]` with noise drawn from
/// the environment's generator (so different seeds give different trajectories).
public final class LineWalk: Environment {
    public typealias Observation = [Float]
    public typealias Action = Int
    public let length: Int
    public let observationSpace: any Space<[Float]> = Box(low: [0, -1], high: [1, 1])
    public let actionSpace: any Space<Int> = Discrete(2)
    public var position = 0
    var generator = SeededGenerator(seed: 0)
    var episode = EpisodeGuard()

    public init(length: Int = 8) { self.length = length }

    public var name: String { "LineWalk" }

    var observation: [Float] { [Float(position) / Float(length), generator.uniform(-1, 1)] }

    public func reset(seed: UInt64?, options: ResetOptions) throws -> Reset<[Float]> {
        if let seed { generator = SeededGenerator(seed: seed) }
        position = options.initialState.map { Int($0[0]) } ?? generator.integer(below: length / 2)
        episode.begin()
        return Reset(observation: observation)
    }

    public func step(_ action: Int) throws -> Step<[Float]> {
        try episode.checkCanStep(name)
        try validate(action)
        position = max(0, position + (action == 1 ? 1 : -1))
        let terminated = position >= length
        episode.end(if: terminated)
        return Step(observation: observation, reward: terminated ? 1 : -0.1, terminated: terminated, truncated: false)
    }

    public func snapshot() throws -> EnvironmentSnapshot {
        var snapshot = EnvironmentSnapshot()
        snapshot.set("position", integers: [position])
        snapshot.set("generator", generator: generator)
        episode.save(into: &snapshot)
        return snapshot
    }

    public func restore(_ snapshot: EnvironmentSnapshot) throws {
        position = try snapshot.integers("position", in: name)[0]
        generator = try snapshot.generator("generator", in: name)
        try episode.restore(from: snapshot, environment: name)
    }
}

/// A toy environment that breaks exactly one of the environment checker's rules.
public final class BrokenEnvironment: Environment {
    public enum Defect: String, CaseIterable, Sendable {
        case malformedSpace, observationOutsideSpace, resetObservationOutsideSpace, ignoresSeed, nondeterministic
        case nonFiniteReward, truncatesImmediately, acceptsInvalidActions, stepsAfterEnd, stepsBeforeReset, unseededResetIsRandom
    }

    public typealias Observation = [Float]
    public typealias Action = Int
    public let defect: Defect
    public let observationSpace: any Space<[Float]>
    public let actionSpace: any Space<Int> = Discrete(3)
    var generator = SeededGenerator(seed: 0)
    var steps = 0
    var started = false
    var finished = false
    var ownCalls: UInt64 = 0

    public init(_ defect: Defect) {
        self.defect = defect
        observationSpace = defect == .malformedSpace ? Box(low: [1, 0], high: [0, 1]) : Box(low: -1, high: 1, shape: [2])
    }

    public var name: String { "Broken(\(defect.rawValue))" }

    var noise: Float {
        ownCalls += 1
        return defect == .nondeterministic ? Float(ownCalls % 7) / 10 : generator.uniform(-0.5, 0.5)
    }

    public func reset(seed: UInt64?, options: ResetOptions) throws -> Reset<[Float]> {
        // ignoresSeed: any seed reseeds the same stream; unseededResetIsRandom: no seed draws a fresh one.
        if let seed { generator = SeededGenerator(seed: defect == .ignoresSeed ? 0 : seed) }
        if seed == nil && defect == .unseededResetIsRandom { generator = SeededGenerator(seed: UInt64.random(in: 1...UInt64.max)) }
        steps = 0
        started = true
        finished = false
        return Reset(observation: defect == .resetObservationOutsideSpace ? [5, 5] : [noise, 0])
    }

    public func step(_ action: Int) throws -> Step<[Float]> {
        if !started && defect != .stepsBeforeReset { throw GymError.resetNeeded(environment: name) }
        if finished && defect != .stepsAfterEnd { throw GymError.episodeFinished(environment: name) }
        if defect != .acceptsInvalidActions { try validate(action) }
        steps += 1
        let done = steps >= 10
        finished = done
        let observation: [Float] = defect == .observationOutsideSpace && steps == 3 ? [2, 0] : [noise, Float(steps) / 10]
        let reward = defect == .nonFiniteReward && steps == 2 ? Double.nan : 1
        return Step(observation: observation, reward: reward, terminated: done, truncated: defect == .truncatesImmediately)
    }
}
