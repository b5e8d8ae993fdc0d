import Foundation
import Gym
import TensorCore
import Testing
import TokenPruning
import PruneGymTesting
import TestSupport
import VLM
@testable import Pruners

@Suite struct PrunerTests {
    let simulator: PruningSimulator
    let model: FakeVLM
    init() { (simulator, model) = fakeSimulator() }

    func entry(_ index: Int = 3) throws -> TaskEntry { try simulator.entries([index], split: "test")[0] }

    func tokens(_ plan: PruningPlan) -> [Int] {
        if case let .tokens(keep) = plan { return keep }
        Issue.record("expected a token plan, got \(plan)")
        return []
    }

    @Test func classAttentionKeepsTheTopScores() throws {
        var g = SeededGenerator(seed: 0)
        // The fake's class attention falls with the index.
        #expect(tokens(try ClassAttentionPruner().plan(try entry(), budget: 4, simulator: simulator, generator: &g)) == [0, 1, 2, 3])
    }

    @Test func uniformSpreadsOverTheGrid() throws {
        var g = SeededGenerator(seed: 0)
        #expect(tokens(try UniformPruner().plan(try entry(), budget: 4, simulator: simulator, generator: &g)) == [2, 6, 10, 14])
    }

    @Test func randomIsSeededAndSized() throws {
        var a = SeededGenerator(seed: 5), b = SeededGenerator(seed: 5)
        let first = tokens(try RandomPruner().plan(try entry(), budget: 5, simulator: simulator, generator: &a))
        #expect(first.count == 5 && Set(first).count == 5 && first == first.sorted())
        #expect(first == tokens(try RandomPruner().plan(try entry(), budget: 5, simulator: simulator, generator: &b)))
    }

    @Test func divPrunePicksDiverseTokens() throws {
        // Fake tokens j and j + 8 are identical up to the shared pixel offset, so a diverse set of 8
        // never takes both of a pair.
        var g = SeededGenerator(seed: 0)
        let kept = tokens(try DivPrunePruner().plan(try entry(), budget: 8, simulator: simulator, generator: &g))
        #expect(kept.count == 8)
        #expect(Set(kept.map { $0 % 8 }).count == 8)
    }

    @Test func visPrunerKeepsImportantThenDiverse() throws {
        var g = SeededGenerator(seed: 0)
        let kept = tokens(try VisPrunerPruner().plan(try entry(), budget: 8, simulator: simulator, generator: &g))
        #expect(kept.count == 8)
        // 8 of 16 is above a quarter: r = 0.5, so the 4 highest class-attention tokens are in.
        #expect(Set([0, 1, 2, 3]).isSubset(of: Set(kept)))
        // At 3 of 16 (below a quarter) r = 0.75: ⌊0.75·3⌋ = 2 important tokens and 1 diverse one.
        let small = tokens(try VisPrunerPruner().plan(try entry(), budget: 3, simulator: simulator, generator: &g))
        #expect(small.count == 3 && Set([0, 1]).isSubset(of: Set(small)))
    }

    @Test func queryPrefersTokensLikeTheQuestion() throws {
        var g = SeededGenerator(seed: 0)
        // Task 3's query embedding is the one-hot of 3; tokens 3 and 11 carry that one-hot.
        let kept = tokens(try QueryPruner().plan(try entry(3), budget: 2, simulator: simulator, generator: &g))
        #expect(kept == [3, 11])
    }

