import Foundation
import TensorCore

/// Errors in a model directory: config, weights, inputs. Each names the file or tensor.
public enum VLMError: Error, CustomStringConvertible, Equatable {
    case config(path: String, reason: String)
    case missingTensor(key: String, file: String)
    case unexpectedTensor(key: String, file: String)
    case shapeMismatch(key: String, file: String, expected: [Int], actual: [Int])
    case invalidInput(reason: String)

    public var description: String {
        switch self {
        case let .config(path, reason): return "\(path): \(reason)"
        case let .missingTensor(key, file): return "\(file): missing tensor '\(key)'"
        case let .unexpectedTensor(key, file): return "\(file): unexpected tensor '\(key)' (not part of this architecture)"
        case let .shapeMismatch(key, file, expected, actual): return "\(file): tensor '\(key)' has shape \(actual), the config implies \(expected)"
        case let .invalidInput(reason): return "invalid input: \(reason)"
        }
    }

    /// Reads and decodes the JSON file `url` as `type`. A failure is a `.config` error naming the
    /// file: `unreadable` (and the system's reason) when it cannot be read, otherwise `prefix`
    /// followed by what the decoder found wrong and where (`JSONSyntax.describe`).
    static func decodeJSON<T: Decodable>(_ type: T.Type, from url: URL, unreadable: String, prefix: String = "") throws -> T {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw VLMError.config(path: url.path, reason: "\(unreadable) (\(FileError.systemReason(error)))")
        }
        do { return try JSONDecoder().decode(type, from: data) } catch let error as DecodingError {
            throw VLMError.config(path: url.path, reason: prefix + JSONSyntax.describe(error, of: data))
        }
    }
}

/// The first way a configuration's sizes cannot build a transformer, in the words of the file
/// that set them (each size under its JSON key); nil when they can. Shared by `config.json`
/// (`LlavaConfiguration`) and the training configuration (`VLMTrainingConfiguration`), so that a
/// bad size is an error naming its key rather than a crash or a silently different model.
enum SizeCheck {
    /// The first size that is not positive.
    static func positive(_ sizes: KeyValuePairs<String, Int>) -> String? {
        sizes.first { $0.value <= 0 }.map { "\($0.key) is \($0.value); it must be positive" }
    }

    /// Unless `part` divides `whole`, what is wrong (`why` says what needs it).
    static func divides(_ part: (String, Int), _ whole: (String, Int), _ why: String) -> String? {
        whole.1 % part.1 == 0 ? nil : "\(part.0) \(part.1) does not divide \(whole.0) \(whole.1) (\(why))"
    }

    /// The first value that is negative.
    static func nonNegative(_ values: KeyValuePairs<String, Int>) -> String? {
        values.first { $0.value < 0 }.map { "\($0.key) is \($0.value); it must be 0 or more" }
    }

    /// The first value that is not a finite number of 0 or more.
    static func nonNegative(_ values: KeyValuePairs<String, Float>) -> String? {
        values.first { !($0.value.isFinite && $0.value >= 0) }.map { "\($0.key) is \($0.value); it must be a finite number, 0 or more" }
    }

    /// Unless `value` is finite and positive, what is wrong.
    static func positiveReal(_ key: String, _ value: Float) -> String? {
        value.isFinite && value > 0 ? nil : "\(key) is \(value); it must be a positive number"
    }

    /// The checks of an attention stack: every size positive, the heads dividing the width unless
    /// the head width is set apart (`headWidth`), the key/value heads dividing the heads, and for
    /// rotary embeddings, which turn pairs of a head's channels, an even head width.
    static func attention(_ sizes: KeyValuePairs<String, Int>, hidden: (String, Int), heads: (String, Int),
                          keyValueHeads: (String, Int)? = nil, headWidth: (String, Int)? = nil, rotary: Bool = false) -> String? {
        if let problem = positive(sizes) { return problem }
        if headWidth == nil, let problem = divides(heads, hidden, "each head takes an equal share of the width") { return problem }
        if let kv = keyValueHeads, let problem = divides(kv, heads, "each key/value head serves an equal group of heads") { return problem }
        let width = headWidth ?? ("\(hidden.0) / \(heads.0)", hidden.1 / heads.1)
        if rotary && width.1 % 2 != 0 { return "\(width.0) is \(width.1); rotary embeddings need an even head width" }
        return nil
    }
}

