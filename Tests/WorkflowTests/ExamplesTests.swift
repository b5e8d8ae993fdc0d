import Foundation
import TestSupport
import Testing
import TPRL
import VLM

/// The examples are what the README's tutorials run; these tests keep them from rotting. (Their
/// Swift sources are compiled into this target through symbolic links and tested by the other
/// suites; here: the manifests and the sweep configuration.)
@Suite("Examples")
struct ExamplesTests {
    static let root = Fixtures.directory.deletingLastPathComponent().deletingLastPathComponent()

    /// Every `.product(name: X, package: "PruneGym")` an example uses is a library the root manifest declares.
    @Test("the example packages depend only on products the root package declares", arguments: ["custom-agent", "my-environment"])
    func manifests(example: String) throws {
        let manifest = try String(contentsOf: Self.root.appendingPathComponent("examples/\(example)/Package.swift"), encoding: .utf8)
        let rootManifest = try String(contentsOf: Self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        #expect(manifest.contains(#".package(name: "PruneGym", path: "../..")"#))
        #expect(rootManifest.contains(#"name: "PruneGym""#))
        let products = try Regex(#"\.product\(name: "([A-Za-z]+)", package: "PruneGym"\)"#)
        let used = manifest.matches(of: products).map { String($0.output[1].substring!) }
        #expect(!used.isEmpty)
        for product in used {
            #expect(rootManifest.contains(#".library(name: "\#(product)""#), "\(example) uses the product \(product), which Package.swift does not declare")
        }
    }

    @Test("the saliency and grounding recipes in examples/ are valid TPRL configurations", arguments: ["saliency", "grounding"])
    func demonstratorRecipe(_ demonstrator: String) throws {
        let data = try Data(contentsOf: Self.root.appendingPathComponent("examples/tprl-\(demonstrator).json"))
        let configuration = try JSONDecoder().decode(TPRLConfiguration.self, from: data)
        try configuration.validate()
        #expect(configuration.demonstrator == demonstrator && TPRLConfiguration.demonstrators.contains(demonstrator))
    }

    @Test("examples/tprl.json is the shipped before-LLM recipe (TPRLConfiguration.beforeLLM: the paper's state and demonstrations, group-relative PPO rewarding −KL at 11%); examples/tprl-paper.json is the paper's, the defaults")
    func beforeLLMRecipe() throws {
        let decoder = JSONDecoder()
        let shipped = try decoder.decode(TPRLConfiguration.self, from: Data(contentsOf: Self.root.appendingPathComponent("examples/tprl.json")))
        try shipped.validate()
        #expect(shipped == TPRLConfiguration.beforeLLM)
        #expect(shipped.encoder == "autoencoder" && shipped.demonstrator == "vispruner" && shipped.environment.pruneAfterLayer == nil)
        #expect(shipped.ppoGroupSize == 8 && shipped.environment.maxSteps == 1 && shipped.environment.taskScore == .negativeKL)
        #expect(shipped.environment.budgetChoices == [0.111] && shipped.budgetConditioned)
        let paper = try decoder.decode(TPRLConfiguration.self, from: Data(contentsOf: Self.root.appendingPathComponent("examples/tprl-paper.json")))
        try paper.validate()
        #expect(paper == TPRLConfiguration())
        #expect(paper.ppoGroupSize == 0 && paper.environment.maxSteps == 3 && paper.environment.taskScore == .accuracy)
        // The inside-LLM recipe is this one moved after LLM layer 0, observing and cloning what is
        // there, and trained at the three budgets.
        var inside = shipped
        (inside.encoder, inside.attentionPrior, inside.demonstrator, inside.environment.pruneAfterLayer) = ("identity", true, "llm-attention", 0)
        inside.environment.budgetChoices = [0.333, 0.222, 0.111]
        #expect(inside == TPRLConfiguration.insideLLM)
    }

    /// The shipped policies were trained by the recipes `tprl train` and the quickstart run.
    @Test("models/tprl and models/tprl-llm record the recipes beforeLLM and insideLLM")
    func shippedPolicyRecipes() throws {
        #expect(try TPRLPolicyFiles.read(Self.root.appendingPathComponent("models/tprl")).configuration == TPRLConfiguration.beforeLLM)
        #expect(try TPRLPolicyFiles.read(Self.root.appendingPathComponent("models/tprl-llm")).configuration == TPRLConfiguration.insideLLM)
    }

    @Test("examples/tprl-llm.json is the recipe of the policy that prunes inside the language model (TPRLConfiguration.insideLLM): group-relative PPO rewarding −KL")
    func insideLLMRecipe() throws {
        let data = try Data(contentsOf: Self.root.appendingPathComponent("examples/tprl-llm.json"))
        let configuration = try JSONDecoder().decode(TPRLConfiguration.self, from: data)
        try configuration.validate()
        #expect(configuration == TPRLConfiguration.insideLLM)
        #expect(configuration.environment.pruneAfterLayer == 0)
        #expect(configuration.ppoGroupSize == 8 && configuration.ppoTemperature == 0.5 && configuration.environment.taskScore == .negativeKL)
    }

    @Test("examples/tprl-llm-ppo.json is that recipe with the plain PPO phase of releases through 0.7.16")
    func plainPPORecipe() throws {
        let data = try Data(contentsOf: Self.root.appendingPathComponent("examples/tprl-llm-ppo.json"))
        let configuration = try JSONDecoder().decode(TPRLConfiguration.self, from: data)
        try configuration.validate()
        #expect(configuration == TPRLConfiguration.insideLLMPlainPPO)
        var grouped = configuration
        (grouped.ppoGroupSize, grouped.ppoTemperature, grouped.ppoEnvironments, grouped.ppoUpdates, grouped.ppoLearningRate) = (8, 0.5, 32, 100, 3e-4)
        grouped.environment.taskScore = .negativeKL
        #expect(grouped == TPRLConfiguration.insideLLM)
    }

    @Test("examples/vlm-two-hours.json is the nine-stage recipe's last stage from the first sample, at peak 1e-3 over 440k samples; the built-in model's first stage adds class_weight 0.3")
    func twoHourTrainingProbe() throws {
        let probe = try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data(contentsOf: Self.root.appendingPathComponent("examples/vlm-two-hours.json")))
        let (_, stages) = try VLMTrainingRecipe.load(Self.root.appendingPathComponent("models/shapes-llava-nine-stage/training/recipe.json"))
        var last = try #require(stages.last)
        (last.samples, last.scheduleStart, last.learningRate, last.minimumLearningRate) = (440_000, 0, 1e-3, 3e-5)
        #expect(probe == last)
        // examples/vlm-two-hours-class.json is the same with the class-token objective.
        let withClass = try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data(contentsOf: Self.root.appendingPathComponent("examples/vlm-two-hours-class.json")))
        last.classWeight = 1
        #expect(withClass == last)
        // The built-in model's first stage is the same with class_weight 0.3 (its second, a fine-tune: llmCutFineTune).
        let (_, builtin) = try VLMTrainingRecipe.load(Self.root.appendingPathComponent("models/shapes-llava/training/recipe.json"))
        last.classWeight = 0.3
        #expect(builtin.count == 2 && builtin.first == last)
    }

