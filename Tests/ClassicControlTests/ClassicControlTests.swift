import ClassicControl
import Foundation
import Gym
import TensorCore
import TestSupport
import Testing

@Suite("Classic control equals Gymnasium 1.4")
struct ClassicControlTests {
    static func registry() throws -> EnvironmentRegistry {
        var registry = EnvironmentRegistry()
        try ClassicControl.register(in: &registry)
        return registry
    }

    @Test("every reference episode replays: observations within 1e-5, rewards within 1e-6, flags exactly")
    func fixtureReplay() throws {
        let url = Fixtures.url("gymnasium/reference-episodes.jsonl")
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 12)
        let registry = try Self.registry()
        for (index, line) in lines.enumerated() {
            let episode = try EpisodeReplay.parse(String(line), lineNumber: index + 1)
            let recorded = try #require(episode.recordedSteps)
            let replayed = try EpisodeReplay.replay(episode, registry: registry)
            try #require(replayed.count == recorded.count, "line \(index + 1): \(replayed.count) steps, fixture has \(recorded.count)")
            for (step, (ours, theirs)) in zip(replayed, recorded).enumerated() {
                guard case let .real(a) = ours.observation, case let .real(b) = theirs.observation else {
                    Issue.record("line \(index + 1): observation is not a Box element")
                    continue
                }
                expectClose(a, b, absolute: 1e-5, relative: 0, "line \(index + 1) (\(episode.environment)) step \(step)")
                #expect(abs(ours.reward - theirs.reward) <= 1e-6, "line \(index + 1) step \(step): reward \(ours.reward) vs \(theirs.reward)")
                #expect(ours.terminated == theirs.terminated && ours.truncated == theirs.truncated, "line \(index + 1) step \(step): flags")
            }
        }
    }

    @Test("CartPole from an injected state follows Gymnasium's golden trace (rl-anchors §1.7)")
    func cartPoleGoldenTrace() throws {
        let cartPole = CartPole()
        _ = try cartPole.reset(seed: 0, options: ResetOptions(initialState: [0.01, -0.02, 0.03, -0.04]))
        let actions = [1, 0, 1, 1, 0, 0, 1, 0, 1, 1]
        let expected: [[Double]] = [
            [0.0096, 0.174679196, 0.0292, -0.323068718], [0.013093584, -0.02084612, 0.022738626, -0.02132219],
            [0.012676662, 0.17394248, 0.022312182, -0.306744978], [0.016155511, 0.368739502, 0.016177282, -0.592308543],
            [0.023530301, 0.173394862, 0.004331111, -0.294574012], [0.026998198, -0.021788568, -0.001560369, -0.000528269],
            [0.026562427, 0.173355726, -0.001570934, -0.293703103], [0.030029542, -0.021743793, -0.007444996, -0.00151604],
            [0.029594666, 0.173484135, -0.007475317, -0.296538625], [0.033064348, 0.36871185, -0.01340609, -0.591569737],
        ]
        for (action, state) in zip(actions, expected) {
            let step = try cartPole.step(action)
            #expect(step.reward == 1 && !step.terminated && !step.truncated)
            for k in 0..<4 { #expect(abs(cartPole.state[k] - state[k]) < 1e-8, "component \(k)") }
        }
    }

    @Test("always pushing right from rest terminates on step 9 with reward 1, and stepping on throws")
    func cartPoleTermination() throws {
        let cartPole = CartPole()
        _ = try cartPole.reset(seed: 0, options: ResetOptions(initialState: [0, 0, 0, 0]))
        var last: Step<[Float]>?
        for _ in 0..<9 {
            let step = try cartPole.step(1)
            #expect(step.reward == 1)
            last = step
            if step.terminated { break }
        }
        let final = try #require(last)
        #expect(final.terminated)
        expectClose(final.observation, [0.14065097, 1.7603811, -0.21518604, -2.7778864], absolute: 1e-6)
        #expect(throws: GymError.episodeFinished(environment: "CartPole")) { try cartPole.step(1) }
    }

    @Test("make adds the 500- and 200-step limits; both environments pass the checker")
    func registryAndChecker() throws {
        let registry = try Self.registry()
        for id in ["CartPole-v1", "Pendulum-v1"] {
            let environment = try registry.make(id)
            let report = try check(environment, id: id, registry: registry)
            #expect(report.passed, "\(report)")
        }
        let pendulum = try registry.make("Pendulum-v1") as! TimeLimit<Pendulum>
        _ = try pendulum.reset(seed: 3)
        var steps = 0
        while try !pendulum.step([0]).truncated { steps += 1 }
        #expect(steps + 1 == 200)
        #expect(try registry.spec("CartPole-v1").rewardThreshold == 475)
    }

    func check<E: Environment>(_ environment: E, id: String, registry: EnvironmentRegistry) throws -> EnvironmentChecker.Report {
        EnvironmentChecker(spec: try registry.spec(id)).check(environment, make: { try registry.make(id) as! E })
    }

    @Test("Pendulum clips the torque like Gymnasium but rejects NaN and wrong shapes")
    func pendulumActions() throws {
        let a = Pendulum(), b = Pendulum()
        _ = try a.reset(seed: 0, options: ResetOptions(initialState: [1, 0]))
        _ = try b.reset(seed: 0, options: ResetOptions(initialState: [1, 0]))
        let clipped = try a.step([7]), limit = try b.step([2])
        #expect(clipped.observation == limit.observation && clipped.reward == limit.reward)
        #expect(throws: GymError.self) { try a.step([.nan]) }
        #expect(throws: GymError.self) { try a.step([0, 0]) }
    }

    @Test("invalid reset options are rejected with the reason")
    func invalidOptions() {
        #expect(throws: GymError.self) { try CartPole().reset(seed: 0, options: ResetOptions(initialState: [0, 0])) }
        #expect(throws: GymError.self) { try CartPole().reset(seed: 0, options: ResetOptions(low: 1, high: 0)) }
        #expect(throws: GymError.self) { try Pendulum().reset(seed: 0, options: ResetOptions(values: ["x_init": .text("far")])) }
        #expect(throws: GymError.self) { try Self.registry().make("Pendulum-v1", options: ["gravity": .number(9.8)]) }
    }

    @Test("a snapshot restores the exact state and generator, wrappers included")
    func snapshots() throws {
        let registry = try Self.registry()
        let original = try registry.make("CartPole-v1") as! TimeLimit<CartPole>
        _ = try original.reset(seed: 5)
        for index in 0..<7 { _ = try original.step(index % 2) }
        let snapshot = try original.snapshot()
        let copy = try registry.make("CartPole-v1") as! TimeLimit<CartPole>
        try copy.restore(snapshot)
        #expect(copy.elapsedSteps == 7)
        for action in [0, 0, 1, 0] { #expect(try original.step(action).observation == copy.step(action).observation) }
        #expect(try original.reset().observation == copy.reset().observation)  // the generators continue identically
    }
}

@Suite("Episode replay input")
struct EpisodeReplayInputTests {
    @Test("malformed lines are reported with their line number and reason")
    func malformedLines() {
        let cases: [(String, String)] = [
            ("not json", "line 4: not valid JSON"),
            ("{\"initial_state\": [0, 0, 0, 0], \"actions\": [1]}", "line 4: missing field 'env'"),
            ("{\"env\": \"CartPole-v1\", \"initial_state\": [\"a\"], \"actions\": [1]}", "line 4: field 'initial_state.Index 0'"),
            ("{\"env\": \"CartPole-v1\", \"initial_state\": [0, 0, 0, 0], \"actions\": [true]}", "line 4: field 'actions.Index 0'"),
        ]
        for (line, prefix) in cases {
            do {
                _ = try EpisodeReplay.parse(line, lineNumber: 4)
                Issue.record("accepted: \(line)")
            } catch {
                #expect("\(error)".hasPrefix(prefix), "\(error)")
            }
        }
    }

    @Test("a well-formed line with a wrong action or environment fails at replay, naming the line")
    func replayErrors() throws {
        var registry = EnvironmentRegistry()
        try ClassicControl.register(in: &registry)
        let wrongAction = try EpisodeReplay.parse("{\"env\": \"CartPole-v1\", \"initial_state\": [0, 0, 0, 0], \"actions\": [1, 7]}", lineNumber: 2)
        #expect(throws: EpisodeReplay.LineError.self) { try EpisodeReplay.replay(wrongAction, registry: registry) }
        let unknown = try EpisodeReplay.parse("{\"env\": \"CartPole-v9\", \"initial_state\": [0, 0, 0, 0], \"actions\": [1]}", lineNumber: 3)
        do {
            _ = try EpisodeReplay.replay(unknown, registry: registry)
        } catch {
            #expect("\(error)".hasPrefix("line 3: no environment registered as 'CartPole-v9'; did you mean CartPole-v1?"))
        }
    }
}