/// The CLIP vision tower's configuration (transformers' `CLIPVisionConfig`; omitted fields take
/// its defaults).
public struct CLIPVisionConfiguration: Codable, Sendable, Equatable {
    /// `hidden_size` in config.json (default 768).
    public var hiddenSize = 768
    /// `intermediate_size` in config.json (default 3072).
    public var intermediateSize = 3072
    /// `num_hidden_layers` in config.json (default 12).
    public var layerCount = 12
    /// `num_attention_heads` in config.json (default 12).
    public var headCount = 12
    /// `num_channels` in config.json (default 3).
    public var channelCount = 3
    /// `image_size` in config.json (default 224).
    public var imageSize = 224
    /// `patch_size` in config.json (default 32).
    public var patchSize = 32
    /// `hidden_act` in config.json (default "quick_gelu").
    public var hiddenActivation = "quick_gelu"
    /// `layer_norm_eps` in config.json (default 1e-5).
    public var layerNormEpsilon: Float = 1e-5
    /// `projection_dim` in config.json (default 512).
    public var projectionDimension = 512

    /// transformers' CLIPVisionConfig defaults.
    public init() {}

    /// LLaVA-1.5's vision tower (CLIP ViT-L/14 at 336 px), what `LlavaConfig` uses when
    /// `vision_config` is absent.
    public static var llavaDefault: CLIPVisionConfiguration {
        var c = CLIPVisionConfiguration()
        c.hiddenSize = 1024
        c.intermediateSize = 4096
        c.layerCount = 24
        c.headCount = 16
        c.imageSize = 336
        c.patchSize = 14
        c.projectionDimension = 768
        return c
    }

    /// The first size that cannot build the tower, named by its key in `vision_config`; nil when
    /// they all can.
    var sizeProblem: String? {
        SizeCheck.attention(["hidden_size": hiddenSize, "intermediate_size": intermediateSize, "num_hidden_layers": layerCount,
                             "num_attention_heads": headCount, "num_channels": channelCount, "image_size": imageSize, "patch_size": patchSize],
                            hidden: ("hidden_size", hiddenSize), heads: ("num_attention_heads", headCount))
    }

    /// Patches per side and in total (without the class token).
    public var gridSize: Int { imageSize / patchSize }
    /// Patches per image (the grid squared).
    public var patchCount: Int { gridSize * gridSize }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case hiddenSize = "hidden_size", intermediateSize = "intermediate_size", layerCount = "num_hidden_layers"
        case headCount = "num_attention_heads", channelCount = "num_channels", imageSize = "image_size", patchSize = "patch_size"
        case hiddenActivation = "hidden_act", layerNormEpsilon = "layer_norm_eps", projectionDimension = "projection_dim"
        case modelType = "model_type"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = CLIPVisionConfiguration()
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? d.hiddenSize
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? d.intermediateSize
        layerCount = try c.decodeIfPresent(Int.self, forKey: .layerCount) ?? d.layerCount
        headCount = try c.decodeIfPresent(Int.self, forKey: .headCount) ?? d.headCount
        channelCount = try c.decodeIfPresent(Int.self, forKey: .channelCount) ?? d.channelCount
        imageSize = try c.decodeIfPresent(Int.self, forKey: .imageSize) ?? d.imageSize
        patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? d.patchSize
        hiddenActivation = try c.decodeIfPresent(String.self, forKey: .hiddenActivation) ?? d.hiddenActivation
        layerNormEpsilon = try c.decodeIfPresent(Float.self, forKey: .layerNormEpsilon) ?? d.layerNormEpsilon
        projectionDimension = try c.decodeIfPresent(Int.self, forKey: .projectionDimension) ?? d.projectionDimension
        if let type = try c.decodeIfPresent(String.self, forKey: .modelType), type != "clip_vision_model" {
            throw DecodingError.dataCorruptedError(forKey: .modelType, in: c, debugDescription: "unsupported vision model_type '\(type)' (supported: clip_vision_model)")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("clip_vision_model", forKey: .modelType)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(layerCount, forKey: .layerCount)
        try c.encode(headCount, forKey: .headCount)
        try c.encode(channelCount, forKey: .channelCount)
        try c.encode(imageSize, forKey: .imageSize)
        try c.encode(patchSize, forKey: .patchSize)
        try c.encode(hiddenActivation, forKey: .hiddenActivation)
        try c.encode(layerNormEpsilon, forKey: .layerNormEpsilon)
        try c.encode(projectionDimension, forKey: .projectionDimension)
    }
}

