import Foundation
import NN
import TensorCore

/// CLIP's vision transformer as LLaVA uses it (transformers' `CLIPVisionTransformer`): patch
/// embedding (a convolution with stride = kernel and no bias), a class token, learned position
/// embeddings, `pre_layrnorm`, pre-LN encoder layers (attention with biases, quick-GELU MLP) and
/// `post_layernorm` (loaded for completeness; LLaVA's features are taken before it).
public final class CLIPVisionTower: Module {
    /// The tower's configuration.
    public let configuration: CLIPVisionConfiguration
    /// Patch embedding kernel `[D, C, p, p]`.
    public let patchEmbedding: Parameter
    /// The class token `[D]`.
    public let classEmbedding: Parameter
    /// Learned positions `[1 + N, D]`.
    public let positionEmbedding: Parameter
    /// `pre_layrnorm` (transformers' spelling).
    public let preLayerNorm: LayerNorm
    /// The encoder layers.
    public let layers: [TransformerEncoderLayer]
    /// `post_layernorm`.
    public let postLayerNorm: LayerNorm

    /// A tower with random weights (load a checkpoint over them).
    public init(_ configuration: CLIPVisionConfiguration, generator: inout SeededGenerator) {
        self.configuration = configuration
        let d = configuration.hiddenSize, p = configuration.patchSize, c = configuration.channelCount
        patchEmbedding = Parameter(Tensor.normal([d, c, p, p], standardDeviation: 0.02, using: &generator))
        classEmbedding = Parameter(Tensor.normal([d], standardDeviation: 0.02, using: &generator))
        positionEmbedding = Parameter(Tensor.normal([configuration.patchCount + 1, d], standardDeviation: 0.02, using: &generator))
        preLayerNorm = LayerNorm(d, epsilon: configuration.layerNormEpsilon)
        let activation = Activation(rawValue: configuration.hiddenActivation) ?? .quickGELU
        layers = (0..<configuration.layerCount).map { _ in
            TransformerEncoderLayer(modelSize: d, headCount: configuration.headCount, mlpSize: configuration.intermediateSize,
                                    activation: activation, layerNormEpsilon: configuration.layerNormEpsilon, generator: &generator)
        }
        postLayerNorm = LayerNorm(d, epsilon: configuration.layerNormEpsilon)
    }

    /// The embeddings after `pre_layrnorm` (hidden state 0): `[B, C, H, W]` → `[B, 1 + N, D]`.
    public func embeddings(_ pixels: Tensor) -> Tensor {
        let c = configuration
        precondition(pixels.rank == 4 && pixels.shape[1] == c.channelCount && pixels.shape[2] == c.imageSize && pixels.shape[3] == c.imageSize,
                     "CLIPVisionTower: pixels must be [B, \(c.channelCount), \(c.imageSize), \(c.imageSize)], got \(pixels.shape)")
        let batch = pixels.shape[0], d = c.hiddenSize
        let patches = pixels.patchified(patchSize: c.patchSize)  // [B, N, C·p·p]
        let weight = patchEmbedding.tensor.reshaped(to: [d, -1])
        let embedded = Tensor.matmul(patches, weight, transposeB: true)  // [B, N, D]
        let classToken = classEmbedding.tensor.reshaped(to: [1, 1, d]).expanded(to: [batch, 1, d])
        let tokens = Tensor.concatenated([classToken, embedded], alongAxis: 1) + positionEmbedding.tensor.unsqueezed(at: 0)
        return preLayerNorm(tokens)
    }

    /// Hidden states 0…`upTo` (0 is the embeddings, i the output of layer i), as transformers'
    /// `output_hidden_states`; only the layers needed are run.
    public func hiddenStates(_ pixels: Tensor, upTo last: Int) -> [Tensor] {
        var states = [embeddings(pixels)]
        for layer in layers.prefix(last) { states.append(layer(states[states.count - 1])) }
        return states
    }

    /// The class token's attention over the patch tokens in layer `layer` (0-based), averaged over
    /// heads: `[B, N]` — the score VisionZip/HiRED/VisPruner use.
    public func classAttention(_ pixels: Tensor, layer: Int) -> Tensor {
        precondition(layer >= 0 && layer < layers.count, "classAttention: layer \(layer) outside 0..<\(layers.count)")
        return classAttention(layer: layer, input: hiddenStates(pixels, upTo: layer)[layer])
    }

    /// `classAttention(_:layer:)` from the layer's input, hidden state `layer` of
    /// `hiddenStates` (for callers that have run the tower already).
    public func classAttention(layer: Int, input state: Tensor) -> Tensor {
        precondition(layer >= 0 && layer < layers.count, "classAttention: layer \(layer) outside 0..<\(layers.count)")
        let block = layers[layer]
        let weights = block.selfAttention.attend(block.layerNorm1(state)).weights  // [B, H, T, T]
        let (batch, heads, t) = (weights.shape[0], weights.shape[1], weights.shape[2])
        let firstRow = weights.sliced(alongAxis: 2, 0..<1).reshaped(to: [batch, heads, t])
        return firstRow.mean(alongAxis: 1).sliced(alongAxis: 1, 1..<t)
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        [("embeddings.patch_embedding.weight", patchEmbedding), ("embeddings.class_embedding", classEmbedding),
         ("embeddings.position_embedding.weight", positionEmbedding)]
            + scoped("pre_layrnorm", preLayerNorm)
            + layers.enumerated().flatMap { scoped("encoder.layers.\($0.offset)", $0.element) }
            + scoped("post_layernorm", postLayerNorm)
    }

    public var description: String { "CLIPVisionTower(\(configuration.layerCount) layers, d \(configuration.hiddenSize), \(configuration.patchCount) patches)" }
}
