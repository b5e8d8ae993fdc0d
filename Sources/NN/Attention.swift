import Foundation
import TensorCore

/// Multi-head scaled dot-product attention with optional causal and padding masks, grouped-query
/// attention (fewer key/value heads than query heads, each shared by `headCount/keyValueHeadCount`
/// consecutive query heads as transformers' `repeat_kv`), and optional rotary position embedding.
///
/// softmax(q·kᵀ/√d_head + mask)·v per head (Vaswani et al. 2017). Parameter names follow
/// transformers: `q_proj`, `k_proj`, `v_proj` and `out_proj` (CLIP) or `o_proj` (LLaMA).
///
/// Shapes: `[batch, tokens, modelSize]` → `[batch, tokens, modelSize]`.
public final class MultiHeadAttention: Module {
    /// Input and output width.
    public let modelSize: Int
    /// Query heads.
    public let headCount: Int
    /// Key/value heads (fewer than `headCount` for grouped-query attention).
    public let keyValueHeadCount: Int
    /// Width of one head.
    public let headSize: Int
    /// W_q.
    public let queryProjection: Linear
    /// W_k.
    public let keyProjection: Linear
    /// W_v.
    public let valueProjection: Linear
    /// W_o.
    public let outputProjection: Linear
    /// The checkpoint name of W_o (`out_proj` in CLIP, `o_proj` in LLaMA).
    public let outputProjectionName: String
    /// Dropout on the attention probabilities (training only).
    public let dropout: Dropout

    /// Multi-head attention; `keyValueHeadCount` below `headCount` gives grouped-query attention.
    public init(
        modelSize: Int, headCount: Int, keyValueHeadCount: Int? = nil, headSize: Int? = nil,
        bias: Bool = true, outputBias: Bool? = nil, outputProjectionName: String = "out_proj",
        dropout: Float = 0, generator: inout SeededGenerator
    ) {
        let kvHeads = keyValueHeadCount ?? headCount
        precondition(headSize != nil || (headCount > 0 && modelSize % headCount == 0),
                     "MultiHeadAttention: \(headCount) heads do not divide the model size \(modelSize); pass headSize to set it apart")
        let headSize = headSize ?? modelSize / headCount
        precondition(headCount > 0 && headCount % kvHeads == 0, "MultiHeadAttention: \(headCount) heads not divisible into \(kvHeads) key/value heads")
        precondition(headSize > 0, "MultiHeadAttention: model size \(modelSize) with \(headCount) heads gives head size \(headSize)")
        self.modelSize = modelSize
        self.headCount = headCount
        self.keyValueHeadCount = kvHeads
        self.headSize = headSize
        queryProjection = Linear(modelSize, headCount * headSize, bias: bias, generator: &generator)
        keyProjection = Linear(modelSize, kvHeads * headSize, bias: bias, generator: &generator)
        valueProjection = Linear(modelSize, kvHeads * headSize, bias: bias, generator: &generator)
        outputProjection = Linear(headCount * headSize, modelSize, bias: outputBias ?? bias, generator: &generator)
        self.outputProjectionName = outputProjectionName
        self.dropout = Dropout(dropout)
    }

    /// Attention output and the attention probabilities `[batch, heads, tokens, tokens]`.
    ///
    /// - Parameters:
    ///   - keyPaddingMask: `[batch, tokens]`, 1 for a real token, 0 for padding (never attended to).
    ///   - causal: each position attends only to itself and earlier positions.
    ///   - rotary: cos/sin tables `[tokens, headSize]` applied to queries and keys.
    ///   - additiveMask: added to the scores, broadcastable to `[batch, heads, tokens, tokens]`.
    ///   - context: dropout on the probabilities in training; nil for evaluation.
    public func attend(
        _ x: Tensor, keyPaddingMask: Tensor? = nil, causal: Bool = false,
        rotary: (cos: Tensor, sin: Tensor)? = nil, additiveMask: Tensor? = nil, context: TrainingContext? = nil
    ) -> (output: Tensor, weights: Tensor) {
        let (output, weights) = attention(x, keyPaddingMask: keyPaddingMask, causal: causal, rotary: rotary, additiveMask: additiveMask,
                                          context: context, needsWeights: true)
        return (output, weights!)
    }