/// The LLaMA language model's configuration (transformers' `LlamaConfig`), read in both styles
/// found in the wild: transformers 4.x (`rope_theta` at the top level, defaults omitted) and
/// transformers 5 (`rope_parameters: {rope_theta, rope_type}`).
public struct LlamaConfiguration: Codable, Sendable, Equatable {
    public var vocabularySize = 32000
    /// `hidden_size` in config.json (default 4096).
    public var hiddenSize = 4096
    /// `intermediate_size` in config.json (default 11008).
    public var intermediateSize = 11008
    /// `num_hidden_layers` in config.json (default 32).
    public var layerCount = 32
    /// `num_attention_heads` in config.json (default 32).
    public var headCount = 32
    /// `num_key_value_heads` in config.json (default nil).
    public var keyValueHeadCount: Int? = nil
    /// `head_dim` in config.json (default nil).
    public var headDimension: Int? = nil
    /// `hidden_act` in config.json (default "silu").
    public var hiddenActivation = "silu"
    /// `max_position_embeddings` in config.json (default 2048).
    public var maxPositionEmbeddings = 2048
    /// `rms_norm_eps` in config.json (default 1e-6).
    public var rmsNormEpsilon: Float = 1e-6
    /// `rope_theta` in config.json (default 10000).
    public var ropeTheta: Float = 10000
    /// `attention_bias` in config.json (default false).
    public var attentionBias = false
    /// `mlp_bias` in config.json (default false).
    public var mlpBias = false
    /// `tie_word_embeddings` in config.json (default false).
    public var tieWordEmbeddings = false
    /// `bos_token_id` in config.json (default 1).
    public var bosTokenID: Int? = 1
    /// `eos_token_id` in config.json (default 2).
    public var eosTokenID: Int? = 2
    /// `pad_token_id` in config.json (default nil).
    public var padTokenID: Int? = nil

    /// transformers' LlamaConfig defaults.
    public init() {}

    /// The first size that cannot build the decoder, named by its key in `text_config`; nil when
    /// they all can.
    var sizeProblem: String? {
        if let width = headDimension, width <= 0 { return "head_dim is \(width); it must be positive" }
        return SizeCheck.attention(["vocab_size": vocabularySize, "hidden_size": hiddenSize, "intermediate_size": intermediateSize,
                                    "num_hidden_layers": layerCount, "num_attention_heads": headCount,
                                    "num_key_value_heads": resolvedKeyValueHeadCount, "max_position_embeddings": maxPositionEmbeddings],
                                   hidden: ("hidden_size", hiddenSize), heads: ("num_attention_heads", headCount),
                                   keyValueHeads: ("num_key_value_heads", resolvedKeyValueHeadCount),
                                   headWidth: headDimension.map { ("head_dim", $0) }, rotary: true)
            ?? SizeCheck.positiveReal("rope_theta", ropeTheta)
    }

