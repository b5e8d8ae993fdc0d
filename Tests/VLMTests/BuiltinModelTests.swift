import Foundation
import TensorCore
import Testing
import TestSupport
@testable import VLM

/// The shipped built-in model (`models/shapes-llava`): it loads, is small, answers ShapesVQA test
/// questions, its answers depend on the visual tokens, and its recipe is the run that made it. The full figures (2000 test questions
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

    @Test("a vocabulary fits a model only with the model's vocab_size and image_token_index; the error names the vocabulary and the fix")
    func vocabularyFitsTheModel() throws {
        let configuration = try LlavaConfiguration.read(Self.directory.appendingPathComponent("config.json"))
        try WordTokenizer.shapesVQA.check(fits: configuration, source: "vocab.txt")
        let longer = WordTokenizer(tokens: WordTokenizer.specials + ShapesVQA.words + ["zebra", WordTokenizer.imageToken])
        let error = #expect(throws: VLMError.self) { try longer.check(fits: configuration, source: "other/vocab.txt") }
        #expect("\(error!)".contains("other/vocab.txt: \(longer.count) tokens, more than the model's vocab_size \(configuration.text.vocabularySize)"), "\(error!)")
        let moved = WordTokenizer(tokens: WordTokenizer.specials + [WordTokenizer.imageToken] + ShapesVQA.words)
        let image = #expect(throws: VLMError.self) { try moved.check(fits: configuration, source: "moved/vocab.txt") }
        #expect("\(image!)".contains("<image> is token 4 here and \(configuration.imageTokenIndex) in the model (image_token_index)"), "\(image!)")
    }

    @Test func answersTestQuestionsFromTheImage() throws {
        // The shipped weights reproduce the figure in their results.json (2000 questions): on 96
        // questions the binomial standard error is about 4.7 points, so allow 3 of them.
        let (full, pruned, overall) = try Self.answer(Self.directory, questions: 96)
        #expect(abs(full["overall"]! - overall) <= 0.14, "unpruned accuracy \(full), reported \(overall)")
        // Far above guessing the majority answer (≈ 36% over the five families) …
        #expect(full["overall"]! >= 0.8, "unpruned accuracy \(full)")
        // … and the answers depend on the visual tokens.
        #expect(full["overall"]! - pruned["overall"]! >= 0.2, "a random 11% of the tokens: \(pruned) vs \(full)")
    }

    @Test("the built-in model is what its recipe trains: `vlm train --out models/shapes-llava --seed 0` runs training/recipe.json, the two-hour stage and a fine-tune from its model, each the configuration its run recorded")
    func trainedByItsRecipe() throws {
        let training = Self.directory.appendingPathComponent("training")
        let (recipe, configurations) = try VLMTrainingRecipe.load(training.appendingPathComponent("recipe.json"))
        #expect(recipe.stages.count == 2 && configurations.allSatisfy { $0.seed == 0 })
        #expect(try Self.recordedConfiguration(training) == configurations[0], "run-config.json (its provenance ignored) is stage 1")
        let fineTune = try JSONDecoder().decode(VLMTrainingConfiguration.self,
                                                from: recordedRun(training.appendingPathComponent("fine-tune-run-config.json")).configuration)
        #expect(fineTune == configurations[1], "fine-tune-run-config.json is stage 2")
        // Stage 2 starts from stage 1's model, where stage 1's schedule ended.
        #expect(recipe.stages[0].model != nil && recipe.stages[1].initialModel == recipe.stages[0].model)
        #expect(configurations[1].scheduleStart == recipe.stages[0].samples)
        // The class-token objective keeps the before-LLM pruners' score on the objects; the
        // fine-tune answers from FastV's own subsets inside the LLM.
        #expect(configurations.allSatisfy { $0.classWeight > 0 })
        #expect(configurations[1].llmCutShare > 0 && configurations[1].attentionSubsetShare > 0)
        let rows = try String(contentsOf: training.appendingPathComponent("metrics.csv"), encoding: .utf8).split(separator: "\n")
        #expect(rows.last?.split(separator: ",")[1] == Substring(String(recipe.stages[1].samples)))
        #expect(rows.contains { $0.split(separator: ",")[1] == Substring(String(recipe.stages[0].samples)) })
    }

    /// The configuration a shipped run recorded (`training/run-config.json`), its provenance object
    /// (version, commit, command), which must be there, set aside.
    static func recordedConfiguration(_ training: URL) throws -> VLMTrainingConfiguration {
        try JSONDecoder().decode(VLMTrainingConfiguration.self, from: recordedRun(training.appendingPathComponent("run-config.json")).configuration)
    }

    /// The model in `directory` on its first `questions` test questions, with all visual tokens
    /// (`full`) and a random 11% of them (`pruned`), and the overall accuracy its results.json reports.
    static func answer(_ directory: URL, questions: Int) throws -> (full: [String: Double], pruned: [String: Double], reported: Double) {
        let model = try LlavaCheckpoint.load(directory)
        let dataset = ShapesVQA()
        let full = try VLMEvaluation.accuracy(model: model, dataset: dataset, tokenizer: .shapesVQA, split: .test, count: questions)
        let pruned = try VLMEvaluation.accuracy(model: model, dataset: dataset, tokenizer: .shapesVQA, split: .test, count: questions,
                                                keepFraction: 1.0 / 9, seed: 1)
        let results = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("results.json"))) as! [String: Any]
        return (full, pruned, (results["accuracy"] as! [String: Double])["overall"]!)
    }
}