    @Test("examples/vlm-fine-tune-llm-cut.json and -fastv-cut.json continue the built-in recipe's two-hour stage from where it ended, with more answers cut inside the LLM (FastV's subsets in the second, the recipe's stage 2)",
          arguments: [("vlm-fine-tune-llm-cut.json", Float(0)), ("vlm-fine-tune-fastv-cut.json", 1)])
    func llmCutFineTune(file: String, attentionSubsetShare: Float) throws {
        let fineTune = try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data(contentsOf: Self.root.appendingPathComponent("examples/\(file)")))
        try fineTune.validate()
        let (recipe, builtin) = try VLMTrainingRecipe.load(Self.root.appendingPathComponent("models/shapes-llava/training/recipe.json"))
        var expected = try #require(builtin.first)
        #expect(recipe.stages.first?.samples == expected.samples)
        (expected.scheduleStart, expected.samples) = (expected.samples, expected.samples + 48_000)
        (expected.learningRate, expected.minimumLearningRate, expected.warmupSteps) = (1e-4, 1e-5, 50)
        (expected.prunedShare, expected.llmCutShare, expected.attentionSubsetShare) = (0.8, 0.8, attentionSubsetShare)
        #expect(fineTune == expected)
        if attentionSubsetShare > 0 { #expect(fineTune == builtin.last, "the built-in recipe's second stage") }
    }

    @Test("the models trained from the two-hour stage ship their policies, each recording its model's weights: the fine-tune without FastV's subsets (its run from the built-in recipe's stage 1) and that stage's own model",
          arguments: [("shapes-llava-llm-cut", ["tprl", "tprl-llm", "tprl-llm-grpo"]), ("shapes-llava-440k", ["tprl", "tprl-llm"])])
    func llmCutModel(name: String, policies: [String]) throws {
        let directory = Self.root.appendingPathComponent("models/\(name)")
        let digest = try LlavaCheckpoint.load(directory).parameterDigest
        #expect(digest != (try LlavaCheckpoint.load(Self.root.appendingPathComponent("models/shapes-llava")).parameterDigest))
        for policy in policies {
            #expect(try TPRLPolicyFiles.read(directory.appendingPathComponent("policies/\(policy)")).modelDigest == digest, "\(policy)")
        }
        guard name == "shapes-llava-llm-cut" else { return }
        let example = try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data(contentsOf: Self.root.appendingPathComponent("examples/vlm-fine-tune-llm-cut.json")))
        let (configuration, provenance) = try recordedRun(directory.appendingPathComponent("training/run-config.json"))
        #expect((provenance["command"] as? [String])?.contains("--init") == true, "the run started from the two-hour model")
        #expect(try JSONDecoder().decode(VLMTrainingConfiguration.self, from: configuration) == example)
    }

    @Test("the example sweep reproduces the paper's α/β against alternatives and passes validation")
    func rewardAblationConfig() throws {
        let configuration = try SweepConfiguration.load(Self.root.appendingPathComponent("examples/reward-ablation.json"))
        let settings = Set(configuration.cells().map(\.setting))
        #expect(settings.contains("tprl-a1-b0.5-accuracy-token_ratio-T3"), "the paper's setting (α = 1, β = 0.5, accuracy, token ratio, T_max = 3)")
        #expect(settings.count > 1)
        #expect(configuration.seeds.count >= 2)
    }
}
