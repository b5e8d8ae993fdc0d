import BehaviorCloning
import ClassicControl
import Foundation
import Gym
import PPO
import Policies
import TensorCore

/// `prunegym train`: trains an agent on a registered environment into a run directory.
enum TrainCommand {
    static let help = """
        usage: prunegym train --env ID --agent NAME [--steps N] [--seed S] [--run-dir DIR]
                              [--config FILE.json] [--vector synchronous|threaded]
                              [--checkpoint-every U] [--expert-episodes E] [--quiet]

        Trains an agent and writes runs/<name>/: config.json, metrics.csv (one row per update),
        checkpoints/ and learning-curve.svg. If DIR already holds a checkpoint of the same run,
        training resumes from it and continues exactly as if it had not stopped. A TokenPruning-v0
        run also records the weight digest of the model it learned (model-digest.txt); on another
        model (PRUNEGYM_MODELS) it is not resumed, and eval refuses it.

        options:
          --env ID              environment id (prunegym check-env --list shows them)
          --agent NAME          ppo | bc | random, or an agent your package registered (examples/custom-agent)
          --steps N             environment steps for ppo (default 100000)
          --seed S              seed of every random draw (default 0)
          --run-dir DIR         run directory (default runs/<env>-<agent>-<seed>)
          --config FILE.json    agent hyperparameters (PPOConfiguration / BehaviorCloningConfiguration
                                keys, e.g. {"learning_rate": 0.001}); a key it leaves out keeps
                                the preset for the env (ppo) or the default (bc)
          --vector MODE         step the environments in one thread or in parallel (default synchronous)
          --checkpoint-every U  updates between checkpoints (default 10; the last is always saved)
          --expert-episodes E   bc: episodes of the scripted expert to clone (CartPole-v1; default 20)
          --quiet               no progress bar

        examples:
          swift run -c release prunegym train --env CartPole-v1 --agent ppo --steps 100000 --seed 0 --run-dir runs/cp
          swift run -c release prunegym train --env CartPole-v1 --agent bc --expert-episodes 20 --run-dir runs/cp-bc
        """

    static func run(_ arguments: [String]) throws {
        let args = try Arguments(command: "train", arguments, flags: ["quiet"],
                                 options: ["env", "agent", "steps", "seed", "run-dir", "config", "vector", "checkpoint-every", "expert-episodes"])
        if args.flag("help") { print(help); return }
        let registry = try builtInRegistry()
        let environmentID = args.string("env", default: "")
        guard !environmentID.isEmpty else { throw UsageError(message: "prunegym train: --env is required; registered: \(registry.ids.joined(separator: ", "))") }
        _ = try registry.spec(environmentID)
        let agentName = args.string("agent", default: "ppo")
        guard agentNames.contains(agentName) else {
            let guess = nearestName(to: agentName, among: agentNames).map { " (did you mean \($0)?)" } ?? ""
            throw UsageError(message: "prunegym train: unknown agent '\(agentName)'\(guess); agents: \(agentNames.joined(separator: ", "))")
        }
        let seed = UInt64(try args.integer("seed", default: 0))
        let vector = args.string("vector", default: "synchronous")
        guard VectorEnvironment<CartPole>.Execution(rawValue: vector) != nil else {
            throw UsageError(message: "prunegym train: --vector must be synchronous or threaded, got '\(vector)'")
        }
        var config = RunConfiguration(
            prunegymVersion: PruneGymVersion.current, environment: environmentID, agent: agentName,
            steps: try args.integer("steps", default: 100_000, range: 1...Int.max), seed: seed, vector: vector,
            checkpointInterval: try args.integer("checkpoint-every", default: 10))
        let configPath = args.string("config", default: "")
        switch agentName {
        case "ppo":
            let preset = PPOConfiguration.preset(for: environmentID)
            config.ppo = configPath.isEmpty ? preset : try readJSON(PPOConfiguration.self, from: configPath, over: preset)
        case "bc":
            config.bc = configPath.isEmpty ? BehaviorCloningConfiguration() : try readJSON(BehaviorCloningConfiguration.self, from: configPath)
            config.expertEpisodes = try args.integer("expert-episodes", default: 20, range: 1...100_000)
        case "random": break
        default:
            if !configPath.isEmpty {
                do { config.agentConfiguration = try String(contentsOfFile: configPath, encoding: .utf8) } catch {
                    throw FileError(path: configPath, reason: "cannot read the agent configuration")
                }
            }
        }
        let runDirectory = RunDirectory(URL(fileURLWithPath: args.string("run-dir", default: "runs/\(environmentID)-\(agentName)-\(seed)")))
        do {
            try start(config, runDirectory: runDirectory, registry: registry, showsProgress: !args.flag("quiet"))
        } catch let AgentError.invalidConfiguration(agent, reason) where !configPath.isEmpty {
            // The agent refused the file's settings when it was built, before the run directory.
            throw FileError(path: configPath, reason: "\(reason) (agent '\(agent)')")
        }
    }

