import Foundation
import Gym
import PPO
@testable import PruneGymCommands
import TensorCore
import TestSupport
import Testing
import TPRL
import VLM

/// A bad option value is refused before anything loads, naming the option, the value and what it
/// takes.
@Suite("Command-line errors")
struct CommandLineErrorTests {
    func message(_ arguments: [String]) -> String {
        let error = #expect(throws: (any Error).self) { try PruneGymCommandLine.run(arguments) }
        return error.map { String(describing: $0) } ?? ""
    }

    @Test("eval-pruning names the bad budget, seed or fallback threshold and what the option takes, and refuses agents it cannot combine")
    func evalPruningLists() {
        let outOfRange = message(["eval-pruning", "--budgets", "1.0,1.5"])
        #expect(outOfRange.contains("--budgets: '1.5' is not valid (expected fractions of the visual tokens in (0, 1]"), "\(outOfRange)")
        #expect(message(["eval-pruning", "--budgets", "0.333,abc"]).contains("'abc' is not valid"))
        #expect(message(["eval-pruning", "--budgets", "0"]).contains("'0' is not valid"))
        #expect(message(["eval-pruning", "--budgets", ","]).contains("--budgets: no values in ','"))
        #expect(message(["eval-pruning", "--seeds", "0,-1"]).contains("--seeds: '-1' is not valid (expected non-negative integers"))
        #expect(message(["eval-pruning", "--fallback-threshold", "0"]).contains("--fallback-threshold: expected an answer probability in (0, 1], e.g. 0.8, got '0'"))
        let versus = message(["eval-pruning", "--agents", "cls,vispruner", "--versus", "fastv", "--questions", "1"])
        #expect(versus.contains("--versus fastv: not among the evaluated methods (cls, vispruner); add it to --agents"), "\(versus)")
        let adaptive = message(["eval-pruning", "--agents", "vispruner+adaptive", "--questions", "1"])
        #expect(adaptive.contains("vispruner+adaptive: vispruner has no per-token score to threshold"), "\(adaptive)")
        #expect(message(["eval-pruning", "--adaptive-calibration", "0"]).contains("--adaptive-calibration"))
        let cascade = message(["eval-pruning", "--agents", "fastv+merge+fallback", "--questions", "1"])
        #expect(cascade.contains("evaluate fastv+merge and fastv+fallback apart"), "\(cascade)")
    }

    /// A `--policies` name may take its place in `--agents`, with a suffix; a name that is a
    /// built-in method's, or that names one method twice, is refused before anything runs.
    @Test("eval-pruning places --policies names given in --agents and refuses clashing or repeated names")
    func evalPruningPolicyNames() throws {
        let out = try makeTemporaryDirectory("prunegym-policy-names")
        defer { try? FileManager.default.removeItem(at: out) }
        let common = ["--budgets", "0.333", "--seeds", "0", "--questions", "2", "--latency-questions", "0", "--out", out.path, "--json"]
        try PruneGymCommandLine.run(["eval-pruning", "--agents", "mine+merge,cls,mine", "--policies", "mine=models/tprl,late=models/tprl"] + common)
        struct Row: Decodable { let method: String }
        let rows = try JSONDecoder().decode([Row].self, from: Data(contentsOf: out.appendingPathComponent("results.json")))
        var order: [String] = []
        for row in rows where !order.contains(row.method) { order.append(row.method) }
        #expect(order == ["mine+merge", "cls", "mine", "late"])
        let builtin = message(["eval-pruning", "--agents", "cls", "--policies", "cls=models/tprl"] + common)
        #expect(builtin.contains("--policies cls=models/tprl: 'cls' is a built-in method's name; name it otherwise, e.g. my-cls=models/tprl"), "\(builtin)")
        let suffix = message(["eval-pruning", "--agents", "cls", "--runs", "a+b=runs/x"] + common)
        #expect(suffix.contains("--runs a+b=runs/x: 'a+b' has @ or +"), "\(suffix)")
        let twice = message(["eval-pruning", "--agents", "cls,vispruner,cls"] + common)
        #expect(twice.contains("cls is evaluated twice"), "\(twice)")
        #expect(message(["eval-pruning", "--policies", "mine"] + common).contains("--policies: expected NAME=DIR, got 'mine'"))
    }

