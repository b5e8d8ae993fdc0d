import Foundation
import Gym
import TensorCore
import Testing
@testable import TokenPruning

@Suite struct TokenPruningEnvironmentTests {
    func environment(_ configure: (inout TokenPruningConfiguration) -> Void = { _ in }) throws -> (TokenPruningEnvironment, FakeVLM) {
        let (simulator, model) = fakeSimulator()
        var configuration = TokenPruningConfiguration()
        configuration.datasetSize = 50
        configure(&configuration)
        return (try TokenPruningEnvironment(simulator: simulator, configuration: configuration, seed: 3), model)
    }

    /// Resets to task `index` (key token index % 16, answer 1 + index % 5).
    func start(_ env: TokenPruningEnvironment, index: Int) throws -> [String: SpaceValue] {
        try env.reset(seed: 0, options: ResetOptions(values: ["index": .number(Double(index))])).observation
    }

    func mask(keeping kept: [Int]) -> [Bool] { (0..<16).map { kept.contains($0) } }

    /// `prune_after_layer` as a registry option: environments made with it share one simulator
    /// that prunes there, and the step's FLOPs are the model's for pruning inside it.
    @Test func registryPrunesAfterALayer() throws {
        var registry = EnvironmentRegistry()
        let (base, model) = fakeSimulator()
        try TokenPruningEnvironment.register(in: &registry, simulator: { base })
        let made = try (0..<2).map { _ in try registry.make("TokenPruning-v0", options: ["prune_after_layer": .number(0), "dataset_size": .number(20)]) }
        let environments = made.compactMap { $0 as? TokenPruningEnvironment }
        #expect(environments.count == 2 && environments[0].simulator === environments[1].simulator)
        #expect(environments[0].simulator.pruneAfterLayer == 0 && environments[0].configuration.pruneAfterLayer == 0)
        let plain = try #require(try registry.make("TokenPruning-v0") as? TokenPruningEnvironment)
        #expect(plain.simulator === base)
        _ = try start(environments[0], index: 3)
        let step = try environments[0].step(mask(keeping: [3, 5]))
        let entry = try #require(environments[0].currentEntry)
        let text = entry.task.prefix.count + entry.task.suffix.count
        #expect(step.info["flops"] == .number(model.fastVFLOPs(visualTokens: 16, textTokens: text, layer: 0, keptAfter: 2)))
        #expect(step.info["correct"] == .number(1))
        #expect(throws: GymError.self) { try registry.make("TokenPruning-v0", options: ["prune_after_layer": .number(-1)]) }
    }

    @Test func paperRewardOnHandBuiltSteps() throws {
        let (env, _) = try environment { $0.alpha = 1; $0.beta = 0.5 }
        _ = try start(env, index: 3)  // key token 3
        // Step 1: keep 8 tokens including the key → score stays 1: r = 0.5·(1 − 8/16).
        let first = try env.step(mask(keeping: Array(0..<8)))
        #expect(first.reward == 0.25)
        #expect(first.info["tokens_kept"] == .number(8))
        #expect(first.info["correct"] == .number(1))
        // Step 2: drop the key, keep 2 → score 1 → 0: r = −1 + 0.5·(1 − 2/8).
        let second = try env.step(mask(keeping: [0, 1]))
        #expect(second.reward == -1 + 0.5 * 0.75)
        #expect(second.info["answer"] == .text("w0"))
        #expect(!second.terminated)
        // Step 3 (T_max = 3): entries outside the kept set are ignored; keep 1 of 2.
        let third = try env.step(mask(keeping: [1, 3, 9]))
        #expect(third.reward == 0.5 * 0.5)
        #expect(third.terminated && !third.truncated)
        #expect(env.keptTokens == [1])
    }

    @Test func probabilityLogProbabilityAndKLTerms() throws {
        // The fake's logits: 4 on the answer (or on token 0 when the key is pruned), 0 elsewhere.
        let right = log(exp(4.0) / (exp(4.0) + 5)), wrong = log(1 / (exp(4.0) + 5))
        for (term, expected) in [(TaskScore.probability, exp(wrong) - exp(right)), (.logProbability, wrong - right)] {
            let (env, _) = try environment { $0.taskScore = term; $0.beta = 0 }
            _ = try start(env, index: 3)
            let step = try env.step(mask(keeping: [0, 1]))
            #expect(abs(step.reward - expected) < 1e-9, "\(term)")
        }
        let (env, _) = try environment { $0.taskScore = .negativeKL; $0.beta = 0 }
        _ = try start(env, index: 3)
        // KL(p_full ‖ p_pruned): p_full has 4 on the answer, p_pruned 4 on token 0.
        let p = exp(right), q = exp(wrong)
        let kl = p * (right - wrong) + q * (wrong - right)  // the two swapped entries; the rest are equal
        let step = try env.step(mask(keeping: [0, 1]))
        #expect(abs(step.reward - (-kl)) < 1e-9)
    }