    /// `NAME@K` applies a pruner's choice after LLM layer K; the evaluation answers it there and
    /// counts FastV's FLOPs for it.
    @Test func afterLayerApplication() throws {
        var g = SeededGenerator(seed: 0)
        let moved = try PrunerRegistry.make("grounding@0")
        #expect(moved.name == "grounding@0")
        let entry = try entry()
        #expect(try moved.plan(entry, budget: 1, simulator: simulator, generator: &g) == .tokensAfterLayer(layer: 0, tokens: [entry.task.prefix[0]]))
        #expect(moved.selectionFLOPs(entry, budget: 1, simulator: simulator) == 0)
        #expect((try PrunerRegistry.make("fastv@1") as? FastVPruner)?.layer == 1)
        #expect(try PrunerRegistry.make("fastv@1").name == "fastv@1" && FastVPruner().name == "fastv")
        for bad in ["cls@", "cls@x", "cls@-1", "nothing@0"] { #expect(throws: PrunerError.self) { try PrunerRegistry.make(bad) } }
        #expect(throws: PrunerError.self) { try AfterLayerPruner(FastVPruner(), layer: 1).plan(entry, budget: 2, simulator: simulator, generator: &g) }
        // A layer the model does not have is named before any model call (the tiny fixture has 2).
        let tiny = PruningSimulator(model: try LlavaCheckpoint.load(Fixtures.url("hf-llava-tiny")), source: FakeTasks(), encoder: IdentityTokenEncoder(width: 48))
        for pruner in [try PrunerRegistry.make("fastv@2"), try PrunerRegistry.make("cls@5")] {
            do {
                _ = try pruner.plan(entry, budget: 2, simulator: tiny, generator: &g)
                Issue.record("\(pruner.name) planned after a layer the model does not have")
            } catch {
                #expect("\(error)".contains(pruner.name) && "\(error)".contains("layers 0…1"))
            }
        }
        #expect(try PrunerRegistry.make("fastv@1").plan(entry, budget: 2, simulator: tiny, generator: &g) == .insideLLM(layer: 1, keep: 2))
        // The scripted model answers right when the key token stays: grounding keeps it at any budget.
        let result = try PruningEvaluation(simulator: simulator, questions: 10, latencyQuestions: 1).evaluate(moved, budget: 0.125, seed: 0)
        #expect(result.accuracy == 1 && result.meanTokens == 2)
        let text = entry.task.prefix.count + entry.task.suffix.count
        #expect(result.flops == model.fastVFLOPs(visualTokens: 16, textTokens: text, layer: 0, keptAfter: 2))
    }

    /// The base pruner of `NAME@K` sees the task as a simulator pruning after layer K does: that
    /// simulator, and FastV's score there as the entry's ranking attention.
    @Test func afterLayerPrunerSeesTheLayersState() throws {
        final class Probe: TokenPruner {
            let name = "probe"
            var seen: [(layer: Int?, attention: [Float]?)] = []
            func selectionFLOPs(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator) -> Double? { 0 }
            func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
                seen.append((simulator.pruneAfterLayer, entry.llmAttention))
                return .tokens([0])
            }
        }
        var g = SeededGenerator(seed: 0)
        let probe = Probe(), entry = try entry()
        #expect(entry.llmAttention == nil)
        for _ in 0..<2 {
            #expect(try AfterLayerPruner(probe, layer: 1).plan(entry, budget: 1, simulator: simulator, generator: &g) == .tokensAfterLayer(layer: 1, tokens: [0]))
        }
        let expected = (0..<16).map { Float($0 == entry.task.prefix[0] ? 1 : 0) }  // the scripted model's attention
        #expect(probe.seen.count == 2 && probe.seen.allSatisfy { $0.layer == 1 && $0.attention == expected })
        // One sibling per layer, made once; a simulator already pruning there is its own.
        #expect(simulator.sibling(pruningAfter: 1) === simulator.sibling(pruningAfter: 1))
        #expect(simulator.sibling(pruningAfter: nil) === simulator && simulator.sibling(pruningAfter: 1).pruneAfterLayer == 1)
        let inside = simulator.pruning(afterLayer: 1, encoder: simulator.encoder)
        #expect(inside.sibling(pruningAfter: 1) === inside)
        _ = try AfterLayerPruner(probe, layer: 1).plan(try inside.entries([3], split: "test")[0], budget: 1, simulator: inside, generator: &g)
        #expect(probe.seen.count == 3 && probe.seen[2].layer == 1)
    }

    /// `grounding-ranked` fills by the entry's ranking attention: class attention before the LLM,
    /// FastV's score after a layer.
    @Test func groundingRankedFillsByTheRankingAttention() throws {
        var g = SeededGenerator(seed: 0)
        let pruner = try #require(try PrunerRegistry.make("grounding-ranked") as? GroundingPruner)
        #expect(pruner.name == "grounding-ranked" && pruner.fill == .rankingAttention)
        var task = try entry(3)
        // Before the LLM: as grounding-cls (class attention falls with the index).
        #expect(tokens(try pruner.plan(task, budget: 4, simulator: simulator, generator: &g)) == [0, 1, 2, 11])
        // After a layer: the highest llmAttention, here rising with the index.
        task.llmAttention = (0..<16).map { Float($0) }
        #expect(tokens(try pruner.plan(task, budget: 4, simulator: simulator, generator: &g)) == [11, 13, 14, 15])
    }

    /// An agent trained with `prune_after_layer` plays through a simulator that prunes there,
    /// whatever the evaluation's simulator does, and its plan applies after that layer.
    @Test func agentPrunerPrunesWhereItWasTrained() throws {
        final class KeepsTheAttended: Agent {
            static let kind = "keeps-the-attended"
            func act(_ observations: [[String: SpaceValue]], deterministic: Bool) throws -> [[Bool]] {
                observations.map { observation in
                    guard case let .real(attention)? = observation["attention"] else { return [] }
                    return attention.map { $0 > 1 }
                }
            }
            func save(to url: URL) throws {}
            func load(from url: URL) throws {}
        }
        var configuration = TokenPruningConfiguration()
        configuration.pruneAfterLayer = 0
        let pruner = AgentPruner(name: "attended", agent: KeepsTheAttended(), configuration: configuration)
        var g = SeededGenerator(seed: 0)
        let entry = try entry()
        // After layer 0 the scripted model's last token attends only to the key token.
        #expect(try pruner.plan(entry, budget: 4, simulator: simulator, generator: &g) == .tokensAfterLayer(layer: 0, tokens: [entry.task.prefix[0]]))
        let before = AgentPruner(name: "attended", agent: KeepsTheAttended(), configuration: TokenPruningConfiguration())
        // Before the LLM it sees the class attention (16·(16 − i)/136 > 1 for i < 8) and keeps those tokens.
        #expect(try before.plan(entry, budget: 4, simulator: simulator, generator: &g) == .tokens(Array(0..<8)))
    }

    @Test func fastVPrunesInsideTheLanguageModel() throws {
        var g = SeededGenerator(seed: 0)
        #expect(try FastVPruner(layer: 0).plan(try entry(), budget: 5, simulator: simulator, generator: &g) == .insideLLM(layer: 0, keep: 5))
    }