    @Test("vlm train --init asks for the schedule_start it starts at, before it loads or writes anything")
    func vlmTrainInit() throws {
        let run = FileManager.default.temporaryDirectory.appendingPathComponent("prunegym-init-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: run) }
        let text = message(["vlm", "train", "--init", "/nonexistent-model", "--run-dir", run.path, "--out", run.appendingPathComponent("out").path])
        #expect(text.contains("--init starts at the config's schedule_start") && text.contains("which is 0"), "\(text)")
        #expect(!FileManager.default.fileExists(atPath: run.path))
    }

    @Test("tprl train refuses a configuration file's impossible settings by file and key before its run directory exists")
    func tprlTrainConfiguration() throws {
        let directory = try makeTemporaryDirectory("prunegym-tprl-config")
        let run = directory.appendingPathComponent("run"), file = directory.appendingPathComponent("bad.json")
        for (json, expected) in [(#"{"environment": {"max_steps": 0}}"#, "bad.json: environment.max_steps must be ≥ 1, got 0"),
                                 (#"{"ppo_updates": -1}"#, "bad.json: ppo_updates must be ≥ 0, got -1")] {
            try Data(json.utf8).write(to: file)
            let text = message(["tprl", "train", "--config", file.path, "--run-dir", run.path, "--out", directory.appendingPathComponent("out").path, "--quiet"])
            #expect(text.contains(expected), "\(text)")
            #expect(!FileManager.default.fileExists(atPath: run.path), "a run directory that would block the corrected configuration")
        }
    }

    @Test("train refuses an agent configuration file's impossible settings by file and key before its run directory exists")
    func trainConfiguration() throws {
        let directory = try makeTemporaryDirectory("prunegym-train-config")
        let run = directory.appendingPathComponent("run"), file = directory.appendingPathComponent("agent.json")
        for (agent, json, expected) in [("ppo", #"{"minibatch_count": 0}"#, "agent.json: minibatch_count must be in 1...256, got 0 (agent 'ppo')"),
                                        ("ppo", #"{"gamma": 2}"#, "agent.json: gamma must be in [0, 1], got 2.0 (agent 'ppo')"),
                                        ("bc", #"{"maximum_epochs": 0}"#, "agent.json: maximum_epochs must be ≥ 1, got 0 (agent 'bc')")] {
            try Data(json.utf8).write(to: file)
            let text = message(["train", "--env", "CartPole-v1", "--agent", agent, "--steps", "1000", "--config", file.path, "--run-dir", run.path, "--quiet"])
            #expect(text.contains(expected), "\(text)")
            #expect(!FileManager.default.fileExists(atPath: run.path), "a run directory that would block the corrected configuration")
        }
        _ = message(["train", "--env", "Nope-v0", "--agent", "ppo", "--run-dir", run.path, "--quiet"])
        #expect(!FileManager.default.fileExists(atPath: run.path), "an unknown environment left a run directory")
    }

    @Test("an output path that cannot be a directory is refused by name before the work whose results it would hold, and before any run directory")
    func unwritableOutput() throws {
        let directory = try makeTemporaryDirectory("prunegym-unwritable")
        let file = directory.appendingPathComponent("a-file"), run = directory.appendingPathComponent("run")
        try Data("x".utf8).write(to: file)
        let refusal = "\(file.path): is a file, not a directory; choose another output path"
        for arguments in [["tprl", "train", "--out", file.path, "--run-dir", run.path, "--quiet"],
                          ["vlm", "train", "--out", file.path, "--run-dir", run.path, "--samples", "64", "--quiet"],
                          ["eval-pruning", "--agents", "random", "--budgets", "0.5", "--seeds", "0", "--questions", "1", "--out", file.path],
                          ["data", "preview", "--count", "1", "--out", file.path]] {
            let text = message(arguments)
            #expect(text == refusal, "\(arguments[0]): \(text)")
            #expect(!FileManager.default.fileExists(atPath: run.path), "\(arguments[0]) left a run directory")
        }
        let autoencoder = message(["ae", "train", "--out", file.appendingPathComponent("ae.safetensors").path, "--images", "1", "--epochs", "1"])
        #expect(autoencoder == refusal, "\(autoencoder)")
    }

    @Test("--version names the release, OpenBLAS's build and kernels, the CPU's vector instructions, the threads and the exponentials' lanes")
    func version() throws {
        let text = PruneGymCommandLine.versionText
        #expect(text.hasPrefix("prunegym \(PruneGymVersion.current) (git "), "\(text)")
        #expect(text.contains("OpenBLAS: \(BLAS.configuration)") && text.contains("kernels: \(BLAS.kernels)"), "\(text)")
        #expect(text.contains("CPU: \(BLAS.vectorLevelDescription)") && text.contains("threads: \(BLAS.workerCount) (PRUNEGYM_THREADS)"), "\(text)")
        #expect(text.contains("exponentials: \(BLAS.exponentialLanes) lanes"), "\(text)")
        #expect(text.contains("4-, 8- and 16-wide heads: \(BLAS.fusedHeadAttention ? "fused kernels" : "OpenBLAS")"), "\(text)")
        try PruneGymCommandLine.run(["--version"])
    }

    /// The shipped policies record the shipped model's weight digest; eval-pruning refuses them on
    /// another model (the two-hour one), naming the file and both digests, and runs them there
    /// with --any-model.
    @Test("a policy is refused on a model other than the one it was trained on, unless --any-model")
    func policyOnAnotherModel() throws {
        let models = URL(fileURLWithPath: "models")
        let shipped = try LlavaCheckpoint.load(models.appendingPathComponent("shapes-llava")).parameterDigest
        let twoHour = try LlavaCheckpoint.load(models.appendingPathComponent("shapes-llava-2h")).parameterDigest
        #expect(shipped != twoHour)
        for policy in ["tprl", "tprl-llm"] {
            #expect(try TPRLPolicyFiles.read(models.appendingPathComponent(policy)).modelDigest == shipped, "models/\(policy)")
        }
        let out = try makeTemporaryDirectory("prunegym-any-model")
        defer { try? FileManager.default.removeItem(at: out) }
        let arguments = ["eval-pruning", "--model", "models/shapes-llava-2h", "--agents", "tprl", "--budgets", "0.333", "--seeds", "0",
                         "--questions", "2", "--latency-questions", "0", "--out", out.path]
        let text = message(arguments)
        #expect(text.contains("models/tprl/tprl.json") && text.contains(shipped) && text.contains(twoHour) && text.contains("--any-model"), "\(text)")
        try PruneGymCommandLine.run(arguments + ["--any-model", "--json"])
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("results.json").path))
        // A TPRL run directory whose checkpoints learned another model is not resumed.
        let run = RunDirectory(out.appendingPathComponent("run"))
        try run.create()
        try run.writeConfig(TPRLConfiguration(), kind: "tprl")
        try Data("00000000000000aa\n".utf8).write(to: run.url.appendingPathComponent("model-digest.txt"))
        let resumed = message(["tprl", "train", "--run-dir", run.url.path, "--out", out.appendingPathComponent("policy").path, "--quiet"])
        #expect(resumed.contains("holds a TPRL run on another model (weight digest 00000000000000aa; this model's is \(shipped))"), "\(resumed)")
        // So is an agent trained on TokenPruning-v0 with `prunegym train`: not resumed, not
        // evaluated, not put in eval-pruning's table unless asked.
        let agentRun = RunDirectory(out.appendingPathComponent("agent-run"))
        try agentRun.create()
        let preset = try JSONSerialization.jsonObject(with: JSONEncoder().encode(PPOConfiguration.preset(for: "TokenPruning-v0")))
        let config: [String: Any] = ["prunegym_version": "0", "env": "TokenPruning-v0", "agent": "ppo", "steps": 64, "seed": 0,
                                     "vector": "synchronous", "checkpoint_interval": 10, "ppo": preset]
        try JSONSerialization.data(withJSONObject: config).write(to: agentRun.configURL)
        try Data("00000000000000aa\n".utf8).write(to: agentRun.url.appendingPathComponent("model-digest.txt"))
        let other = "another model (weight digest 00000000000000aa"
        let train = message(["train", "--env", "TokenPruning-v0", "--agent", "ppo", "--steps", "64", "--run-dir", agentRun.url.path, "--quiet"])
        #expect(train.contains("holds a TokenPruning-v0 run on \(other); the model it would run on now is \(shipped))"), "\(train)")
        try agentRun.saveCheckpoint(named: "update-000001") { directory in
            try Data("{}".utf8).write(to: directory.appendingPathComponent("trainer.json"))
        }
        let evaluated = message(["eval", "--run-dir", agentRun.url.path, "--episodes", "1"])
        #expect(evaluated.contains("trained on \(other)) than the one TokenPruning-v0 runs on now (\(shipped))"), "\(evaluated)")
        let table = message(["eval-pruning", "--runs", "ppo=\(agentRun.url.path)", "--agents", "random", "--budgets", "0.333", "--seeds", "0",
                             "--questions", "2", "--latency-questions", "0", "--out", out.path])
        #expect(table.contains("--runs ppo=\(agentRun.url.path): the agent was trained on \(other)) than the one it is asked to prune for (\(shipped))")
                && table.contains("--any-model"), "\(table)")
        // A sweep whose cells began on another model is not resumed; a fresh one records the model.
        let sweepConfig = out.appendingPathComponent("sweep.json")
        try Data(#"{"seeds": [0], "agents": ["bc"], "evaluation": {"questions": 2}, "recipe": {"demonstrations": 2}}"#.utf8).write(to: sweepConfig)
        let cell = try SweepConfiguration.load(sweepConfig).cells()[0]
        let sweep = out.appendingPathComponent("sweep")
        let cellDirectory = sweep.appendingPathComponent("cells").appendingPathComponent(cell.name)
        try RunDirectory(cellDirectory).create()
        try RunDirectory(cellDirectory).writeConfig(cell, kind: SweepRunner.cellKind)
        try Data("00000000000000aa\n".utf8).write(to: sweep.appendingPathComponent("model-digest.txt"))
        let resumedSweep = message(["sweep", "--config", sweepConfig.path, "--out", sweep.path, "--quiet"])
        #expect(resumedSweep.contains("sweep \(sweep.path) holds cells trained on \(other); the model they would run on now is \(shipped))")
                && resumedSweep.contains("PRUNEGYM_MODELS"), "\(resumedSweep)")
        #expect(!FileManager.default.fileExists(atPath: cellDirectory.appendingPathComponent("metrics.csv").path))
        try FileManager.default.removeItem(at: cellDirectory)
        try SweepCommand.checkModel(of: sweep, digest: shipped, cellsStarted: false)
        #expect(ModelDigestFile.recorded(in: sweep) == shipped)
        try SweepCommand.printReport(sweep)
        let report = try String(contentsOf: sweep.appendingPathComponent("report.md"), encoding: .utf8)
        #expect(report.hasSuffix("The cells learned the model with weight digest \(shipped) (the sweep's model-digest.txt).\n"), "\(report)")
        // The quickstart on another model: a directory without one is refused before any training.
        let missing = message(["quickstart", "--model", out.appendingPathComponent("no-model").path])
        #expect(missing.contains("no model at \(out.appendingPathComponent("no-model").path) (config.json missing)"), "\(missing)")
    }
}
