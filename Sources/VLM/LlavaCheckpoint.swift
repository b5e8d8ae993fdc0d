import Foundation
import NN
import TensorCore

/// Reads and writes LLaVA checkpoints in the Hugging Face layout: `config.json` plus
/// `model.safetensors` or shards listed in `model.safetensors.index.json`; F32, F16 and BF16.
///
/// Key layouts accepted (all found in published checkpoints), mapped to one canonical naming:
/// - transformers 5: `model.vision_tower.…`, `model.multi_modal_projector.…`,
///   `model.language_model.…`, `lm_head.…`;
/// - transformers 4.x: `vision_tower.vision_model.…`, `multi_modal_projector.…`,
///   `language_model.model.…`, `language_model.lm_head.…`;
/// - and the mixtures of the two (`vision_tower.…` without `vision_model`, as transformers 5.23
///   writes). Missing, unexpected or mis-shaped tensors throw an error naming the key and file.
///
/// `save` writes the layout transformers 5.23's `save_pretrained` itself writes (`vision_tower.…`,
/// `multi_modal_projector.…`, `language_model.model.…`, `language_model.lm_head.weight`), which
/// `LlavaForConditionalGeneration.from_pretrained` loads (`tools/check_hf_load.py`).
public enum LlavaCheckpoint {
    /// The canonical (PruneGym parameter) name of a checkpoint key, or nil if it is not LLaVA's.
    public static func canonicalName(_ key: String) -> String? {
        var k = key
        if k.hasPrefix("model.") { k.removeFirst("model.".count) }
        if k.hasPrefix("vision_tower.vision_model.") {
            k = "vision_tower." + k.dropFirst("vision_tower.vision_model.".count)
        }
        if k.hasPrefix("language_model.lm_head.") { return "lm_head." + k.dropFirst("language_model.lm_head.".count) }
        if k.hasPrefix("language_model.model.") { k = "language_model." + k.dropFirst("language_model.model.".count) }
        if k.hasPrefix("lm_head.") { return k }
        guard k.hasPrefix("vision_tower.") || k.hasPrefix("multi_modal_projector.") || k.hasPrefix("language_model.") else { return nil }
        return "model." + k
    }

    /// The key `save` writes for a canonical name.
    public static func savedName(_ canonical: String) -> String {
        if canonical.hasPrefix("lm_head.") { return "language_model." + canonical }
        var k = String(canonical.dropFirst("model.".count))
        if k.hasPrefix("language_model.") { k = "language_model.model." + k.dropFirst("language_model.".count) }
        return k
    }

    /// Loads `directory` (config.json + weights) into a new model.
    public static func load(_ directory: URL) throws -> LlavaModel {
        let configURL = directory.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configURL.path) else {
            throw VLMError.config(path: configURL.path, reason: "missing; a model directory holds config.json and model.safetensors (or its shards) in the Hugging Face layout, as `prunegym vlm train --out DIR` writes it")
        }
        let configuration = try LlavaConfiguration.read(configURL)
        var generator = SeededGenerator(seed: 0)
        let model = LlavaModel(configuration, generator: &generator)
        try loadWeights(into: model, from: directory)
        return model
    }

    /// The weight files of a directory: the shards of the index, or `model.safetensors`.
    static func weightFiles(_ directory: URL) throws -> [URL] {
        let index = directory.appendingPathComponent("model.safetensors.index.json")
        if FileManager.default.fileExists(atPath: index.path) {
            struct Index: Decodable { var weight_map: [String: String] }
            let data: Data, parsed: Index
            do { data = try Data(contentsOf: index) } catch {
                throw VLMError.config(path: index.path, reason: "cannot read the shard index (\(FileError.systemReason(error)))")
            }
            do { parsed = try JSONDecoder().decode(Index.self, from: data) } catch {
                throw VLMError.config(path: index.path, reason: "malformed shard index: \(JSONSyntax.describe(error, of: data))")
            }
            return Set(parsed.weight_map.values).sorted().map { directory.appendingPathComponent($0) }
        }
        let single = directory.appendingPathComponent("model.safetensors")
        guard FileManager.default.fileExists(atPath: single.path) else {
            throw VLMError.config(path: directory.path, reason: "no model.safetensors or model.safetensors.index.json")
        }
        return [single]
    }

    /// Loads every parameter of `model` strictly from the directory's weight files.
    public static func loadWeights(into model: LlavaModel, from directory: URL) throws {
        let parameters = Dictionary(model.namedParameters.map { ($0.name, $0.parameter) }, uniquingKeysWith: { a, _ in a })
        var loaded = Set<String>()
        var lastFile = directory.path
        for url in try weightFiles(directory) {
            lastFile = url.path
            let file = try SafeTensorsFile(contentsOf: url)
            for key in file.tensorNames {
                guard let name = canonicalName(key), let parameter = parameters[name] else {
                    throw VLMError.unexpectedTensor(key: key, file: url.path)
                }
                let entry = try file.entry(key)
                guard entry.shape == parameter.value.shape else {
                    throw VLMError.shapeMismatch(key: key, file: url.path, expected: parameter.value.shape, actual: entry.shape)
                }
                parameter.value = try file.tensor(key)
                loaded.insert(name)
            }
        }
        for name in model.namedParameters.map(\.name) where !loaded.contains(name) {
            throw VLMError.missingTensor(key: savedName(name), file: lastFile)
        }
    }

    /// Writes `config.json` and `model.safetensors` (F32, or F16/BF16) atomically.
    public static func save(_ model: LlavaModel, to directory: URL, as dtype: SafeTensorsDType = .float32) throws {
        try AtomicFile.prepareDirectory(directory)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(model.configuration), to: directory.appendingPathComponent("config.json"))
        var writer = SafeTensorsWriter(metadata: ["format": "pt"])
        for (name, parameter) in model.namedParameters { writer.add(savedName(name), parameter.value, as: dtype) }
        try writer.write(to: directory.appendingPathComponent("model.safetensors"))
    }
}
