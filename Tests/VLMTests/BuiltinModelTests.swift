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
        let count = 160
        let full = try VLMEvaluation.accuracy(model: model, dataset: dataset, tokenizer: .shapesVQA, split: .test, count: count)
        let pruned = try VLMEvaluation.accuracy(model: model, dataset: dataset, tokenizer: .shapesVQA, split: .test, count: count,
                                                keepFraction: 1.0 / 9, seed: 1)
        // 160 questions: a binomial standard error of about 2 points around the ≥ 95% of the full test.
        #expect(full["overall"]! >= 0.9, "unpruned accuracy \(full)")
        #expect(full["overall"]! - pruned["overall"]! >= 0.2, "a random 11% of the tokens: \(pruned) vs \(full)")
    }
}