    @Test func efficiencyTerms() throws {
        let (flopsEnv, _) = try environment { $0.alpha = 0; $0.beta = 1; $0.efficiency = .flopsSaved }
        _ = try start(flopsEnv, index: 3)
        // Fake FLOPs: 1110 + 50·(visual + 2 text tokens).
        let before: Double = 1110 + 50 * 18, after: Double = 1110 + 50 * 6
        let reward = try flopsEnv.step(mask(keeping: [0, 1, 2, 3])).reward
        #expect(abs(reward - (1 - after / before)) < 1e-12)

        let (budgetEnv, _) = try environment { $0.alpha = 0; $0.beta = 1; $0.efficiency = .budgetDistance; $0.targetBudget = 0.25 }
        _ = try start(budgetEnv, index: 3)
        // 16 → 8 tokens: |1 − 0.25| − |0.5 − 0.25| = 0.5; 8 → 2: |0.5 − 0.25| − |0.125 − 0.25| = 0.125.
        #expect(try budgetEnv.step(mask(keeping: Array(0..<8))).reward == 0.5)
        #expect(try budgetEnv.step(mask(keeping: [0, 1])).reward == 0.125)
    }

    @Test func terminalOnlyPaysAtTheEnd() throws {
        let (env, _) = try environment { $0.terminalOnly = true; $0.alpha = 1; $0.beta = 0.5 }
        _ = try start(env, index: 3)
        #expect(try env.step(mask(keeping: Array(0..<8))).reward == 0)
        #expect(try env.step(mask(keeping: Array(0..<4))).reward == 0)
        let last = try env.step(mask(keeping: [3]))
        let expected: Double = 0.5 * (1 - 1.0 / 16)  // α·(1 − 1) + β·(1 − 1/16): the key token 3 was kept
        #expect(last.reward == expected)
    }

    @Test func floorKeepsTheMostSalientToken() throws {
        let (env, _) = try environment { $0.minimumTokens = 2 }
        _ = try start(env, index: 3)
        _ = try env.step(mask(keeping: [5, 6, 7, 9]))
        // Keeping nothing: the two kept tokens with the highest class attention (lowest index) stay.
        let step = try env.step(mask(keeping: []))
        #expect(env.keptTokens == [5, 6])
        #expect(step.info["tokens_kept"] == .number(2))
    }

    @Test func observationPadsPrunedSlotsAndShowsPositions() throws {
        let (env, _) = try environment()
        _ = try start(env, index: 3)
        let observation = try env.step(mask(keeping: [0, 5])).observation
        guard case let .binary(valid) = observation["mask"], case let .real(tokens) = observation["tokens"],
              case let .real(positions) = observation["positions"], case let .integer(step) = observation["step"] else {
            Issue.record("unexpected observation \(observation)"); return
        }
        #expect(valid == mask(keeping: [0, 5]))
        #expect(tokens[(1 * 8)..<(2 * 8)].allSatisfy { $0 == 0 })  // pruned slot 1 is zero
        #expect(tokens[(5 * 8)..<(6 * 8)].contains { $0 != 0 })
        let third: Float = 1.0 / 3
        #expect(Array(positions[10..<12]) == [third, third])  // token 5 sits at row 1, column 1 of 4
        #expect(step == 1)
        guard case let .real(attention) = observation["attention"], let entry = env.currentEntry else {
            Issue.record("no attention in \(observation.keys.sorted())"); return
        }
        #expect(attention[1] == 0)  // pruned
        #expect(attention[5] == 16 * entry.classAttention[5])  // relative to uniform
        #expect(attention[5] > 0)
        #expect(env.observationSpace.contains(observation))
    }

    /// `observation(_:kept:step:budget:)` (top-k inference's way to look ahead without asking
    /// the model) is what `step` returns for the same kept set.
    @Test func observationFunctionMatchesStep() throws {
        let (env, _) = try environment()
        _ = try start(env, index: 4)
        let entry = try #require(env.currentEntry)
        let stepped = try env.step(mask(keeping: [2, 3, 7, 11])).observation
        #expect(env.observation(entry, kept: [2, 3, 7, 11], step: 1, budget: env.currentBudget) == stepped)
    }

