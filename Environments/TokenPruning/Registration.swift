import Foundation
import Gym
import VLM

/// The built-in simulator: the shipped ShapesVQA model (`models/shapes-llava`) and, when trained,
/// the TPRL autoencoder (`models/tprl/autoencoder.safetensors`; otherwise the identity encoder).
public enum BuiltinSimulator {
    /// Where the shipped models live: `$PRUNEGYM_MODELS`, else `models` under the current directory.
    public static var modelsDirectory: URL {
        URL(fileURLWithPath: ProcessInfo.processInfo.environment["PRUNEGYM_MODELS"] ?? "models")
    }

    /// Loads the shipped model; throws with what to do when it is missing.
    public static func model(directory: URL? = nil) throws -> LlavaModel {
        let directory = directory ?? modelsDirectory.appendingPathComponent("shapes-llava")
        guard FileManager.default.fileExists(atPath: directory.appendingPathComponent("config.json").path) else {
            throw VLMError.invalidInput(reason: "no model at \(directory.path) (config.json missing); run from the repository root, set PRUNEGYM_MODELS, or train one with `prunegym vlm train --out \(directory.path)`")
        }
        return try LlavaCheckpoint.load(directory)
    }

    /// A simulator over ShapesVQA with the shipped model and autoencoder, caching up to `capacity`
    /// task entries (about 140 KB each on the built-in model: its visual tokens).
    public static func make(modelDirectory: URL? = nil, autoencoder: URL? = nil, capacity: Int = 4096) throws -> PruningSimulator {
        let model = try model(directory: modelDirectory)
        let tokenizerURL = (modelDirectory ?? modelsDirectory.appendingPathComponent("shapes-llava")).appendingPathComponent("vocab.txt")
        let hasVocabulary = FileManager.default.fileExists(atPath: tokenizerURL.path)
        let tokenizer = hasVocabulary ? try WordTokenizer.read(tokenizerURL) : .shapesVQA
        try tokenizer.check(fits: model.configuration, source: hasVocabulary ? tokenizerURL.path : "ShapesVQA's built-in vocabulary (no \(tokenizerURL.path))")
        let dataset = ShapesVQA(imageSize: model.configuration.vision.imageSize, patchSize: model.configuration.vision.patchSize)
        let autoencoderURL = autoencoder ?? modelsDirectory.appendingPathComponent("tprl/autoencoder.safetensors")
        let encoder: any TokenEncoder = FileManager.default.fileExists(atPath: autoencoderURL.path)
            ? try TokenAutoencoder.load(from: autoencoderURL) : IdentityTokenEncoder(width: model.tokenWidth)
        return PruningSimulator(model: model, source: ShapesVQATasks(dataset: dataset, tokenizer: tokenizer), encoder: encoder, capacity: capacity)
    }
}

extension TokenPruningEnvironment {
    /// `TokenPruning-v0`.
    public static let spec = EnvironmentSpec(
        id: "TokenPruning-v0", maxEpisodeSteps: nil,
        summary: "TPRL: prune a VLM's visual tokens over T_max steps; MultiBinary(N) keep mask, Dict observation")

    /// Registers `TokenPruning-v0`. Options are the `TokenPruningConfiguration` keys (alpha, beta,
    /// task_score, efficiency, terminal_only, max_steps, minimum_tokens, target_budget, split,
    /// dataset_size, prune_after_layer) plus `seed`; the simulator comes from `simulator` (the
    /// built-in one by default), made once and shared by every environment the registry makes
    /// (with `prune_after_layer` K, one simulator pruning after layer K, shared alike).
    public static func register(in registry: inout EnvironmentRegistry, simulator: (@Sendable () throws -> PruningSimulator)? = nil) throws {
        let shared = SharedSimulator(make: simulator ?? { try BuiltinSimulator.make() })
        try registry.register(spec) { options in
            var configuration = TokenPruningConfiguration()
            var seed: UInt64 = 0
            for (key, value) in options {
                func number() throws -> Double {
                    guard let n = value.number, n.isFinite else { throw GymError.invalidOption(environment: "TokenPruning-v0", reason: "\(key) must be a number, got \(value)") }
                    return n
                }
                func text() throws -> String {
                    guard case let .text(t) = value else { throw GymError.invalidOption(environment: "TokenPruning-v0", reason: "\(key) must be text, got \(value)") }
                    return t
                }
                switch key {
                case "alpha": configuration.alpha = try number()
                case "beta": configuration.beta = try number()
                case "max_steps": configuration.maxSteps = Int(try number())
                case "minimum_tokens": configuration.minimumTokens = Int(try number())
                case "target_budget": configuration.targetBudget = try number()
                case "dataset_size": configuration.datasetSize = Int(try number())
                case "prune_after_layer": configuration.pruneAfterLayer = Int(try number())
                case "terminal_only": configuration.terminalOnly = try number() != 0
                case "seed": seed = UInt64(try number())
                case "split": configuration.split = try text()
                case "task_score":
                    guard let term = TaskScore(rawValue: try text()) else {
                        throw GymError.invalidOption(environment: "TokenPruning-v0", reason: "task_score must be one of \(TaskScore.allCases.map(\.rawValue)), got \(value)")
                    }
                    configuration.taskScore = term
                case "efficiency":
                    guard let term = EfficiencyTerm(rawValue: try text()) else {
                        throw GymError.invalidOption(environment: "TokenPruning-v0", reason: "efficiency must be one of \(EfficiencyTerm.allCases.map(\.rawValue)), got \(value)")
                    }
                    configuration.efficiency = term
                default:
                    throw GymError.invalidOption(environment: "TokenPruning-v0", reason: "unknown option '\(key)'")
                }
            }
            return try TokenPruningEnvironment(simulator: try shared.get(pruningAfter: configuration.pruneAfterLayer), configuration: configuration, seed: seed)
        }
    }
}

/// Makes the simulator once, on first use.
final class SharedSimulator: @unchecked Sendable {
    let make: @Sendable () throws -> PruningSimulator
    var value: PruningSimulator?
    let lock = NSLock()
    init(make: @escaping @Sendable () throws -> PruningSimulator) { self.make = make }
    func get() throws -> PruningSimulator {
        lock.lock(); defer { lock.unlock() }
        if let value { return value }
        let made = try make()
        value = made
        return made
    }
    /// The shared simulator, or for `layer` K its sibling that prunes after LLM layer K.
    func get(pruningAfter layer: Int?) throws -> PruningSimulator {
        try get().sibling(pruningAfter: layer)
    }
}
