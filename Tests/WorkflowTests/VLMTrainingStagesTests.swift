import Foundation
import PruneGymCommands
import TensorCore
import TestSupport
import Testing
import VLM

/// `prunegym vlm train --stop-after`: a training run stopped and continued (the staged recipe of
/// the built-in model) ends bit-identical to one run straight through.
@Suite("VLM training in stages")
struct VLMTrainingStagesTests {
    /// A miniature of the built-in recipe: 5 steps of 8 samples, the first one vision-only.
    static let configuration = """
        {"samples": 40, "batch_size": 8, "vision_only_samples": 8, "evaluation_interval": 2, "evaluation_samples": 4,
         "checkpoint_interval": 100, "vision_hidden": 8, "vision_layers": 1, "vision_heads": 2, "text_hidden": 16,
         "text_layers": 2, "text_heads": 2, "text_key_value_heads": 2, "text_intermediate": 24, "test_samples": 16, "warmup_steps": 1}
        """

    func train(_ run: URL, config: URL, stops: [Int]) throws -> [String: [Float]] {
        for stop in stops {
            try PruneGymCommandLine.run(["vlm", "train", "--config", config.path, "--run-dir", run.path, "--out", run.appendingPathComponent("model").path,
                                         "--stop-after", String(stop), "--quiet"])
        }
        let file = try SafeTensorsFile(contentsOf: run.appendingPathComponent("checkpoints/trainer.safetensors"))
        return try Dictionary(uniqueKeysWithValues: file.tensorNames.map { ($0, try file.tensor($0).scalars) })
    }

    @Test("a run continued with another configuration is marked, and rerun refuses it")
    func continuedWithAnotherConfiguration() throws {
        let directory = try makeTemporaryDirectory("vlm-stages-changed")
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("config.json"), other = directory.appendingPathComponent("other.json")
        try Data(Self.configuration.utf8).write(to: config)
        try Data(Self.configuration.replacingOccurrences(of: "\"warmup_steps\": 1}", with: "\"warmup_steps\": 1, \"learning_rate\": 0.001}").utf8).write(to: other)
        let run = directory.appendingPathComponent("run")
        _ = try train(run, config: config, stops: [16])
        #expect(!FileManager.default.fileExists(atPath: run.appendingPathComponent("staged-training.txt").path))
        _ = try train(run, config: other, stops: [32])
        let marker = try String(contentsOf: run.appendingPathComponent("staged-training.txt"), encoding: .utf8)
        #expect(marker == "continued from its checkpoint with another configuration\n")
        let refusal = #expect(throws: (any Error).self) { try PruneGymCommandLine.run(["rerun", run.path, "--quiet"]) }
        #expect(String(describing: refusal!).contains("holds stages of a staged training"))
    }

    @Test func stoppingAndContinuingMatchesOneRun() throws {
        let directory = try makeTemporaryDirectory("vlm-stages")
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("config.json")
        try Data(Self.configuration.utf8).write(to: config)
        let straight = try train(directory.appendingPathComponent("straight"), config: config, stops: [32])
        let staged = try train(directory.appendingPathComponent("staged"), config: config, stops: [16, 32])
        #expect(straight.keys.sorted() == staged.keys.sorted())
        for (name, values) in straight { #expect(staged[name]?.map(\.bitPattern) == values.map(\.bitPattern), "\(name) differs") }
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("straight/model").path))
        // Stopped and continued with the same configuration, the run is one that its config.json replays.
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("staged/staged-training.txt").path))
        let rows = try String(contentsOf: directory.appendingPathComponent("staged/metrics.csv"), encoding: .utf8).split(separator: "\n")
        #expect(rows.count == 1 + 2)  // header, evaluations at steps 2 and 4
    }
}

/// `prunegym vlm train --recipe`: the stages of a recipe run as the same commands one by one would,
/// finished stages are skipped on a rerun, and a recipe that cannot run is refused before any
/// training, naming the file and the stage.
@Suite("VLM training recipes")
struct VLMTrainingRecipeTests {
    static let recipe = """
        {"stages": [
          {"config": "tiny.json", "samples": 24, "stop_after": 16},
          {"config": "tiny.json", "samples": 24, "model": "first"},
          {"config": "tiny-restart.json", "samples": 40, "init": "first", "run": "second"}
        ]}
        """