    /// `attend`, with the probabilities only when `needsWeights` (without them, inference runs the
    /// blocked kernel `Tensor.scaledDotProductAttentionOutput`).
    func attention(
        _ x: Tensor, keyPaddingMask: Tensor?, causal: Bool, rotary: (cos: Tensor, sin: Tensor)?, additiveMask: Tensor?,
        context: TrainingContext?, needsWeights: Bool
    ) -> (output: Tensor, weights: Tensor?) {
        precondition(x.rank == 3 && x.shape[2] == modelSize, "MultiHeadAttention(\(modelSize)): input must be [batch, tokens, \(modelSize)], got \(x.shape)")
        let (batch, tokens) = (x.shape[0], x.shape[1])
        var q = queryProjection(x), k = keyProjection(x)
        let v = valueProjection(x)
        if let rotary {
            // Rotate in the projection layout [B, T, heads, D]: no permute copies.
            q = q.reshaped(to: [batch, tokens, headCount, headSize])
                .applyingRotaryEmbedding(cos: rotary.cos, sin: rotary.sin, tokenAxis: 1).reshaped(to: [batch, tokens, -1])
            k = k.reshaped(to: [batch, tokens, keyValueHeadCount, headSize])
                .applyingRotaryEmbedding(cos: rotary.cos, sin: rotary.sin, tokenAxis: 1).reshaped(to: [batch, tokens, -1])
        }
        let mask = Self.combinedMask(batch: batch, tokens: tokens, keyPaddingMask: keyPaddingMask, causal: false, additive: additiveMask)
        let attended: Tensor, weights: Tensor?
        let fusedMask = mask.map { $0.rank == 4 ? $0 : $0.reshaped(to: [1, 1] + $0.shape) }
        if context != nil && dropout.probability > 0 {
            (attended, weights) = Self.composedAttention(
                q, k, v, heads: headCount, keyValueHeads: keyValueHeadCount, mask: mask, causal: causal, dropout: dropout, context: context)
        } else if !needsWeights {
            attended = Tensor.scaledDotProductAttentionOutput(query: q, key: k, value: v, heads: headCount, keyValueHeads: keyValueHeadCount,
                                                              additiveMask: fusedMask, causal: causal)
            weights = nil
        } else {
            (attended, weights) = Tensor.scaledDotProductAttention(
                query: q, key: k, value: v, heads: headCount, keyValueHeads: keyValueHeadCount,
                additiveMask: fusedMask, causal: causal)
        }
        return (outputProjection(attended), weights)
    }

    /// Attention composed from tensor operations (permute, matmul, softmax, dropout): the path
    /// used when attention dropout is active, and the reference the fused kernel is tested against.
    public static func composedAttention(
        _ q: Tensor, _ k: Tensor, _ v: Tensor, heads: Int, keyValueHeads: Int, mask: Tensor?, causal: Bool,
        dropout: Dropout? = nil, context: TrainingContext? = nil
    ) -> (output: Tensor, weights: Tensor) {
        let (batch, tokens, width) = (q.shape[0], q.shape[1], q.shape[2])
        let headSize = width / heads
        func split(_ projected: Tensor, _ count: Int) -> Tensor {
            projected.reshaped(to: [batch, projected.shape[1], count, headSize]).permuted([0, 2, 1, 3])
        }
        var (qh, kh, vh) = (split(q, heads), split(k, keyValueHeads), split(v, keyValueHeads))
        if keyValueHeads != heads {
            let mapping = (0..<heads).map { $0 / (heads / keyValueHeads) }
            kh = kh.indexSelect(mapping, alongAxis: 1)
            vh = vh.indexSelect(mapping, alongAxis: 1)
        }
        var scores = Tensor.matmul(qh, kh, transposeB: true) * (1 / Float(headSize).squareRoot())
        if let mask { scores = scores + mask }
        if let causalMask = combinedMask(batch: batch, tokens: tokens, keyPaddingMask: nil, causal: causal, additive: nil) {
            scores = scores + causalMask
        }
        let weights = scores.softmax(alongAxis: -1)
        let mixed = dropout.map { $0(weights, context: context) } ?? weights
        let attended = Tensor.matmul(mixed, vh).permuted([0, 2, 1, 3]).reshaped(to: [batch, tokens, width])
        return (attended, weights)
    }

    public func callAsFunction(
        _ x: Tensor, keyPaddingMask: Tensor? = nil, causal: Bool = false,
        rotary: (cos: Tensor, sin: Tensor)? = nil, context: TrainingContext? = nil
    ) -> Tensor {
        attention(x, keyPaddingMask: keyPaddingMask, causal: causal, rotary: rotary, additiveMask: nil, context: context, needsWeights: false).output
    }

    /// The additive mask (0 or −∞) for padding and causality, or nil when there is none.
    static func combinedMask(batch: Int, tokens: Int, keyPaddingMask: Tensor?, causal: Bool, additive: Tensor?) -> Tensor? {
        var mask = additive?.detached()
        if let padding = keyPaddingMask {
            precondition(padding.shape == [batch, tokens], "MultiHeadAttention: key padding mask must be [\(batch), \(tokens)], got \(padding.shape)")
            let values = padding.scalars.map { $0 != 0 ? Float(0) : -Float.infinity }
            let paddingMask = Tensor(shape: [batch, 1, 1, tokens], scalars: values)
            mask = mask.map { $0 + paddingMask } ?? paddingMask
        }
        if causal {
            var values = [Float](repeating: 0, count: tokens * tokens)
            for i in 0..<tokens { for j in (i + 1)..<max(tokens, i + 1) { values[i * tokens + j] = -.infinity } }
            let causalMask = Tensor(shape: [tokens, tokens], scalars: values)
            mask = mask.map { $0 + causalMask } ?? causalMask
        }
        return mask
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        scoped("q_proj", queryProjection) + scoped("k_proj", keyProjection) + scoped("v_proj", valueProjection)
            + scoped(outputProjectionName, outputProjection)
    }

