import Foundation
import NN
import TensorCore

/// LLaVA-1.5's projector: Linear → GELU → Linear (transformers' `LlavaMultiModalProjector`).
public final class LlavaProjector: Module {
    /// `linear_1`.
    public let linear1: Linear
    /// `linear_2`.
    public let linear2: Linear
    /// Between them (`projector_hidden_act`).
    public let activation: Activation

    init(_ c: LlavaConfiguration, generator: inout SeededGenerator) {
        linear1 = Linear(c.vision.hiddenSize, c.text.hiddenSize, bias: c.projectorBias, biasInitializer: .zeros, generator: &generator)
        linear2 = Linear(c.text.hiddenSize, c.text.hiddenSize, bias: c.projectorBias, biasInitializer: .zeros, generator: &generator)
        activation = Activation(rawValue: c.projectorActivation) ?? .gelu
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { linear2(activation(linear1(x))) }

    public var namedParameters: [(name: String, parameter: Parameter)] { scoped("linear_1", linear1) + scoped("linear_2", linear2) }
    public var description: String { "LlavaProjector(\(linear1.inputSize) → \(linear1.outputSize) → \(linear2.outputSize))" }
}

/// A LLaVA-1.5 model (transformers' `LlavaForConditionalGeneration`): CLIP vision tower →
/// projector → LLaMA with an LM head. Parameter names are transformers 5's
/// (`model.vision_tower.…`, `model.multi_modal_projector.…`, `model.language_model.…`, `lm_head`);
/// `LlavaCheckpoint` maps the other layouts onto them.
public final class LlavaModel: Module {
    /// The model's configuration.
    public let configuration: LlavaConfiguration
    /// The CLIP vision tower.
    public let visionTower: CLIPVisionTower
    /// The multimodal projector.
    public let projector: LlavaProjector
    /// The LLaMA decoder.
    public let languageModel: LlamaModel
    /// nil when the head is tied to the token embeddings.
    public let lmHead: Linear?

    /// A model with random weights (`LlavaCheckpoint.load` reads trained ones).
    public init(_ configuration: LlavaConfiguration, generator: inout SeededGenerator) {
        self.configuration = configuration
        visionTower = CLIPVisionTower(configuration.vision, generator: &generator)
        projector = LlavaProjector(configuration, generator: &generator)
        languageModel = LlamaModel(configuration.text, generator: &generator)
        let tied = configuration.tieWordEmbeddings || configuration.text.tieWordEmbeddings
        lmHead = tied ? nil : Linear(configuration.text.hiddenSize, configuration.text.vocabularySize, bias: false,
                                     weightInitializer: .normal(standardDeviation: 0.02), generator: &generator)
    }

    /// Index of the selected hidden state among the tower's `layerCount + 1` (negative counts from the end).
    var featureLayerIndex: Int {
        let count = configuration.vision.layerCount + 1
        return configuration.visionFeatureLayer < 0 ? count + configuration.visionFeatureLayer : configuration.visionFeatureLayer
    }

    /// The vision features before the projector: the selected hidden state, class token dropped
    /// for the `default` strategy: `[B, C, H, W]` → `[B, N, visionHidden]`.
    public func visionFeatures(_ pixels: Tensor) -> Tensor {
        selectedFeatures(visionTower.hiddenStates(pixels, upTo: featureLayerIndex)[featureLayerIndex])
    }

    /// The selected hidden state as vision features (class token dropped for `default`).
    func selectedFeatures(_ state: Tensor) -> Tensor {
        configuration.visionFeatureStrategy == .default ? state.sliced(alongAxis: 1, 1..<state.shape[1]) : state
    }

    /// The tower layer whose class attention the pruners read: the one whose output is selected.
    public var classAttentionLayer: Int { max(0, featureLayerIndex - 1) }

    /// Projected visual tokens: `[B, C, H, W]` → `[B, N, textHidden]` (transformers' `image_features`).
    public func imageFeatures(_ pixels: Tensor) -> Tensor { projector(visionFeatures(pixels)) }