    /// Writes the recipe and its two configurations (the second a warm restart from sample 24).
    func write(into directory: URL, recipe: String = Self.recipe) throws -> URL {
        try Data(VLMTrainingStagesTests.configuration.utf8).write(to: directory.appendingPathComponent("tiny.json"))
        let restart = VLMTrainingStagesTests.configuration.replacingOccurrences(of: "\"warmup_steps\": 1}", with: "\"warmup_steps\": 1, \"schedule_start\": 24}")
        try Data(restart.utf8).write(to: directory.appendingPathComponent("tiny-restart.json"))
        let file = directory.appendingPathComponent("recipe.json")
        try Data(recipe.utf8).write(to: file)
        return file
    }

    func bits(_ file: URL) throws -> [String: [UInt32]] {
        let tensors = try SafeTensorsFile(contentsOf: file)
        return try Dictionary(uniqueKeysWithValues: tensors.tensorNames.map { ($0, try tensors.tensor($0).scalars.map(\.bitPattern)) })
    }

    @Test("a recipe gives the model its stages give as separate commands, and a rerun skips what is done")
    func recipeEqualsItsCommands() throws {
        let directory = try makeTemporaryDirectory("vlm-recipe")
        defer { try? FileManager.default.removeItem(at: directory) }
        let recipe = try write(into: directory)
        let run = directory.appendingPathComponent("run"), out = directory.appendingPathComponent("model")
        try PruneGymCommandLine.run(["vlm", "train", "--recipe", recipe.path, "--run-dir", run.path, "--out", out.path, "--quiet"])

        // The same stages as commands (what models/shapes-llava/training/ documented before recipes).
        let manual = directory.appendingPathComponent("manual")
        let tiny = directory.appendingPathComponent("tiny.json").path, restart = directory.appendingPathComponent("tiny-restart.json").path
        try PruneGymCommandLine.run(["vlm", "train", "--config", tiny, "--samples", "24", "--stop-after", "16", "--run-dir", manual.path,
                                     "--out", manual.appendingPathComponent("first").path, "--quiet"])
        try PruneGymCommandLine.run(["vlm", "train", "--config", tiny, "--samples", "24", "--run-dir", manual.path,
                                     "--out", manual.appendingPathComponent("first").path, "--quiet"])
        try PruneGymCommandLine.run(["vlm", "train", "--config", restart, "--samples", "40", "--init", manual.appendingPathComponent("first").path,
                                     "--run-dir", manual.path + "-second", "--out", manual.appendingPathComponent("last").path, "--quiet"])
        let model = try bits(out.appendingPathComponent("model.safetensors"))
        #expect(model == (try bits(manual.appendingPathComponent("last/model.safetensors"))))
        #expect(try bits(run.appendingPathComponent("models/first/model.safetensors")) == (try bits(manual.appendingPathComponent("first/model.safetensors"))))
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("run-second/checkpoints/trainer.safetensors").path))

        // A rerun finds every stage done: no training, no new metrics rows, the same model.
        let metrics = try String(contentsOf: run.appendingPathComponent("metrics.csv"), encoding: .utf8)
        try FileManager.default.removeItem(at: out)
        try PruneGymCommandLine.run(["vlm", "train", "--recipe", recipe.path, "--run-dir", run.path, "--out", out.path, "--quiet"])
        #expect(!FileManager.default.fileExists(atPath: out.path))
        #expect(try String(contentsOf: run.appendingPathComponent("metrics.csv"), encoding: .utf8) == metrics)

        // Another seed in the same run directory is refused.
        let error = #expect(throws: (any Error).self) {
            try PruneGymCommandLine.run(["vlm", "train", "--recipe", recipe.path, "--seed", "3", "--run-dir", run.path, "--out", out.path, "--quiet"])
        }
        #expect(String(describing: error!).contains("holds a run of another recipe or seed"))

        // `rerun` cannot replay a stage from its config.json alone, and says so.
        for stageRun in [run, directory.appendingPathComponent("run-second")] {
            let refusal = #expect(throws: (any Error).self) { try PruneGymCommandLine.run(["rerun", stageRun.path, "--quiet"]) }
            #expect(String(describing: refusal!).contains("holds stages of a staged training"))
        }
    }

    @Test("a recipe that cannot run is refused, naming the file and the stage")
    func badRecipes() throws {
        let directory = try makeTemporaryDirectory("vlm-recipe-bad")
        defer { try? FileManager.default.removeItem(at: directory) }
        func refusal(_ recipe: String, extra: [String] = []) throws -> String {
            let file = try write(into: directory, recipe: recipe)
            let error = #expect(throws: (any Error).self) {
                try PruneGymCommandLine.run(["vlm", "train", "--recipe", file.path, "--run-dir", directory.appendingPathComponent("run").path,
                                             "--out", directory.appendingPathComponent("out").path, "--quiet"] + extra)
            }
            return error.map { String(describing: $0) } ?? ""
        }
        let unknown = try refusal(#"{"stages": [{"config": "tiny.json", "samples": 24, "model": "a"}, {"config": "tiny-restart.json", "samples": 40, "init": "b", "run": "r"}]}"#)
        #expect(unknown.contains("recipe.json: stage 2: init 'b' names no model an earlier stage keeps (earlier models: a)"), "\(unknown)")
        let ownRun = try refusal(#"{"stages": [{"config": "tiny.json", "samples": 24, "model": "a"}, {"config": "tiny-restart.json", "samples": 40, "init": "a"}]}"#)
        #expect(ownRun.contains("stage 2: a stage that starts from a model (init) needs a run directory of its own (run)"), "\(ownRun)")
        let lastStops = try refusal(#"{"stages": [{"config": "tiny.json", "samples": 24, "stop_after": 8}]}"#)
        #expect(lastStops.contains("stage 1: the last stage cannot stop early"), "\(lastStops)")
        let missing = try refusal(#"{"stages": [{"config": "nowhere.json", "samples": 24}]}"#)
        #expect(missing.contains("nowhere.json") && missing.contains("cannot read stage configuration"), "\(missing)")
        let shape = try refusal(#"{"stages": [{"config": "tiny.json"}]}"#)
        #expect(shape.contains("recipe.json: not a training recipe: missing 'stages[0].samples'"), "\(shape)")
        let typo = try refusal(#"{"stages": [{"config": "tiny.json", "samples": 24, "stop_afer": 8}]}"#)
        #expect(typo.contains("recipe.json: not a training recipe: 'stages[0].stop_afer': unknown key 'stop_afer'"), "\(typo)")
        try Data(#"{"learnin_rate": 0.001}"#.utf8).write(to: directory.appendingPathComponent("typo.json"))
        let stageTypo = try refusal(#"{"stages": [{"config": "typo.json", "samples": 24}]}"#)
        #expect(stageTypo.contains("typo.json: not a training configuration: 'learnin_rate': unknown key 'learnin_rate'; known keys: asked_relation_weight"),
                "\(stageTypo)")
        let oneStage = #expect(throws: (any Error).self) {
            try PruneGymCommandLine.run(["vlm", "train", "--config", directory.appendingPathComponent("typo.json").path,
                                         "--run-dir", directory.appendingPathComponent("run").path, "--out", directory.appendingPathComponent("out").path, "--quiet"])
        }
        #expect(String(describing: oneStage!).contains("typo.json") && String(describing: oneStage!).contains("unknown key 'learnin_rate'"), "\(oneStage!)")
        for (json, expected) in [(#"{"text_heads": 3}"#, "bad.json: text_heads 3 does not divide text_hidden 128"),
                                 (#"{"samples": 100, "schedule_start": 100}"#, "schedule_start 100 is not below samples 100"),
                                 (#"{"samples": 100,"#, "bad.json: malformed JSON: ")] {
            try Data(json.utf8).write(to: directory.appendingPathComponent("bad.json"))
            let refused = #expect(throws: (any Error).self) {
                try PruneGymCommandLine.run(["vlm", "train", "--config", directory.appendingPathComponent("bad.json").path,
                                             "--run-dir", directory.appendingPathComponent("run").path, "--out", directory.appendingPathComponent("out").path, "--quiet"])
            }
            #expect(String(describing: refused!).contains(expected), "\(refused!)")
        }
        // A stage's settings are checked before the first stage trains: one alone, and one against the recipe's samples.
        try Data(VLMTrainingStagesTests.configuration.replacingOccurrences(of: "\"batch_size\": 8", with: "\"batch_size\": 0").utf8)
            .write(to: directory.appendingPathComponent("zero-batch.json"))
        let zeroBatch = try refusal(#"{"stages": [{"config": "tiny.json", "samples": 24, "model": "a"}, {"config": "zero-batch.json", "samples": 40}]}"#)
        #expect(zeroBatch.contains("zero-batch.json: not a training configuration: batch_size is 0; it must be positive"), "\(zeroBatch)")
        let late = try refusal(#"{"stages": [{"config": "tiny.json", "samples": 16, "model": "a"}, {"config": "tiny-restart.json", "samples": 24, "init": "a", "run": "r"}]}"#)
        #expect(late.contains("tiny-restart.json: training configuration: schedule_start 24 is not below samples 24")
                && late.contains("as stage 2 of"), "\(late)")
        let mixed = try refusal(Self.recipe, extra: ["--samples", "16"])
        #expect(mixed.contains("--recipe runs the stages its file names; leave out --samples"), "\(mixed)")
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("run").path))
    }

    @Test("the nine-stage recipe (the built-in model through release 0.7.15) reads, and its last stage ends where that model's training did")
    func shippedRecipe() throws {
        let training = VLMEvalCommandTests.model.deletingLastPathComponent().appendingPathComponent("shapes-llava-nine-stage/training")
        let (recipe, configurations) = try VLMTrainingRecipe.load(training.appendingPathComponent("recipe.json"))
        #expect(recipe.stages.count == 9)
        #expect(configurations.map(\.samples) == recipe.stages.map(\.samples))
        let rows = try String(contentsOf: training.appendingPathComponent("metrics.csv"), encoding: .utf8).split(separator: "\n")
        #expect(rows.last?.split(separator: ",")[1] == Substring(String(recipe.stages.last!.samples)))
        #expect(configurations.last?.scheduleStart == recipe.stages[7].samples)
    }
}

/// `prunegym vlm eval`: the answers file and the confusion table's option on the shipped model.
@Suite("vlm eval")
struct VLMEvalCommandTests {
    static let model = Fixtures.directory.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("models/shapes-llava")

    @Test("--answers writes one row per question with the model's answer; --confusion names the families it takes")
    func answersAndConfusion() throws {
        let directory = try makeTemporaryDirectory("vlm-eval")
        defer { try? FileManager.default.removeItem(at: directory) }
        let answers = directory.appendingPathComponent("answers.csv")
        try PruneGymCommandLine.run(["vlm", "eval", "--model", Self.model.path, "--samples", "48", "--split", "validation",
                                     "--confusion", "count", "--answers", answers.path])
        let lines = try String(contentsOf: answers, encoding: .utf8).split(separator: "\n")
        #expect(lines.first == "index,family,question,answer,model_answer,objects")
        #expect(lines.count == 1 + 48)
        let fields = lines.dropFirst().map { $0.split(separator: ",").map(String.init) }
        #expect(fields.allSatisfy { $0.count == 6 && $0[2].hasPrefix("\"") && $0[2].hasSuffix("\"") })
        // The shipped model answers about 92% of validation questions right.
        let right = fields.filter { $0[3] == $0[4] }.count
        #expect(right >= 36, "\(right) of 48 right")

        let error = #expect(throws: (any Error).self) {
            try PruneGymCommandLine.run(["vlm", "eval", "--model", Self.model.path, "--samples", "4", "--confusion", "colour"])
        }
        #expect(String(describing: error!).contains("--confusion must be one of attribute"))
    }
}
