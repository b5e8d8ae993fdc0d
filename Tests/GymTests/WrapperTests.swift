import Foundation
import Gym
import TensorCore
import TestSupport
import Testing

@Suite("Wrappers and the registry")
struct WrapperTests {
    @Test("TimeLimit truncates at the limit, sets both flags when they coincide, and rejects stepping on")
    func timeLimit() throws {
        let limited = TimeLimit(LineWalk(length: 8), maxEpisodeSteps: 3)
        _ = try limited.reset(seed: 0, options: ResetOptions(initialState: [0]))
        #expect(try !limited.step(1).truncated)
        #expect(try !limited.step(1).truncated)
        let last = try limited.step(1)
        #expect(last.truncated && !last.terminated)
        #expect(throws: GymError.episodeFinished(environment: "TimeLimit<LineWalk>")) { try limited.step(1) }
        // Terminating on the limit's step sets both flags.
        let both = TimeLimit(LineWalk(length: 2), maxEpisodeSteps: 2)
        _ = try both.reset(seed: 0, options: ResetOptions(initialState: [0]))
        _ = try both.step(1)
        let end = try both.step(1)
        #expect(end.terminated && end.truncated)
    }

    @Test("stepping before reset and invalid actions throw errors naming the space")
    func orderAndActions() throws {
        let walk = LineWalk()
        #expect(throws: GymError.resetNeeded(environment: "LineWalk")) { try walk.step(0) }
        _ = try walk.reset(seed: 1)
        #expect(throws: GymError.invalidAction(environment: "LineWalk", space: "Discrete(2)", action: "5")) { try walk.step(5) }
    }

    @Test("RecordEpisodeStatistics reports return and length at the end of each episode")
    func episodeStatistics() throws {
        let recorded = RecordEpisodeStatistics(LineWalk(length: 4), bufferLength: 2)
        for _ in 0..<3 {
            _ = try recorded.reset(seed: 0, options: ResetOptions(initialState: [1]))
            _ = try recorded.step(0)
            var step = try recorded.step(1)
            while !step.isDone {
                #expect(step.info.episode == nil)
                step = try recorded.step(1)
            }
            #expect(step.info.episode?.length == 5)
            #expect(abs(step.info.episode!.episodeReturn - (1 - 0.4)) < 1e-12)
        }
        #expect(recorded.returnQueue.count == 2 && recorded.episodeCount == 3)
    }

    @Test("NormalizeObservation matches the running statistics it keeps, and can be frozen")
    func normalizeObservation() throws {
        let normalized = NormalizeObservation(LineWalk(length: 8))
        let raw = try LineWalk(length: 8).reset(seed: 2).observation
        let first = try normalized.reset(seed: 2).observation
        // One sample x after the prior (mean 0, var 1, count 1e-4): Chan's update by hand.
        for k in 0..<2 {
            let x = Double(raw[k]), total = 1 + 1e-4
            let mean = x / total
            let variance = (1e-4 + x * x * 1e-4 / total) / total
            #expect(abs(Double(first[k]) - (x - mean) / (variance + 1e-8).squareRoot()) < 1e-5)
        }
        for index in 0..<20 { _ = try normalized.step(index % 3 == 0 ? 1 : 0) }
        normalized.updatesStatistics = false
        let frozen = normalized.statistics
        _ = try normalized.reset(seed: 3)
        #expect(normalized.statistics == frozen)
    }

    @Test("RunningMeanStd combines batches like one pass over all samples")
    func runningMeanStd() {
        var running = RunningMeanStd(dimension: 1, epsilon: 0)
        running.count = 0
        running.variance = [0]
        let samples: [Double] = [1, 4, 2, 8, 5, 7]
        running.update(batchMean: [7.0 / 3], batchVariance: [(pow(1 - 7.0 / 3, 2) + pow(4 - 7.0 / 3, 2) + pow(2 - 7.0 / 3, 2)) / 3], batchCount: 3)
        running.update(batchMean: [20.0 / 3], batchVariance: [(pow(8 - 20.0 / 3, 2) + pow(5 - 20.0 / 3, 2) + pow(7 - 20.0 / 3, 2)) / 3], batchCount: 3)
        let mean = samples.reduce(0, +) / 6
        let variance = samples.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 6
        #expect(abs(running.mean[0] - mean) < 1e-12 && abs(running.variance[0] - variance) < 1e-12)
    }

