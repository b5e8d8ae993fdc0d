import Foundation
import TensorCore

/// Checks that an environment follows the API (Gymnasium's `utils.env_checker.check_env`),
/// running it rather than reading it, and reports every problem it finds in one list.
///
/// Rules, each a `Rule` case:
/// - `spaces`: the observation and action spaces are well formed (Box bounds, positive sizes).
/// - `resetObservation` / `stepObservation`: what `reset` and `step` return is in the
///   observation space (checked on every step of the probe rollouts).
/// - `resetOptions`: `reset` accepts default `ResetOptions()`.
/// - `seedDeterminism`: the same seed and actions reproduce the trajectory bit for bit
///   (skipped when the spec says `nondeterministic`).
/// - `seedSensitivity`: a different seed changes the trajectory (skip with `expectsSeedDependence`
///   false for environments that are deterministic by design).
/// - `unseededReset`: `reset(seed: nil)` continues the generator: two seeded resets followed by
///   unseeded ones give the same observations.
/// - `finiteReward`: every reward is finite.
/// - `flags`: `truncated` is not set after a single step of a fresh episode (Gymnasium's check),
///   and the episode ends within `maximumSteps` when the spec has a time limit.
/// - `invalidAction`: an action outside the action space (`Space.invalidExample`) is rejected
///   with an error.
/// - `stepAfterEnd`: stepping after `terminated`/`truncated` without a reset throws.
/// - `stepBeforeReset`: stepping a fresh instance before any reset throws (needs `make`).
/// - `close`: `close()` can be called twice (it cannot fail in Swift; exercised for crashes).
///
/// `terminated` and `truncated` are `Bool`s by type, so Gymnasium's "flags are booleans" rule
/// holds by construction.
public struct EnvironmentChecker {
    /// The contract each check enforces (the rule's name appears in every problem).
    public enum Rule: String, Sendable, CaseIterable, Codable {
        case spaces, resetObservation, resetOptions, stepObservation, seedDeterminism, seedSensitivity
        case unseededReset, finiteReward, flags, invalidAction, stepAfterEnd, stepBeforeReset, close, unexpectedError
    }