    @Test func llmAttentionKeepsWhatTheLastTokenAttendsTo() throws {
        var g = SeededGenerator(seed: 0)
        // The scripted model's last token attends only to the key token (11 for test task 3).
        #expect(tokens(try AttentionPruner().plan(try entry(3), budget: 1, simulator: simulator, generator: &g)) == [11])
        #expect(try PrunerRegistry.make("llm-attention") is AttentionPruner)
    }

    @Test func saliencyKeepsTheTokenTheAnswerLeansOn() throws {
        var g = SeededGenerator(seed: 0)
        #expect(tokens(try SaliencyPruner().plan(try entry(3), budget: 1, simulator: simulator, generator: &g)) == [11])
        #expect(try PrunerRegistry.make("saliency") is SaliencyPruner)
    }

    @Test func groundingKeepsTheAnnotatedTokensThenSpreadsTheRest() throws {
        var g = SeededGenerator(seed: 0)
        // Task 3 of the test split is annotated with its key token 11; the fill spreads over the
        // 15 other tokens in raster order: free[⌊(j + ½)·15/2⌋] = free[3], free[11] = 3, 12.
        #expect(tokens(try GroundingPruner().plan(try entry(3), budget: 3, simulator: simulator, generator: &g)) == [3, 11, 12])
        #expect(tokens(try GroundingPruner().plan(try entry(3), budget: 16, simulator: simulator, generator: &g)) == Array(0..<16))
        #expect(tokens(try GroundingPruner().plan(try entry(3), budget: 1, simulator: simulator, generator: &g)) == [11])
        #expect(try PrunerRegistry.make("grounding") is GroundingPruner)
        struct Unannotated: PruningTaskSource {
            func task(_ index: Int, split: String) -> PruningTask {
                var task = ScriptedTasks().task(index, split: split)
                task.relevantTokens = nil
                return task
            }
            func word(_ id: Int) -> String { "w\(id)" }
        }
        let plain = PruningSimulator(model: model, source: Unannotated(), encoder: IdentityTokenEncoder(width: 8))
        let error = #expect(throws: PrunerError.self) {
            try GroundingPruner().plan(try plain.entries([3], split: "test")[0], budget: 3, simulator: plain, generator: &g)
        }
        #expect(String(describing: error!).contains("grounding annotation"))
    }

    @Test("grounding-cls keeps the annotated tokens, then the highest class attention; its sets are nested")
    func groundingByClassAttention() throws {
        var g = SeededGenerator(seed: 0)
        let pruner = try #require(try PrunerRegistry.make("grounding-cls") as? GroundingPruner)
        #expect(pruner.name == "grounding-cls" && pruner.fill == .classAttention)
        let task = try entry(3)
        let attention = task.classAttention
        var previous: Set<Int> = []
        for budget in [1, 3, 6, 10, 16] {
            let kept = Set(tokens(try pruner.plan(task, budget: budget, simulator: simulator, generator: &g)))
            #expect(kept.count == budget && kept.contains(11))
            let filled = kept.subtracting([11]), dropped = Set(0..<16).subtracting(kept)
            // Every filled token draws at least as much class attention as every dropped one.
            #expect(filled.allSatisfy { f in dropped.allSatisfy { attention[f] >= attention[$0] } })
            #expect(previous.isSubset(of: kept))
            previous = kept
        }
    }

    @Test("the coarse-to-fine order: a permutation whose every prefix is spread (one per quadrant, one per block)")
    func coarseToFine() throws {
        let order = coarseToFineOrder(grid: 16)
        #expect(order.sorted() == Array(0..<256))
        func blocks(_ prefix: ArraySlice<Int>, side: Int) -> Set<Int> { Set(prefix.map { ($0 / 16 / side) * 16 + ($0 % 16) / side }) }
        #expect(blocks(order.prefix(4), side: 8).count == 4)
        #expect(blocks(order.prefix(16), side: 4).count == 16)
        #expect(blocks(order.prefix(64), side: 2).count == 64)
        // A grid that is not a power of two (LLaVA-1.5's 24 × 24) is still a permutation.
        #expect(coarseToFineOrder(grid: 24).sorted() == Array(0..<576))
        // grounding-nested: the annotated token 11 first, then that order; nested over budgets.
        var g = SeededGenerator(seed: 0)
        let pruner = try PrunerRegistry.make("grounding-nested")
        let small = coarseToFineOrder(grid: 4).filter { $0 != 11 }
        var previous: Set<Int> = []
        for budget in [1, 2, 5, 9, 16] {
            let kept = Set(tokens(try pruner.plan(try entry(3), budget: budget, simulator: simulator, generator: &g)))
            #expect(kept == Set([11] + small.prefix(budget - 1)))
            #expect(previous.isSubset(of: kept))
            previous = kept
        }
    }

    @Test("ShapesVQA tasks are annotated with the anchors, then the other patches, of the question's objects")
    func shapesVQAGroundingAnnotation() throws {
        let source = ShapesVQATasks()
        var checked = 0
        for index in 0..<40 {
            let sample = source.dataset.sample(index, split: .test)
            let relevant = try #require(source.task(index, split: "test").relevantTokens)
            let objects = sample.referents[0] + sample.referents[1]
            #expect(Set(relevant).count == relevant.count)
            #expect(Array(relevant.prefix(Set(objects.map { sample.anchors[$0] }).count)) == objects.map { sample.anchors[$0] }.reduce(into: [Int]()) { if !$0.contains($1) { $0.append($1) } })
            let rest = relevant.dropFirst(Set(objects.map { sample.anchors[$0] }).count)
            #expect(rest.allSatisfy { patch in sample.patchObjects[patch].map { objects.contains($0) } ?? false })
            #expect(rest.count == sample.patchObjects.indices.filter { p in sample.patchObjects[p].map { objects.contains($0) } ?? false }.filter { !relevant.prefix(relevant.count - rest.count).contains($0) }.count)
            if !objects.isEmpty { checked += 1 }
        }
        #expect(checked > 20)
    }

    @Test func oracleFindsTheTokenTheAnswerNeeds() throws {
        var g = SeededGenerator(seed: 0)
        // Task 3 of the test split is task 1003: its key token is 1003 mod 16 = 11.
        #expect(tokens(try OraclePruner().plan(try entry(3), budget: 1, simulator: simulator, generator: &g)) == [11])
    }

    @Test func evaluationCountsAccuracyTokensAndFlops() throws {
        let evaluation = PruningEvaluation(simulator: simulator, split: "test", questions: 32, latencyQuestions: 2)
        let full = try evaluation.evaluate(ClassAttentionPruner(), budget: 1, seed: 0)
        #expect(full.accuracy == 1 && full.meanTokens == 16)
        let oracle = try evaluation.evaluate(OraclePruner(), budget: 1.0 / 16, seed: 0)
        #expect(oracle.accuracy == 1 && oracle.meanTokens == 1)
        #expect(oracle.flops < full.flops)
        // Keeping the 4 highest class-attention tokens keeps the key only when it is among 0…3.
        let cls = try evaluation.evaluate(ClassAttentionPruner(), budget: 0.25, seed: 0)
        #expect(cls.accuracy == 0.25)
        #expect(cls.accuracyPerFamily.keys.sorted() == ["even", "odd"])
    }

    /// A pruner that does not count what it computes.
    final class Uncounted: TokenPruner {
        let name = "uncounted"
        func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan { .tokens([0]) }
    }

    @Test("each pruner counts what it computes to choose, in the model's FLOPs convention")
    func selectionCosts() throws {
        let e = try entry()
        let n = Double(simulator.tokenCount), d = Double(e.tokens.shape[1])
        let text = Double(e.task.prefix.count + e.task.suffix.count)
        // The scripted model: prefill 50 per token, head 10.
        let full = (n + text) * 50 + 10, less = (n - 1 + text) * 50 + 10
        let free: [any TokenPruner] = [RandomPruner(), UniformPruner(), ClassAttentionPruner(), FastVPruner(), GroundingPruner()]
        for pruner in free { #expect(pruner.selectionFLOPs(e, budget: 4, simulator: simulator) == 0, "\(pruner.name)") }
        #expect(VisPrunerPruner().selectionFLOPs(e, budget: 4, simulator: simulator) == n * n * d)
        #expect(DivPrunePruner().selectionFLOPs(e, budget: 4, simulator: simulator) == n * n * d)
        #expect(QueryPruner().selectionFLOPs(e, budget: 4, simulator: simulator) == n * d)
        #expect(AttentionPruner().selectionFLOPs(e, budget: 4, simulator: simulator) == full)
        #expect(SaliencyPruner().selectionFLOPs(e, budget: 4, simulator: simulator) == 3 * full)
        #expect(OraclePruner().selectionFLOPs(e, budget: 4, simulator: simulator) == full + n * less)
        // A pruner that does not count says so, and the evaluation reports nil rather than 0.
        var g = SeededGenerator(seed: 0)
        #expect(try Uncounted().costedPlan(e, budget: 4, simulator: simulator, generator: &g) == CostedPlan(plan: .tokens([0]), selectionFLOPs: nil))
        let evaluation = PruningEvaluation(simulator: simulator, questions: 4, latencyQuestions: 1)
        #expect(try evaluation.evaluate(Uncounted(), budget: 0.25, seed: 0).selectionFLOPs == nil)
        #expect(try evaluation.evaluate(VisPrunerPruner(), budget: 0.25, seed: 0).selectionFLOPs == n * n * d)
    }

    /// A pruner that keeps the first tokens and logs each choice it makes.
    final class Logging: TokenPruner {
        let name: String
        let log: Log
        final class Log { var calls: [String] = [] }
        init(_ name: String, log: Log) { self.name = name; self.log = log }
        var isDeterministic: Bool { true }
        func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
            log.calls.append(name)
            return .tokens(Array(0..<budget))
        }
    }

    @Test("the report times every cell whose answers it computed, rounds interleaved over the cells; reused results share the time")
    func interleavedLatency() throws {
        let log = Logging.Log()
        let results = try PruningReport.evaluate([Logging("a", log: log), Logging("b", log: log)], simulator: simulator, budgets: [1, 0.25],
                                                 seeds: [0, 1], questions: 4, oracleQuestions: 1, quiet: true)
        // Cells: a@1 (shared by b@1), a@0.25, b@0.25 — each deterministic, so seed 1 reuses seed 0's.
        // Accuracy first (one call per question), then 3 rounds × 3 cells × 4 questions, in turn.
        let timing = Array(log.calls.suffix(36))
        #expect(log.calls.count == 3 * 4 + 36)
        #expect(timing == Array(repeating: Array(repeating: "a", count: 8) + Array(repeating: "b", count: 4), count: 3).flatMap { $0 })
        func latency(_ method: String, _ budget: Double, _ seed: UInt64) -> Double {
            results.first { $0.method == method && $0.budget == budget && $0.seed == seed }!.latencyMilliseconds
        }
        #expect(latency("a", 1, 0) > 0 && latency("a", 0.25, 0) > 0 && latency("b", 0.25, 0) > 0)
        #expect(latency("b", 1, 0) == latency("a", 1, 0) && latency("a", 1, 1) == latency("a", 1, 0))
        #expect(latency("b", 0.25, 1) == latency("b", 0.25, 0))
        // No timed questions: no timing calls, 0 ms, the same accuracies.
        log.calls = []
        let untimed = try PruningReport.evaluate([Logging("a", log: log), Logging("b", log: log)], simulator: simulator, budgets: [1, 0.25],
                                                 seeds: [0, 1], questions: 4, oracleQuestions: 1, quiet: true, latencyQuestions: 0)
        #expect(log.calls.count == 3 * 4)
        #expect(untimed.allSatisfy { $0.latencyMilliseconds == 0 })
        #expect(untimed.map(\.accuracy) == results.map(\.accuracy))
    }

    /// Keeps tokens 0–3 after LLM layer 0.
    final class AfterLayerZero: TokenPruner {
        let name = "first-four@0"
        func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
            .tokensAfterLayer(layer: 0, tokens: Array(0..<budget))
        }
    }

    /// The README's example of a pruner of your own, as written there.
    final class TopRowsPruner: TokenPruner {
        let name = "top-rows"
        func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
            .tokens(Array(0..<budget))                         // ascending token indices
        }
        func selectionFLOPs(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator) -> Double? { 0 }
    }

    @Test("the README's own pruner is evaluated, its choosing counted as it says")
    func readmePruner() throws {
        let results = try PruningReport.evaluate([TopRowsPruner(), Uncounted()], simulator: simulator, budgets: [0.25], seeds: [0],
                                                 questions: 4, oracleQuestions: 1, quiet: true)
        #expect(results.map(\.selectionFLOPs) == [0, nil])
        #expect(results[0].meanTokens == 4)
        #expect(PruningReport.computeMatchedTable(results).hasSuffix("Not counting what choosing costs: uncounted."))
    }

    @Test("a fallback answers again from every token below its threshold, and the evaluation counts both passes")
    func fallbackCascade() throws {
        // The scripted model puts logit 4 on one of 6 answers: probability e⁴/(e⁴ + 5) ≈ 0.916,
        // right only when the key token is kept. Class attention keeps tokens 0–3, and test tasks
        // 1000–1003 have key tokens 8–11, so all four base answers are wrong.
        let evaluation = PruningEvaluation(simulator: simulator, questions: 4, latencyQuestions: 1)
        let base = try evaluation.evaluate(ClassAttentionPruner(), budget: 0.25, seed: 0)
        #expect(base.accuracy == 0 && base.meanTokens == 4 && base.fallbackShare == nil)
        let unsure = try evaluation.evaluate(try FallbackPruner(base: ClassAttentionPruner(), threshold: 0.95), budget: 0.25, seed: 0)
        let e = try entry(0)
        let second = SelectionCost.fullPass(e, simulator: simulator)
        #expect(second == Double((16 + 2) * 50 + 10))
        #expect(unsure.method == "cls+fallback" && unsure.accuracy == 1 && unsure.fallbackShare == 1)
        #expect(unsure.meanTokens == 4 + 16 && unsure.flops == base.flops + second)
        #expect(unsure.selectionFLOPs == base.selectionFLOPs && unsure.latencyMilliseconds > 0)
        let sure = try evaluation.evaluate(try FallbackPruner(base: ClassAttentionPruner(), threshold: 0.9), budget: 0.25, seed: 0)
        #expect(sure.accuracy == 0 && sure.fallbackShare == 0 && sure.meanTokens == 4 && sure.flops == base.flops)
        // Nothing to restore at 100%: the report's shared unpruned row, with no fallbacks.
        let results = try PruningReport.evaluate([ClassAttentionPruner(), try FallbackPruner(base: ClassAttentionPruner(), threshold: 0.95)],
                                                 simulator: simulator, budgets: [1, 0.25], seeds: [0], questions: 4, oracleQuestions: 1, quiet: true,
                                                 latencyQuestions: 0)
        #expect(results.map(\.fallbackShare) == [nil, nil, 0, 1])
        #expect(PruningReport.table(results).contains("Answers given again: cls+fallback (threshold 0.95) at 25.0% 100.0%."))
        #expect(results.map(\.fallbackThreshold) == [nil, nil, Double(Float(0.95)), Double(Float(0.95))])
        // A base that prunes after LLM layer 0 goes through the model's cascade, which continues the
        // pass where it can; the scripted model answers again from scratch, and says so in its FLOPs.
        let layered = try evaluation.evaluate(AfterLayerZero(), budget: 0.25, seed: 0)
        let continued = try evaluation.evaluate(try FallbackPruner(base: AfterLayerZero(), threshold: 0.95), budget: 0.25, seed: 0)
        #expect(layered.accuracy == 0 && continued.accuracy == 1 && continued.fallbackShare == 1 && continued.meanTokens == 4 + 16)
        #expect(simulator.model.continuationFLOPs(visualTokens: 16, textTokens: 2, afterLayer: 0) == second)
        #expect(continued.flops == layered.flops + second)
        // FastV's cascade goes through the model's fastVAnswerLogits(_:layer:keptAfter:standing:)
        // (the scripted model's default answers again from scratch).
        let fastV = try evaluation.evaluate(FastVPruner(), budget: 0.25, seed: 0)
        let fastVCascade = try evaluation.evaluate(try FallbackPruner(base: FastVPruner(), threshold: 0.95), budget: 0.25, seed: 0)
        #expect(fastVCascade.fallbackShare == 1 && fastVCascade.accuracy == fastV.accuracy && fastVCascade.meanTokens == fastV.meanTokens + 16)
        #expect(fastVCascade.flops == fastV.flops + second)
        // The oracle with a fallback is still the oracle: its smaller subset.
        let oracle = try PruningReport.evaluate([try FallbackPruner(base: OraclePruner(), threshold: 0.5)], simulator: simulator, budgets: [0.25],
                                                seeds: [0], questions: 4, oracleQuestions: 2, quiet: true, latencyQuestions: 0)
        #expect(oracle.map(\.questions) == [2] && oracle[0].subset)
        // The rule itself: the top answer's probability against the threshold; non-finite never stands.
        let half = try FallbackPruner(base: RandomPruner(), threshold: 0.5)
        let above = try FallbackPruner(base: RandomPruner(), threshold: 0.51)
        #expect(half.accepts([0, 0]) && !above.accepts([0, 0]))
        #expect(!half.accepts([.nan, 0]) && !half.accepts([]) && !half.isDeterministic)
        for bad: Float in [0, -1, 1.5, .nan] {
            #expect(throws: AgentError.self) { try FallbackPruner(base: RandomPruner(), threshold: bad) }
        }
    }

    @Test("paired differences count the questions lost and gained on the same questions; the report pairs every pruned result with the unpruned answers")
    func pairedDifferences() throws {
        // By hand: per-question differences 0, −1, +1, 0, −1 (the reference's sixth question is
        // not in the result): mean −0.2, sample variance (3 − 5 · 0.04) / 4 = 0.7, error √(0.7 / 5).
        let pair = PairedDifference([true, false, true, true, false], against: [true, true, false, true, true, false], name: "ref")
        #expect(pair.questions == 5 && pair.lost == 2 && pair.gained == 1 && pair.against == "ref")
        #expect(abs(pair.difference + 0.2) < 1e-12 && abs(pair.standardError - (0.7 / 5).squareRoot()) < 1e-12)
        let same = PairedDifference([true, false], against: [true, false], name: "ref")
        #expect(same.difference == 0 && same.standardError == 0)
        // Class attention keeps tokens 0–3 and every test task's key token is among 8–11 (see
        // fallbackCascade): all four answers are lost against the unpruned model's four right ones.
        let results = try PruningReport.evaluate([ClassAttentionPruner(), FastVPruner()], simulator: simulator, budgets: [1, 0.25], seeds: [0, 1],
                                                 questions: 4, oracleQuestions: 1, quiet: true, latencyQuestions: 0)
        let unpruned = try #require(results.first { $0.budget == 1 })
        #expect(unpruned.correct == [true, true, true, true] && results.filter { $0.budget == 1 }.allSatisfy { $0.paired == nil })
        for result in results where result.budget < 1 {
            #expect(result.correct.count == 4 && Double(result.correct.filter { $0 }.count) / 4 == result.accuracy)
            #expect(result.paired == PairedDifference(result.correct, against: unpruned.correct, name: "unpruned"))
        }
        let cls = try #require(results.first { $0.method == "cls" && $0.budget < 1 })
        #expect(cls.paired?.lost == 4 && cls.paired?.gained == 0 && cls.paired?.difference == -1)
        #expect(PruningReport.table(results).contains("| cls | 25.0% | 0.0 ± 0.0 | 0.0 | −100.00 ± 0.00 |"))
        // Against another method, budget by budget and seed by seed; an absent name is refused by name.
        let versus = try PruningReport.paired(results, against: "fastv")
        #expect(versus.map(\.result.method) == ["cls", "cls", "cls", "cls"])
        let fastV = try #require(results.first { $0.method == "fastv" && $0.budget < 1 })
        #expect(versus.last?.paired == PairedDifference(cls.correct, against: fastV.correct, name: "fastv"))
        let table = try PruningReport.pairedTable(results, against: "fastv")
        #expect(table.split(separator: "\n").count == 3 && table.contains("| cls | 25.0% |"), "\(table)")
        #expect(throws: PrunerError.self) { try PruningReport.paired(results, against: "divprune") }
        // results.json carries the counts, the difference and its error, and not the answers.
        let json = try JSONEncoder().encode(results)
        let text = String(decoding: json, as: UTF8.self)
        #expect(text.contains("\"standardError\"") && text.contains("\"lost\"") && !text.contains("\"correct\""))
        let decoded = try JSONDecoder().decode([PruningResult].self, from: json)
        #expect(decoded.map(\.paired) == results.map(\.paired) && decoded.allSatisfy(\.correct.isEmpty))
    }

    /// Keeps the scripted task's key token ((index + 8) mod 16 on the test split) on even
    /// question indices and leaves it out on odd ones: right on even questions, wrong on odd ones.
    final class EvenQuestionsPruner: TokenPruner {
        let name = "even"
        func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
            let key = (entry.index + 8) % 16, first = entry.index % 2 == 0 ? 0 : 1
            return .tokens((first..<(first + budget)).map { (key + $0) % 16 }.sorted())
        }
    }

    @Test("--first-question evaluates the split's questions from there on: the later part of a longer run's answers")
    func firstQuestion() throws {
        let whole = try PruningReport.evaluate([EvenQuestionsPruner()], simulator: simulator, budgets: [0.25], seeds: [0],
                                               questions: 8, oracleQuestions: 1, quiet: true, latencyQuestions: 0)[0]
        #expect(whole.correct == [true, false, true, false, true, false, true, false] && whole.firstQuestion == nil)
        let later = try PruningReport.evaluate([EvenQuestionsPruner()], simulator: simulator, budgets: [0.25], seeds: [0],
                                               questions: 4, oracleQuestions: 1, quiet: true, latencyQuestions: 1, firstQuestion: 3)[0]
        #expect(later.correct == Array(whole.correct[3..<7]) && later.questions == 4 && later.firstQuestion == 3)
        let directory = try makeTemporaryDirectory("first-question")
        defer { try? FileManager.default.removeItem(at: directory) }
        try PruningReport.write([whole, later], to: directory)
        let rows = try String(contentsOf: directory.appendingPathComponent("results.csv"), encoding: .utf8).split(separator: "\n")
        let column = try #require(rows[0].split(separator: ",", omittingEmptySubsequences: false).firstIndex(of: "first_question"))
        #expect(rows[1...].map { $0.split(separator: ",", omittingEmptySubsequences: false)[column] } == ["0", "3"])
        let decoded = try JSONDecoder().decode([PruningResult].self, from: Data(contentsOf: directory.appendingPathComponent("results.json")))
        #expect(decoded.map(\.firstQuestion) == [nil, 3])
    }

    /// Scores two tokens high on even tasks and six on odd ones, so that a budget met on average
    /// keeps different counts per question.
    final class ParityScores: ScoringPruner {
        let name = "parity"
        func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
            .tokens(Array(0..<budget))
        }
        func keepScores(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator) throws -> (scores: [Float], selectionFLOPs: Double?) {
            let high = entry.index % 2 == 0 ? 2 : 6
            return ((0..<simulator.tokenCount).map { $0 < high ? 2 - Float($0) / 100 : Float($0) / 100 }, 7)
        }
        func plan(keeping kept: [Int], simulator: PruningSimulator) -> PruningPlan { .tokens(kept) }
    }

    @Test("a budget met on average: the cut is set on validation scores, ties are shared, and one token always stays")
    func adaptiveBudgetLevels() throws {
        let level = AdaptiveBudgetPruner.Level(pooled: [3, 2, 2, 2, 1], keeping: 2)
        #expect(level.threshold == 2 && level.tieShare == 1.0 / 3)
        #expect(level.kept([3, 2, 2, 2, 1]) == [0, 1] && level.kept([1, 1, 1, 0]) == [0])
        #expect(AdaptiveBudgetPruner.Level(pooled: [3, 2, 2, 2, 1], keeping: 4).kept([2, 3, 2, 2]) == [0, 1, 2, 3])
        #expect(AdaptiveBudgetPruner.Level(pooled: [.nan, 1, 0], keeping: 1).threshold == 1)
        // Nothing reaches the cut: the best-scored token stays (the first of equals).
        #expect(AdaptiveBudgetPruner.Level(pooled: [5, 4], keeping: 1).kept([1, 3, 3]) == [1])
        #expect(AdaptiveBudgetPruner.Level(pooled: [1], keeping: 0).kept([0.5, 0.2]) == [0])
        #expect(throws: AgentError.self) { try AdaptiveBudgetPruner(base: ParityScores(), calibrationQuestions: 0) }
    }

    @Test("NAME+adaptive keeps more tokens where the scores spread and fewer where they gather, k on average")
    func adaptiveBudget() throws {
        let adaptive = try AdaptiveBudgetPruner(base: ParityScores(), calibrationQuestions: 8)
        #expect(adaptive.name == "parity+adaptive")
        // 8 validation questions, 4 with two high scores and 4 with six: 32 tokens reach the cut at 4 per question.
        #expect(try adaptive.level(budget: 4, simulator: simulator).threshold == 2 - Float(5) / 100)
        var g = SeededGenerator(seed: 0)
        #expect(tokens(try adaptive.plan(try entry(0), budget: 4, simulator: simulator, generator: &g)) == [0, 1])
        #expect(tokens(try adaptive.plan(try entry(1), budget: 4, simulator: simulator, generator: &g)) == Array(0..<6))
        // At every token, the base's own plan.
        #expect(tokens(try adaptive.plan(try entry(0), budget: 16, simulator: simulator, generator: &g)) == Array(0..<16))
        let result = try PruningEvaluation(simulator: simulator, questions: 4, latencyQuestions: 0).evaluate(adaptive, budget: 0.25, seed: 0, timed: false)
        #expect(result.meanTokens == 4 && result.selectionFLOPs == 7 && result.method == "parity+adaptive")
        #expect(result.adaptiveThreshold == Double(2 - Float(5) / 100) && result.adaptiveCalibration == 8)
        // The cut is recorded in results.csv and results.json, and is nil for other pruners.
        let directory = try makeTemporaryDirectory("adaptive")
        defer { try? FileManager.default.removeItem(at: directory) }
        let plain = try PruningEvaluation(simulator: simulator, questions: 4, latencyQuestions: 0).evaluate(ClassAttentionPruner(), budget: 0.25, seed: 0, timed: false)
        try PruningReport.write([result, plain], to: directory)
        let rows = try String(contentsOf: directory.appendingPathComponent("results.csv"), encoding: .utf8).split(separator: "\n")
            .map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        let threshold = try #require(rows[0].firstIndex(of: "adaptive_threshold")), calibration = try #require(rows[0].firstIndex(of: "adaptive_calibration"))
        #expect(rows[1][threshold] == "\(2 - Float(5) / 100)" && rows[1][calibration] == "8" && rows[2][threshold] == "" && rows[2][calibration] == "")
        let decoded = try JSONDecoder().decode([PruningResult].self, from: Data(contentsOf: directory.appendingPathComponent("results.json")))
        #expect(decoded.map(\.adaptiveCalibration) == [8, nil])
        // Inside a cascade the cut is the adaptive base's.
        #expect(AdaptiveBudgetPruner.within(try FallbackPruner(base: adaptive, threshold: 0.5)) === adaptive)
        // FastV's scores are the last text token's attention, on the key token alone here: the
        // tied zeros are shared so that four tokens stay, the key token among them.
        let fastV = try AdaptiveBudgetPruner(base: FastVPruner(), calibrationQuestions: 16)
        let cut = try fastV.level(budget: 4, simulator: simulator)
        #expect(cut.threshold == 0 && cut.tieShare == 0.2)
        let e = try entry(5)
        guard case let .tokensAfterLayer(0, kept) = try fastV.plan(e, budget: 4, simulator: simulator, generator: &g) else {
            Issue.record("expected a plan after layer 0")
            return
        }
        #expect(kept.count == 4 && kept.contains(e.task.prefix[0]))
        let answered = try PruningEvaluation(simulator: simulator, questions: 4, latencyQuestions: 0).evaluate(fastV, budget: 0.25, seed: 0, timed: false)
        #expect(answered.accuracy == 1 && answered.meanTokens == 4)
    }

    @Test func unknownPrunerNamesTheKnownOnes() {
        do { _ = try PrunerRegistry.make("fastw"); Issue.record("accepted") } catch { #expect("\(error)".contains("fastv")) }
    }
}