    /// Logits from final hidden states: `[…, hidden]` → `[…, vocabulary]`.
    public func logits(_ hidden: Tensor) -> Tensor {
        if let lmHead { return lmHead(hidden) }
        return Tensor.matmul(hidden, languageModel.embedTokens.weight.tensor, transposeB: true)
    }

    /// Token embeddings with the image placeholders replaced by `imageFeatures` in order
    /// (transformers' `masked_scatter`): `inputIDs` `[B][L]`, features `[B, N, D]` → `[B, L, D]`.
    public func embeddings(inputIDs: [[Int]], imageFeatures: Tensor?) throws -> Tensor {
        let batch = inputIDs.count
        guard batch > 0, let length = inputIDs.first?.count, inputIDs.allSatisfy({ $0.count == length }) else {
            throw VLMError.invalidInput(reason: "input_ids must be a non-empty rectangle of token ids")
        }
        let vocabulary = configuration.text.vocabularySize
        if let bad = inputIDs.joined().first(where: { $0 < 0 || $0 >= vocabulary }) {
            throw VLMError.invalidInput(reason: "token id \(bad) is outside the vocabulary (0..<\(vocabulary))")
        }
        var embedded = languageModel.embedTokens(inputIDs.flatMap { $0 }, shape: [batch, length])
        let imageID = configuration.imageTokenIndex
        let counts = inputIDs.map { $0.filter { $0 == imageID }.count }
        guard counts.allSatisfy({ $0 == counts[0] }) else { throw VLMError.invalidInput(reason: "every sequence must hold the same number of image tokens, got \(counts)") }
        guard counts[0] > 0 else { return embedded }
        guard let imageFeatures else { throw VLMError.invalidInput(reason: "input_ids hold \(counts[0]) image tokens but no image was given") }
        guard imageFeatures.shape[0] == batch, imageFeatures.shape[1] == counts[0] else {
            throw VLMError.invalidInput(reason: "input_ids hold \(counts[0]) image tokens per sequence; the image gives \(imageFeatures.shape[1]) features (batch \(imageFeatures.shape[0]))")
        }
        // Rebuild each row as text slices and image features, in order.
        var rows: [Tensor] = []
        for b in 0..<batch {
            let row = embedded.sliced(alongAxis: 0, b..<(b + 1))
            let features = imageFeatures.sliced(alongAxis: 0, b..<(b + 1))
            var pieces: [Tensor] = []
            var imageCursor = 0, start = 0
            let ids = inputIDs[b]
            var index = 0
            while index < length {
                if ids[index] == imageID {
                    if start < index { pieces.append(row.sliced(alongAxis: 1, start..<index)) }
                    var end = index
                    while end < length && ids[end] == imageID { end += 1 }
                    pieces.append(features.sliced(alongAxis: 1, imageCursor..<(imageCursor + end - index)))
                    imageCursor += end - index
                    index = end
                    start = end
                } else {
                    index += 1
                }
            }
            if start < length { pieces.append(row.sliced(alongAxis: 1, start..<length)) }
            rows.append(pieces.count == 1 ? pieces[0] : Tensor.concatenated(pieces, alongAxis: 1))
        }
        embedded = batch == 1 ? rows[0] : Tensor.concatenated(rows, alongAxis: 0)
        return embedded
    }

    /// Throws unless `pixels` is a batch of images the vision tower reads,
    /// `[B, num_channels, image_size, image_size]`; the error names `pixel_values` and both shapes.
    public func checkPixels(_ pixels: Tensor) throws {
        let c = configuration.vision
        guard pixels.rank == 4, pixels.shape[0] > 0, pixels.shape[1] == c.channelCount, pixels.shape[2] == c.imageSize, pixels.shape[3] == c.imageSize else {
            throw VLMError.invalidInput(reason: "pixel_values must be [B, \(c.channelCount), \(c.imageSize), \(c.imageSize)] (vision_config's num_channels and image_size), got \(pixels.shape)")
        }
    }

