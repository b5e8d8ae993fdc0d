import ClassicControl
import Foundation
import Gym
import PruneGymTesting
import TensorCore
import TestSupport
import Testing
import TokenPruning

/// The assertions PruneGymTesting publishes must pass on good environments and fail — with a
/// message that says where — on bad ones.
@Suite("PruneGymTesting assertions")
struct TestingLibraryTests {
    @Test("the checker assertion passes CartPole and reports a broken environment's problems")
    func checker() throws {
        try EnvironmentAssertions.passesChecker(CartPole(), make: { CartPole() })
        #expect {
            try EnvironmentAssertions.passesChecker(BrokenEnvironment(.observationOutsideSpace))
        } throws: { error in
            "\(error)".contains("environment checker")
        }
    }

    /// Rewards drawn from a generator that is not reset by `reset(seed:)`: not reproducible.
    final class Leaky: Environment {
        typealias Observation = [Float]
        typealias Action = Int
        let observationSpace: any Space<[Float]> = Box(low: [0], high: [1])
        let actionSpace: any Space<Int> = Discrete(2)
        var name: String { "Leaky" }
        nonisolated(unsafe) static var shared = SeededGenerator(seed: 9)
        var t = 0
        func reset(seed: UInt64?, options: ResetOptions) throws -> Reset<[Float]> { t = 0; return Reset(observation: [0]) }
        func step(_ action: Int) throws -> Step<[Float]> {
            t += 1
            return Step(observation: [0], reward: Self.shared.nextDouble(), terminated: t == 5, truncated: false)
        }
        func snapshot() throws -> EnvironmentSnapshot { EnvironmentSnapshot() }
        func restore(_ snapshot: EnvironmentSnapshot) throws {}
    }

    @Test("the determinism assertion passes Pendulum and TokenPruning and names the step where Leaky diverges")
    func determinism() throws {
        try EnvironmentAssertions.isDeterministic(seed: 3, steps: 300) { Pendulum() }
        try EnvironmentAssertions.isDeterministic(seed: 3, steps: 30) {
            try TokenPruningEnvironment(simulator: ScriptedVisionLanguageModel.simulator().simulator)
        }
        #expect {
            try EnvironmentAssertions.isDeterministic(steps: 10) { Leaky() }
        } throws: { error in
            "\(error)".contains("rewards differ at step 0")
        }
    }

    @Test("a scripted trajectory replays on the scripted VLM, and a wrong expectation names the step and field")
    func replay() throws {
        let (simulator, _) = ScriptedVisionLanguageModel.simulator()
        var configuration = TokenPruningConfiguration()
        configuration.split = "test"
        let environment = try TokenPruningEnvironment(simulator: simulator, configuration: configuration)
        // Test task 0 is global task 1000: key token 1000 mod 16 = 8, answer 1 + 1000 mod 5 = 1.
        let options = ResetOptions(values: ["index": .number(0)])
        let keepKey = (0..<16).map { $0 == 8 || $0 < 4 }  // 5 of 16 kept, the key among them
        let dropKey = (0..<16).map { $0 < 4 && $0 != 8 }
        try EnvironmentAssertions.replays(environment, options: options, [
            .init(action: keepKey, reward: 0.5 * (1 - 5.0 / 16), terminated: false, info: ["tokens_kept": .number(5), "correct": .number(1)]),
            .init(action: dropKey, reward: -1 + 0.5 * (1 - 4.0 / 5), terminated: false, info: ["correct": .number(0)]),
            .init(action: dropKey, reward: 0, terminated: true),
        ])
        #expect {
            try EnvironmentAssertions.replays(environment, options: options, [.init(action: keepKey, reward: 1)])
        } throws: { error in
            "\(error)".contains("step 0: reward")
        }
        #expect {
            try EnvironmentAssertions.replays(environment, options: options, [.init(action: keepKey, info: ["correct": .number(0)])])
        } throws: { error in
            "\(error)".contains("info[\"correct\"]")
        }
    }
}