/// `models/shapes-llava-2h`: the model `prunegym vlm train --config examples/vlm-two-hours.json`
/// trains in about 2 hours on 2 cores (the built-in model's architecture, one stage of 440k
/// samples); `shapes-llava-2h-class` with the class-token objective at weight 1;
/// `shapes-llava-440k` the built-in recipe's first stage (the built-in model through release
/// 0.7.16). Each run's configuration is its file's, and its weights answer from the image.
@Suite struct TwoHourModelTests {
    static let models = BuiltinModelTests.directory.deletingLastPathComponent()

    @Test("each two-hour model ships in the Hugging Face layout, was trained by its example file, and answers from the image",
          arguments: [("shapes-llava-2h", "examples/vlm-two-hours.json"), ("shapes-llava-2h-class", "examples/vlm-two-hours-class.json"),
                      ("shapes-llava-440k", "models/shapes-llava/training/two-hours.json")])
    func trainedByTheExample(model: String, example file: String) throws {
        let directory = Self.models.appendingPathComponent(model)
        for name in ["config.json", "model.safetensors", "vocab.txt", "results.json", "training/metrics.csv", "training/training-curve.svg"] {
            #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent(name).path), "\(model)/\(name) missing")
        }
        let root = Self.models.deletingLastPathComponent()
        let example = try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data(contentsOf: root.appendingPathComponent(file)))
        let run = try BuiltinModelTests.recordedConfiguration(directory.appendingPathComponent("training"))
        #expect(run == example, "\(model): the run's config.json (its provenance object ignored) is \(file)")
        let (full, pruned, overall) = try BuiltinModelTests.answer(directory, questions: 32)
        // 32 questions: a binomial standard error of about 4 points at 95%; allow 3 of them.
        #expect(abs(full["overall"]! - overall) <= 0.12, "\(model): unpruned accuracy \(full), reported \(overall)")
        #expect(full["overall"]! - pruned["overall"]! >= 0.2, "\(model): a random 11% of the tokens: \(pruned) vs \(full)")
    }
}

