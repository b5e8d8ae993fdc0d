import Foundation
import PruneGymCommands
import TensorCore
import TestSupport
import Testing

/// `prunegym vlm train --stop-after`: a training run stopped and continued (the staged recipe of
/// the built-in model) ends bit-identical to one run straight through.
@Suite("VLM training in stages")
struct VLMTrainingStagesTests {
    /// A miniature of the built-in recipe: 5 steps of 8 samples, the first one vision-only.
    static let configuration = """
        {"samples": 40, "batch_size": 8, "vision_only_samples": 8, "evaluation_interval": 2, "evaluation_samples": 4,
         "checkpoint_interval": 100, "vision_hidden": 8, "vision_layers": 1, "vision_heads": 2, "text_hidden": 16,
         "text_layers": 2, "text_heads": 2, "text_key_value_heads": 2, "text_intermediate": 24, "warmup_steps": 1}
        """

    func train(_ run: URL, config: URL, stops: [Int]) throws -> [String: [Float]] {
        for stop in stops {
            try PruneGymCommandLine.run(["vlm", "train", "--config", config.path, "--run-dir", run.path, "--out", run.appendingPathComponent("model").path,
                                         "--stop-after", String(stop), "--quiet"])
        }
        let file = try SafeTensorsFile(contentsOf: run.appendingPathComponent("checkpoints/trainer.safetensors"))
        return try Dictionary(uniqueKeysWithValues: file.tensorNames.map { ($0, try file.tensor($0).scalars) })
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
        let rows = try String(contentsOf: directory.appendingPathComponent("staged/metrics.csv"), encoding: .utf8).split(separator: "\n")
        #expect(rows.count == 1 + 2)  // header, evaluations at steps 2 and 4
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