    @Test("NormalizeReward divides by the std of the discounted return without centring")
    func normalizeReward() throws {
        let normalized = NormalizeReward(LineWalk(length: 50), gamma: 0.5)
        _ = try normalized.reset(seed: 0, options: ResetOptions(initialState: [0]))
        var statistics = RunningMeanStd(dimension: 1)
        var discounted = 0.0
        for _ in 0..<5 {
            let step = try normalized.step(1)
            discounted = discounted * 0.5 + -0.1
            statistics.update([discounted])
            #expect(abs(step.reward - (-0.1 / (statistics.variance[0] + 1e-8).squareRoot())) < 1e-12)
        }
    }

    @Test("ClipAction clips into the Box and exposes an unbounded space")
    func clipAction() throws {
        final class Echo: Environment {
            let observationSpace: any Space<[Float]> = Box(low: -10, high: 10, shape: [1])
            let actionSpace: any Space<[Float]> = Box(low: -1, high: 1, shape: [1])
            func reset(seed: UInt64?, options: ResetOptions) throws -> Reset<[Float]> { Reset(observation: [0]) }
            func step(_ action: [Float]) throws -> Step<[Float]> {
                try validate(action)
                return Step(observation: action, reward: 0, terminated: false, truncated: false)
            }
        }
        let clipped = ClipAction(Echo())
        _ = try clipped.reset(seed: 0)
        #expect(try clipped.step([5]).observation == [1])
        #expect(try clipped.step([-3]).observation == [-1])
        #expect(clipped.actionSpace.description == "Box(-inf, inf, (1,), float32)")
        #expect(throws: GymError.self) { try clipped.step([.nan]) }
    }

    @Test("TransformReward applies its function and rejects a non-finite result")
    func transformReward() throws {
        let scaled = TransformReward(LineWalk(length: 4), label: "×10") { $0 * 10 }
        _ = try scaled.reset(seed: 0, options: ResetOptions(initialState: [1]))
        #expect(abs(try scaled.step(0).reward - -1) < 1e-12)
        let broken = TransformReward(LineWalk(length: 4), label: "log") { Foundation.log($0) }
        _ = try broken.reset(seed: 0, options: ResetOptions(initialState: [1]))
        do {
            _ = try broken.step(0)
            Issue.record("a NaN reward was accepted")
        } catch let error as GymError {
            #expect("\(error)".hasPrefix("TransformReward<LineWalk, log>: the transformed reward") && "\(error)".hasSuffix("is not finite"))
        }
    }

    @Test("EpisodeMonitor appends one CSV row per finished episode")
    func episodeMonitor() throws {
        let directory = try makeTemporaryDirectory()
        let url = directory.appendingPathComponent("monitor.csv")
        let monitored = try EpisodeMonitor(LineWalk(length: 3), url: url)
        for _ in 0..<2 {
            _ = try monitored.reset(seed: 0, options: ResetOptions(initialState: [0]))
            while try !monitored.step(1).isDone {}
        }
        let again = try EpisodeMonitor(LineWalk(length: 3), url: url)
        _ = try again.reset(seed: 0, options: ResetOptions(initialState: [2]))
        _ = try again.step(1)
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 4)
        #expect(lines[0] == "episode,return,length,seconds,terminated")
        #expect(lines[1].hasPrefix("0,0.8,3,") && lines[1].hasSuffix(",true"))
        #expect(lines[3].hasPrefix("2,1.0,1,"))
    }

    @Test("the registry makes time-limited environments, rejects unknown and duplicate ids")
    func registry() throws {
        var registry = EnvironmentRegistry()
        try registry.register(EnvironmentSpec(id: "LineWalk-v0", maxEpisodeSteps: 5)) { _ in LineWalk() }
        let environment = try registry.make("LineWalk-v0")
        #expect(environment.name == "TimeLimit<LineWalk>")
        #expect(try registry.make("LineWalk-v0", maxEpisodeSteps: 0).name == "LineWalk")
        #expect(throws: GymError.unknownEnvironment(id: "LineWalk-v1", known: ["LineWalk-v0"])) { try registry.make("LineWalk-v1") }
        let wrongVersion = #expect(throws: GymError.self) { try registry.make("LineWalk-v1") }
        #expect("\(wrongVersion!)" == "no environment registered as 'LineWalk-v1'; did you mean LineWalk-v0?")
        let unknown = #expect(throws: GymError.self) { try registry.make("GridWalk-v0") }
        #expect("\(unknown!)" == "no environment registered as 'GridWalk-v0'; registered: LineWalk-v0")
        #expect(throws: GymError.duplicateRegistration(id: "LineWalk-v0")) {
            try registry.register(EnvironmentSpec(id: "LineWalk-v0")) { _ in LineWalk() }
        }
        #expect(try registry.spec("LineWalk-v0").maxEpisodeSteps == 5)
    }
}