    /// Starts (or resumes) the run of `config` in `runDirectory`.
    /// A token-pruning run resumes only on the model it learned (its `model-digest.txt`).
    static func start(_ config: RunConfiguration, runDirectory: RunDirectory, registry: EnvironmentRegistry, showsProgress: Bool) throws {
        let exists = FileManager.default.fileExists(atPath: runDirectory.configURL.path)
        if exists {
            let existing = try runDirectory.readConfig(RunConfiguration.self)
            guard existing.isSameRun(as: config) else {
                throw UsageError(message: "\(runDirectory.url.path) holds a different run (\(existing.environment), \(existing.agent), seed \(existing.seed)); pick another --run-dir or delete it")
            }
        }
        let environment = try registry.make(config.environment)
        let digest = ModelDigestFile.digest(of: environment)
        if exists {
            if let other = ModelDigestFile.otherModel(in: runDirectory.url, than: digest) {
                throw UsageError(message: "\(runDirectory.url.path) holds a \(config.environment) run on another model (weight digest \(other); the model it would run on now is \(digest!)): its agent learned that model's tokens; pick another --run-dir, delete it, or set PRUNEGYM_MODELS to the models directory it was trained with")
            }
            if try runDirectory.latestCheckpoint() != nil { print("resuming \(runDirectory.url.path) from its latest checkpoint") }
        }
        try train(environment, config: config, runDirectory: runDirectory, registry: registry, showsProgress: showsProgress, modelDigest: digest)
    }

    /// Builds the agent for `first`'s spaces and only then writes the run directory, so that an
    /// environment or an agent configuration that cannot run leaves no directory behind (one
    /// holding the refused settings would refuse the corrected ones as another run).
    /// `modelDigest`: the weight digest of the model behind a token-pruning environment, recorded in the run.
    static func train<E: Environment>(_ first: E, config: RunConfiguration, runDirectory: RunDirectory,
                                      registry: EnvironmentRegistry, showsProgress: Bool, modelDigest: String? = nil) throws {
        let started = Date()
        func openRun() throws {
            try runDirectory.create()
            try runDirectory.writeConfig(config, kind: "train")
            try ModelDigestFile.record(modelDigest, in: runDirectory.url)
        }
        switch config.agent {
        case "bc":
            guard config.environment == "CartPole-v1", let expert = CartPoleExpert(E.self) else {
                throw UsageError(message: "prunegym train --agent bc: a built-in expert exists only for CartPole-v1; for other environments clone your own demonstrations with BehaviorCloningAgent.learn(from:)")
            }
            let agent = try BehaviorCloningAgent(observationSpace: first.observationSpace, actionSpace: first.actionSpace, configuration: config.bc ?? .init(), seed: config.seed)
            try openRun()
            let demonstrations = try rolloutEpisodes(expert.agent, in: first, episodes: config.expertEpisodes ?? 20, seed: config.seed)
            let rows = try agent.learn(from: demonstrations)
            let metrics = try MetricsLog(url: runDirectory.metricsURL)
            for row in rows { try metrics.append(row) }
            try runDirectory.saveCheckpoint(named: "update-000001") { directory in
                try agent.save(to: directory.appendingPathComponent("agent.safetensors"))
                try AtomicFile.write(Data("{\"agent\": \"bc\"}".utf8), to: directory.appendingPathComponent("trainer.json"))
            }
            let summary = try evaluate(agent, in: try makeEnvironment(config.environment, as: E.self, registry: registry), episodes: 10, seed: 1_000_000)
            printTable([
                ["run", runDirectory.url.path],
                ["demonstrations", "\(demonstrations.count) episodes, \(demonstrations.map(\.actions.count).reduce(0, +)) transitions, expert return \(ReturnSummary(returns: demonstrations.map(\.episodeReturn)))"],
                ["epochs", "\(rows.count)"], ["validation loss", String(format: "%.4f", rows.last?.first { $0.0 == "validation_loss" }?.1 ?? .nan)],
                ["evaluation (10 episodes, deterministic)", summary.description],
            ])
        case "random":
            let agent = RandomAgent<E.Observation, E.Action>(actionSpace: first.actionSpace, seed: config.seed)
            try openRun()
            try runDirectory.saveCheckpoint(named: "update-000001") { directory in
                try agent.save(to: directory.appendingPathComponent("agent.safetensors"))
                try AtomicFile.write(Data("{\"agent\": \"random\"}".utf8), to: directory.appendingPathComponent("trainer.json"))
            }
            print("random agent: nothing to train; evaluate it with prunegym eval --run-dir \(runDirectory.url.path)")
        default:
            let request = AgentRequest(observationSpace: first.observationSpace, actionSpace: first.actionSpace, environmentID: config.environment,
                                       seed: config.seed, configuration: try config.factoryConfiguration())
            let agent = try agentRegistry.make(config.agent, request)
            try openRun()
            try trainOnPolicy(agent, first: first, config: config, runDirectory: runDirectory, registry: registry, showsProgress: showsProgress, started: started)
        }
    }

