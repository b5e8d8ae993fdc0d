// GymBench: the "must learn" figures of the Gym issue, each beside its peer from the same run.
//
//   swift run -c release GymBench [--quick] [--skip-peers] [--only cartpole|pendulum|bc|throughput]
//
// 1. PPO on CartPole-v1 (PPOConfiguration.cartPole), 100k steps, seeds 0, 1, 2: deterministic
//    evaluation return over 20 episodes (target ≥ 475 for each seed) and wall clock, beside
//    Stable-Baselines3 PPO with the same hyperparameters and sample count
//    (Benchmarks/peers/sb3_ppo.py; skipped with a message if SB3 is not installed).
// 2. PPO on Pendulum-v1 (PPOConfiguration.pendulum), 200k steps, seeds 0, 1, 2: final
//    evaluation return over 20 episodes (target: mean over seeds ≥ −300).
// 3. Behaviour cloning on CartPole-v1 from 20 episodes of the scripted expert (target ≥ 475).
// 4. Raw CartPole stepping throughput, single and 8 vectorised copies, vs Gymnasium
//    (Benchmarks/peers/gymnasium_throughput.py).
import BehaviorCloning
import ClassicControl
import Foundation
import Gym
import PPO
import TensorCore

// OpenBLAS's kernels for this CPU's vector instructions, if it does not recognise the CPU.
BLAS.restartWithMatchingKernels()

struct Options {
    var quick = false
    var skipPeers = false
    var only: String?
    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--quick": quick = true
            case "--skip-peers": skipPeers = true
            case "--only": only = iterator.next()
            case "--help", "-h":
                print("""
                    usage: swift run -c release GymBench [--quick] [--skip-peers] [--only cartpole|pendulum|bc|throughput]
                    Trains PPO on CartPole-v1 (seeds 0-2, 100k steps) beside SB3, PPO on Pendulum-v1 (200k),
                    BC from a scripted expert, and measures environment throughput beside Gymnasium.
                    --quick runs seed 0 only. Example: swift run -c release GymBench --only cartpole
                    """)
                exit(0)
            default:
                FileHandle.standardError.write(Data("GymBench: unknown option \(argument) (try --help)\n".utf8))
                exit(2)
            }
        }
    }
    func runs(_ section: String) -> Bool { only == nil || only == section }
}

/// Writes a line unbuffered, so progress shows when the output is redirected to a file.
func print(_ text: String = "") { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }

let options = Options(CommandLine.arguments)
let seeds: [UInt64] = options.quick ? [0] : [0, 1, 2]
let peersDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("peers")

func row(_ cells: [String], widths: [Int]) -> String {
    zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: " ")
}

/// Runs a peer script; returns its JSON object, or nil after printing why it was skipped.
func runPeer(_ script: String, _ arguments: [String]) -> [String: Any]? {
    if options.skipPeers { return nil }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", peersDirectory.appendingPathComponent(script).path] + arguments
    let output = Pipe(), errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    do { try process.run() } catch {
        print("   peer skipped: cannot run python3 (\(error))")
        return nil
    }
    let data = output.fileHandleForReading.readDataToEndOfFile()
    let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0, let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        print("   peer \(script) skipped: \(errorText.split(separator: "\n").last.map(String.init) ?? "no output")")
        return nil
    }
    return object
}

func timed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
    let start = Date()
    let value = try body()
    return (value, Date().timeIntervalSince(start))
}

/// Trains PPO with `configuration` on `id` for `steps`, then evaluates 20 deterministic episodes.
func trainPPO<E: Environment>(_ make: () -> E, configuration: PPOConfiguration, steps: Int, seed: UInt64) throws -> (ReturnSummary, Double)
where E.Observation == [Float] {
    let vector = VectorEnvironment(count: configuration.environmentCount) { _ in make() }
    let agent = try PPOAgent(observationSpace: vector.singleObservationSpace, actionSpace: vector.singleActionSpace,
                             configuration: configuration, seed: seed)
    let trainer = try OnPolicyTrainer(agent: agent, environment: vector,
                                      configuration: TrainerConfiguration(totalSteps: steps, seed: seed, showsProgress: false))
    let (_, seconds) = try timed { try trainer.train() }
    return (try evaluate(agent, in: make(), episodes: 20, seed: 1_000_000), seconds)
}