    /// Key/value heads (query heads when unset).
    public var resolvedKeyValueHeadCount: Int { keyValueHeadCount ?? headCount }
    /// Head width (hidden size / heads when unset).
    public var resolvedHeadDimension: Int { headDimension ?? hiddenSize / headCount }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case vocabularySize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case layerCount = "num_hidden_layers", headCount = "num_attention_heads", keyValueHeadCount = "num_key_value_heads"
        case headDimension = "head_dim", hiddenActivation = "hidden_act", maxPositionEmbeddings = "max_position_embeddings"
        case rmsNormEpsilon = "rms_norm_eps", ropeTheta = "rope_theta", ropeParameters = "rope_parameters", ropeScaling = "rope_scaling"
        case attentionBias = "attention_bias", mlpBias = "mlp_bias", tieWordEmbeddings = "tie_word_embeddings"
        case bosTokenID = "bos_token_id", eosTokenID = "eos_token_id", padTokenID = "pad_token_id", modelType = "model_type"
    }

    struct RopeParameters: Codable {
        var rope_theta: Float?
        var rope_type: String?
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = LlamaConfiguration()
        if let type = try c.decodeIfPresent(String.self, forKey: .modelType), type != "llama" {
            throw DecodingError.dataCorruptedError(forKey: .modelType, in: c, debugDescription: "unsupported text model_type '\(type)' (supported: llama)")
        }
        vocabularySize = try c.decodeIfPresent(Int.self, forKey: .vocabularySize) ?? d.vocabularySize
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? d.hiddenSize
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? d.intermediateSize
        layerCount = try c.decodeIfPresent(Int.self, forKey: .layerCount) ?? d.layerCount
        headCount = try c.decodeIfPresent(Int.self, forKey: .headCount) ?? d.headCount
        keyValueHeadCount = try c.decodeIfPresent(Int.self, forKey: .keyValueHeadCount)
        headDimension = try c.decodeIfPresent(Int.self, forKey: .headDimension)
        hiddenActivation = try c.decodeIfPresent(String.self, forKey: .hiddenActivation) ?? d.hiddenActivation
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? d.maxPositionEmbeddings
        rmsNormEpsilon = try c.decodeIfPresent(Float.self, forKey: .rmsNormEpsilon) ?? d.rmsNormEpsilon
        let parameters = try c.decodeIfPresent(RopeParameters.self, forKey: .ropeParameters)
        if let type = parameters?.rope_type, type != "default" {
            throw DecodingError.dataCorruptedError(forKey: .ropeParameters, in: c, debugDescription: "rope_type '\(type)' is not supported (only 'default')")
        }
        if let scaling = try? c.decodeIfPresent(RopeParameters.self, forKey: .ropeScaling), let type = scaling.rope_type, type != "default" {
            throw DecodingError.dataCorruptedError(forKey: .ropeScaling, in: c, debugDescription: "rope_scaling '\(type)' is not supported")
        }
        ropeTheta = try parameters?.rope_theta ?? c.decodeIfPresent(Float.self, forKey: .ropeTheta) ?? d.ropeTheta
        attentionBias = try c.decodeIfPresent(Bool.self, forKey: .attentionBias) ?? d.attentionBias
        mlpBias = try c.decodeIfPresent(Bool.self, forKey: .mlpBias) ?? d.mlpBias
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? d.tieWordEmbeddings
        bosTokenID = try c.decodeIfPresent(Int.self, forKey: .bosTokenID) ?? d.bosTokenID
        eosTokenID = try? c.decodeIfPresent(Int.self, forKey: .eosTokenID) ?? d.eosTokenID
        padTokenID = try? c.decodeIfPresent(Int.self, forKey: .padTokenID)
        if hiddenActivation != "silu" {
            throw DecodingError.dataCorruptedError(forKey: .hiddenActivation, in: c, debugDescription: "hidden_act '\(hiddenActivation)' is not supported (only silu)")
        }
    }

    /// Writes the transformers 5 style.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("llama", forKey: .modelType)
        try c.encode(vocabularySize, forKey: .vocabularySize)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(layerCount, forKey: .layerCount)
        try c.encode(headCount, forKey: .headCount)
        try c.encode(resolvedKeyValueHeadCount, forKey: .keyValueHeadCount)
        try c.encode(resolvedHeadDimension, forKey: .headDimension)
        try c.encode(hiddenActivation, forKey: .hiddenActivation)
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encode(rmsNormEpsilon, forKey: .rmsNormEpsilon)
        try c.encode(RopeParameters(rope_theta: ropeTheta, rope_type: "default"), forKey: .ropeParameters)
        try c.encode(attentionBias, forKey: .attentionBias)
        try c.encode(mlpBias, forKey: .mlpBias)
        try c.encode(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        try c.encodeIfPresent(bosTokenID, forKey: .bosTokenID)
        try c.encodeIfPresent(eosTokenID, forKey: .eosTokenID)
        try c.encodeIfPresent(padTokenID, forKey: .padTokenID)
    }
}

/// Which hidden states of the vision tower feed the projector.
public enum VisionFeatureStrategy: String, Codable, Sendable {
    /// Drop the class token (LLaVA-1.5).
    case `default`
    /// Keep it.
    case full
}

/// A LLaVA-1.5 checkpoint's `config.json` (transformers' `LlavaConfig`).
public struct LlavaConfiguration: Codable, Sendable, Equatable {
    /// `vision_config` in config.json (default CLIPVisionConfiguration.llavaDefault).
    public var vision = CLIPVisionConfiguration.llavaDefault
    /// `text_config` in config.json (default LlamaConfiguration()).
    public var text = LlamaConfiguration()
    /// `image_token_index` in config.json (default 32000).
    public var imageTokenIndex = 32000
    /// `projector_hidden_act` in config.json (default "gelu").
    public var projectorActivation = "gelu"
    /// `vision_feature_layer` in config.json (default -2).
    public var visionFeatureLayer = -2
    /// `vision_feature_select_strategy` in config.json (default VisionFeatureStrategy.default).
    public var visionFeatureStrategy = VisionFeatureStrategy.default
    /// `multimodal_projector_bias` in config.json (default true).
    public var projectorBias = true
    /// `tie_word_embeddings` in config.json (default false).
    public var tieWordEmbeddings = false