    @Test func invalidActionsAndOrderErrorsAreClear() throws {
        let (env, _) = try environment()
        #expect(throws: GymError.self) { try env.step(mask(keeping: [1])) }  // before reset
        _ = try start(env, index: 1)
        do {
            _ = try env.step([true, false])
            Issue.record("a 2-entry mask was accepted")
        } catch {
            #expect("\(error)".contains("2 entries"))
            #expect("\(error)".contains("16"))
        }
        for _ in 0..<3 { _ = try env.step(mask(keeping: Array(0..<16))) }
        #expect(throws: GymError.self) { try env.step(mask(keeping: [1])) }  // after the end
    }

    /// `walk` plays an episode as `step` would — the same observations and kept sets, floor rule
    /// included — without the model and without touching the environment's own episode.
    @Test func walkPlaysTheEpisodeWithoutTheModel() throws {
        let (env, model) = try environment { $0.minimumTokens = 2 }
        let plan = [Array(0..<8), [0, 1, 3, 9], [9]]  // the last keeps nothing still kept: the floor tops it up
        _ = try start(env, index: 3)
        var stepped: [[String: SpaceValue]] = [try start(env, index: 3)]
        for keep in plan { stepped.append(try env.step(mask(keeping: keep)).observation) }
        let entry = try env.simulator.entries([3], split: env.configuration.split)[0]
        _ = try start(env, index: 5)
        let calls = model.answerCalls
        var seen: [[String: SpaceValue]] = []
        let kept = try env.walk(entry, budget: env.budget) { observation, kept in
            seen.append(observation)
            return mask(keeping: plan[seen.count - 1])
        }
        #expect(model.answerCalls == calls)
        #expect(seen == Array(stepped.prefix(3)))
        #expect(kept == [0, 1])  // the floor: the two of [0, 1, 3] with the highest class attention
        #expect(env.keptTokens == Array(0..<16))  // its own episode (task 5) is untouched
        // A mask of the wrong length is refused as `step` refuses it, naming the space.
        #expect(throws: GymError.self) { try env.walk(entry, budget: 0.5) { _, _ in [true, false] } }
    }

    /// A simulator made from another (a policy's own encoder or cut in an evaluation) takes the
    /// other's entry with its own codes instead of running the model again: the same entry
    /// `entries` computes. Another lineage computes its own.
    /// The cache drops its oldest entries beyond its capacity.
    @Test func entriesDerivedFromAnotherSimulator() throws {
        let (simulator, model) = fakeSimulator()
        final class Halving: TokenEncoder {
            var codeWidth: Int { 8 }
            private(set) var encodes = 0
            func encode(_ tokens: Tensor) -> Tensor {
                encodes += 1
                return tokens * 0.5
            }
        }
        let halving = Halving()
        let own = simulator.pruning(afterLayer: Int?.none, encoder: halving)
        let entry = try simulator.entries([3], split: "test")[0]
        let calls = model.answerCalls
        let derived = try own.entry(like: entry, from: simulator)
        #expect(model.answerCalls == calls, "no model call")
        #expect(derived.codes == (entry.tokens * 0.5).scalars && derived.tokens.scalars == entry.tokens.scalars)
        #expect(halving.encodes == 1)
        #expect(try own.entry(like: entry, from: simulator).codes == derived.codes && model.answerCalls == calls)
        #expect(halving.encodes == 1, "the second call reads the cache")
        // What the simulator computes for itself is the same entry.
        let fresh = simulator.pruning(afterLayer: Int?.none, encoder: Halving())
        let computed = try fresh.entries([3], split: "test")[0]
        #expect(model.answerCalls > calls)
        #expect(computed.codes == derived.codes)
        #expect(computed.classAttention == derived.classAttention)
        #expect(computed.query == derived.query && computed.wordEmbeddings == derived.wordEmbeddings)
        #expect(computed.fullLogits == derived.fullLogits)
        // After a layer: the codes, query and attention of that layer's states, the unpruned
        // answer not run again.
        let cut = simulator.pruning(afterLayer: 0, encoder: Halving())
        let callsBeforeCut = model.answerCalls
        let derivedCut = try cut.entry(like: entry, from: simulator)
        #expect(model.answerCalls == callsBeforeCut)
        let computedCut = try simulator.pruning(afterLayer: 0, encoder: Halving()).entries([3], split: "test")[0]
        #expect(derivedCut.codes == computedCut.codes && derivedCut.query == computedCut.query)
        #expect(derivedCut.llmAttention != nil && derivedCut.llmAttention == computedCut.llmAttention)
        #expect(derivedCut.classAttention == computedCut.classAttention && derivedCut.tokens.scalars == computedCut.tokens.scalars)
        // A simulator of its own (another lineage) computes.
        let (stranger, _) = fakeSimulator()
        let before = model.answerCalls
        _ = try own.entry(like: try stranger.entries([4], split: "test")[0], from: stranger)
        #expect(model.answerCalls == before + 1)

        // Capacity: the oldest entries go first.
        let small = PruningSimulator(model: model, source: simulator.source, encoder: simulator.encoder, capacity: 2)
        _ = try small.entries([0, 1, 2], split: "test")
        let afterThree = model.answerCalls
        _ = try small.entries([1, 2], split: "test")
        #expect(model.answerCalls == afterThree, "the two newest stay")
        _ = try small.entries([0], split: "test")
        #expect(model.answerCalls == afterThree + 1, "the oldest went")
    }

