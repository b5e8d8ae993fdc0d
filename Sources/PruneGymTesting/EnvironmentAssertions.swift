import Foundation
import Gym
import TensorCore

/// A failed environment assertion: what was expected, what happened, and where (step, field).
/// Thrown, so it fails a Swift Testing `@Test func … throws` (or an XCTest) with this message.
public struct EnvironmentTestFailure: Error, CustomStringConvertible, Sendable {
    /// What failed and where.
    public var message: String
    /// A failure with `message`.
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Assertions for testing your own environments — use them from Swift Testing:
///
/// ```swift
/// import PruneGymTesting
/// import Testing
///
/// @Test func gridWorldFollowsTheAPI() throws {
///     try EnvironmentAssertions.passesChecker(GridWorld())
///     try EnvironmentAssertions.isDeterministic { GridWorld() }
///     try EnvironmentAssertions.replays(GridWorld(), seed: 0, [
///         .init(action: 1, reward: 0), .init(action: 1, reward: 1, terminated: true),
///     ])
/// }
/// ```
public enum EnvironmentAssertions {
    /// Runs `EnvironmentChecker` (spaces, seeding, reset/step contracts, errors on bad actions, …)
    /// and throws every problem it found as one numbered list. `make` lets the checker compare two
    /// fresh instances for seed determinism.
    public static func passesChecker<E: Environment>(_ environment: E, spec: EnvironmentSpec? = nil, probeSteps: Int = 64,
                                                     expectsSeedDependence: Bool = true, make: (() throws -> E)? = nil) throws {
        let report = EnvironmentChecker(spec: spec, probeSteps: probeSteps, expectsSeedDependence: expectsSeedDependence)
            .check(environment, make: make)
        if !report.passed { throw EnvironmentTestFailure("environment checker: \(report)") }
    }

    /// Two fresh environments from `make`, reset with `seed` and driven by the same actions (drawn
    /// from the action space with `actionSeed`), must give bit-identical observations, rewards,
    /// terminated/truncated flags and info values for `steps` steps (resetting after each
    /// episode end with seed + episode number). Throws at the first difference, naming the step
    /// and the field.
    public static func isDeterministic<E: Environment>(seed: UInt64 = 0, steps: Int = 200, actionSeed: UInt64 = 1,
                                                       make: () throws -> E) throws {
        let a = try make(), b = try make()
        var generator = SeededGenerator(seed: actionSeed)
        var episode: UInt64 = 0
        var first = (try a.reset(seed: seed, options: ResetOptions()), try b.reset(seed: seed, options: ResetOptions()))
        try same(a, first.0.observation, first.1.observation, "the observation after reset(seed: \(seed))")
        try same("reset info", first.0.info, first.1.info)
        for step in 0..<steps {
            let action = a.actionSpace.sample(using: &generator)
            let (x, y) = (try a.step(action), try b.step(action))
            let place = "step \(step) (episode \(episode))"
            try same(a, x.observation, y.observation, "the observation at \(place)")
            if x.reward.bitPattern != y.reward.bitPattern { throw EnvironmentTestFailure("rewards differ at \(place): \(x.reward) vs \(y.reward)") }
            if x.terminated != y.terminated || x.truncated != y.truncated {
                throw EnvironmentTestFailure("episode ends differ at \(place): terminated \(x.terminated)/\(y.terminated), truncated \(x.truncated)/\(y.truncated)")
            }
            try same("info at \(place)", x.info, y.info)
            if x.terminated || x.truncated {
                episode += 1
                first = (try a.reset(seed: seed &+ episode, options: ResetOptions()), try b.reset(seed: seed &+ episode, options: ResetOptions()))
                try same(a, first.0.observation, first.1.observation, "the observation after reset \(episode)")
            }
        }
    }