/// The report's compute-matched table, on hand-made results.
@Suite struct ComputeMatchedTableTests {
    static func result(_ method: String, _ budget: Double, accuracy: Double, gflops: Double, choosing: Double? = 0, subset: Bool = false) -> PruningResult {
        PruningResult(method: method, budget: budget, seed: 0, questions: 100, accuracy: accuracy, accuracyPerFamily: [:],
                      meanTokens: budget * 256, flops: gflops * 1e9, selectionFLOPs: choosing.map { $0 * 1e9 }, latencyMilliseconds: 1, subset: subset)
    }

    @Test("compute levels count the pruner's own FLOPs; a pruner that does not count them is named")
    func choosingCountsTowardsCompute() throws {
        let results = [
            Self.result("cls", 0.111, accuracy: 0.70, gflops: 0.103),
            Self.result("tprl", 0.111, accuracy: 0.75, gflops: 0.103, choosing: 0.070),
            Self.result("mine", 0.111, accuracy: 0.72, gflops: 0.103, choosing: nil),
        ]
        let lines = PruningReport.computeMatchedTable(results).split(separator: "\n").map(String.init)
        #expect(lines[2] == "| 0.103 | 70.0 (11%) | – | 72.0 (11%) |")
        #expect(lines[3] == "| 0.173 | 70.0 (11%) | 75.0 (11%) | 72.0 (11%) |")
        #expect(lines.last == "Not counting what choosing costs: mine.")
        let table = PruningReport.table(results)
        #expect(table.contains("| 0.103 | 0.070 |") && table.contains("| 0.103 | – |"))
        #expect(table.contains("| 75.0 ± 0.0 | – | – |") && table.contains("add 1.0 to the budgets to compare each method with the unpruned model"))
    }