    /// The image features of `pixels` for a forward pass over `inputIDs`, after checking both as
    /// transformers does: images whose shape the tower reads, and image placeholder tokens in the
    /// text when there is an image (transformers: "Image features and image tokens do not match").
    func checkedImageFeatures(_ pixels: Tensor?, inputIDs: [[Int]]) throws -> Tensor? {
        guard let pixels else { return nil }
        try checkPixels(pixels)
        let image = configuration.imageTokenIndex
        if let row = inputIDs.firstIndex(where: { !$0.contains(image) }) {
            throw VLMError.invalidInput(reason: "input_ids row \(row) holds no image token (id \(image)) but pixel_values give an image; put \(visualTokenCount) image tokens where the image goes")
        }
        return imageFeatures(pixels)
    }

    /// Full forward pass (transformers' `LlavaForConditionalGeneration.forward`): logits `[B, L, V]`.
    public func callAsFunction(inputIDs: [[Int]], pixels: Tensor?) throws -> Tensor {
        let features = try checkedImageFeatures(pixels, inputIDs: inputIDs)
        let embedded = try embeddings(inputIDs: inputIDs, imageFeatures: features)
        var cache: KeyValueCache? = nil
        let positions = [Array(0..<embedded.shape[1])]
        return logits(languageModel.forward(embedded, positions: positions, cache: &cache).hidden)
    }

    /// Greedy decoding of `count` new tokens with a key/value cache (transformers' `generate` with
    /// `do_sample=False`, `max_new_tokens = count`); returns `[B][count]`.
    public func generate(inputIDs: [[Int]], pixels: Tensor?, count: Int) throws -> [[Int]] {
        let features = try checkedImageFeatures(pixels, inputIDs: inputIDs)
        let embedded = try embeddings(inputIDs: inputIDs, imageFeatures: features)
        let batch = embedded.shape[0], length = embedded.shape[1]
        var cache: KeyValueCache? = KeyValueCache(layerCount: languageModel.layers.count)
        var hidden = languageModel.forward(embedded, positions: [Array(0..<length)], cache: &cache).hidden
        var generated = Array(repeating: [Int](), count: batch)
        for step in 0..<count {
            let last = hidden.sliced(alongAxis: 1, (hidden.shape[1] - 1)..<hidden.shape[1])  // [B, 1, D]
            let scores = logits(last).reshaped(to: [batch, -1]).scalars
            let vocabulary = scores.count / batch
            var next: [Int] = []
            for b in 0..<batch {
                var best = 0
                for v in 1..<vocabulary where scores[b * vocabulary + v] > scores[b * vocabulary + best] { best = v }
                next.append(best)
                generated[b].append(best)
            }
            if step == count - 1 { break }
            let tokens = languageModel.embedTokens(next, shape: [batch, 1])
            hidden = languageModel.forward(tokens, positions: [[length + step]], cache: &cache, causal: false).hidden
        }
        return generated
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        scoped("model.vision_tower", visionTower) + scoped("model.multi_modal_projector", projector)
            + scoped("model.language_model", languageModel) + (lmHead.map { scoped("lm_head", $0) } ?? [])
    }

    public var description: String { "LlavaModel(\(visionTower), \(projector), \(languageModel))" }
}

extension LlavaModel {
    /// The language model on `[prefix embeddings, imageFeatures[:, keep], suffix embeddings]`
    /// with positions 0..n−1 (the fixture's `pruned_logits`): logits `[B, P + K + S, V]`.
    public func prunedLogits(prefix: [[Int]], imageFeatures: Tensor, keep: [Int], suffix: [[Int]]) throws -> Tensor {
        let batch = prefix.count
        guard suffix.count == batch, imageFeatures.shape[0] == batch else {
            throw VLMError.invalidInput(reason: "prefix, suffix and image features must have the same batch size")
        }
        let n = imageFeatures.shape[1]
        if let bad = keep.first(where: { $0 < 0 || $0 >= n }) { throw VLMError.invalidInput(reason: "keep index \(bad) outside 0..<\(n)") }
        let before = try embeddings(inputIDs: prefix, imageFeatures: nil)
        let after = try embeddings(inputIDs: suffix, imageFeatures: nil)
        let kept = imageFeatures.indexSelect(keep, alongAxis: 1)
        let sequence = Tensor.concatenated([before, kept, after], alongAxis: 1)
        var cache: KeyValueCache? = nil
        return logits(languageModel.forward(sequence, positions: [Array(0..<sequence.shape[1])], cache: &cache).hidden)
    }
}
