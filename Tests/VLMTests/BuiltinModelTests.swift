import Foundation
import TensorCore
import Testing
import TestSupport
@testable import VLM

/// The shipped built-in model (`models/shapes-llava`): it loads, is small, answers ShapesVQA test
/// questions, and its answers depend on the visual tokens. The full figures (2000 test questions
/// per family) are in `models/shapes-llava/results.json`, written by `prunegym vlm train`.
@Suite struct BuiltinModelTests {
    static let directory = Fixtures.directory.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("models/shapes-llava")

    @Test func shipsInTheHuggingFaceLayoutUnder20MB() throws {
        for file in ["config.json", "model.safetensors", "vocab.txt"] {
            #expect(FileManager.default.fileExists(atPath: Self.directory.appendingPathComponent(file).path), "\(file) missing")
        }
        let size = try FileManager.default.attributesOfItem(atPath: Self.directory.appendingPathComponent("model.safetensors").path)[.size] as? Int ?? .max
        #expect(size <= 20_000_000)
        #expect(try WordTokenizer.read(Self.directory.appendingPathComponent("vocab.txt")).tokens == WordTokenizer.shapesVQA.tokens)
    }

    @Test func answersTestQuestionsFromTheImage() throws {
        let model = try LlavaCheckpoint.load(Self.directory)
        let dataset = ShapesVQA()
        let count = 96  // debug builds render and answer about 2 questions a second
        let full = try VLMEvaluation.accuracy(model: model, dataset: dataset, tokenizer: .shapesVQA, split: .test, count: count)
        let pruned = try VLMEvaluation.accuracy(model: model, dataset: dataset, tokenizer: .shapesVQA, split: .test, count: count,
                                                keepFraction: 1.0 / 9, seed: 1)
        // The shipped weights reproduce the figure in their results.json (2000 questions): on 96
        // questions the binomial standard error is about 4.7 points, so allow 3 of them.
        let reported = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.directory.appendingPathComponent("results.json"))) as! [String: Any]
        let overall = (reported["accuracy"] as! [String: Double])["overall"]!
        #expect(abs(full["overall"]! - overall) <= 0.14, "unpruned accuracy \(full), reported \(overall)")
        // Far above guessing the majority answer (≈ 36% over the five families) …
        #expect(full["overall"]! >= 0.7, "unpruned accuracy \(full)")
        // … and the answers depend on the visual tokens.
        #expect(full["overall"]! - pruned["overall"]! >= 0.15, "a random 11% of the tokens: \(pruned) vs \(full)")
    }
}

/// The training recipe's configuration file.
@Suite struct VLMTrainingConfigurationTests {
    @Test("the relation probe and object-centred subsets are on for new runs and off for configurations written before them")
    func relationWeightDefaults() throws {
        #expect(VLMTrainingConfiguration().relationWeight == 1)
        let old = try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data(#"{"samples": 300000, "routing_weight": 1}"#.utf8))
        #expect(old.relationWeight == 0 && old.objectSubsetShare == 0 && old.samples == 300000)
        #expect(VLMTrainingConfiguration().objectSubsetShare == 0.5)
        let written = try JSONEncoder().encode(VLMTrainingConfiguration())
        let text = String(decoding: written, as: UTF8.self)
        #expect(text.contains("\"relation_weight\":1"))
        #expect(try JSONDecoder().decode(VLMTrainingConfiguration.self, from: written) == VLMTrainingConfiguration())
    }
}