    /// One expected step of a scripted trajectory: the action to take and what must come back
    /// (nil fields are not checked; `observation` is compared flattened, within `tolerance`).
    public struct ScriptedStep<Action: Sendable>: Sendable {
        /// The action to take.
        public var action: Action
        /// The expected reward (nil: not checked).
        public var reward: Double?
        /// The expected terminated flag (nil: not checked).
        public var terminated: Bool?
        /// The expected truncated flag (nil: not checked).
        public var truncated: Bool?
        /// The expected observation, flattened (nil: not checked).
        public var observation: [Float]?
        /// Info values that must match.
        public var info: [String: InfoValue]

        /// One scripted step.
        public init(action: Action, reward: Double? = nil, terminated: Bool? = nil, truncated: Bool? = nil,
                    observation: [Float]? = nil, info: [String: InfoValue] = [:]) {
            self.action = action
            self.reward = reward
            self.terminated = terminated
            self.truncated = truncated
            self.observation = observation
            self.info = info
        }
    }

    /// Resets `environment` with `seed` and `options`, takes the scripted actions and checks each
    /// step against the script (rewards within `tolerance`). Throws at the first mismatch, naming
    /// the step and the field; returns the steps taken.
    @discardableResult
    public static func replays<E: Environment>(_ environment: E, seed: UInt64? = 0, options: ResetOptions = ResetOptions(),
                                               tolerance: Double = 1e-9, _ script: [ScriptedStep<E.Action>]) throws -> [Step<E.Observation>] {
        _ = try environment.reset(seed: seed, options: options)
        var steps: [Step<E.Observation>] = []
        for (index, expected) in script.enumerated() {
            let step: Step<E.Observation>
            do { step = try environment.step(expected.action) } catch {
                throw EnvironmentTestFailure("step \(index): step(\(environment.actionSpace.describe(expected.action))) threw: \(error)")
            }
            steps.append(step)
            if let reward = expected.reward, !(abs(step.reward - reward) <= tolerance) {
                throw EnvironmentTestFailure("step \(index): reward \(step.reward), expected \(reward)")
            }
            if let terminated = expected.terminated, step.terminated != terminated {
                throw EnvironmentTestFailure("step \(index): terminated \(step.terminated), expected \(terminated)")
            }
            if let truncated = expected.truncated, step.truncated != truncated {
                throw EnvironmentTestFailure("step \(index): truncated \(step.truncated), expected \(truncated)")
            }
            if let observation = expected.observation {
                let got = environment.observationSpace.flattened(step.observation)
                guard got.count == observation.count else {
                    throw EnvironmentTestFailure("step \(index): observation has \(got.count) values, expected \(observation.count)")
                }
                if let i = got.indices.first(where: { !(abs(Double(got[$0]) - Double(observation[$0])) <= tolerance) }) {
                    throw EnvironmentTestFailure("step \(index): observation[\(i)] = \(got[i]), expected \(observation[i])")
                }
            }
            for (key, value) in expected.info where step.info.values[key] != value {
                throw EnvironmentTestFailure("step \(index): info[\"\(key)\"] = \(step.info.values[key].map { "\($0)" } ?? "missing"), expected \(value)")
            }
        }
        return steps
    }

    static func same<E: Environment>(_ environment: E, _ x: E.Observation, _ y: E.Observation, _ what: String) throws {
        let (p, q) = (environment.observationSpace.flattened(x), environment.observationSpace.flattened(y))
        guard p.count == q.count else { throw EnvironmentTestFailure("\(what) differs in size: \(p.count) vs \(q.count) values") }
        if let i = p.indices.first(where: { p[$0].bitPattern != q[$0].bitPattern }) {
            throw EnvironmentTestFailure("\(what) differs at flat index \(i): \(p[i]) vs \(q[i]) (same seed, same actions)")
        }
    }

    /// Info values must match; of the episode statistics, return and length (not the wall-clock seconds).
    static func same(_ what: String, _ x: Info, _ y: Info) throws {
        if x.values != y.values { throw EnvironmentTestFailure("\(what) differs: \(x.values) vs \(y.values)") }
        if x.episode?.episodeReturn != y.episode?.episodeReturn || x.episode?.length != y.episode?.length {
            throw EnvironmentTestFailure("\(what): episode statistics differ: \(String(describing: x.episode)) vs \(String(describing: y.episode))")
        }
    }
}