    public var description: String {
        "MultiHeadAttention(\(modelSize), heads: \(headCount), kv heads: \(keyValueHeadCount), head size: \(headSize))"
    }
}

/// Pre-norm transformer encoder layer (CLIP's layout):
/// x ← x + attn(LN₁(x)); x ← x + mlp(LN₂(x)). Names: `layer_norm1`, `self_attn`, `layer_norm2`, `mlp`.
///
/// Shapes: `[batch, tokens, d]` → `[batch, tokens, d]`.
public final class TransformerEncoderLayer: Module {
    /// LayerNorm before attention.
    public let layerNorm1: LayerNorm
    /// Self-attention.
    public let selfAttention: MultiHeadAttention
    /// LayerNorm before the MLP.
    public let layerNorm2: LayerNorm
    /// The MLP.
    public let mlp: FeedForward
    /// Dropout on both residual branches (training only).
    public let dropout: Dropout

    /// A pre-norm encoder layer: x + Attn(LN(x)), then h + MLP(LN(h)).
    public init(
        modelSize: Int, headCount: Int, mlpSize: Int, activation: Activation = .gelu,
        layerNormEpsilon: Float = 1e-5, dropout: Float = 0, generator: inout SeededGenerator
    ) {
        layerNorm1 = LayerNorm(modelSize, epsilon: layerNormEpsilon)
        selfAttention = MultiHeadAttention(modelSize: modelSize, headCount: headCount, dropout: dropout, generator: &generator)
        layerNorm2 = LayerNorm(modelSize, epsilon: layerNormEpsilon)
        mlp = FeedForward(modelSize, hiddenSize: mlpSize, activation: activation, generator: &generator)
        self.dropout = Dropout(dropout)
    }

    public func callAsFunction(_ x: Tensor, keyPaddingMask: Tensor? = nil, causal: Bool = false, context: TrainingContext? = nil) -> Tensor {
        let attended = selfAttention(layerNorm1(x), keyPaddingMask: keyPaddingMask, causal: causal, context: context)
        let h = x + dropout(attended, context: context)
        return h + dropout(mlp(layerNorm2(h)), context: context)
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        scoped("layer_norm1", layerNorm1) + scoped("self_attn", selfAttention) + scoped("layer_norm2", layerNorm2) + scoped("mlp", mlp)
    }
    public var description: String { "TransformerEncoderLayer(\(selfAttention), \(mlp))" }
}

/// A stack of pre-norm encoder layers (`layers.0`, …) with an optional final LayerNorm (`norm`).
public final class TransformerEncoder: Module {
    /// The layers, in order.
    public let layers: [TransformerEncoderLayer]
    /// The LayerNorm after the last layer, if any.
    public let finalNorm: LayerNorm?

    /// `layerCount` identical pre-norm layers.
    public init(
        layerCount: Int, modelSize: Int, headCount: Int, mlpSize: Int, activation: Activation = .gelu,
        layerNormEpsilon: Float = 1e-5, dropout: Float = 0, finalNorm: Bool = true, generator: inout SeededGenerator
    ) {
        var layers: [TransformerEncoderLayer] = []
        for _ in 0..<layerCount {
            layers.append(TransformerEncoderLayer(
                modelSize: modelSize, headCount: headCount, mlpSize: mlpSize, activation: activation,
                layerNormEpsilon: layerNormEpsilon, dropout: dropout, generator: &generator))
        }
        self.layers = layers
        self.finalNorm = finalNorm ? LayerNorm(modelSize, epsilon: layerNormEpsilon) : nil
    }

    public func callAsFunction(_ x: Tensor, keyPaddingMask: Tensor? = nil, causal: Bool = false, context: TrainingContext? = nil) -> Tensor {
        var h = x
        for layer in layers { h = layer(h, keyPaddingMask: keyPaddingMask, causal: causal, context: context) }
        return finalNorm.map { $0(h) } ?? h
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        layers.enumerated().flatMap { scoped("layers.\($0.offset)", $0.element) } + (finalNorm.map { scoped("norm", $0) } ?? [])
    }
    public var description: String { "TransformerEncoder(\(layers.count) × \(layers.first?.description ?? "-"))" }
}