    @Test(arguments: [0, 4]) func passesTheEnvironmentChecker(queryWords: Int) throws {
        let (env, _) = try environment { $0.queryWords = queryWords }
        let report = EnvironmentChecker().check(env, make: { try environment { $0.queryWords = queryWords }.0 })
        #expect(report.passed, "\(report)")
    }

    @Test func sameSeedSameEpisodes() throws {
        func run() throws -> [Double] {
            let (env, _) = try environment { $0.budgetChoices = [0.5, 0.25] }
            var rewards: [Double] = []
            var generator = SeededGenerator(seed: 9)
            for episode in 0..<4 {
                _ = try env.reset(seed: episode == 0 ? 11 : nil)
                rewards.append(env.currentBudget)
                var done = false
                while !done {
                    let step = try env.step(env.actionSpace.sample(using: &generator))
                    rewards.append(step.reward)
                    done = step.isDone
                }
            }
            return rewards
        }
        #expect(try run() == run())
    }

    @Test func batchedVectorStepEqualsSingleSteps() throws {
        let (simulator, _) = fakeSimulator()
        var configuration = TokenPruningConfiguration()
        configuration.datasetSize = 40
        let batched = try VectorEnvironment<TokenPruningEnvironment>(count: 4) { try TokenPruningEnvironment(simulator: simulator, configuration: configuration, seed: UInt64($0)) }
        let singles = try (0..<4).map { try TokenPruningEnvironment(simulator: simulator, configuration: configuration, seed: UInt64($0)) }
        _ = try batched.reset(seed: 7)
        for (i, env) in singles.enumerated() { _ = try env.reset(seed: 7 + UInt64(i)) }
        var generator = SeededGenerator(seed: 1)
        for _ in 0..<7 {
            let actions = (0..<4).map { _ in (0..<16).map { _ in generator.bernoulli(0.7) } }
            let callsBefore = simulator.answerCalls
            let step = try batched.step(actions)
            #expect(simulator.answerCalls == callsBefore + 1, "one model call for the whole batch")
            for (i, env) in singles.enumerated() {
                let single = try env.step(actions[i])
                #expect(single.reward == step.rewards[i])
                #expect(single.terminated == step.terminated[i])
                if single.isDone { _ = try env.reset(seed: nil) }
                #expect(env.keptTokens == batched.environments[i].keptTokens)
            }
        }
    }

    @Test func configurationRejectsImpossibleValues() throws {
        var c = TokenPruningConfiguration()
        c.beta = -1
        #expect(throws: GymError.self) { try c.validate() }
        c = TokenPruningConfiguration()
        c.maxSteps = 0
        do { try c.validate(); Issue.record("max_steps 0 accepted") } catch { #expect("\(error)".contains("max_steps")) }
        let json = Data(#"{"alpha": 1, "betta": 2}"#.utf8)
        do { _ = try JSONDecoder().decode(TokenPruningConfiguration.self, from: json); Issue.record("unknown key accepted") } catch {
            #expect("\(error)".contains("betta"))
        }
        let decoded = try JSONDecoder().decode(TokenPruningConfiguration.self, from: Data(#"{"task_score": "negative_kl", "efficiency": "flops_saved"}"#.utf8))
        #expect(decoded.taskScore == .negativeKL && decoded.efficiency == .flopsSaved && decoded.maxSteps == 3)
    }
}