    /// transformers' LlavaConfig defaults (CLIP ViT-L/14-336 and LLaMA-7B).
    public init() {}

    /// Visual tokens per image after the feature-selection strategy.
    public var imageTokenCount: Int { vision.patchCount + (visionFeatureStrategy == .full ? 1 : 0) }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case vision = "vision_config", text = "text_config", imageTokenIndex = "image_token_index", imageTokenID = "image_token_id"
        case projectorActivation = "projector_hidden_act", visionFeatureLayer = "vision_feature_layer"
        case visionFeatureStrategy = "vision_feature_select_strategy", projectorBias = "multimodal_projector_bias"
        case tieWordEmbeddings = "tie_word_embeddings", modelType = "model_type", architectures, dtype, torchDType = "torch_dtype"
        case imageSequenceLength = "image_seq_length", transformersVersion = "transformers_version"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = LlavaConfiguration()
        guard let type = try c.decodeIfPresent(String.self, forKey: .modelType) else {
            throw DecodingError.keyNotFound(CodingKeys.modelType, .init(codingPath: [], debugDescription: "config.json has no model_type"))
        }
        guard type == "llava" else {
            throw DecodingError.dataCorruptedError(forKey: .modelType, in: c, debugDescription: "unknown model_type '\(type)': PruneGym reads LLaVA-1.5 checkpoints (model_type 'llava')")
        }
        vision = try c.decodeIfPresent(CLIPVisionConfiguration.self, forKey: .vision) ?? d.vision
        text = try c.decodeIfPresent(LlamaConfiguration.self, forKey: .text) ?? d.text
        imageTokenIndex = try c.decodeIfPresent(Int.self, forKey: .imageTokenIndex) ?? c.decodeIfPresent(Int.self, forKey: .imageTokenID) ?? d.imageTokenIndex
        projectorActivation = try c.decodeIfPresent(String.self, forKey: .projectorActivation) ?? d.projectorActivation
        visionFeatureLayer = try c.decodeIfPresent(Int.self, forKey: .visionFeatureLayer) ?? d.visionFeatureLayer
        visionFeatureStrategy = try c.decodeIfPresent(VisionFeatureStrategy.self, forKey: .visionFeatureStrategy) ?? d.visionFeatureStrategy
        projectorBias = try c.decodeIfPresent(Bool.self, forKey: .projectorBias) ?? d.projectorBias
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? d.tieWordEmbeddings
        if let problem = vision.sizeProblem.map({ "vision_config." + $0 }) ?? text.sizeProblem.map({ "text_config." + $0 }) {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: problem))
        }
        let layers = vision.layerCount
        guard visionFeatureLayer >= -(layers + 1) && visionFeatureLayer <= layers else {
            throw DecodingError.dataCorruptedError(forKey: .visionFeatureLayer, in: c, debugDescription: "vision_feature_layer \(visionFeatureLayer) is outside the \(layers + 1) hidden states")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("llava", forKey: .modelType)
        try c.encode(["LlavaForConditionalGeneration"], forKey: .architectures)
        try c.encode("float32", forKey: .dtype)
        try c.encode(vision, forKey: .vision)
        try c.encode(text, forKey: .text)
        try c.encode(imageTokenIndex, forKey: .imageTokenIndex)
        try c.encode(projectorActivation, forKey: .projectorActivation)
        try c.encode(visionFeatureLayer, forKey: .visionFeatureLayer)
        try c.encode(visionFeatureStrategy, forKey: .visionFeatureStrategy)
        try c.encode(projectorBias, forKey: .projectorBias)
        try c.encode(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        try c.encode(imageTokenCount, forKey: .imageSequenceLength)
    }

    /// Reads `config.json`; errors name the file and the field.
    public static func read(_ url: URL) throws -> LlavaConfiguration {
        try VLMError.decodeJSON(LlavaConfiguration.self, from: url, unreadable: "cannot read the file")
    }
}
