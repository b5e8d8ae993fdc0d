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

    @Test("examples/tprl-llm.json is the recipe of the policy that prunes inside the language model (TPRLConfiguration.insideLLM)")
    func insideLLMRecipe() throws {
        let data = try Data(contentsOf: Self.root.appendingPathComponent("examples/tprl-llm.json"))
        let configuration = try JSONDecoder().decode(TPRLConfiguration.self, from: data)
        try configuration.validate()
        #expect(configuration == TPRLConfiguration.insideLLM)
        #expect(configuration.environment.pruneAfterLayer == 0)
    }

    @Test("examples/tprl-llm-grpo.json is the shipped inside-LLM recipe with a group-relative PPO phase")
    func groupRelativeRecipe() throws {
        let data = try Data(contentsOf: Self.root.appendingPathComponent("examples/tprl-llm-grpo.json"))
        let configuration = try JSONDecoder().decode(TPRLConfiguration.self, from: data)
        try configuration.validate()
        #expect(configuration.ppoGroupSize == 8 && configuration.ppoTemperature == 0.5 && configuration.environment.taskScore == .negativeKL)
        var shipped = configuration
        (shipped.ppoGroupSize, shipped.ppoTemperature, shipped.ppoEnvironments, shipped.ppoUpdates, shipped.ppoLearningRate) = (0, 1, 8, 30, 1e-4)
        shipped.environment.taskScore = .accuracy
        #expect(shipped == TPRLConfiguration.insideLLM)
    }

    @Test("examples/vlm-two-hours.json is the nine-stage recipe's last stage from the first sample, at peak 1e-3 over 440k samples; the built-in model's recipe adds class_weight 0.3")
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
        // The built-in model's one stage is the same with class_weight 0.3.
        let (_, builtin) = try VLMTrainingRecipe.load(Self.root.appendingPathComponent("models/shapes-llava/training/recipe.json"))
        last.classWeight = 0.3
        #expect(builtin == [last])
    }

    @Test("examples/vlm-fine-tune-llm-cut.json continues the built-in model's stage from where it ended, with more answers cut inside the LLM")
    func llmCutFineTune() throws {
        let fineTune = try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data(contentsOf: Self.root.appendingPathComponent("examples/vlm-fine-tune-llm-cut.json")))
        try fineTune.validate()
        let (recipe, builtin) = try VLMTrainingRecipe.load(Self.root.appendingPathComponent("models/shapes-llava/training/recipe.json"))
        var expected = try #require(builtin.last)
        #expect(recipe.stages.last?.samples == expected.samples)
        (expected.scheduleStart, expected.samples) = (expected.samples, expected.samples + 48_000)
        (expected.learningRate, expected.minimumLearningRate, expected.warmupSteps) = (1e-4, 1e-5, 50)
        (expected.prunedShare, expected.llmCutShare) = (0.8, 0.8)
        #expect(fineTune == expected)
    }

    @Test("models/shapes-llava-llm-cut is that fine-tune's run from the built-in model, and its policies record its weights")
    func llmCutModel() throws {
        let directory = Self.root.appendingPathComponent("models/shapes-llava-llm-cut")
        let example = try JSONDecoder().decode(VLMTrainingConfiguration.self, from: Data(contentsOf: Self.root.appendingPathComponent("examples/vlm-fine-tune-llm-cut.json")))
        let (configuration, provenance) = try recordedRun(directory.appendingPathComponent("training/run-config.json"))
        #expect((provenance["command"] as? [String])?.contains("--init") == true, "the run started from the built-in model")
        #expect(try JSONDecoder().decode(VLMTrainingConfiguration.self, from: configuration) == example)
        let digest = try LlavaCheckpoint.load(directory).parameterDigest
        #expect(digest != (try LlavaCheckpoint.load(Self.root.appendingPathComponent("models/shapes-llava")).parameterDigest))
        for policy in ["tprl", "tprl-llm", "tprl-llm-grpo"] {
            #expect(try TPRLPolicyFiles.read(directory.appendingPathComponent("policies/\(policy)")).modelDigest == digest, "\(policy)")
        }
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