    /// Trains any registered on-policy agent with `OnPolicyTrainer` on copies of `first`.
    static func trainOnPolicy<E: Environment, Ag: OnPolicyAgent>(_ agent: Ag, first: E, config: RunConfiguration, runDirectory: RunDirectory,
                                                                registry: EnvironmentRegistry, showsProgress: Bool, started: Date) throws
        where Ag.Observation == E.Observation, Ag.Action == E.Action {
        var environments = [first]
        for _ in 1..<max(1, agent.rolloutSettings.environmentCount) { environments.append(try makeEnvironment(config.environment, as: E.self, registry: registry)) }
        let vector = VectorEnvironment(environments, execution: .init(rawValue: config.vector) ?? .synchronous)
        let trainer = try OnPolicyTrainer(
            agent: agent, environment: vector,
            configuration: TrainerConfiguration(totalSteps: config.steps, seed: config.seed, checkpointInterval: config.checkpointInterval, showsProgress: showsProgress),
            runDirectory: runDirectory)
        try trainer.train()
        try writeLearningCurve(runDirectory, title: "\(config.agent) on \(config.environment), seed \(config.seed)")
        let summary = try evaluate(agent, in: try makeEnvironment(config.environment, as: E.self, registry: registry), episodes: 10, seed: 1_000_000)
        printTable([
            ["run", runDirectory.url.path], ["environment steps", "\(trainer.globalStep)"], ["episodes", "\(trainer.episodes)"],
            ["recent training return", trainer.recentReturnMean.map { String(format: "%.1f", $0) } ?? "–"],
            ["evaluation (10 episodes, deterministic)", summary.description],
            ["wall clock", String(format: "%.1f s", Date().timeIntervalSince(started))],
        ])
    }

    static func writeLearningCurve(_ runDirectory: RunDirectory, title: String) throws {
        try writeCurve(runDirectory, title: title, x: ("step", "environment steps"), yLabel: "mean return (last 20 episodes)",
                       series: [("return_mean", "training return")])
    }

    /// `learning-curve.svg` of a run: the `series` columns of its `metrics.csv` against column
    /// `x` (nothing when the file lacks them).
    static func writeCurve(_ runDirectory: RunDirectory, title: String, x: (column: String, label: String), yLabel: String,
                           series: [(column: String, name: String)]) throws {
        let (columns, rows) = try MetricsLog.read(runDirectory.metricsURL)
        guard let xIndex = columns.firstIndex(of: x.column) else { return }
        let lines = series.compactMap { column, name in
            columns.firstIndex(of: column).map { y in SVGPlot.Series(name: name, points: rows.map { (x: $0[xIndex], y: $0[y]) }) }
        }
        guard !lines.isEmpty else { return }
        let svg = SVGPlot.lineChart(title: title, xLabel: x.label, yLabel: yLabel, series: lines)
        try AtomicFile.write(Data(svg.utf8), to: runDirectory.url.appendingPathComponent("learning-curve.svg"))
    }
}

/// The scripted CartPole expert, when `E` is CartPole (possibly time-limited).
struct CartPoleExpert<E: Environment> {
    let agent: ScriptedAgent<E.Observation, E.Action>
    init?(_ type: E.Type) {
        guard E.Observation.self == [Float].self, E.Action.self == Int.self else { return nil }
        agent = ScriptedAgent { observation in CartPole.expertAction(observation as! [Float]) as! E.Action }
    }
}

/// Prints rows of (label, value) as an aligned two-column table.
func printTable(_ rows: [[String]]) {
    let columns = rows.map(\.count).max() ?? 0
    let widths = (0..<columns).map { c in rows.map { c < $0.count ? $0[c].count : 0 }.max() ?? 0 }
    for row in rows {
        let cells = row.enumerated().map { c, text in c == row.count - 1 ? text : text.padding(toLength: widths[c], withPad: " ", startingAt: 0) }
        print(cells.joined(separator: "  "))
    }
}
