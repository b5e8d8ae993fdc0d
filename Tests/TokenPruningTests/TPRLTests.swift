import Foundation
import Gym
import NN
import Policies
import PPO
import TensorCore
import Testing
import TokenPruning
import Pruners
import TestSupport
import VLM
@testable import TPRL

/// One test per defect of the TPRL reference code (see DESIGN: "Known defects").
@Suite struct TPRLReferenceDefectTests {
    let simulator: PruningSimulator
    let model: FakeVLM
    init() { (simulator, model) = fakeSimulator() }

    func environment() throws -> TokenPruningEnvironment {
        var configuration = TokenPruningConfiguration()
        configuration.datasetSize = 30
        return try TokenPruningEnvironment(simulator: simulator, configuration: configuration, seed: 1)
    }

    func network(seed: UInt64 = 0) -> TPRLActorCritic {
        var g = SeededGenerator(seed: seed)
        return TPRLActorCritic(layout: TokenPruningLayout(tokenCount: 16, codeWidth: 8, queryWidth: 8, maxSteps: 3), width: 16, heads: 4, generator: &g)
    }

    func rows(_ observations: [[String: SpaceValue]], _ env: TokenPruningEnvironment) -> Tensor {
        Tensor(shape: [observations.count, env.observationSpace.flatDimension], scalars: env.observationSpace.flatRows(observations))
    }

    /// Defect: only one of the old/new log-probabilities had the step discount. Here the
    /// distribution itself is Bernoulli(λ^t·σ(z)), so rollout and update use the same one.
    @Test func logProbabilitiesCarryTheStepDiscount() throws {
        let env = try environment(), net = network()
        var observations = [try env.reset(seed: 0).observation]
        observations.append(try env.step((0..<16).map { $0 % 4 != 0 }).observation)  // step index 1
        observations.append(try env.step((0..<16).map { $0 % 2 == 1 }).observation)  // step index 2
        let input = rows(observations, env)
        let z = net.keepLogits(input).scalars
        let action = Tensor(shape: [3, 16], scalars: (0..<48).map { Float($0 % 3 == 0 ? 1 : 0) })
        let logProbabilities = net.distribution(input).logProbability(of: action).scalars
        for (b, t) in [0, 1, 2].enumerated() {
            guard case let .binary(valid) = observations[b]["mask"] else { return }
            var expected = 0.0
            for i in 0..<16 where valid[i] {
                let p = pow(0.5, Double(t)) / (1 + exp(-Double(z[b * 16 + i])))
                expected += action.scalars[b * 16 + i] == 1 ? log(p) : log(1 - p)
            }
            #expect(abs(Double(logProbabilities[b]) - expected) < 1e-4 * max(1, abs(expected)), "step \(t)")
        }
    }

    /// Defect: GAE ran over concatenated episodes. Episodes end with `terminated`, and the
    /// buffer's advantages stop there.
    @Test func advantagesDoNotCrossEpisodes() throws {
        let buffer = RolloutBuffer(stepCount: 6, environmentCount: 1, observationWidth: 1, actionWidth: 1)
        let rewards: [Double] = [0, 0, 1, 0, 0, 100]
        for t in 0..<6 {
            buffer.add(observations: [0], actions: [0], logProbabilities: [0], values: [0], rewards: [rewards[t]],
                       terminated: [t == 2 || t == 5], truncated: [false])
        }
        buffer.computeAdvantages(lastValues: [0], gamma: 1, lambda: 1)
        #expect(Array(buffer.advantages[0..<3]) == [1, 1, 1])  // the first episode never sees the 100
        #expect(Array(buffer.advantages[3..<6]) == [100, 100, 100])
    }

