import Foundation
import Gym
import TensorCore
import TestSupport
import Testing

@Suite("Vector environments and the environment checker")
struct VectorAndCheckerTests {
    func walks(_ count: Int, execution: VectorEnvironment<TimeLimit<LineWalk>>.Execution) -> VectorEnvironment<TimeLimit<LineWalk>> {
        VectorEnvironment(count: count, execution: execution) { _ in TimeLimit(LineWalk(length: 4), maxEpisodeSteps: 6) }
    }

    @Test("same-step autoreset keeps the final observation and info, and resets in the same call")
    func autoreset() throws {
        let vector = walks(2, execution: .synchronous)
        _ = try vector.reset(seed: 0)
        vector.environments[0].inner.position = 3
        var step = try vector.step([1, 0])
        #expect(step.terminated == [true, false])
        #expect(step.finalObservations[0]?[0] == 1.0)  // position 4 of 4
        #expect(step.finalObservations[1] == nil)
        #expect(step.observations[0][0] < 0.5)  // the new episode starts in the left half
        #expect(step.rewards[0] == 1)
        // Truncation by the time limit also autoresets, with truncated set.
        for _ in 0..<5 { step = try vector.step([0, 0]) }
        #expect(step.truncated[1] && !step.terminated[1] && step.finalObservations[1] != nil)
    }

    @Test("threaded and synchronous vector environments give identical results for the same seeds")
    func threadedEqualsSynchronous() throws {
        let a = walks(4, execution: .synchronous), b = walks(4, execution: .threaded)
        let resetA = try a.reset(seed: 10).map(\.observation), resetB = try b.reset(seed: 10).map(\.observation)
        #expect(resetA == resetB)
        var generator = testGenerator(4)
        for _ in 0..<40 {
            let actions = (0..<4).map { _ in generator.integer(below: 2) }
            let x = try a.step(actions), y = try b.step(actions)
            #expect(x.observations == y.observations && x.rewards == y.rewards && x.terminated == y.terminated && x.truncated == y.truncated)
            #expect(x.finalObservations == y.finalObservations)
        }
        // Sub-environment i is seeded with seed + i.
        #expect(try LineWalk(length: 4).reset(seed: 12).observation == resetA[2])
    }

    @Test("errors from a sub-environment name its index; wrong action counts are rejected")
    func vectorErrors() throws {
        let vector = walks(2, execution: .threaded)
        _ = try vector.reset(seed: 0)
        #expect(throws: GymError.actionCount(expected: 2, actual: 1)) { try vector.step([0]) }
        do {
            _ = try vector.step([0, 9])
            Issue.record("an invalid action was accepted")
        } catch let GymError.subEnvironment(index, underlying) {
            #expect(index == 1 && underlying.contains("Discrete(2)"))
        }
    }

    @Test("a correct environment passes every check")
    func correctEnvironmentPasses() {
        let report = EnvironmentChecker(spec: EnvironmentSpec(id: "LineWalk-v0", maxEpisodeSteps: 50))
            .check(TimeLimit(LineWalk(), maxEpisodeSteps: 50), make: { TimeLimit(LineWalk(), maxEpisodeSteps: 50) })
        #expect(report.passed, "\(report)")
    }

    static let expectations: [(BrokenEnvironment.Defect, EnvironmentChecker.Rule)] = [
        (.malformedSpace, .spaces), (.observationOutsideSpace, .stepObservation), (.resetObservationOutsideSpace, .resetObservation),
        (.ignoresSeed, .seedSensitivity), (.nondeterministic, .seedDeterminism), (.nonFiniteReward, .finiteReward),
        (.truncatesImmediately, .flags), (.acceptsInvalidActions, .invalidAction), (.stepsAfterEnd, .stepAfterEnd),
        (.stepsBeforeReset, .stepBeforeReset), (.unseededResetIsRandom, .unseededReset),
    ]

    @Test("the checker catches a deliberately broken environment for each rule", arguments: expectations)
    func catchesBrokenEnvironment(defect: BrokenEnvironment.Defect, rule: EnvironmentChecker.Rule) {
        let report = EnvironmentChecker().check(BrokenEnvironment(defect), make: { BrokenEnvironment(defect) })
        #expect(report.breaks(rule), "\(defect) should break \(rule): \(report)")
        #expect(report.description.contains(rule.rawValue))
    }

    @Test("the report lists every problem found in one readable list")
    func reportListsAll() {
        final class ManyBugs: Environment {
            let observationSpace: any Space<[Float]> = Box(low: 0, high: 1, shape: [1])
            let actionSpace: any Space<Int> = Discrete(2)
            func reset(seed: UInt64?, options: ResetOptions) throws -> Reset<[Float]> { Reset(observation: [3]) }
            func step(_ action: Int) throws -> Step<[Float]> { Step(observation: [3], reward: .infinity, terminated: false, truncated: true) }
        }
        let report = EnvironmentChecker().check(ManyBugs())
        for rule: EnvironmentChecker.Rule in [.resetObservation, .stepObservation, .finiteReward, .flags, .invalidAction, .seedSensitivity, .stepAfterEnd] {
            #expect(report.breaks(rule), "\(rule) missing from \(report)")
        }
        #expect(report.problems.count >= 7 && report.description.contains("problems"))
    }
}