    @Test("each cell is the method's best accuracy among budgets costing at most the row's FLOPs; – when none fits")
    func bestWithinCompute() throws {
        let results = [
            Self.result("cls", 1, accuracy: 0.80, gflops: 0.342), Self.result("cls", 0.333, accuracy: 0.75, gflops: 0.153),
            Self.result("cls", 0.111, accuracy: 0.70, gflops: 0.103),
            Self.result("fastv", 1, accuracy: 0.80, gflops: 0.342), Self.result("fastv", 0.333, accuracy: 0.79, gflops: 0.200),
            Self.result("fastv", 0.111, accuracy: 0.74, gflops: 0.163),
            Self.result("oracle", 0.111, accuracy: 0.99, gflops: 0.050, subset: true),
        ]
        let lines = PruningReport.computeMatchedTable(results).split(separator: "\n").map(String.init)
        #expect(lines[0] == "| GFLOPs at most | cls | fastv |")
        #expect(lines.count == 2 + 5)
        #expect(lines[2] == "| 0.103 | 70.0 (11%) | – |")
        #expect(lines[3] == "| 0.153 | 75.0 (33%) | – |")
        #expect(lines[4] == "| 0.163 | 75.0 (33%) | 74.0 (11%) |")
        #expect(lines[5] == "| 0.200 | 75.0 (33%) | 79.0 (33%) |")
        #expect(lines[6] == "| 0.342 | 80.0 (100%) | 80.0 (100%) |")
    }
}