    /// Defect: variable token counts could not be batched. Observations are padded to N with a
    /// validity mask; pruned slots get no probability mass and do not change the kept ones.
    @Test func variableTokenCountsBatchTogether() throws {
        let env = try environment(), net = network()
        let first = try env.reset(seed: 0).observation
        let later = try env.step((0..<16).map { $0 < 5 }).observation
        let batch = rows([first, later], env)
        let distribution = net.distribution(batch)
        let sample = distribution.mode().scalars
        #expect(sample[16 + 5..<32].allSatisfy { $0 == 0 }, "pruned slots are never kept")
        // The kept tokens' logits do not depend on what the padded slots contain.
        var alteredRow = env.observationSpace.flatRows([later])
        for i in 5..<16 { for j in 0..<8 { alteredRow[i * 8 + j] = 123 } }
        let a = net.keepLogits(rows([later], env)).scalars, b = net.keepLogits(Tensor(shape: [1, alteredRow.count], scalars: alteredRow)).scalars
        for i in 0..<5 { #expect(abs(a[i] - b[i]) < 1e-5) }
    }

    /// Defect: the entropy bonus was computed but never applied. PPO's loss moves with it.
    @Test func entropyIsInTheLoss() throws {
        let values = Tensor(shape: [4], scalars: [0.1, 0.2, 0.3, 0.4])
        func loss(_ coefficient: Float) -> Float {
            PPOLoss.compute(newLogProbabilities: Tensor(shape: [4], scalars: [-1, -2, -1, -2]), oldLogProbabilities: Tensor(shape: [4], scalars: [-1, -2, -1, -2]),
                            advantages: Tensor(shape: [4], scalars: [1, -1, 0.5, 0]), newValues: values, oldValues: values,
                            returns: values, entropy: Tensor(shape: [4], scalars: [2, 2, 2, 2]), clipCoefficient: 0.2, clipsValueLoss: true,
                            normalizesAdvantages: false, entropyCoefficient: coefficient, valueCoefficient: 0.5).total.scalar
        }
        #expect(abs((loss(0) - loss(0.1)) - 0.2) < 1e-6)
    }

    /// Defect: the autoencoder was never trained. `TokenAutoencoderTraining` trains it and the
    /// validation error falls well below that of predicting the mean token.
    @Test func autoencoderIsTrained() throws {
        var g = SeededGenerator(seed: 0)
        let autoencoder = TokenAutoencoder(inputWidth: 8, codeWidth: 4, hiddenWidth: 16, generator: &g)
        let errors = try TokenAutoencoderTraining.train(autoencoder, simulator: simulator, images: 60, epochs: 100, seed: 0)
        #expect(errors.validation < 0.3, "validation error \(errors.validation)")
        let untrained = TokenAutoencoder(inputWidth: 8, codeWidth: 4, generator: &g)
        untrained.fitStandardisation(try simulator.entries(Array(0..<10), split: "validation")[0].tokens)
        #expect(untrained.loss(try simulator.entries([0], split: "validation")[0].tokens).scalar > errors.validation)
    }

    /// Defect: the policy saw no token positions. Two observations with the same token codes in
    /// different grid slots get different keep logits.
    @Test func policySeesPositions() throws {
        let env = try environment(), net = network()
        let observation = try env.reset(seed: 0).observation
        var row = env.observationSpace.flatRows([observation])
        let layout = net.layout
        let a = net.keepLogits(Tensor(shape: [1, row.count], scalars: row)).scalars
        // Same codes, positions of the grid mirrored.
        for i in 0..<16 { row[layout.positions.lowerBound + 2 * i + 1] = 1 - row[layout.positions.lowerBound + 2 * i + 1] }
        let b = net.keepLogits(Tensor(shape: [1, row.count], scalars: row)).scalars
        #expect(zip(a, b).contains { abs($0 - $1) > 1e-4 })
    }

    /// The budget-conditioned policy reads the budget; the per-budget one ignores it.
    @Test func budgetConditioning() throws {
        let env = try environment()
        var g = SeededGenerator(seed: 0)
        let layout = TokenPruningLayout(tokenCount: 16, codeWidth: 8, queryWidth: 8, maxSteps: 3)
        let conditioned = TPRLActorCritic(layout: layout, width: 16, heads: 4, conditionOnBudget: true, generator: &g)
        let plain = TPRLActorCritic(layout: layout, width: 16, heads: 4, conditionOnBudget: false, generator: &g)
        var row = env.observationSpace.flatRows([try env.reset(seed: 0).observation])
        let before = (conditioned.keepLogits(Tensor(shape: [1, row.count], scalars: row)).scalars, plain.keepLogits(Tensor(shape: [1, row.count], scalars: row)).scalars)
        row[layout.budget.lowerBound] = 0.9
        let after = (conditioned.keepLogits(Tensor(shape: [1, row.count], scalars: row)).scalars, plain.keepLogits(Tensor(shape: [1, row.count], scalars: row)).scalars)
        #expect(before.0 != after.0)
        #expect(before.1 == after.1)
    }

    /// With `attentionInput` the policy reads each slot's class attention; without, it ignores it.
    @Test func classAttentionInput() throws {
        let env = try environment()
        var g = SeededGenerator(seed: 0)
        let layout = TokenPruningLayout(tokenCount: 16, codeWidth: 8, queryWidth: 8, maxSteps: 3)
        let reading = TPRLActorCritic(layout: layout, width: 16, heads: 4, attentionInput: true, generator: &g)
        let plain = TPRLActorCritic(layout: layout, width: 16, heads: 4, generator: &g)
        var row = env.observationSpace.flatRows([try env.reset(seed: 0).observation])
        #expect(layout.width == row.count)
        let logits = { (net: TPRLActorCritic) in net.keepLogits(Tensor(shape: [1, row.count], scalars: row)).scalars }
        let before = (logits(reading), logits(plain))
        row[layout.attention.lowerBound + 3] += 5
        let after = (logits(reading), logits(plain))
        #expect(before.0[3] != after.0[3])
        #expect(before.1 == after.1)
    }

    /// With `attention_prior` the untrained policy ranks exactly by the observed attention
    /// (z = log(1 + N·a)), through the full pass and the kept-slot pass alike; the prior's weight is
    /// a parameter that is saved and trained.
    @Test func attentionPriorStartsAsTheAttentionRanking() throws {
        let env = try environment()
        var g = SeededGenerator(seed: 0)
        let layout = TokenPruningLayout(tokenCount: 16, codeWidth: 8, queryWidth: 8, maxSteps: 3)
        let network = TPRLActorCritic(layout: layout, width: 16, heads: 4, attentionPrior: true, generator: &g)
        let row = env.observationSpace.flatRows([try env.reset(seed: 0).observation])
        let attention = Array(row[layout.attention])
        let z = network.keepLogits(Tensor(shape: [1, row.count], scalars: row)).scalars
        #expect(zip(z, attention).allSatisfy { abs($0 - Foundation.log(1 + $1)) < 1e-5 })
        let slots = [1, 4, 9]
        #expect(zip(network.keepLogits(row, slots: slots), slots.map { z[$0] }).allSatisfy { abs($0 - $1) < 1e-5 })
        #expect(network.namedParameters.map(\.name).contains("keep_prior.weight"))
        let plain = TPRLActorCritic(layout: layout, width: 16, heads: 4, generator: &g)
        #expect(network.keepLogitFLOPs(tokens: 16) == plain.keepLogitFLOPs(tokens: 16) + 16)
        // Training moves it away from the prior: one gradient step on a loss that favours slot 0.
        let optimizer = Adam(network.namedParameters, learningRate: 1e-2)
        GradientTape.$isRecording.withValue(true) {
            let loss = -network.keepLogits(Tensor(shape: [1, row.count], scalars: row)).sliced(alongAxis: 1, 0..<1).sum()
            optimizer.zeroGradients()
            loss.backward()
            optimizer.step()
        }
        #expect(network.keepLogits(Tensor(shape: [1, row.count], scalars: row)).scalars[0] > z[0])
    }

    /// With `query_words` the observation carries each question word's embedding and a mask of
    /// the real words; the layout places them where the flattened space does.
    @Test func queryWordsObservation() throws {
        var configuration = TokenPruningConfiguration()
        configuration.datasetSize = 30
        configuration.queryWords = 3
        let env = try TokenPruningEnvironment(simulator: simulator, configuration: configuration, seed: 1)
        let observation = try env.reset(seed: 0, options: ResetOptions(values: ["index": .number(5)])).observation
        #expect(env.observationSpace.contains(observation))
        guard case let .real(words)? = observation["words"], case let .binary(wordMask)? = observation["word_mask"] else {
            Issue.record("no words in the observation"); return
        }
        let entry = try #require(env.currentEntry)
        #expect(entry.task.query.count == 1)
        #expect(wordMask == [true, false, false])
        #expect(Array(words[0..<8]) == model.textEmbeddings(entry.task.query).scalars)
        #expect(words[8...].allSatisfy { $0 == 0 })
        let layout = TokenPruningLayout(tokenCount: 16, codeWidth: 8, queryWidth: 8, maxSteps: 3, wordCount: 3)
        let row = env.observationSpace.flatRows([observation])
        #expect(layout.width == row.count)
        #expect(Array(row[layout.words]) == words)
        #expect(row[layout.wordMask] == [1, 0, 0])
        configuration.queryWords = -1
        #expect(throws: GymError.self) { try configuration.validate() }
    }

    /// A policy with word rows reads the real words and ignores the padding rows; one without
    /// them has the old layout (files without `wordCount` read as 0).
    @Test func wordRowsAreRead() throws {
        var configuration = TokenPruningConfiguration()
        configuration.datasetSize = 30
        configuration.queryWords = 3
        let env = try TokenPruningEnvironment(simulator: simulator, configuration: configuration, seed: 1)
        let layout = TokenPruningLayout(tokenCount: 16, codeWidth: 8, queryWidth: 8, maxSteps: 3, wordCount: 3)
        var g = SeededGenerator(seed: 0)
        let net = TPRLActorCritic(layout: layout, width: 16, heads: 4, generator: &g)
        var row = env.observationSpace.flatRows([try env.reset(seed: 0).observation])
        let logits = { net.keepLogits(Tensor(shape: [1, row.count], scalars: row)).scalars }
        let before = logits()
        row[layout.words.lowerBound + 8 + 2] = 4  // the second row, which the mask marks padding
        #expect(logits() == before)
        row[layout.words.lowerBound + 2] += 4  // the first word
        #expect(firstMismatch(logits(), before, absolute: 1e-4, relative: 0) != nil)
        #expect(net.namedParameters.contains { $0.name.hasPrefix("word_input.") })
        let legacy = try JSONDecoder().decode(TokenPruningLayout.self, from: Data(#"{"tokenCount": 16, "codeWidth": 8, "queryWidth": 8, "maxSteps": 3}"#.utf8))
        #expect(legacy.wordCount == 0 && legacy.width == layout.words.lowerBound)
        #expect(!network().namedParameters.contains { $0.name.hasPrefix("word_") })
    }

    /// Logits computed over the kept slots alone equal the full pass's at those slots (pruned
    /// slots are padding the trunk never attends to), with and without the attention input and
    /// word rows.
    @Test func keptSlotLogitsEqualTheFullPass() throws {
        let kept = [0, 2, 3, 7, 8, 12, 15]
        for (attentionInput, words) in [(false, 0), (true, 0), (false, 3)] {
            var configuration = TokenPruningConfiguration()
            configuration.datasetSize = 30
            configuration.queryWords = words
            let env = try TokenPruningEnvironment(simulator: simulator, configuration: configuration, seed: 1)
            _ = try env.reset(seed: 0)
            let row = env.observationSpace.flatRows([try env.step((0..<16).map { kept.contains($0) }).observation])
            var g = SeededGenerator(seed: 5)
            let net = TPRLActorCritic(layout: TokenPruningLayout(tokenCount: 16, codeWidth: 8, queryWidth: 8, maxSteps: 3, wordCount: words), width: 16,
                                      heads: 4, conditionOnBudget: true, attentionInput: attentionInput, generator: &g)
            let full = net.keepLogits(Tensor(shape: [1, row.count], scalars: row)).scalars
            let compact = net.keepLogits(row, slots: kept)
            #expect(firstMismatch(compact, kept.map { full[$0] }, absolute: 1e-5, relative: 1e-5) == nil)
        }
    }

    /// A policy trained with the attention input saves and loads with it (and older files,
    /// without the key, load without it: the default).
    @Test func attentionInputPoliciesRoundTrip() throws {
        let configuration = smallRecipe { $0.classAttentionInput = true }
        let artifacts = try TPRLRecipe.run(model: model, source: FakeTasks(), configuration: configuration, showsProgress: false, log: { _ in })
        #expect(artifacts.network.attentionInput)
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try TPRLPolicyFiles.save(artifacts, configuration: configuration, to: directory)
        let (network, files) = try TPRLPolicyFiles.load(from: directory, simulator: artifacts.simulator)
        #expect(files.configuration.classAttentionInput && network.attentionInput)
        let env = try TokenPruningEnvironment(simulator: artifacts.simulator, configuration: configuration.environment)
        let row = env.observationSpace.flatRows([try env.reset(seed: 0).observation])
        let x = Tensor(shape: [1, row.count], scalars: row)
        #expect(network.keepLogits(x).scalars == artifacts.network.keepLogits(x).scalars)
        let legacy = try JSONDecoder().decode(TPRLConfiguration.self, from: Data(#"{"width": 16}"#.utf8))
        #expect(!legacy.classAttentionInput)
    }

    /// A policy trained with `query_words` saves and loads with its word rows; a `tprl.json`
    /// whose layout and environment disagree is refused by name instead of crashing inference.
    @Test func wordPoliciesRoundTrip() throws {
        let configuration = smallRecipe { $0.environment.queryWords = 3 }
        let artifacts = try TPRLRecipe.run(model: model, source: FakeTasks(), configuration: configuration, showsProgress: false, log: { _ in })
        #expect(artifacts.network.layout.wordCount == 3)
        let directory = try makeTemporaryDirectory()
        try TPRLPolicyFiles.save(artifacts, configuration: configuration, to: directory)
        let (network, _) = try TPRLPolicyFiles.load(from: directory, simulator: artifacts.simulator)
        let env = try TokenPruningEnvironment(simulator: artifacts.simulator, configuration: configuration.environment)
        let row = env.observationSpace.flatRows([try env.reset(seed: 0).observation])
        let x = Tensor(shape: [1, row.count], scalars: row)
        #expect(network.keepLogits(x).scalars == artifacts.network.keepLogits(x).scalars)
        let url = directory.appendingPathComponent("tprl.json")
        let edited = try String(contentsOf: url, encoding: .utf8).replacingOccurrences(of: #""query_words" : 3"#, with: #""query_words" : 0"#)
        try Data(edited.utf8).write(to: url)
        do {
            _ = try TPRLPolicyFiles.load(from: directory, simulator: artifacts.simulator)
            Issue.record("a layout with 3 words loaded under query_words 0")
        } catch {
            #expect("\(error)".contains("query_words 0") && "\(error)".contains("tprl.json"))
        }
    }

    /// `tprl.json` records the weight digest of the model the policy learned; loading it for a
    /// model with another digest is refused by name (unless asked, as a transfer experiment),
    /// and files without the digest — or models that cannot say — are not checked.
    @Test func policiesRecordTheirModel() throws {
        let model = FakeVLM()
        model.weightDigest = "00000000000000aa"
        let configuration = smallRecipe { _ in }
        let artifacts = try TPRLRecipe.run(model: model, source: FakeTasks(), configuration: configuration, showsProgress: false, log: { _ in })
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try TPRLPolicyFiles.save(artifacts, configuration: configuration, to: directory)
        #expect(try TPRLPolicyFiles.read(directory).modelDigest == "00000000000000aa")
        _ = try TPRLPolicyFiles.load(from: directory, simulator: artifacts.simulator)
        model.weightDigest = "00000000000000bb"
        let error = #expect(throws: FileError.self) { _ = try TPRLPolicyFiles.load(from: directory, simulator: artifacts.simulator) }
        let message = error?.description ?? ""
        #expect(message.contains("tprl.json") && message.contains("00000000000000aa") && message.contains("00000000000000bb") && message.contains("--any-model"))
        _ = try TPRLPolicyFiles.load(from: directory, simulator: artifacts.simulator, acceptingOtherModel: true)
        model.weightDigest = nil
        _ = try TPRLPolicyFiles.load(from: directory, simulator: artifacts.simulator)
        model.weightDigest = "00000000000000bb"
        let url = directory.appendingPathComponent("tprl.json")
        let legacy = try String(contentsOf: url, encoding: .utf8).replacingOccurrences(of: "  \"model_digest\" : \"00000000000000aa\",\n", with: "")
        #expect(!legacy.contains("model_digest"))
        try Data(legacy.utf8).write(to: url)
        _ = try TPRLPolicyFiles.load(from: directory, simulator: artifacts.simulator)
    }

    /// A recipe small enough for the fake model: 6 demonstrations, one cloning epoch, no PPO.
    func smallRecipe(_ edit: (inout TPRLConfiguration) -> Void) -> TPRLConfiguration {
        var configuration = TPRLConfiguration()
        configuration.demonstrations = 6
        configuration.behaviorCloningEpochs = 1
        configuration.ppoUpdates = 0
        configuration.width = 16
        configuration.environment.datasetSize = 20
        configuration.inferenceSelectionQuestions = 0
        edit(&configuration)
        return configuration
    }

    /// One-step episodes at 25% or 50% of the fake model's 16 tokens, scored by −KL to the
    /// unpruned answer: the group-relative tests' environment.
    var oneStepEnvironment: TokenPruningConfiguration {
        var environment = TokenPruningConfiguration()
        environment.datasetSize = 20
        environment.maxSteps = 1
        environment.budgetChoices = [0.25, 0.5]
        environment.taskScore = .negativeKL
        return environment
    }

    /// A budget-conditioned policy for `oneStepEnvironment`'s observations, the same weights on every call.
    func oneStepPolicy() -> TPRLActorCritic {
        var g = SeededGenerator(seed: 0)
        return TPRLActorCritic(layout: TokenPruningLayout(tokenCount: 16, codeWidth: 8, queryWidth: 8, maxSteps: 1),
                               width: 16, heads: 4, conditionOnBudget: true, generator: &g)
    }

    /// Group-relative PPO with exact-budget draws: every episode keeps exactly the budget's k
    /// tokens, advantages are centred within each group, the same seed gives the same policy, and
    /// the settings it needs are checked.
    @Test func groupRelativePPOKeepsExactlyTheBudget() throws {
        let environment = oneStepEnvironment
        var g = SeededGenerator(seed: 0)
        let network = oneStepPolicy()
        // The distribution keeps round(budget·N) of the valid slots, whatever the logits.
        let env = try TokenPruningEnvironment(simulator: simulator, configuration: environment, seed: 3)
        let first = try env.reset(seed: 3).observation
        let row = env.observationSpace.flattened(first)
        network.exactBudget = true
        network.exactBudgetTemperature = 0.5
        let distribution = network.distribution(Tensor(shape: [1, row.count], scalars: row))
        let k = Int((Double(env.currentBudget) * 16).rounded())
        for _ in 0..<5 { #expect(distribution.sample(using: &g).scalars.reduce(0, +) == Float(k)) }
        #expect(distribution is ConditionalBernoulli)
        network.exactBudget = false
        #expect(network.distribution(Tensor(shape: [1, row.count], scalars: row)) is Bernoulli)

        func train(seed: UInt64) throws -> (TPRLActorCritic, [[(String, Double)]], [Int]) {
            let network = oneStepPolicy()
            var grpo = GroupRelativePPO()
            grpo.questions = 3
            grpo.groupSize = 4
            grpo.updates = 2
            grpo.learningRate = 1e-3
            var made: [TokenPruningEnvironment] = []
            let rows = try grpo.train(network: network, seed: seed, make: { index in
                let e = try TokenPruningEnvironment(simulator: simulator, configuration: environment, seed: UInt64(index))
                made.append(e)
                return e
            })
            // Every episode's environment ended its one step holding exactly its budget's k tokens.
            let kept = made.prefix(12).map { e in e.keptTokens.count == Int((e.currentBudget * 16).rounded()) ? 1 : 0 }
            return (network, rows, kept)
        }
        let (a, rowsA, keptA) = try train(seed: 5)
        let (b, _, _) = try train(seed: 5)
        let (c, _, _) = try train(seed: 6)
        #expect(rowsA.count == 2 && rowsA[0].map(\.0).contains("greedy_score") && rowsA.allSatisfy { $0.allSatisfy { $0.1.isFinite } })
        #expect(keptA.allSatisfy { $0 == 1 })
        let x = Tensor(shape: [1, row.count], scalars: row)
        #expect(a.keepLogits(x).scalars == b.keepLogits(x).scalars)
        #expect(a.keepLogits(x).scalars != c.keepLogits(x).scalars)

        // The recipe refuses what the group needs and does not have.
        #expect(throws: (any Error).self) { try smallRecipe { $0.ppoGroupSize = 4 }.validate() }  // max_steps 3
        #expect(throws: (any Error).self) { try smallRecipe { $0.ppoGroupSize = 1; $0.environment.maxSteps = 1 }.validate() }
        #expect(throws: (any Error).self) { try smallRecipe { $0.ppoTemperature = 0; $0.environment.maxSteps = 1 }.validate() }
        #expect(throws: (any Error).self) { try smallRecipe { $0.ppoExactBudget = true }.validate() }
        // And runs it end to end on the fake model, its curve in the run directory (rewritten, not
        // appended to, when the recipe reruns there).
        let run = RunDirectory(try makeTemporaryDirectory("grpo-run"))
        try run.create()
        for _ in 0..<2 {
            let artifacts = try TPRLRecipe.run(model: model, source: FakeTasks(), configuration: smallRecipe {
                $0.ppoGroupSize = 2
                $0.ppoUpdates = 1
                $0.ppoEnvironments = 2
                $0.environment.maxSteps = 1
            }, runDirectory: run, showsProgress: false, log: { _ in })
            #expect(artifacts.ppo.count == 1 && !artifacts.network.exactBudget && artifacts.network.exactBudgetTemperature == 1)
            let (columns, rows) = try MetricsLog.read(run.metricsURL)
            #expect(columns.contains("greedy_score") && rows.count == 1)
        }
    }

    /// Group-relative advantages on hand-built rewards: each reward minus its group's mean, divided
    /// by the group's standard deviation (GRPO), by one over the update, or by nothing (Dr. GRPO);
    /// and `ppo_advantage_scale` reaches the phase (its weights differ) and is refused where it
    /// does nothing or names no scale.
    @Test func groupRelativeAdvantageScales() throws {
        // Group 1: 1, 2, 3, 4 (mean 2.5, sample std √(5/3)); group 2: 10, 10, 10, 10.4 (mean 10.1, std 0.2).
        let rewards: [Double] = [1, 2, 3, 4, 10, 10, 10, 10.4]
        let centred: [Double] = [-1.5, -0.5, 0.5, 1.5, -0.1, -0.1, -0.1, 0.3]
        func close(_ a: [Float], _ b: [Double]) -> Bool { a.count == b.count && zip(a, b).allSatisfy { abs(Double($0) - $1) < 1e-5 } }
        let first = (5.0 / 3).squareRoot(), second = 0.2
        #expect(close(GroupRelativePPO.advantages(rewards: rewards, groupSize: 4, scale: .none), centred))
        #expect(close(GroupRelativePPO.advantages(rewards: rewards, groupSize: 4, scale: .group),
                      centred.prefix(4).map { $0 / first } + centred.suffix(4).map { $0 / second }))
        // One divisor for the update: the sample std of all eight centred rewards (their mean is 0).
        let updateStd = (centred.map { $0 * $0 }.reduce(0, +) / 7).squareRoot()
        #expect(close(GroupRelativePPO.advantages(rewards: rewards, groupSize: 4, scale: .update), centred.map { $0 / updateStd }))
        // The group scale blows a near-tie up to the size of a real difference; the update's does not.
        let group = GroupRelativePPO.advantages(rewards: rewards, groupSize: 4, scale: .group)
        let update = GroupRelativePPO.advantages(rewards: rewards, groupSize: 4, scale: .update)
        #expect(group[7] > group[3] && update[7] < update[3] / 4)
        // A group of equal rewards gives zeros under every scale.
        for scale in GroupRelativePPO.AdvantageScale.allCases {
            #expect(GroupRelativePPO.advantages(rewards: [2, 2, 2, 2], groupSize: 2, scale: scale) == [0, 0, 0, 0])
        }
        #expect(abs(GroupRelativePPO.meanGroupStandardDeviation(rewards: rewards, groupSize: 4) - (first + second) / 2) < 1e-12)

        // The configuration key: decoded, recorded, and refused where it names nothing or does nothing.
        let decoded = try JSONDecoder().decode(TPRLConfiguration.self, from: Data(#"{"ppo_advantage_scale": "update"}"#.utf8))
        #expect(decoded.ppoAdvantageScale == .update)
        #expect(try JSONDecoder().decode(TPRLConfiguration.self, from: Data("{}".utf8)).ppoAdvantageScale == .group)
        let recorded = String(decoding: try JSONEncoder().encode(decoded), as: UTF8.self)
        #expect(recorded.contains(#""ppo_advantage_scale":"update""#), "\(recorded)")
        #expect { try JSONDecoder().decode(TPRLConfiguration.self, from: Data(#"{"ppo_advantage_scale": "std"}"#.utf8)) } throws: {
            "\($0)".contains("ppo_advantage_scale must be one of group, update, none, got 'std'")
        }
        #expect { try smallRecipe { $0.ppoAdvantageScale = .none }.validate() } throws: {
            "\($0)".contains("ppo_advantage_scale 'none' applies to group-relative PPO only")
        }
        try smallRecipe { $0.ppoAdvantageScale = .none; $0.ppoGroupSize = 2; $0.environment.maxSteps = 1 }.validate()

        // The phase reads it: the same seed with another scale ends with other weights, and the
        // metrics carry the groups' spread.
        let environment = oneStepEnvironment
        let make = { (index: Int) in try TokenPruningEnvironment(simulator: simulator, configuration: environment, seed: UInt64(index)) }
        func train(_ scale: GroupRelativePPO.AdvantageScale) throws -> (TPRLActorCritic, [[(String, Double)]]) {
            var grpo = GroupRelativePPO()
            (grpo.questions, grpo.groupSize, grpo.updates, grpo.learningRate, grpo.advantageScale) = (4, 4, 1, 1e-3, scale)
            let network = oneStepPolicy()
            return (network, try grpo.train(network: network, seed: 5, make: make))
        }
        let (byGroup, rows) = try train(.group)
        let (byUpdate, _) = try train(.update)
        let env = try make(0)
        let x = Tensor(shape: [1, env.observationSpace.flattened(try env.reset(seed: 1).observation).count],
                       scalars: env.observationSpace.flattened(try env.reset(seed: 1).observation))
        #expect(rows[0].contains { $0.0 == "group_reward_std" && $0.1 > 0 }, "\(rows)")
        #expect(byGroup.keepLogits(x).scalars != byUpdate.keepLogits(x).scalars)
    }

    /// An interrupted group-relative PPO phase resumed from its checkpoint ends with the weights
    /// and metrics of an uninterrupted one; another phase's checkpoint and a corrupt file are refused.
    @Test func groupRelativePPOResumesExactly() throws {
        let environment = oneStepEnvironment
        let fresh = oneStepPolicy
        let make = { (index: Int) in try TokenPruningEnvironment(simulator: simulator, configuration: environment, seed: UInt64(index)) }
        var grpo = GroupRelativePPO()
        grpo.questions = 2
        grpo.groupSize = 3
        grpo.updates = 3
        grpo.learningRate = 1e-3
        let whole = fresh()
        let wholeRows = try grpo.train(network: whole, seed: 5, make: make)

        let url = try makeTemporaryDirectory("grpo-resume").appendingPathComponent("grpo.safetensors")
        #expect(try grpo.train(network: fresh(), seed: 5, make: make, checkpoint: url, stopAfter: 2).count == 2)
        let resumed = fresh()  // as a new process would build it
        var replayed: [Int] = []
        let rows = try grpo.train(network: resumed, seed: 5, make: make, checkpoint: url, onUpdate: { update, _ in replayed.append(update) })
        #expect(replayed == [0, 1, 2])
        #expect(rows.map { $0.map(\.0) } == wholeRows.map { $0.map(\.0) } && rows.map { $0.map(\.1) } == wholeRows.map { $0.map(\.1) })
        let env = try make(0)
        let row = env.observationSpace.flattened(try env.reset(seed: 1).observation)
        let x = Tensor(shape: [1, row.count], scalars: row)
        #expect(resumed.keepLogits(x).scalars == whole.keepLogits(x).scalars)

        var other = grpo
        other.groupSize = 4
        #expect { try other.train(network: fresh(), seed: 5, make: make, checkpoint: url) } throws: { "\($0)".contains("another group-relative PPO phase") }
        let corrupt = url.deletingLastPathComponent().appendingPathComponent("corrupt.safetensors")
        try Data("not a checkpoint".utf8).write(to: corrupt)
        #expect { try grpo.train(network: fresh(), seed: 5, make: make, checkpoint: corrupt) } throws: { "\($0)".contains("corrupt.safetensors") }
    }

    /// A setting the recipe cannot run is refused before anything trains, by its key (not by a
    /// key of the agent it configures, and not by a crash or a silent substitute).
    @Test func impossibleSettingsAreRefusedByTheirKeys() throws {
        let cases: [(String, (inout TPRLConfiguration) -> Void)] = [
            ("autoencoder_epochs must be ≥ 1, got 0", { $0.autoencoderEpochs = 0 }),
            ("behavior_cloning_epochs must be ≥ 1", { $0.behaviorCloningEpochs = 0 }),
            ("width must be a positive multiple of 8, the policy's attention heads, got 12", { $0.width = 12 }),
            ("width must be a positive multiple of 8", { $0.width = 0 }),
            ("ppo_learning_rate must be a positive number, got -1.0", { $0.ppoLearningRate = -1 }),
            ("entropy_coefficient must be a finite number ≥ 0, got nan", { $0.entropyCoefficient = .nan }),
            ("environment.max_steps must be ≥ 1, got 0", { $0.environment.maxSteps = 0 }),
        ]
        for (expected, edit) in cases {
            do {
                try smallRecipe(edit).validate()
                Issue.record("accepted: \(expected)")
            } catch {
                #expect("\(error)".contains(expected), "\(error)")
            }
        }
        try smallRecipe { _ in }.validate()
        // A cut after a layer the language model does not have: refused before the autoencoder trains there.
        let tiny = try LlavaCheckpoint.load(Fixtures.url("hf-llava-tiny"))
        let layers = tiny.configuration.text.layerCount
        var steps: [String] = []
        do {
            _ = try TPRLRecipe.run(model: tiny, source: FakeTasks(), configuration: smallRecipe { $0.environment.pruneAfterLayer = layers },
                                   showsProgress: false, log: { steps.append($0) })
            Issue.record("a cut after layer \(layers) of \(layers) ran")
        } catch {
            #expect("\(error)".contains("prune_after_layer \(layers) is outside the language model's layers 0..<\(layers)"), "\(error)")
        }
        #expect(steps.isEmpty, "\(steps)")
    }

    /// The "no autoencoder" ablation: the policy observes the raw tokens, and its directory has no
    /// autoencoder file but loads back through the identity.
    @Test func identityEncoderAblation() throws {
        var configuration = smallRecipe { $0.encoder = "identity" }
        let artifacts = try TPRLRecipe.run(model: model, source: FakeTasks(), configuration: configuration, showsProgress: false, log: { _ in })
        #expect(artifacts.autoencoder == nil)
        #expect(artifacts.network.layout.codeWidth == model.tokenWidth)
        let directory = try makeTemporaryDirectory()
        try TPRLPolicyFiles.save(artifacts, configuration: configuration, to: directory)
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("autoencoder.safetensors").path))
        let encoder = try TPRLPolicyFiles.encoder(in: directory, tokenWidth: model.tokenWidth)
        #expect(encoder is IdentityTokenEncoder)
        _ = try TPRLPolicyFiles.load(from: directory, simulator: PruningSimulator(model: model, source: FakeTasks(), encoder: encoder))
        configuration.encoder = "pca"
        #expect(throws: AgentError.self) { try configuration.validate() }
    }

    /// A policy that prunes after the language model's layer 0: it observes the model's state there
    /// (the scripted model's states are the tokens themselves, its attention the key token), its
    /// plan applies after that layer, and the evaluation counts FastV's FLOPs for it.
    @Test func pruningInsideTheLanguageModel() throws {
        let configuration = smallRecipe {
            $0.encoder = "identity"
            $0.demonstrator = "grounding"
            $0.environment.pruneAfterLayer = 0
        }
        let artifacts = try TPRLRecipe.run(model: model, source: FakeTasks(), configuration: configuration, showsProgress: false, log: { _ in })
        let cut = artifacts.simulator
        #expect(cut.pruneAfterLayer == 0)
        let entry = try cut.entries([3], split: "test")[0]
        // Codes: the tokens at unit root-mean-square; query: the last text token's state, alike.
        let tokens = entry.tokens.scalars
        for i in 0..<16 {
            let row = Array(tokens[(i * 8)..<((i + 1) * 8)])
            let rms = (row.map { $0 * $0 }.reduce(0, +) / 8 + 1e-6).squareRoot()
            #expect(zip(entry.codes[(i * 8)..<((i + 1) * 8)], row).allSatisfy { abs($0 - $1 / rms) < 1e-5 })
        }
        let answerWord = entry.task.suffix.last!
        #expect(entry.query.indices.allSatisfy { abs(entry.query[$0] - ($0 == answerWord % 8 ? Float(8).squareRoot() : 0)) < 1e-3 })
        // The attention the environment shows and ranks by is the language model's, not the class token's.
        #expect(entry.llmAttention == (0..<16).map { $0 == entry.task.prefix[0] ? 1 : 0 })
        let environment = try TokenPruningEnvironment(simulator: cut, configuration: configuration.environment)
        guard case let .real(attention)? = environment.observation(entry, kept: Array(0..<16), step: 0, budget: 0.25)["attention"] else {
            Issue.record("no attention in the observation"); return
        }
        #expect(attention == entry.llmAttention!.map { 16 * $0 })
        // The floor rule tops up by that attention: keeping nothing keeps the key token.
        #expect(try environment.nextKept(after: Array(0..<16), action: [Bool](repeating: false, count: 16), entry: entry) == [entry.task.prefix[0]])
        // The plan applies after layer 0; through a before-the-LLM simulator the policy still uses its own.
        var g = SeededGenerator(seed: 0)
        let pruner = TPRLPruner(network: artifacts.network, configuration: configuration.environment, simulator: cut)
        guard case let .tokensAfterLayer(layer, kept) = try pruner.plan(entry, budget: 4, simulator: simulator, generator: &g) else {
            Issue.record("expected a plan after a layer"); return
        }
        #expect(layer == 0 && kept.count == 4)
        // Its scores (what NAME+adaptive cuts) are its first step's keep logits: their top 4 are its
        // first-step choice, at the same cost, and its plan keeping them applies after layer 0 too.
        pruner.stepped = false
        let (scores, cost) = try pruner.keepScores(entry, budget: 4, simulator: simulator)
        let top = Array((0..<16).sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }.prefix(4)).sorted()
        let firstStep = try pruner.costedPlan(entry, budget: 4, simulator: simulator, generator: &g)
        #expect(firstStep.plan == .tokensAfterLayer(layer: 0, tokens: top) && firstStep.selectionFLOPs == cost)
        #expect(pruner.plan(keeping: top, simulator: simulator) == firstStep.plan)
        pruner.stepped = true
        let result = try PruningEvaluation(simulator: simulator, questions: 8, latencyQuestions: 1).evaluate(pruner, budget: 0.25, seed: 0)
        let expected = try simulator.entries(Array(0..<8), split: "test").map {
            model.fastVFLOPs(visualTokens: 16, textTokens: $0.task.prefix.count + $0.task.suffix.count, layer: 0, keptAfter: 4)
        }.reduce(0, +) / 8
        #expect(abs(result.flops - expected) < 1e-9 && result.meanTokens == 4)
        // An environment whose simulator prunes elsewhere is refused, naming the setting.
        do {
            _ = try TokenPruningEnvironment(simulator: simulator, configuration: configuration.environment)
            Issue.record("a before-the-LLM simulator served prune_after_layer 0")
        } catch {
            #expect("\(error)".contains("prune_after_layer"))
        }
        var bad = configuration.environment
        bad.pruneAfterLayer = -1
        #expect(throws: GymError.self) { try bad.validate() }
        // The setting round-trips through the policy files.
        let directory = try makeTemporaryDirectory()
        try TPRLPolicyFiles.save(artifacts, configuration: configuration, to: directory)
        #expect(try TPRLPolicyFiles.read(directory).configuration.environment.pruneAfterLayer == 0)
        // A damaged tprl.json is an error naming the file and what is wrong in it.
        let description = directory.appendingPathComponent("tprl.json")
        for (json, expected) in [(#"{"configuration": 3}"#, "not a TPRL policy's description: missing '"), ("{\"configuration\"", "malformed JSON: ")] {
            try Data(json.utf8).write(to: description)
            let error = #expect(throws: (any Error).self) { _ = try TPRLPolicyFiles.read(directory) }
            let text = "\(error!)"
            #expect(text.contains(description.path) && text.contains(expected) && !text.contains("DecodingError"), "\(text)")
        }
    }

    /// Behaviour cloning on VisPruner demonstrations and a few PPO updates run end to end on the
    /// fake model, write their curves to the run directory, and the policy serves every budget
    /// through `TPRLPruner`.
    /// The policy's own cost, counted by hand for a tiny network: 4 token rows, codes of width 2,
    /// a 3-wide query, T_max 3, width 8, two layers with an MLP of 32.
    @Test func keepLogitFLOPsCountsEveryProduct() throws {
        var g = SeededGenerator(seed: 0)
        let layout = TokenPruningLayout(tokenCount: 4, codeWidth: 2, queryWidth: 3, maxSteps: 3)
        let network = TPRLActorCritic(layout: layout, width: 8, layers: 2, heads: 2, generator: &g)
        // Token input 4·(2 + 32 position features)·8 = 1088; query, step one-hot: (3 + 4)·8 = 56;
        // per layer over 5 rows: 4·5·8² + 2·5²·8 + 2·5·8·32 = 1280 + 400 + 2560; keep head 4·8.
        #expect(network.keepLogitFLOPs(tokens: 4) == 1088 + 56 + 2 * (1280 + 400 + 2560) + 32)
        // Budget conditioning adds its input; one token row is cheaper than four.
        let conditioned = TPRLActorCritic(layout: layout, width: 8, layers: 2, heads: 2, conditionOnBudget: true, generator: &g)
        #expect(conditioned.keepLogitFLOPs(tokens: 4) == network.keepLogitFLOPs(tokens: 4) + 8)
        #expect(network.keepLogitFLOPs(tokens: 1) < network.keepLogitFLOPs(tokens: 4))
    }

    @Test func recipeRunsEndToEnd() throws {
        var configuration = TPRLConfiguration()
        configuration.autoencoderImages = 8
        configuration.autoencoderEpochs = 1
        configuration.demonstrations = 12
        configuration.behaviorCloningEpochs = 2
        configuration.ppoUpdates = 2
        configuration.ppoEnvironments = 2
        configuration.ppoStepsPerRollout = 3
        configuration.width = 16
        configuration.environment.datasetSize = 30
        configuration.inferenceSelectionQuestions = 12
        let run = RunDirectory(try makeTemporaryDirectory("tprl-run"))
        try run.create()
        let artifacts = try TPRLRecipe.run(model: model, source: FakeTasks(), configuration: configuration, runDirectory: run, showsProgress: false, log: { _ in })
        #expect(artifacts.ppo.count == 2)
        // The behaviour-cloning curve is in the run directory: a header and one row per epoch.
        let curve = try String(contentsOf: run.url.appendingPathComponent("behavior-cloning.csv"), encoding: .utf8)
        let lines = curve.split(separator: "\n")
        #expect(lines.count == 1 + artifacts.behaviorCloning.count && lines[0].hasPrefix("epoch,"))
        // The top-k inference was chosen on validation questions: the better mean accuracy wins.
        let choice = artifacts.inference
        #expect(choice.questions == 12 && Set(choice.validationAccuracy.keys) == ["stepped", "first-step"])
        #expect(choice.mode == (choice.validationAccuracy["first-step"]! > choice.validationAccuracy["stepped"]! ? "first-step" : "stepped"))
        let pruner = TPRLPruner(network: artifacts.network, configuration: configuration.environment)
        var g = SeededGenerator(seed: 0)
        let entry = try artifacts.simulator.entries([0], split: "test")[0]
        guard case let .tokens(kept) = try pruner.plan(entry, budget: 4, simulator: artifacts.simulator, generator: &g) else { return }
        #expect(kept.count == 4)
        let directory = try makeTemporaryDirectory()
        try TPRLPolicyFiles.save(artifacts, configuration: configuration, to: directory)
        let simulator = PruningSimulator(model: model, source: FakeTasks(), encoder: try TokenAutoencoder.load(from: directory.appendingPathComponent("autoencoder.safetensors")))
        let (loaded, files) = try TPRLPolicyFiles.load(from: directory, simulator: simulator)
        #expect(files.inference == choice)
        let row = try pruner.firstObservation(entry, simulator: artifacts.simulator, budget: 0.25)
        let x = Tensor(shape: [1, row.count], scalars: row)
        #expect(loaded.keepLogits(x).scalars == artifacts.network.keepLogits(x).scalars)
        // Evaluated through another encoder's simulator, a policy with its own simulator still
        // observes through its own autoencoder: the same plan.
        let other = PruningSimulator(model: model, source: FakeTasks(), encoder: IdentityTokenEncoder(width: model.tokenWidth))
        let own = TPRLPruner(network: loaded, configuration: configuration.environment, simulator: simulator)
        let otherEntry = try other.entries([0], split: "test")[0]
        #expect(try own.plan(otherEntry, budget: 4, simulator: other, generator: &g) == .tokens(kept))

        // Top-k inference walks the episode as the demonstrations did: 16 → 10 → 6 → 4 tokens
        // (k_t = N·(k/N)^{(t+1)/3} rounded: 10.08, 6.35; the last exactly k), each step ranking
        // what the last one kept.
        let env = try TokenPruningEnvironment(simulator: artifacts.simulator, configuration: configuration.environment)
        var walked = Array(0..<16)
        for (t, count) in [10, 6, 4].enumerated() {
            let observation = env.observation(entry, kept: walked, step: t, budget: 0.25)
            let row = env.observationSpace.flattened(observation)
            let z = artifacts.network.keepLogits(Tensor(shape: [1, row.count], scalars: row)).scalars
            walked = walked.sorted { z[$0] > z[$1] || (z[$0] == z[$1] && $0 < $1) }.prefix(count).sorted()
        }
        #expect(kept == walked)
        let firstStep = TPRLPruner(network: artifacts.network, configuration: configuration.environment)
        firstStep.stepped = false
        let z = artifacts.network.keepLogits(Tensor(shape: [1, row.count], scalars: row)).scalars
        let topFour = (0..<16).sorted { z[$0] > z[$1] || (z[$0] == z[$1] && $0 < $1) }.prefix(4).sorted()
        #expect(try firstStep.plan(entry, budget: 4, simulator: artifacts.simulator, generator: &g) == .tokens(Array(topFour)))

        // Threshold inference keeps what stepping the environment with the full pass keeps, step by
        // step, floor rule included — without calling the model. τ sits between the first step's
        // 8th and 9th highest logits, so about half the tokens pass it.
        let stepper = try TokenPruningEnvironment(simulator: artifacts.simulator, configuration: configuration.environment)
        var observation = try stepper.reset(seed: 0, options: ResetOptions(values: ["index": .number(Double(entry.index)), "budget": .number(0.25)])).observation
        let first = stepper.observationSpace.flattened(observation)
        let z0 = artifacts.network.keepLogits(Tensor(shape: [1, first.count], scalars: first)).scalars.sorted(by: >)
        let cut = (z0[7] + z0[8]) / 2
        let thresholdPruner = TPRLPruner(network: artifacts.network, configuration: configuration.environment)
        thresholdPruner.threshold = 1 / (1 + Foundation.exp(-cut))
        var rowsRead: [Int] = []
        while true {
            rowsRead.append(stepper.keptTokens.count)
            let flat = stepper.observationSpace.flattened(observation)
            let z = artifacts.network.keepLogits(Tensor(shape: [1, flat.count], scalars: flat)).scalars
            let step = try stepper.step(z.map { $0 >= cut })
            observation = step.observation
            if step.terminated || step.truncated { break }
        }
        let calls = model.answerCalls
        let thresholdPlan = try thresholdPruner.costedPlan(entry, budget: 4, simulator: artifacts.simulator, generator: &g)
        #expect(thresholdPlan.plan == .tokens(stepper.keptTokens))
        #expect(model.answerCalls == calls)
        #expect(rowsRead.count == 3 && rowsRead[1] < 16)
        #expect(thresholdPlan.selectionFLOPs == 16 * artifacts.simulator.encoder.flopsPerToken! + rowsRead.map { artifacts.network.keepLogitFLOPs(tokens: $0) }.reduce(0, +))

        // What choosing costs: the autoencoder on all 16 tokens, then one pass per step over the
        // rows it reads — 16, 10 and 6 slots through the steps, 16 for the first step alone.
        let encoding = 16 * artifacts.simulator.encoder.flopsPerToken!
        let net = artifacts.network
        #expect(try pruner.costedPlan(entry, budget: 4, simulator: artifacts.simulator, generator: &g)
                == CostedPlan(plan: .tokens(kept), selectionFLOPs: encoding + net.keepLogitFLOPs(tokens: 16) + net.keepLogitFLOPs(tokens: 10) + net.keepLogitFLOPs(tokens: 6)))
        #expect(try firstStep.costedPlan(entry, budget: 4, simulator: artifacts.simulator, generator: &g).selectionFLOPs == encoding + net.keepLogitFLOPs(tokens: 16))
        // The autoencoder's encoder: D·hidden + hidden·code per token.
        let autoencoder = try #require(artifacts.simulator.encoder as? TokenAutoencoder)
        #expect(autoencoder.flopsPerToken == Double(autoencoder.encoder1.inputSize * autoencoder.encoder1.outputSize + autoencoder.encoder2.inputSize * autoencoder.encoder2.outputSize))
        #expect(IdentityTokenEncoder(width: 4).flopsPerToken == 0)
    }
}