/// The training recipe's configuration file.
@Suite struct VLMTrainingConfigurationTests {
    @Test("an omitted key reads as today's recipe; the shipped stages name the probes they trained without")
    func relationWeightDefaults() throws {
        #expect(VLMTrainingConfiguration().relationWeight == 1)
        let partial = try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data(#"{"samples": 300000, "learning_rate": 0.001}"#.utf8))
        var expected = VLMTrainingConfiguration()
        (expected.samples, expected.learningRate) = (300000, 0.001)
        #expect(partial == expected)
        #expect(partial.relationWeight == 1 && partial.askedRelationWeight == 1 && partial.objectSubsetShare == 0.5 && partial.scheduleStart == 0)
        let written = try JSONEncoder().encode(VLMTrainingConfiguration())
        let text = String(decoding: written, as: UTF8.self)
        #expect(text.contains("\"relation_weight\":1"))
        #expect(try JSONDecoder().decode(VLMTrainingConfiguration.self, from: written) == VLMTrainingConfiguration())
        // A key it does not know is refused by name: a typo must not train the default silently.
        let typo = #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data(#"{"samples": 300000, "learnin_rate": 0.001}"#.utf8))
        }
        #expect(String(describing: typo).contains("unknown key 'learnin_rate'"))
        // Stages 1–4 of the shipped recipe trained before the probes and object-centred subsets
        // existed: their files say so, so the recipe replays as it ran.
        let training = TwoHourModelTests.models.appendingPathComponent("shapes-llava-nine-stage/training")
        let (_, stages) = try VLMTrainingRecipe.load(training.appendingPathComponent("recipe.json"))
        #expect(stages.map(\.relationWeight) == [0, 0, 1, 1, 1, 1, 1, 1, 1])
        #expect(stages.map(\.askedRelationWeight) == [0, 0, 0, 0, 1, 1, 1, 1, 1])
        #expect(stages.map(\.objectSubsetShare) == [0, 0, 0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    }

    @Test("schedule_start restarts the warm-up and cosine there; 0 keeps one schedule over the run")
    func warmRestart() throws {
        var c = VLMTrainingConfiguration()
        (c.samples, c.batchSize, c.warmupSteps, c.learningRate, c.minimumLearningRate) = (3200, 32, 10, 1e-3, 1e-5)
        c.textLayers = 1; c.visionLayers = 1
        let single = VLMTrainer(configuration: c)
        c.scheduleStart = 1600
        let restarted = VLMTrainer(configuration: c)
        // One schedule: warm-up over 10 steps, peak at 10, minimum at the last step.
        #expect(single.learningRate(atStep: 0) == 0)
        #expect(abs(single.learningRate(atStep: 10) - 1e-3) < 1e-9)
        #expect(abs(single.learningRate(atStep: 100) - 1e-5) < 1e-9)
        // Restarted at sample 1600 (step 50): two cycles of the same shape.
        #expect(restarted.learningRate(atStep: 50) == 0)
        #expect(abs(restarted.learningRate(atStep: 60) - 1e-3) < 1e-9)
        #expect(abs(restarted.learningRate(atStep: 100) - 1e-5) < 1e-9)
        #expect(abs(restarted.learningRate(atStep: 49) - 1e-5) < 1e-5 * 0.2)
        #expect(abs(restarted.learningRate(atStep: 10) - 1e-3) < 1e-9)
    }

    @Test("family_weights: absent keeps the plain samples; weights shift the family mix; bad weights are refused by name")
    func familyWeights() throws {
        var c = VLMTrainingConfiguration()
        c.textLayers = 1; c.visionLayers = 1
        let plain = VLMTrainer(configuration: c)
        let dataset = ShapesVQA(imageSize: 64, patchSize: 4)
        #expect((0..<20).allSatisfy { plain.trainingSample($0).question == dataset.sample($0, split: .train).question })

        c = try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data(#"{"family_weights": {"count": 4, "spatial": 0}, "text_layers": 1, "vision_layers": 1}"#.utf8))
        #expect(c.familyWeights == ["count": 4, "spatial": 0])
        let weighted = VLMTrainer(configuration: c)
        let families = (0..<800).map { weighted.trainingSample($0).family }
        let share = Double(families.filter { $0 == .count }.count) / 800
        // Expected 4/7 of the samples are count questions, none spatial, 1/7 each of the others.
        #expect(abs(share - 4.0 / 7) < 0.06, "count share \(share)")
        #expect(!families.contains(.spatial))
        // Reproducible: the same slot gives the same sample.
        #expect(weighted.trainingSample(123).question == VLMTrainer(configuration: c).trainingSample(123).question)

        for bad in [#"{"family_weights": {"colour": 2}}"#, #"{"family_weights": {"count": -1}}"#,
                    #"{"family_weights": {"attribute": 0, "existence": 0, "count": 0, "spatial": 0, "compare": 0}}"#] {
            #expect(throws: DecodingError.self) { try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data(bad.utf8)) }
        }
    }

    @Test("a setting that cannot train a model is refused by its key: sizes, rates, weights, heads, patches, the schedule")
    func badSettings() throws {
        for (json, expected) in [
            (#"{"samples": -5}"#, "samples is -5; it must be positive"),
            (#"{"batch_size": 0}"#, "batch_size is 0; it must be positive"),
            (#"{"evaluation_interval": 0}"#, "evaluation_interval is 0"),
            (#"{"warmup_steps": -1}"#, "warmup_steps is -1; it must be 0 or more"),
            (#"{"learning_rate": 0}"#, "learning_rate is 0.0; it must be a positive number"),
            (#"{"weight_decay": -0.1}"#, "weight_decay is -0.1"),
            (#"{"dense_weight": -1}"#, "dense_weight is -1.0"),
            (#"{"minimum_learning_rate": 0.01}"#, "minimum_learning_rate 0.01 exceeds learning_rate 0.0005"),
            (#"{"image_size": 66}"#, "patch_size 4 does not divide image_size 66"),
            (#"{"vision_heads": 3}"#, "vision_heads 3 does not divide vision_hidden 64"),
            (#"{"text_layers": 0}"#, "text_layers is 0"),
            (#"{"text_key_value_heads": 3}"#, "text_key_value_heads 3 does not divide text_heads 4"),
            (#"{"text_hidden": 132}"#, "text_hidden / text_heads is 33; rotary embeddings need an even head width"),
        ] {
            do {
                _ = try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data(json.utf8))
                Issue.record("accepted \(json)")
            } catch let DecodingError.dataCorrupted(context) {
                #expect(context.debugDescription.contains(expected), "\(json): \(context.debugDescription)")
            }
        }
        // A stage file may leave samples to its recipe: schedule_start is checked against them by validate().
        var stage = try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data(#"{"schedule_start": 480000}"#.utf8))
        #expect(throws: VLMError.invalidInput(reason: "training configuration: schedule_start 480000 is not below samples 120000; the schedule would have no samples to run")) {
            try stage.validate()
        }
        stage.samples = 600_000
        try stage.validate()
        try VLMTrainingConfiguration().validate()
        // Built in code, a bad value is caught by validate() too.
        var built = VLMTrainingConfiguration()
        built.textHeads = 5
        #expect(throws: VLMError.self) { try built.validate() }
        built = VLMTrainingConfiguration()
        built.prunedShare = 2
        #expect(throws: VLMError.invalidInput(reason: "training configuration: pruned_share is 2.0; a share must lie in [0, 1]")) { try built.validate() }
    }

    @Test("pruned_share and referent_subset_share: which tokens a training answer sees; configurations without them read as before")
    func trainingSubsets() throws {
        let old = try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data(#"{"samples": 300000}"#.utf8))
        #expect(old.prunedShare == 0.5 && old.referentSubsetShare == 0)
        let dataset = ShapesVQA(imageSize: 64, patchSize: 4)
        let samples = (0..<60).map { dataset.sample($0, split: .train) }
        let tokens = dataset.gridSize * dataset.gridSize
        func trainer(_ json: String) throws -> VLMTrainer {
            var c = try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data(json.utf8))
            c.textLayers = 1; c.visionLayers = 1
            return VLMTrainer(configuration: c)
        }
        // pruned_share 0: every token, always.
        let none = try trainer(#"{"pruned_share": 0}"#)
        #expect(samples.allSatisfy { none.trainingSubset($0, tokens: tokens) == Array(0..<tokens) })
        // Without referent subsets every pruned subset keeps every object's anchor.
        let anchored = try trainer(#"{"pruned_share": 1, "object_subset_share": 0.5}"#)
        for sample in samples {
            let keep = anchored.trainingSubset(sample, tokens: tokens)
            #expect(Set(sample.anchors).isSubset(of: keep) && keep == keep.sorted())
        }
        // Referent subsets keep the question's objects' anchors; other objects' anchors may go.
        let referent = try trainer(#"{"pruned_share": 1, "referent_subset_share": 1}"#)
        var lostAnchor = false
        for sample in samples {
            let keep = Set(referent.trainingSubset(sample, tokens: tokens))
            let asked = Set(sample.referents[0] + sample.referents[1])
            #expect(asked.allSatisfy { keep.contains(sample.anchors[$0]) })
            if sample.anchors.indices.contains(where: { !asked.contains($0) && !keep.contains(sample.anchors[$0]) }) { lostAnchor = true }
        }
        #expect(lostAnchor)
        // The same configuration draws the same subsets.
        let again = try trainer(#"{"pruned_share": 1, "referent_subset_share": 1}"#)
        let other = try trainer(#"{"pruned_share": 1, "referent_subset_share": 1}"#)
        #expect(samples.map { again.trainingSubset($0, tokens: tokens) } == samples.map { other.trainingSubset($0, tokens: tokens) })
        // A share outside [0, 1] is refused by name.
        for (bad, key) in [(#"{"pruned_share": 1.5}"#, "pruned_share"), (#"{"referent_subset_share": -0.1}"#, "referent_subset_share")] {
            let error = #expect(throws: DecodingError.self) { try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data(bad.utf8)) }
            #expect(String(describing: error).contains(key))
        }
    }

    @Test("llm_cut_share: a training answer cut inside the LLM equals the inference path's (answerLogits(prunedAfter:)); bad cuts are refused")
    func cutInsideTheLanguageModel() throws {
        let old = try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data(#"{"samples": 300000}"#.utf8))
        #expect(old.llmCutShare == 0 && old.llmCutLayer == 0)
        let (trainer, requests, tokens) = try Self.stepAndRequests(#"{"pruned_share": 1, "llm_cut_share": 0.5, "referent_subset_share": 0.5}"#, batch: 8)
        let (keeps, cuts) = trainer.lastDraws
        #expect(cuts.contains { $0 != nil } && cuts.contains { $0 == nil }, "both kinds in one batch")
        try Self.expectInferenceLogits(trainer, requests: requests, kept: requests.indices.map { cuts[$0] ?? keeps[$0] })
        for (b, cut) in cuts.enumerated() { if let cut { #expect(keeps[b] == Array(0..<tokens) && cut.count < tokens) } }

        for (bad, key) in [(#"{"llm_cut_share": 2}"#, "llm_cut_share"), (#"{"llm_cut_share": 0.5, "llm_cut_layer": 3}"#, "llm_cut_layer"), (#"{"llm_cut_layer": -1}"#, "llm_cut_layer")] {
            let error = #expect(throws: DecodingError.self) { try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data(bad.utf8)) }
            #expect(String(describing: error).contains(key))
        }
        // Without cuts a one-layer language model is fine.
        #expect(try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data(#"{"text_layers": 1}"#.utf8)).textLayers == 1)
    }

    /// One training step, at learning rate 0 so the weights stay as they were, of a 2-layer
    /// trainer with the settings `json` and `batch` samples; and its batch as inference requests,
    /// each keeping the tokens the step kept before any cut inside the LLM.
    static func stepAndRequests(_ json: String, batch: Int) throws -> (trainer: VLMTrainer, requests: [AnswerRequest], tokens: Int) {
        var c = try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data(json.utf8))
        (c.textLayers, c.visionLayers, c.visionOnlySamples, c.batchSize, c.learningRate, c.warmupSteps) = (2, 1, 0, batch, 0, 1)
        let trainer = VLMTrainer(configuration: c)
        _ = try trainer.trainStep()
        let keeps = trainer.lastDraws.keeps
        let samples = (0..<batch).map { trainer.trainingSample($0) }
        let features = trainer.model.imageFeatures(Tensor(shape: [samples.count, 3, 64, 64], scalars: samples.flatMap(\.pixels)))
        let tokens = features.shape[1]
        let requests = samples.indices.map { b in
            AnswerRequest(features: features.sliced(alongAxis: 0, b..<(b + 1)).reshaped(to: [tokens, -1]), keep: keeps[b],
                          prefix: trainer.prompt.prefix(question: samples[b].question), suffix: trainer.prompt.suffix(question: samples[b].question))
        }
        return (trainer, requests, tokens)
    }

    /// The step's answer logits are the inference path's with `kept` read after LLM layer 0.
    static func expectInferenceLogits(_ trainer: VLMTrainer, requests: [AnswerRequest], kept: [[Int]]) throws {
        let expected = try withInferenceMode { try trainer.model.answerLogits(requests, prunedAfter: 0, kept: kept) }
        #expect(expected.shape[0] == requests.count && expected.scalars.count == trainer.lastAnswerLogits.count)
        let difference = zip(expected.scalars, trainer.lastAnswerLogits).map { abs($0 - $1) }.max() ?? .infinity
        #expect(difference < 1e-4, "training and inference logits differ by \(difference)")
    }

    @Test("attention_subset_share: the cut subsets are FastV's choice from the model as it stands, k/tokens in [0.05, 0.5]; absent, nothing changes")
    func attentionChosenSubsets() throws {
        #expect(try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data("{}".utf8)).attentionSubsetShare == 0)
        let (trainer, requests, tokens) = try Self.stepAndRequests(#"{"pruned_share": 1, "llm_cut_share": 1, "attention_subset_share": 1}"#, batch: 6)
        let (keeps, cuts) = trainer.lastDraws
        let attention = try withInferenceMode { try trainer.model.lastTokenAttention(requests, layer: 0) }
        var counts: Set<Int> = []
        for b in requests.indices {
            let cut = try #require(cuts[b], "sample \(b) is cut inside the LLM")
            #expect(keeps[b] == Array(0..<tokens))
            #expect(cut.count >= Int((0.05 * Double(tokens)).rounded()) && cut.count <= Int((0.5 * Double(tokens)).rounded()))
            #expect(cut == largestIndices(attention[b], count: cut.count), "sample \(b): FastV's top \(cut.count)")
            counts.insert(cut.count)
        }
        #expect(counts.count > 1, "the budget is drawn per sample")
        try Self.expectInferenceLogits(trainer, requests: requests, kept: cuts.map { $0! })
        // FastV's rule: the largest weights, ties to the earlier slot, ascending.
        #expect(largestIndices([0.1, 0.4, 0.2, 0.4, 0.0], count: 2) == [1, 3])
        #expect(largestIndices([0.3, 0.3, 0.3], count: 2) == [0, 1])
        #expect(largestIndices([0.3, 0.1], count: 5) == [0, 1])
        let error = #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data(#"{"attention_subset_share": 1.5}"#.utf8))
        }
        #expect(String(describing: error).contains("attention_subset_share"))
    }

    @Test("class_weight: the pooled class token is scored on the image's colour-shape-size combinations; without it the draws and parameters are as before")
    func classTokenObjective() throws {
        var c = VLMTrainingConfiguration()
        (c.textLayers, c.visionLayers, c.visionOnlySamples, c.batchSize) = (1, 1, 64, 8)
        let plain = VLMTrainer(configuration: c)
        #expect(try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data("{}".utf8)).classWeight == 0)
        c.classWeight = 1
        let trainer = VLMTrainer(configuration: c)
        #expect(plain.model.parameterDigest == trainer.model.parameterDigest, "the head is drawn after every other weight")
        #expect(!plain.module.namedParameters.contains { $0.name.hasPrefix("class_head.") })
        #expect(trainer.module.namedParameters.map(\.name).contains("class_head.linear.bias"))
        // Logits from the bias alone: +20 on the sample's combinations, −20 elsewhere, cost ≈ 0;
        // one combination wrong costs 20 / 48.
        let head = try #require(trainer.module.classHead)
        let sample = trainer.trainingSample(0)
        let present = Set(sample.objects.map { (ShapesVQA.colors[$0.color], ShapesVQA.shapes[$0.shape], ShapesVQA.sizes[$0.size]) }.map { "\($0) \($1) \($2)" })
        let names = ShapesVQA.colors.flatMap { color in ShapesVQA.shapes.flatMap { shape in ShapesVQA.sizes.map { "\(color) \(shape) \($0)" } } }
        #expect(names.count == 48 && !present.isEmpty)
        head.linear.weight.value = Tensor.zeros(head.linear.weight.value.shape)
        head.linear.bias!.value = Tensor(shape: [48], scalars: names.map { present.contains($0) ? 20 : -20 })
        let pooled = Tensor.zeros([1, c.visionHidden])
        #expect(head.loss(pooled, samples: [sample]).scalar < 1e-6)
        head.linear.bias!.value = Tensor(shape: [48], scalars: names.enumerated().map { i, name in (present.contains(name) != (i == 0)) ? 20 : -20 })
        #expect(abs(head.loss(pooled, samples: [sample]).scalar - 20.0 / 48) < 1e-4)
        _ = try trainer.trainStep()
        #expect(trainer.lastClassLoss.isFinite && plain.lastClassLoss.isNaN)
        let error = #expect(throws: DecodingError.self) { try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data(#"{"class_weight": -1}"#.utf8)) }
        #expect(String(describing: error).contains("class_weight is -1.0"))
    }

    @Test("initialize(from:): a trained model's weights, training from schedule_start; a model of other sizes is refused by tensor")
    func initializeFromAModel() throws {
        var c = VLMTrainingConfiguration()
        (c.textLayers, c.visionLayers, c.scheduleStart, c.samples) = (1, 1, 640, 1280)
        var other = c
        other.seed = 7
        let source = VLMTrainer(configuration: other).model
        let trainer = VLMTrainer(configuration: c)
        try trainer.initialize(from: source, source: "trained")
        #expect(trainer.step == 640 / c.batchSize)
        for ((name, mine), (_, theirs)) in zip(trainer.model.namedParameters, source.namedParameters) {
            #expect(mine.value.scalars == theirs.value.scalars, "\(name)")
        }
        other.textHidden = 64
        let fresh = VLMTrainer(configuration: c)
        let before = fresh.model.namedParameters.map(\.parameter.value.scalars)
        let error = #expect(throws: VLMError.self) { try fresh.initialize(from: VLMTrainer(configuration: other).model, source: "small") }
        #expect(String(describing: error).contains("small") && String(describing: error).contains("shape"))
        // Refused: nothing copied, the step unchanged.
        #expect(fresh.model.namedParameters.map(\.parameter.value.scalars) == before && fresh.step == 0)
    }

    @Test("the asked-relation probe's targets: the relation word and the answer of spatial questions only")
    func askedRelationTargets() throws {
        let dataset = ShapesVQA(imageSize: 64, patchSize: 4)
        let samples = (0..<200).map { dataset.sample($0, split: .train) }
        let spatial = samples.filter { $0.family == .spatial }
        let other = samples.filter { $0.family != .spatial }
        #expect(spatial.count >= 10)
        var generator = SeededGenerator(seed: 1)
        let routing = RoutingObjective(hidden: 8, grid: dataset.gridSize, generator: &generator)
        #expect(routing.askedLoss(Tensor.zeros([other.count, 8]), samples: other) == nil)
        // Zero features and a zero probe: each cross-entropy is ln(classes), ln 4 and ln 2.
        routing.asked.weight.value = Tensor.zeros(routing.asked.weight.value.shape)
        routing.asked.bias!.value = Tensor.zeros(routing.asked.bias!.value.shape)
        let loss = try #require(routing.askedLoss(Tensor.zeros([samples.count, 8]), samples: samples))
        #expect(abs(loss.scalar - Float((log(4.0) + log(2.0)) / 2)) < 1e-5)
        // Every spatial question names exactly one of the four relations and is answered yes or no.
        for sample in spatial {
            #expect(RoutingObjective.relationWords.filter { sample.question.contains(" \($0) ") }.count == 1, "\(sample.question)")
            #expect(["yes", "no"].contains(sample.answer), "\(sample.question)")
        }
        #expect(Set(spatial.compactMap { s in RoutingObjective.relationWords.firstIndex { s.question.contains(" \($0) ") } }).count == 4)
    }
}
