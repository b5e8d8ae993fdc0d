import Foundation
import NN
import TensorCore
import TestSupport
import Testing
import VLM

@Suite("LLaVA configs and checkpoints")
struct CheckpointTests {
    func write(_ json: String, in directory: URL) throws -> URL {
        let url = directory.appendingPathComponent("config.json")
        try Data(json.utf8).write(to: url)
        return url
    }

    @Test("a transformers 4.x config (defaults omitted, rope_theta in text_config, torch_dtype) fills transformers' defaults")
    func config4x() throws {
        let url = try write("""
            {"model_type": "llava", "torch_dtype": "float16", "image_token_index": 32000,
             "text_config": {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "rope_theta": 500000.0, "vocab_size": 100},
             "vision_config": {"hidden_size": 32, "num_attention_heads": 2, "image_size": 32, "patch_size": 8}}
            """, in: try makeTemporaryDirectory())
        let c = try LlavaConfiguration.read(url)
        #expect(c.text.ropeTheta == 500_000 && c.text.resolvedKeyValueHeadCount == 4 && c.text.resolvedHeadDimension == 16)
        #expect(c.text.intermediateSize == 11008 && c.text.rmsNormEpsilon == 1e-6 && c.text.layerCount == 32)
        #expect(c.vision.layerCount == 12 && c.vision.hiddenActivation == "quick_gelu" && c.vision.intermediateSize == 3072)
        #expect(c.visionFeatureLayer == -2 && c.visionFeatureStrategy == .default && c.projectorBias && c.projectorActivation == "gelu")
        #expect(c.imageTokenCount == 16)
    }

    @Test("a transformers 5 config (rope_parameters, dtype) is read; LLaVA defaults apply without vision_config")
    func config5() throws {
        let url = try write("""
            {"model_type": "llava", "dtype": "bfloat16", "image_token_id": 7,
             "text_config": {"model_type": "llama", "hidden_size": 48, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 12,
                             "rope_parameters": {"rope_theta": 1000.0, "rope_type": "default"}}}
            """, in: try makeTemporaryDirectory())
        let c = try LlavaConfiguration.read(url)
        #expect(c.text.ropeTheta == 1000 && c.text.resolvedKeyValueHeadCount == 2 && c.imageTokenIndex == 7)
        #expect(c.vision == .llavaDefault && c.imageTokenCount == 576)
    }

