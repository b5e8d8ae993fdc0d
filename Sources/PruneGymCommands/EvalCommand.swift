import Foundation
import Gym
import TensorCore

/// `prunegym eval`: evaluates a run's latest checkpoint.
enum EvalCommand {
    static let help = """
        usage: prunegym eval --run-dir DIR [--episodes N] [--seed S] [--stochastic] [--json]

        Loads the agent from DIR's latest checkpoint and runs N episodes (seeds S, S+1, …) with the
        deterministic policy (argmax / mean), printing the mean and standard deviation of the return.

        options:
          --run-dir DIR   a directory written by prunegym train
          --episodes N    episodes (default 20)
          --seed S        seed of the first episode (default 1000000, disjoint from training seeds)
          --stochastic    sample actions instead of taking the policy's mode
          --json          print {"mean", "std", "episodes", "returns"} as JSON

        example:
          swift run -c release prunegym eval --run-dir runs/cp --episodes 20
        """

    static func run(_ arguments: [String]) throws {
        let args = try Arguments(command: "eval", arguments, flags: ["json", "stochastic"], options: ["run-dir", "episodes", "seed"])
        if args.flag("help") { print(help); return }
        let path = args.string("run-dir", default: "")
        guard !path.isEmpty else { throw UsageError(message: "prunegym eval: --run-dir is required (a directory written by prunegym train)") }
        let runDirectory = RunDirectory(URL(fileURLWithPath: path))
        let config = try runDirectory.readConfig(RunConfiguration.self)
        guard let checkpoint = try runDirectory.latestCheckpoint() else {
            throw UsageError(message: "\(path) has no checkpoint yet; train it first: prunegym train --run-dir \(path) …")
        }
        let registry = try builtInRegistry()
        let environment = try registry.make(config.environment)
        let digest = ModelDigestFile.digest(of: environment)
        if let other = ModelDigestFile.otherModel(in: runDirectory.url, than: digest) {
            throw UsageError(message: "\(path): the agent was trained on another model (weight digest \(other)) than the one \(config.environment) runs on now (\(digest!)); evaluate it with the models directory it was trained with (PRUNEGYM_MODELS=DIR)")
        }
        let summary = try evaluate(environment, config: config, checkpoint: checkpoint,
                                   episodes: try args.integer("episodes", default: 20, range: 1...1_000_000),
                                   seed: UInt64(try args.integer("seed", default: 1_000_000)), deterministic: !args.flag("stochastic"))
        if args.flag("json") {
            let object: [String: Any] = ["mean": summary.mean, "std": summary.standardDeviation, "episodes": summary.episodes, "returns": summary.returns,
                                         "env": config.environment, "agent": config.agent]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        } else {
            printTable([["run", path], ["environment", config.environment], ["agent", config.agent], ["checkpoint", checkpoint.lastPathComponent],
                        ["return", summary.description]])
        }
    }

    static func evaluate<E: Environment>(_ environment: E, config: RunConfiguration, checkpoint: URL, episodes: Int, seed: UInt64, deterministic: Bool) throws -> ReturnSummary {
        let agent = try makeAgent(config, observationSpace: environment.observationSpace, actionSpace: environment.actionSpace)
        try agent.load(from: checkpoint.appendingPathComponent("agent.safetensors"))
        return try Gym.evaluate(agent, in: environment, episodes: episodes, seed: seed, deterministic: deterministic)
    }
}

/// `prunegym check-env`: runs the environment checker.
enum CheckEnvCommand {
    static let help = """
        usage: prunegym check-env --env ID | --list

        Runs the environment checker (Gymnasium's check_env, as tests): spaces well formed, reset and
        step return members of the observation space, the same seed reproduces a trajectory and a
        different one changes it, rewards finite, invalid actions rejected, stepping before a reset
        or after the end rejected. Prints every problem found; exits 1 if there is any.

        options:
          --env ID   a registered environment
          --list     list the registered environments

        example:
          swift run -c release prunegym check-env --env CartPole-v1
        """

    static func run(_ arguments: [String]) throws {
        let args = try Arguments(command: "check-env", arguments, flags: ["list"], options: ["env"])
        if args.flag("help") { print(help); return }
        let registry = try builtInRegistry()
        if args.flag("list") { print(registry.listing); return }
        let id = args.string("env", default: "")
        guard !id.isEmpty else { throw UsageError(message: "prunegym check-env: --env is required; registered: \(registry.ids.joined(separator: ", "))") }
        let report = try check(try registry.make(id), id: id, registry: registry)
        print(report)
        if !report.passed { exit(1) }
    }

    static func check<E: Environment>(_ environment: E, id: String, registry: EnvironmentRegistry) throws -> EnvironmentChecker.Report {
        let checker = EnvironmentChecker(spec: try registry.spec(id))
        return checker.check(environment, make: { try makeEnvironment(id, as: E.self, registry: registry) })
    }
}

/// `prunegym replay`: replays recorded episodes through PruneGym's environments.
enum ReplayCommand {
    static let help = """
        usage: prunegym replay --episodes FILE.jsonl --out OUT.jsonl

        For each line of FILE ({"env", "initial_state", "actions"}, optionally "seed"), resets the
        environment to the initial state, replays the actions and writes the same fields with
        PruneGym's own "steps" ({"obs", "reward", "terminated", "truncated"}) to OUT. A malformed
        line is reported with its line number and skipped; the rest of the file is processed and the
        command exits 1 at the end.

        example:
          swift run -c release prunegym replay --episodes Tests/Fixtures/gymnasium/reference-episodes.jsonl --out /tmp/replayed.jsonl
        """

    static func run(_ arguments: [String]) throws {
        let args = try Arguments(command: "replay", arguments, flags: [], options: ["episodes", "out"])
        if args.flag("help") { print(help); return }
        let input = args.string("episodes", default: ""), output = args.string("out", default: "")
        guard !input.isEmpty, !output.isEmpty else { throw UsageError(message: "prunegym replay: --episodes and --out are required (prunegym replay --help)") }
        let text: String
        do { text = try String(contentsOf: URL(fileURLWithPath: input), encoding: .utf8) } catch {
            throw FileError(path: input, reason: "cannot read the episodes file")
        }
        let registry = try builtInRegistry()
        var lines: [String] = []
        var failures = 0
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            do {
                let episode = try EpisodeReplay.parse(String(line), lineNumber: index + 1)
                lines.append(EpisodeReplay.encode(episode, steps: try EpisodeReplay.replay(episode, registry: registry)))
            } catch {
                failures += 1
                FileHandle.standardError.write(Data("\(input): \(error)\n".utf8))
            }
        }
        try AtomicFile.write(Data((lines.joined(separator: "\n") + (lines.isEmpty ? "" : "\n")).utf8), to: URL(fileURLWithPath: output))
        print("replayed \(lines.count) episode\(lines.count == 1 ? "" : "s") into \(output)\(failures > 0 ? "; \(failures) line\(failures == 1 ? "" : "s") failed" : "")")
        if failures > 0 { exit(1) }
    }
}
