import Foundation
import TensorCore

/// FLOPs of a LLaVA model as a function of token counts.
///
/// **Convention** (stated once, used everywhere in PruneGym): FastV's — one multiply-accumulate
/// counts as one FLOP, and only matrix products are counted (norms, activations, softmax and
/// rotary embedding are ignored). For a LLaMA layer with n tokens, hidden size d, h query heads
/// and g key/value heads of size e, and MLP width m:
///
///     projections  n·d·(h·e) + 2·n·d·(g·e) + n·(h·e)·d      (q; k and v, shrunk by GQA; o)
///     attention    2·n²·(h·e)                               (QKᵀ and AV)
///     MLP          3·n·d·m                                  (SwiGLU: gate, up, down)
///
/// which is FastV's 4nd² + 2n²d + 2ndm for a standard layer (h·e = d, g = h, two-matrix MLP).
/// The CLIP tower counts its layers the same way with a two-matrix MLP, plus the patch embedding;
/// the projector is its two matrices; the LM head is counted for the positions whose logits are
/// computed (one per answer).
public struct FLOPCount: Sendable, Equatable, Codable {
    /// The vision tower.
    public var vision: Double
    /// The projector.
    public var projector: Double
    /// The language model's prefill over the prompt.
    public var prefill: Double
    /// The output head on the answer position.
    public var head: Double
    /// Everything.
    public var total: Double { vision + projector + prefill + head }

    /// A FLOP count by part.
    public init(vision: Double, projector: Double, prefill: Double, head: Double) {
        self.vision = vision
        self.projector = projector
        self.prefill = prefill
        self.head = head
    }
}

extension LlavaConfiguration {
    /// FLOPs of one LLaMA layer over n tokens (prefill).
    func layerFLOPs(tokens n: Double) -> Double { layerFLOPs(queries: n, keys: n, pairs: n * n) }

    /// FLOPs of one LLaMA layer whose q, o and MLP run on `queries` rows, whose k and v run on
    /// `keys` rows, and whose attention scores `pairs` (query, key) pairs.
    func layerFLOPs(queries q: Double, keys s: Double, pairs: Double) -> Double {
        let t = text
        let d = Double(t.hiddenSize), e = Double(t.resolvedHeadDimension)
        let h = Double(t.headCount), g = Double(t.resolvedKeyValueHeadCount), m = Double(t.intermediateSize)
        return q * d * h * e + 2 * s * d * g * e + q * h * e * d + 2 * pairs * h * e + 3 * q * d * m
    }

    /// FLOPs of answering one question as PruneGym's kernels execute them, in the convention's
    /// units: the vision tower, projector and head as `flops` counts them; in each LLM layer but
    /// the last, causal attention by blocks of `Tensor.attentionQueryBlock` query rows, each
    /// block against the keys it can see; in the last, keys and values for every token and the
    /// rest for the answer row alone (`LlamaModel.forward(…, outputRows:)`). Not the convention:
    /// what the measured time should follow.
    public func executedFLOPs(visualTokens: Int, textTokens: Int) -> Double {
        let whole = flops(visualTokens: visualTokens, textTokens: textTokens)
        let n = visualTokens + textTokens, block = Tensor.attentionQueryBlock
        let pairs = stride(from: 0, to: n, by: block).reduce(0.0) { $0 + Double(min(block, n - $1) * min(n, $1 + block)) }
        let tokens = Double(n)
        let layers = Double(max(0, text.layerCount - 1)) * layerFLOPs(queries: tokens, keys: tokens, pairs: pairs)
        return whole.vision + whole.projector + whole.head + layers + layerFLOPs(queries: 1, keys: tokens, pairs: tokens)
    }

    /// FLOPs of answering one question from `visualTokens` visual tokens and `textTokens` text
    /// tokens: vision tower over all patches, projector over all features, LLM prefill over
    /// visual + text tokens, LM head at the answer position.
    public func flops(visualTokens: Int, textTokens: Int) -> FLOPCount {
        let v = vision
        let nv = Double(v.patchCount + 1), dv = Double(v.hiddenSize), mv = Double(v.intermediateSize)
        let patchEmbedding = Double(v.patchCount) * Double(v.channelCount * v.patchSize * v.patchSize) * dv
        let visionLayers = Double(v.layerCount) * (4 * nv * dv * dv + 2 * nv * nv * dv + 2 * nv * dv * mv)
        let features = Double(imageTokenCount), dt = Double(text.hiddenSize)
        let projector = features * (dv * dt + dt * dt)
        let n = Double(visualTokens + textTokens)
        let prefill = Double(text.layerCount) * layerFLOPs(tokens: n)
        return FLOPCount(vision: patchEmbedding + visionLayers, projector: projector, prefill: prefill, head: dt * Double(text.vocabularySize))
    }

    /// FLOPs of continuing a pass from its states after LLM layer `layer` over every visual and
    /// text token: the remaining layers' prefill and the head (a cascade's second answer).
    public func continuationFLOPs(visualTokens: Int, textTokens: Int, afterLayer layer: Int) -> Double {
        let remaining = Double(text.layerCount - min(layer + 1, text.layerCount))
        return remaining * layerFLOPs(tokens: Double(visualTokens + textTokens)) + flops(visualTokens: visualTokens, textTokens: textTokens).head
    }

    /// LLM prefill FLOPs when FastV keeps `keptAfter` of the visual tokens after layer `layer`.
    public func fastVPrefillFLOPs(visualTokens: Int, textTokens: Int, layer: Int, keptAfter: Int) -> Double {
        let before = Double(visualTokens + textTokens), after = Double(keptAfter + textTokens)
        let early = Double(min(layer + 1, text.layerCount))
        return early * layerFLOPs(tokens: before) + (Double(text.layerCount) - early) * layerFLOPs(tokens: after)
    }
}