    /// One problem: the rule it breaks and what was seen.
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        /// The rule broken.
        public var rule: Rule
        /// What was observed, with the values involved.
        public var message: String
        public var description: String { "[\(rule.rawValue)] \(message)" }
    }

    /// Everything the checker found.
    public struct Report: Sendable, CustomStringConvertible {
        /// The environment's name.
        public var environment: String
        /// Every problem found, in the order the checks ran.
        public var problems: [Problem]
        /// True when no rule is broken.
        public var passed: Bool { problems.isEmpty }
        /// Whether `rule` is among the problems.
        public func breaks(_ rule: Rule) -> Bool { problems.contains { $0.rule == rule } }
        public var description: String {
            if problems.isEmpty { return "\(environment): passed every check" }
            return "\(environment): \(problems.count) problem\(problems.count == 1 ? "" : "s")\n"
                + problems.enumerated().map { "  \($0.offset + 1). \($0.element)" }.joined(separator: "\n")
        }
    }

    /// Steps per probe rollout.
    public var probeSteps = 64
    /// Upper bound on an episode's length when checking that a time limit ends it.
    public var maximumSteps = 100_000
    /// Expect different seeds to give different first observations (false for environments with a fixed start).
    public var expectsSeedDependence = true
    /// The registry entry, to check its time limit and reward threshold too.
    public var spec: EnvironmentSpec?

    /// A checker; `probeSteps` random steps are taken per probe.
    public init(spec: EnvironmentSpec? = nil, probeSteps: Int = 64, expectsSeedDependence: Bool = true) {
        self.spec = spec
        self.probeSteps = probeSteps
        self.expectsSeedDependence = expectsSeedDependence
    }

    /// Checks `environment`; `make` (optional) supplies fresh instances for the order rule.
    public func check<E: Environment>(_ environment: E, make: (() throws -> E)? = nil) -> Report {
        var problems: [Problem] = []
        // Per-step rules report their first violation only, so one bug does not flood the list.
        let onceRules: Set<Rule> = [.resetObservation, .stepObservation, .finiteReward, .flags]
        func report(_ rule: Rule, _ message: String) {
            if onceRules.contains(rule) && problems.contains(where: { $0.rule == rule }) { return }
            problems.append(Problem(rule: rule, message: message))
        }
        let observationSpace = environment.observationSpace
        let actionSpace = environment.actionSpace

        for problem in observationSpace.descriptor.problems { report(.spaces, "observation space: \(problem)") }
        for problem in actionSpace.descriptor.problems { report(.spaces, "action space: \(problem)") }
        guard problems.isEmpty else { return Report(environment: environment.name, problems: problems) }

        if let make {
            do {
                let fresh = try make()
                var generator = SeededGenerator(seed: 1)
                do {
                    _ = try fresh.step(actionSpace.sample(using: &generator))
                    report(.stepBeforeReset, "step() before any reset() did not throw")
                } catch {}
            } catch { report(.unexpectedError, "make() threw: \(error)") }
        }

        do {
            _ = try environment.reset(seed: nil, options: ResetOptions())
        } catch { report(.resetOptions, "reset(seed: nil, options: ResetOptions()) threw: \(error)") }

        // Probe rollouts: seed 123 twice, seed 456 once, each with the same action sequence.
        var trajectories: [Trajectory] = []
        for seed: UInt64 in [123, 123, 456] {
            do { trajectories.append(try rollout(environment, seed: seed, report: report)) } catch {
                report(.unexpectedError, "rollout with seed \(seed) threw: \(error)")
                return Report(environment: environment.name, problems: problems)
            }
        }
        if spec?.nondeterministic != true, let difference = trajectories[0].firstDifference(from: trajectories[1]) {
            report(.seedDeterminism, "two runs with seed 123 and the same actions differ at \(difference)")
        }
        if expectsSeedDependence, trajectories[0].firstDifference(from: trajectories[2]) == nil {
            report(.seedSensitivity, "seeds 123 and 456 gave identical trajectories over \(trajectories[0].rewards.count) steps")
        }

        // Unseeded resets continue the generator: (123, nil) twice gives the same pair.
        do {
            var pairs: [[SpaceValue]] = []
            for _ in 0..<2 {
                let first = try environment.reset(seed: 123).observation
                let second = try environment.reset(seed: nil).observation
                pairs.append([observationSpace.erase(first), observationSpace.erase(second)])
            }
            if !zip(pairs[0], pairs[1]).allSatisfy({ $0.isIdentical(to: $1) }) {
                report(.unseededReset, "reset(seed: 123) then reset() did not repeat: unseeded resets must continue the seeded generator")
            }
        } catch { report(.unexpectedError, "reset threw: \(error)") }

        // An invalid action is rejected.
        if let invalid = actionSpace.invalidExample {
            do {
                _ = try environment.reset(seed: 7)
                do {
                    _ = try environment.step(invalid)
                    report(.invalidAction, "step(\(actionSpace.describe(invalid))) with an action outside \(actionSpace) did not throw")
                } catch {}
            } catch { report(.unexpectedError, "reset threw: \(error)") }
        }

        // Stepping after the end throws.
        do {
            _ = try environment.reset(seed: 11)
            var generator = SeededGenerator(seed: 11)
            var ended = false
            var steps = 0
            while !ended && steps < maximumSteps {
                let step = try environment.step(actionSpace.sample(using: &generator))
                ended = step.isDone
                steps += 1
            }
            if ended {
                do {
                    _ = try environment.step(actionSpace.sample(using: &generator))
                    report(.stepAfterEnd, "step() after the episode ended (step \(steps)) did not throw")
                } catch {}
            } else if let limit = spec?.maxEpisodeSteps {
                report(.flags, "no episode end within \(steps) steps although the spec limits episodes to \(limit)")
            }
        } catch { report(.unexpectedError, "episode to the end threw: \(error)") }

        environment.close()
        environment.close()
        return Report(environment: environment.name, problems: problems)
    }

    struct Trajectory {
        var observations: [SpaceValue] = []
        var rewards: [Double] = []
        var flags: [[Bool]] = []

        func firstDifference(from other: Trajectory) -> String? {
            for index in 0..<min(observations.count, other.observations.count) where !observations[index].isIdentical(to: other.observations[index]) {
                return index == 0 ? "the reset observation" : "the observation of step \(index)"
            }
            for index in 0..<min(rewards.count, other.rewards.count) where rewards[index].bitPattern != other.rewards[index].bitPattern {
                return "the reward of step \(index + 1)"
            }
            if flags != other.flags { return "the terminated/truncated flags" }
            if rewards.count != other.rewards.count { return "the episode length" }
            return nil
        }
    }

    private func rollout<E: Environment>(_ environment: E, seed: UInt64, report: (Rule, String) -> Void) throws -> Trajectory {
        let space = environment.observationSpace
        var trajectory = Trajectory()
        var actions = SeededGenerator(seed: 2024)
        let reset = try environment.reset(seed: seed)
        if !space.contains(reset.observation) {
            report(.resetObservation, "reset(seed: \(seed)) returned \(space.describe(reset.observation)), not in \(space)")
        }
        trajectory.observations.append(space.erase(reset.observation))
        for index in 0..<probeSteps {
            let step = try environment.step(environment.actionSpace.sample(using: &actions))
            if !space.contains(step.observation) {
                report(.stepObservation, "step \(index + 1) returned \(space.describe(step.observation)), not in \(space)")
            }
            if !step.reward.isFinite { report(.finiteReward, "step \(index + 1) returned reward \(step.reward)") }
            if index == 0 && step.truncated && !(spec?.maxEpisodeSteps == 1) {
                report(.flags, "truncated is true after the first step of an episode")
            }
            trajectory.observations.append(space.erase(step.observation))
            trajectory.rewards.append(step.reward)
            trajectory.flags.append([step.terminated, step.truncated])
            if step.isDone { break }
        }
        return trajectory
    }
}