do {
    if options.runs("cartpole") {
        print("1. PPO on CartPole-v1, 100k steps (PPOConfiguration.cartPole); evaluation: 20 episodes, deterministic")
        let widths = [6, 22, 12, 22, 12, 10]
        print(row(["seed", "PruneGym return", "time (s)", "SB3 return", "SB3 time (s)", "speed-up"], widths: widths))
        var ours: [Double] = [], theirs: [Double] = []
        for seed in seeds {
            let (summary, seconds) = try trainPPO({ TimeLimit(CartPole(), maxEpisodeSteps: 500) }, configuration: .cartPole, steps: 100_000, seed: seed)
            let peer = runPeer("sb3_ppo.py", ["--seed", String(seed), "--steps", "100000"])
            let peerSeconds = peer?["seconds"] as? Double
            ours.append(seconds)
            if let peerSeconds { theirs.append(peerSeconds) }
            print(row([String(seed), String(format: "%.1f ± %.1f", summary.mean, summary.standardDeviation) + (summary.mean >= 475 ? " ✓" : " ✗"),
                       String(format: "%.1f", seconds),
                       peer.map { String(format: "%.1f ± %.1f", $0["mean"] as? Double ?? .nan, $0["std"] as? Double ?? .nan) } ?? "skipped",
                       peerSeconds.map { String(format: "%.1f", $0) } ?? "-",
                       peerSeconds.map { String(format: "%.1f×", $0 / seconds) } ?? "-"], widths: widths))
        }
        if theirs.count == ours.count {
            print(String(format: "   total wall clock: PruneGym %.1f s, SB3 %.1f s — PruneGym %.1f× faster (target ≥ 5×)",
                         ours.reduce(0, +), theirs.reduce(0, +), theirs.reduce(0, +) / ours.reduce(0, +)))
        }
    }

    if options.runs("pendulum") {
        print("\n2. PPO on Pendulum-v1, 200k steps (PPOConfiguration.pendulum); evaluation: 20 episodes, deterministic")
        var finals: [Double] = []
        for seed in seeds {
            let (summary, seconds) = try trainPPO({ TimeLimit(Pendulum(), maxEpisodeSteps: 200) }, configuration: .pendulum, steps: 200_000, seed: seed)
            finals.append(summary.mean)
            print(String(format: "   seed %d: %.1f ± %.1f in %.1f s", Int(seed), summary.mean, summary.standardDeviation, seconds))
        }
        let mean = finals.reduce(0, +) / Double(finals.count)
        print(String(format: "   mean over seeds: %.1f (target ≥ −300) %@", mean, mean >= -300 ? "✓" : "✗"))
    }

    if options.runs("bc") {
        print("\n3. Behaviour cloning on CartPole-v1 from 20 episodes of the scripted expert")
        let environment = TimeLimit(CartPole(), maxEpisodeSteps: 500)
        let expert = ScriptedAgent<[Float], Int>(CartPole.expertAction)
        let demonstrations = try rolloutEpisodes(expert, in: environment, episodes: 20, seed: 0)
        let agent = try BehaviorCloningAgent(observationSpace: environment.observationSpace, actionSpace: environment.actionSpace, seed: 0)
        let (rows, seconds) = try timed { try agent.learn(from: demonstrations) }
        let summary = try evaluate(agent, in: environment, episodes: 20, seed: 1_000_000)
        print(String(format: "   expert %.1f; %d transitions, %d epochs in %.1f s; clone %.1f ± %.1f (target ≥ 475) %@",
                     ReturnSummary(returns: demonstrations.map(\.episodeReturn)).mean, demonstrations.map(\.actions.count).reduce(0, +),
                     rows.count, seconds, summary.mean, summary.standardDeviation, summary.mean >= 475 ? "✓" : "✗"))
    }

    if options.runs("throughput") {
        print("\n4. CartPole-v1 stepping throughput (fixed action pattern, resets on episode end), steps/s")
        let steps = options.quick ? 200_000 : 1_000_000
        let single = TimeLimit(CartPole(), maxEpisodeSteps: 500)
        _ = try single.reset(seed: 0)
        let (_, singleSeconds) = try timed {
            for t in 0..<steps where try single.step(t % 7 == 0 ? 1 : t % 2).isDone { _ = try single.reset() }
        }
        func vectorRate(_ execution: VectorEnvironment<TimeLimit<CartPole>>.Execution) throws -> Double {
            let vector = VectorEnvironment(count: 8, execution: execution) { _ in TimeLimit(CartPole(), maxEpisodeSteps: 500) }
            _ = try vector.reset(seed: 0)
            let actions = (0..<16).map { t in (0..<8).map { (t + $0) % 2 } }
            let (_, seconds) = try timed { for t in 0..<(steps / 8) { _ = try vector.step(actions[t % 16]) } }
            return Double(steps / 8 * 8) / seconds
        }
        let ours = (single: Double(steps) / singleSeconds, sync: try vectorRate(.synchronous), threaded: try vectorRate(.threaded))
        let peer = runPeer("gymnasium_throughput.py", [String(options.quick ? 100_000 : 300_000)])
        let widths = [44, 14, 14, 10]
        print(row(["", "PruneGym", "Gymnasium", "ratio"], widths: widths))
        func line(_ label: String, _ value: Double, _ key: String) {
            let theirs = peer?[key] as? Double
            print(row([label, String(format: "%.0f", value), theirs.map { String(format: "%.0f", $0) } ?? "skipped",
                       theirs.map { String(format: "%.1f×", value / $0) } ?? "-"], widths: widths))
        }
        line("single environment (make: TimeLimit)", ours.single, "single")
        line("8 copies, synchronous vector", ours.sync, "sync8")
        line("8 copies, threaded vector (vs Gymnasium sync)", ours.threaded, "sync8")
        line("8 copies, synchronous vs Gymnasium's native", ours.sync, "native8")
    }
} catch {
    FileHandle.standardError.write(Data("GymBench: \(error)\n".utf8))
    exit(1)
}