    @Test("an unknown model_type, a corrupt config and a bad field are rejected, naming the file")
    func configErrors() throws {
        let directory = try makeTemporaryDirectory()
        for (json, expected) in [
            (#"{"model_type": "qwen2_vl"}"#, "unknown model_type 'qwen2_vl'"),
            (#"{"model_type": "llava", "text_config": {"model_type": "mistral"}}"#, "unsupported text model_type 'mistral'"),
            ("{not json", "malformed JSON: "),
            (#"{"model_type": "llava", "vision_feature_layer": "last"}"#, "'vision_feature_layer'"),
            (#"{"text_config": {}}"#, "missing 'model_type'"),
            (#"{"model_type": "llava", "vision_config": {"hidden_size": 64, "num_attention_heads": 3}}"#,
             ": vision_config.num_attention_heads 3 does not divide hidden_size 64"),
            (#"{"model_type": "llava", "vision_config": {"patch_size": 0}}"#, ": vision_config.patch_size is 0; it must be positive"),
            (#"{"model_type": "llava", "text_config": {"model_type": "llama", "num_key_value_heads": 5}}"#,
             ": text_config.num_key_value_heads 5 does not divide num_attention_heads 32"),
            (#"{"model_type": "llava", "text_config": {"model_type": "llama", "num_hidden_layers": 0}}"#, ": text_config.num_hidden_layers is 0"),
            (#"{"model_type": "llava", "text_config": {"model_type": "llama", "head_dim": 7}}"#,
             ": text_config.head_dim is 7; rotary embeddings need an even head width"),
            (#"{"model_type": "llava", "text_config": {"model_type": "llama", "rope_theta": -1}}"#, ": text_config.rope_theta is -1.0"),
        ] {
            let url = try write(json, in: directory)
            do {
                _ = try LlavaConfiguration.read(url)
                Issue.record("accepted: \(json)")
            } catch {
                #expect("\(error)".hasPrefix(url.path) && "\(error)".contains(expected), "\(error)")
            }
        }
        let empty = directory.appendingPathComponent("not-a-model")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let missing = #expect(throws: (any Error).self) { _ = try LlavaCheckpoint.load(empty) }
        #expect(missing.map { "\($0)" }?.hasPrefix(empty.appendingPathComponent("config.json").path + ": missing; a model directory holds config.json and model.safetensors") ?? false,
                "\(String(describing: missing))")
    }

    @Test("key layouts of transformers 4.x and 5 map to the same parameters")
    func keyLayouts() {
        let pairs = [
            ("vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight", "model.vision_tower.encoder.layers.0.mlp.fc1.weight"),
            ("model.vision_tower.encoder.layers.0.mlp.fc1.weight", "model.vision_tower.encoder.layers.0.mlp.fc1.weight"),
            ("vision_tower.encoder.layers.0.mlp.fc1.weight", "model.vision_tower.encoder.layers.0.mlp.fc1.weight"),
            ("language_model.model.layers.1.self_attn.q_proj.weight", "model.language_model.layers.1.self_attn.q_proj.weight"),
            ("model.language_model.layers.1.self_attn.q_proj.weight", "model.language_model.layers.1.self_attn.q_proj.weight"),
            ("language_model.lm_head.weight", "lm_head.weight"), ("lm_head.weight", "lm_head.weight"),
            ("multi_modal_projector.linear_1.bias", "model.multi_modal_projector.linear_1.bias"),
        ]
        for (key, canonical) in pairs { #expect(LlavaCheckpoint.canonicalName(key) == canonical, "\(key)") }
        #expect(LlavaCheckpoint.canonicalName("text_model.embeddings.weight") == nil)
    }

    @Test("save writes transformers' layout; F16/BF16 round trips; sharded checkpoints load")
    func saveAndShards() throws {
        let model = try LlavaCheckpoint.load(Fixtures.url("hf-llava-tiny"))
        let pixels = try SafeTensorsFile(contentsOf: Fixtures.url("hf-llava-tiny/golden.safetensors")).tensor("pixel_values")
        let reference = model.imageFeatures(pixels)
        for dtype in [SafeTensorsDType.float32, .float16, .bfloat16] {
            let directory = try makeTemporaryDirectory()
            try LlavaCheckpoint.save(model, to: directory, as: dtype)
            let names = try SafeTensorsFile(contentsOf: directory.appendingPathComponent("model.safetensors")).tensorNames
            #expect(names.contains("language_model.model.embed_tokens.weight") && names.contains("vision_tower.pre_layrnorm.weight"))
            let reloaded = try LlavaCheckpoint.load(directory)
            expectClose(reloaded.imageFeatures(pixels), reference, absolute: dtype == .float32 ? 0 : 0.05, relative: dtype == .float32 ? 0 : 0.05)
        }
        // Split the weights over two shards with an index, as transformers does for large models.
        let directory = try makeTemporaryDirectory()
        try LlavaCheckpoint.save(model, to: directory)
        let file = try SafeTensorsFile(contentsOf: directory.appendingPathComponent("model.safetensors"))
        var first = SafeTensorsWriter(), second = SafeTensorsWriter()
        var map: [String: String] = [:]
        for (index, name) in file.tensorNames.enumerated() {
            if index % 2 == 0 { first.add(name, try file.tensor(name)); map[name] = "model-00001-of-00002.safetensors" }
            else { second.add(name, try file.tensor(name)); map[name] = "model-00002-of-00002.safetensors" }
        }
        try FileManager.default.removeItem(at: directory.appendingPathComponent("model.safetensors"))
        try first.write(to: directory.appendingPathComponent("model-00001-of-00002.safetensors"))
        try second.write(to: directory.appendingPathComponent("model-00002-of-00002.safetensors"))
        try JSONEncoder().encode(["weight_map": map]).write(to: directory.appendingPathComponent("model.safetensors.index.json"))
        expectClose(try LlavaCheckpoint.load(directory).imageFeatures(pixels), reference, absolute: 0, relative: 0)
    }

    @Test("a missing tensor, an unexpected one and a wrong shape are errors naming the key and the file")
    func weightErrors() throws {
        let model = try LlavaCheckpoint.load(Fixtures.url("hf-llava-tiny"))
        let source = try makeTemporaryDirectory()
        try LlavaCheckpoint.save(model, to: source)
        let file = try SafeTensorsFile(contentsOf: source.appendingPathComponent("model.safetensors"))
        func variant(_ edit: (inout [String: Tensor]) -> Void) throws -> URL {
            var tensors = try file.allTensors()
            edit(&tensors)
            let directory = try makeTemporaryDirectory()
            try FileManager.default.copyItem(at: source.appendingPathComponent("config.json"), to: directory.appendingPathComponent("config.json"))
            var writer = SafeTensorsWriter()
            for (name, tensor) in tensors.sorted(by: { $0.key < $1.key }) { writer.add(name, tensor) }
            try writer.write(to: directory.appendingPathComponent("model.safetensors"))
            return directory
        }
        let missing = try variant { $0.removeValue(forKey: "multi_modal_projector.linear_2.bias") }
        #expect(throws: VLMError.missingTensor(key: "multi_modal_projector.linear_2.bias", file: missing.appendingPathComponent("model.safetensors").path)) {
            try LlavaCheckpoint.load(missing)
        }
        let extra = try variant { $0["language_model.model.layers.9.mlp.up_proj.weight"] = Tensor.zeros([2, 2]) }
        #expect(throws: VLMError.unexpectedTensor(key: "language_model.model.layers.9.mlp.up_proj.weight", file: extra.appendingPathComponent("model.safetensors").path)) {
            try LlavaCheckpoint.load(extra)
        }
        let wrong = try variant { $0["language_model.lm_head.weight"] = Tensor.zeros([120, 47]) }
        #expect(throws: VLMError.shapeMismatch(key: "language_model.lm_head.weight", file: wrong.appendingPathComponent("model.safetensors").path, expected: [120, 48], actual: [120, 47])) {
            try LlavaCheckpoint.load(wrong)
        }
    }
}
