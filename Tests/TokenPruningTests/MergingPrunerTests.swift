import Foundation
import Gym
import PruneGymTesting
import TensorCore
import TestSupport
import Testing
import TokenPruning
import VLM
@testable import Pruners

/// Questions the tiny LLaVA fixture can answer (32-pixel images, its vocabulary), for evaluating
/// pruners inside its language model.
private struct TinyTasks: PruningTaskSource {
    func task(_ index: Int, split: String) -> PruningTask {
        let pixels = (0..<(3 * 32 * 32)).map { Float(sin(Double($0 % 97 + 13 * index))) }
        return PruningTask(pixels: pixels, imageSize: 32, prefix: [1, 5, 7], suffix: [20, 21, 22 + index % 4], answer: 3 + index % 5,
                           family: index % 2 == 0 ? "even" : "odd", query: [20])
    }
    func word(_ id: Int) -> String { "w\(id)" }
}

@Suite struct MergingPrunerTests {
    @Test("NAME+merge chooses k − 1 tokens and merges the rest into a k-th, inside the LLM or before it: its plans, tokens, FLOPs and answers")
    func mergesInsideTheLanguageModel() throws {
        let model = try LlavaCheckpoint.load(Fixtures.url("hf-llava-tiny"))
        let simulator = PruningSimulator(model: model, source: TinyTasks(), encoder: IdentityTokenEncoder(width: 48))
        let entry = try simulator.entries([0], split: "test")[0]
        var g = SeededGenerator(seed: 0)
        let fastV = MergingPruner(base: FastVPruner(layer: 0))
        #expect(fastV.name == "fastv+merge")
        let costed = try fastV.costedPlan(entry, budget: 4, simulator: simulator, generator: &g)
        #expect(costed.plan == .mergedInsideLLM(layer: 0, keep: 3))
        #expect(costed.plan.merges && !PruningPlan.insideLLM(layer: 0, keep: 3).merges)
        #expect(costed.selectionFLOPs == Double((16 - 3) * 48))  // the mean of the 13 others
        let cls = MergingPruner(base: AfterLayerPruner(ClassAttentionPruner(), layer: 0))
        let top = try ClassAttentionPruner().plan(entry, budget: 3, simulator: simulator, generator: &g)
        guard case let .tokens(kept) = top else { Issue.record("class attention planned \(top)"); return }
        #expect(try cls.plan(entry, budget: 4, simulator: simulator, generator: &g) == .mergedAfterLayer(layer: 0, tokens: kept))
        // Before the language model: the top 3 and the mean of the rest, read as 4 tokens.
        let before = MergingPruner(base: ClassAttentionPruner())
        #expect(try before.plan(entry, budget: 4, simulator: simulator, generator: &g) == .mergedTokens(kept))
        let merged = try PruningEvaluation(simulator: simulator, questions: 6, latencyQuestions: 1).evaluate(before, budget: 0.25, seed: 0, timed: false)
        #expect(merged.meanTokens == 4 && merged.flops == simulator.flops(entry, visualTokens: 4))
        // Every token, or a budget too small to choose one and merge the rest: the base's own plan.
        #expect(try fastV.plan(entry, budget: 16, simulator: simulator, generator: &g) == .insideLLM(layer: 0, keep: 16))
        #expect(try fastV.plan(entry, budget: 1, simulator: simulator, generator: &g) == .insideLLM(layer: 0, keep: 1))

        // The evaluation reads k tokens after the cut (k − 1 and the merged one) and counts FastV's FLOPs for k.
        let evaluation = PruningEvaluation(simulator: simulator, questions: 6, latencyQuestions: 1)
        let result = try evaluation.evaluate(fastV, budget: 0.25, seed: 0, timed: false)
        #expect(result.meanTokens == 4)
        let text = entry.task.prefix.count + entry.task.suffix.count
        #expect(result.flops == model.fastVFLOPs(visualTokens: 16, textTokens: text, layer: 0, keptAfter: 4))
        // Its answers are the model's merged FastV answers.
        let entries = try simulator.entries(Array(0..<6), split: "test")
        let logits = try model.fastVAnswerLogits(entries.map { simulator.request($0, keeping: Array(0..<16)) }, layer: 0, keptAfter: 3, mergingRest: true)
        let right = zip(logits.scalarRows(), entries).filter { row, entry in row.indices.max { row[$0] < row[$1] } == entry.task.answer }.count
        #expect(result.accuracy == Double(right) / 6)
        let plain = try evaluation.answer(entries, entries.map { _ in .mergedAfterLayer(layer: 0, tokens: kept) })
        let direct = try model.answerLogits(entries.map { simulator.request($0, keeping: Array(0..<16)) }, prunedAfter: 0, mergingRestOf: entries.map { _ in kept })
        #expect(plain == direct.scalarRows())
    }

    @Test("NAME+merge refuses a model that cannot merge and a cascade, each saying what to do")
    func refusals() throws {
        let (simulator, _) = ScriptedVisionLanguageModel.simulator()
        let evaluation = PruningEvaluation(simulator: simulator, questions: 2, latencyQuestions: 1)
        do {
            _ = try evaluation.evaluate(MergingPruner(base: FastVPruner(layer: 0)), budget: 0.25, seed: 0, timed: false)
            Issue.record("the scripted model merged")
        } catch {
            #expect("\(error)".contains("cannot merge"))
        }
        let cascade = try FallbackPruner(base: MergingPruner(base: FastVPruner(layer: 0)), threshold: 0.8)
        #expect(throws: AgentError.self) { try evaluation.evaluate(cascade, budget: 0.25, seed: 0, timed: false) }
    }
}
