import Foundation
import NN
import TensorCore

/// Keys and values of every layer for the tokens seen so far: `[B, S, keyValueHeads·D]` each.
public struct KeyValueCache {
    /// Cached keys per layer `[B, T, kvHeads·D]`.
    public var keys: [Tensor?]
    public var values: [Tensor?]
    /// An empty cache for `layerCount` layers.
    public init(layerCount: Int) {
        keys = Array(repeating: nil, count: layerCount)
        values = Array(repeating: nil, count: layerCount)
    }
    /// Tokens cached so far.
    public var length: Int { keys.first??.shape[1] ?? 0 }
}

/// LLaMA self-attention (transformers' `LlamaAttention`): q/k/v/o projections, rotary embedding
/// ("rotate half") on queries and keys, grouped-query heads, an optional key/value cache.
public final class LlamaAttention: Module {
    /// `q_proj`.
    public let queryProjection: Linear
    /// `k_proj`.
    public let keyProjection: Linear
    /// `v_proj`.
    public let valueProjection: Linear
    /// `o_proj`.
    public let outputProjection: Linear
    /// Query heads.
    public let headCount: Int
    /// Key/value heads.
    public let keyValueHeadCount: Int
    /// Width of one head.
    public let headDimension: Int

    init(_ c: LlamaConfiguration, generator: inout SeededGenerator) {
        headCount = c.headCount
        keyValueHeadCount = c.resolvedKeyValueHeadCount
        headDimension = c.resolvedHeadDimension
        let initializer = Initializer.normal(standardDeviation: 0.02)
        queryProjection = Linear(c.hiddenSize, headCount * headDimension, bias: c.attentionBias, weightInitializer: initializer, biasInitializer: .zeros, generator: &generator)
        keyProjection = Linear(c.hiddenSize, keyValueHeadCount * headDimension, bias: c.attentionBias, weightInitializer: initializer, biasInitializer: .zeros, generator: &generator)
        valueProjection = Linear(c.hiddenSize, keyValueHeadCount * headDimension, bias: c.attentionBias, weightInitializer: initializer, biasInitializer: .zeros, generator: &generator)
        outputProjection = Linear(headCount * headDimension, c.hiddenSize, bias: c.attentionBias, weightInitializer: initializer, biasInitializer: .zeros, generator: &generator)
    }

    /// - Parameters:
    ///   - x: `[B, T, hidden]`.
    ///   - rotary: cos/sin `[T, D]` or `[B, T, D]` for the new tokens' positions.
    ///   - cache: this layer's cached keys/values, extended in place when given.
    ///   - causal: mask later positions (prefill; a single decode step attends to everything cached).
    ///   - needsWeights: return the probabilities (else nil, and inference runs the blocked kernel).
    ///   - weightRows: with `needsWeights`, only query row `weightRows[b]` of each sequence's
    ///     probabilities is wanted: the output then runs through the blocked kernel and the
    ///     probabilities are computed for those rows alone, `[B, heads, 1, S]` (causal prefill
    ///     without a cache only; otherwise every row).
    ///   - keyBias: added to every query's score of each key, `[B, 1, 1, S]` (a merged token's
    ///     log count: `LlamaModel.forward`'s `mergeDropped`).
    /// - Returns: the output `[B, T, hidden]` and the attention probabilities `[B, heads, T, S]`.
    func callAsFunction(_ x: Tensor, rotary: (cos: Tensor, sin: Tensor), cachedKeys: inout Tensor?, cachedValues: inout Tensor?, causal: Bool,
                        needsWeights: Bool = true, weightRows: [Int]? = nil, keyBias: Tensor? = nil) -> (output: Tensor, weights: Tensor?) {
        let (batch, tokens) = (x.shape[0], x.shape[1])
        let q = queryProjection(x).reshaped(to: [batch, tokens, headCount, headDimension])
            .applyingRotaryEmbedding(cos: rotary.cos, sin: rotary.sin, tokenAxis: 1).reshaped(to: [batch, tokens, -1])
        var k = keyProjection(x).reshaped(to: [batch, tokens, keyValueHeadCount, headDimension])
            .applyingRotaryEmbedding(cos: rotary.cos, sin: rotary.sin, tokenAxis: 1).reshaped(to: [batch, tokens, -1])
        var v = valueProjection(x)
        if let previous = cachedKeys { k = Tensor.concatenated([previous, k], alongAxis: 1) }
        if let previous = cachedValues { v = Tensor.concatenated([previous, v], alongAxis: 1) }
        cachedKeys = k
        cachedValues = v
        let s = k.shape[1]
        // Causal over the new tokens, which sit at the end of the cached sequence.
        var mask: Tensor?
        if causal && s != tokens {
            let offset = s - tokens
            var values = [Float](repeating: 0, count: tokens * s)
            for i in 0..<tokens { for j in (offset + i + 1)..<max(s, offset + i + 1) { values[i * s + j] = -.infinity } }
            mask = Tensor(shape: [1, 1, tokens, s], scalars: values)
        }
        if let keyBias { mask = mask.map { $0 + keyBias } ?? keyBias }
        let scale = 1 / Float(headDimension).squareRoot()
        let rowsOnly = weightRows != nil && causal && s == tokens
        guard needsWeights && !rowsOnly else {
            let attended = Tensor.scaledDotProductAttentionOutput(query: q, key: k, value: v, heads: headCount, keyValueHeads: keyValueHeadCount,
                                                                  scale: scale, additiveMask: mask, causal: causal && s == tokens)
            guard needsWeights, let rows = weightRows else { return (outputProjection(attended), nil) }
            // The probabilities of one query row per sequence: that row against every key it may see.
            let weights = Tensor.scaledDotProductAttention(query: q.gatheringRows(rows), key: k, value: v, heads: headCount, keyValueHeads: keyValueHeadCount,
                                                           scale: scale, additiveMask: Self.causalMask(rows: rows, keys: s, keyBias: keyBias)).weights
            return (outputProjection(attended), weights)
        }
        let (attended, weights) = Tensor.scaledDotProductAttention(
            query: q, key: k, value: v, heads: headCount, keyValueHeads: keyValueHeadCount,
            scale: scale, additiveMask: mask, causal: causal && s == tokens)
        return (outputProjection(attended), weights)
    }

    /// The output of query rows `rows[b]` of each sequence alone `[B, 1, hidden]`: keys and
    /// values from every token of `normed` `[B, T, hidden]`, each selected row attending causally
    /// (to tokens 0…`rows[b]`). The same values as `callAsFunction`'s rows, at one query row's
    /// cost instead of T's for the query projection and the attention.
    func selectedRows(_ normed: Tensor, rows: [Int], rotary: (cos: Tensor, sin: Tensor), rowRotary: (cos: Tensor, sin: Tensor),
                      keyBias: Tensor? = nil) -> Tensor {
        let (batch, tokens) = (normed.shape[0], normed.shape[1])
        let k = keyProjection(normed).reshaped(to: [batch, tokens, keyValueHeadCount, headDimension])
            .applyingRotaryEmbedding(cos: rotary.cos, sin: rotary.sin, tokenAxis: 1).reshaped(to: [batch, tokens, -1])
        let v = valueProjection(normed)
        let picked = normed.gatheringRows(rows)
        let q = queryProjection(picked).reshaped(to: [batch, 1, headCount, headDimension])
            .applyingRotaryEmbedding(cos: rowRotary.cos, sin: rowRotary.sin, tokenAxis: 1).reshaped(to: [batch, 1, -1])
        let attended = Tensor.scaledDotProductAttentionOutput(query: q, key: k, value: v, heads: headCount, keyValueHeads: keyValueHeadCount,
                                                              scale: 1 / Float(headDimension).squareRoot(),
                                                              additiveMask: Self.causalMask(rows: rows, keys: tokens, keyBias: keyBias))
        return outputProjection(attended)
    }

    /// The additive mask `[B, 1, 1, S]` of one query row per sequence at position `rows[b]`:
    /// −∞ on the keys after it, `keyBias` `[B, 1, 1, S]` on the others.
    static func causalMask(rows: [Int], keys s: Int, keyBias: Tensor? = nil) -> Tensor {
        var mask = keyBias?.scalars ?? [Float](repeating: 0, count: rows.count * s)
        for (b, row) in rows.enumerated() where row + 1 < s { for j in (row + 1)..<s { mask[b * s + j] = -.infinity } }
        return Tensor(shape: [rows.count, 1, 1, s], scalars: mask)
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        scoped("q_proj", queryProjection) + scoped("k_proj", keyProjection) + scoped("v_proj", valueProjection) + scoped("o_proj", outputProjection)
    }
    public var description: String { "LlamaAttention(\(headCount) heads, \(keyValueHeadCount) kv heads, d \(headDimension))" }
}

/// LLaMA's SwiGLU MLP: down(silu(gate(x)) · up(x)).
public final class LlamaMLP: Module {
    /// `gate_proj`.
    public let gate: Linear
    /// `up_proj`.
    public let up: Linear
    /// `down_proj`.
    public let down: Linear

    init(_ c: LlamaConfiguration, generator: inout SeededGenerator) {
        let initializer = Initializer.normal(standardDeviation: 0.02)
        gate = Linear(c.hiddenSize, c.intermediateSize, bias: c.mlpBias, weightInitializer: initializer, biasInitializer: .zeros, generator: &generator)
        up = Linear(c.hiddenSize, c.intermediateSize, bias: c.mlpBias, weightInitializer: initializer, biasInitializer: .zeros, generator: &generator)
        down = Linear(c.intermediateSize, c.hiddenSize, bias: c.mlpBias, weightInitializer: initializer, biasInitializer: .zeros, generator: &generator)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { down(gate(x).silu() * up(x)) }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        scoped("gate_proj", gate) + scoped("up_proj", up) + scoped("down_proj", down)
    }
    public var description: String { "LlamaMLP(\(gate.inputSize) → \(gate.outputSize))" }
}

/// One pre-norm decoder layer: x + attn(RMSNorm(x)), then h + MLP(RMSNorm(h)).
public final class LlamaDecoderLayer: Module {
    /// `input_layernorm`.
    public let inputNorm: RMSNorm
    /// `self_attn`.
    public let attention: LlamaAttention
    /// `post_attention_layernorm`.
    public let postAttentionNorm: RMSNorm
    /// `mlp` (SwiGLU).
    public let mlp: LlamaMLP

    init(_ c: LlamaConfiguration, generator: inout SeededGenerator) {
        inputNorm = RMSNorm(c.hiddenSize, epsilon: c.rmsNormEpsilon)
        attention = LlamaAttention(c, generator: &generator)
        postAttentionNorm = RMSNorm(c.hiddenSize, epsilon: c.rmsNormEpsilon)
        mlp = LlamaMLP(c, generator: &generator)
    }

    func callAsFunction(_ x: Tensor, rotary: (cos: Tensor, sin: Tensor), cachedKeys: inout Tensor?, cachedValues: inout Tensor?, causal: Bool,
                        needsWeights: Bool = true, weightRows: [Int]? = nil, keyBias: Tensor? = nil) -> (output: Tensor, weights: Tensor?) {
        let (attended, weights) = attention(inputNorm(x), rotary: rotary, cachedKeys: &cachedKeys, cachedValues: &cachedValues, causal: causal,
                                            needsWeights: needsWeights, weightRows: weightRows, keyBias: keyBias)
        let h = x + attended
        return (h + mlp(postAttentionNorm(h)), weights)
    }

    /// This layer's output at rows `rows[b]` of each sequence alone `[B, 1, hidden]` (see
    /// `LlamaAttention.selectedRows`): what a last layer computes when only those rows are read.
    func selectedRows(_ x: Tensor, rows: [Int], rotary: (cos: Tensor, sin: Tensor), rowRotary: (cos: Tensor, sin: Tensor), keyBias: Tensor? = nil) -> Tensor {
        let h = x.gatheringRows(rows) + attention.selectedRows(inputNorm(x), rows: rows, rotary: rotary, rowRotary: rowRotary, keyBias: keyBias)
        return h + mlp(postAttentionNorm(h))
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        scoped("input_layernorm", inputNorm) + scoped("self_attn", attention) + scoped("post_attention_layernorm", postAttentionNorm) + scoped("mlp", mlp)
    }
    public var description: String { "LlamaDecoderLayer(\(attention), \(mlp))" }
}

/// The LLaMA decoder without its head (transformers' `LlamaModel`): token embeddings, decoder
/// layers, final RMSNorm.
public final class LlamaModel: Module {
    /// The decoder's configuration.
    public let configuration: LlamaConfiguration
    /// `embed_tokens`.
    public let embedTokens: Embedding
    /// The decoder layers.
    public let layers: [LlamaDecoderLayer]
    /// The final RMSNorm.
    public let norm: RMSNorm

    /// A decoder with random weights.
    public init(_ c: LlamaConfiguration, generator: inout SeededGenerator) {
        configuration = c
        embedTokens = Embedding(c.vocabularySize, c.hiddenSize, initializer: .normal(standardDeviation: 0.02), generator: &generator)
        layers = (0..<c.layerCount).map { _ in LlamaDecoderLayer(c, generator: &generator) }
        norm = RMSNorm(c.hiddenSize, epsilon: c.rmsNormEpsilon)
    }

    /// Rotary tables for per-sequence positions `[B][T]` (or shared when there is one row).
    func rotary(positions: [[Int]]) -> (cos: Tensor, sin: Tensor) {
        let d = configuration.resolvedHeadDimension
        if positions.count == 1 {
            return Tensor.rotaryTables(positions: positions[0], dimension: d, base: configuration.ropeTheta)
        }
        let tables = positions.map { Tensor.rotaryTables(positions: $0, dimension: d, base: configuration.ropeTheta) }
        return (Tensor.stacked(tables.map(\.cos)), Tensor.stacked(tables.map(\.sin)))
    }

    /// Runs the layers on `embeddings` `[B, T, hidden]` at `positions` and returns the final-norm
    /// hidden states `[B, T, hidden]`.
    ///
    /// - Parameters:
    ///   - cache: extended with this call's keys and values when given.
    ///   - attentionLayer: also return that layer's attention probabilities `[B, heads, T, S]`.
    ///   - prune: FastV — after layer `layer` (0-based, its output), keep only the token indices
    ///     `select(attention of that layer [B, heads, T, S])[b]` of each sequence (the same count
    ///     for all), with their original positions. With `readsAttention` false, `select` gets nil
    ///     and the layer runs without writing its attention probabilities (a choice made before
    ///     the call).
    ///   - stopAfter: stop after that layer and return its output without the final norm.
    ///   - outputRows: return only row `outputRows[b]` of each sequence `[B, 1, hidden]` (the
    ///     answer position; indices before `prune`, which must keep them). The last layer then
    ///     computes keys and values for every token but queries, attention and MLP for those rows
    ///     alone — the same values, at about a quarter less of a 4-layer model's prefill — except
    ///     with a cache, or when the last layer's attention is asked for or pruned after (the
    ///     rows are then gathered from the full output).
    ///   - startLayer: `embeddings` is the output of layer `startLayer` − 1 (a state `stopAfter`
    ///     returned), and the layers before `startLayer` are skipped: continuing a pass.
    ///   - attentionRows: only row `attentionRows[b]` of each sequence's attention probabilities
    ///     is read (the last text token's, for FastV's score): the attention returned and the one
    ///     `prune` selects from are `[B, heads, 1, S]` — those rows alone, the layer's output through
    ///     the blocked kernel. Indices before `prune`, which must keep them.
    ///   - mergeDropped: `prune` does not drop the rows it leaves out but merges them, each
    ///     sequence's into one row (see `merging(_:keep:positions:)`), which the layers after it
    ///     attend to in proportion to how many rows it stands for. Every sequence must leave out
    ///     at least one row below its last kept one.
    ///   - keyBias: added to every score of each key, `[B, 1, 1, T]`: a merged row's log count,
    ///     when continuing (`startLayer`) from states merged by `merging(_:keep:positions:)`.
    public func forward(
        _ embeddings: Tensor, positions: [[Int]], cache: inout KeyValueCache?, causal: Bool = true,
        attentionLayer: Int? = nil, prune: (layer: Int, readsAttention: Bool, select: (Tensor?) -> [[Int]])? = nil, stopAfter: Int? = nil,
        outputRows: [Int]? = nil, attentionRows: [Int]? = nil, startLayer: Int = 0, mergeDropped: Bool = false, keyBias: Tensor? = nil
    ) -> (hidden: Tensor, attention: Tensor?) {
        var h = embeddings
        var positions = positions
        var table = rotary(positions: positions)
        var keyBias = keyBias
        var attention: Tensor?
        let lastIndex = layers.count - 1
        var outputRows = outputRows, attentionRows = cache == nil ? attentionRows : nil
        let rowsOnly = outputRows != nil && cache == nil && causal && attentionLayer != lastIndex && prune?.layer != lastIndex && (stopAfter ?? lastIndex) >= lastIndex
        for (index, layer) in layers.enumerated() where index >= startLayer {
            if rowsOnly, index == lastIndex, let rows = outputRows {
                let rowPositions = rows.indices.map { b in [positions[positions.count == 1 ? 0 : b][rows[b]]] }
                return (norm(layer.selectedRows(h, rows: rows, rotary: table, rowRotary: rotary(positions: rowPositions), keyBias: keyBias)), attention)
            }
            var keys = cache?.keys[index] ?? nil, values = cache?.values[index] ?? nil
            let (output, weights) = layer(h, rotary: table, cachedKeys: &keys, cachedValues: &values, causal: causal,
                                          needsWeights: index == attentionLayer || (prune?.layer == index && prune!.readsAttention),
                                          weightRows: attentionRows, keyBias: keyBias)
            if cache != nil {
                cache!.keys[index] = keys
                cache!.values[index] = values
            }
            if index == attentionLayer { attention = weights }
            h = output
            if index == stopAfter { return (outputRows.map { h.gatheringRows($0) } ?? h, attention) }
            if let prune, prune.layer == index {
                let batch = h.shape[0]
                var keep = prune.select(weights)
                if mergeDropped {
                    let merged = Self.merging(h, keep: keep, positions: positions)
                    (h, keep, keyBias) = (merged.states, merged.rows, merged.keyBias)
                    positions = merged.positions
                } else {
                    let rows = (0..<batch).map { b in h.sliced(alongAxis: 0, b..<(b + 1)).indexSelect(keep[b], alongAxis: 1) }
                    h = Tensor.concatenated(rows, alongAxis: 0)
                    positions = (0..<batch).map { b in keep[b].map { positions[positions.count == 1 ? 0 : b][$0] } }
                }
                func remapped(_ rows: [Int]) -> [Int] {
                    (0..<batch).map { b in
                        guard let row = keep[b].firstIndex(of: rows[b]) else { preconditionFailure("forward: pruning dropped row \(rows[b]) of sequence \(b)") }
                        return row
                    }
                }
                outputRows = outputRows.map(remapped)
                attentionRows = attentionRows.map(remapped)
                table = rotary(positions: positions)
            }
        }
        let output = norm(h)
        return (outputRows.map { output.gatheringRows($0) } ?? output, attention)
    }

    /// Each sequence of `states` `[B, T, hidden]` with the rows it keeps (`keep[b]`, ascending;
    /// a repeated last index pads a shorter sequence) and one row more: the mean of the rows
    /// below its last kept one that it leaves out, in place after the last of those, at the
    /// rounded mean of their positions. `keyBias` `[B, 1, 1, T′]` is log(count) at that row and 0
    /// elsewhere, so that a query's attention to it weighs as much as to `count` copies of it:
    /// the proportional attention of token merging (Bolya et al., ToMe, ICLR 2023), here standing
    /// in for what a pruner drops, as VisionZip's contextual tokens do (Yang et al., 2024).
    /// `rows[b]` lists each new row's old index, −1 for the merged one.
    public static func merging(_ states: Tensor, keep: [[Int]], positions: [[Int]])
        -> (states: Tensor, rows: [[Int]], positions: [[Int]], keyBias: Tensor) {
        let batch = states.shape[0]
        var sequences: [Tensor] = [], rows: [[Int]] = [], newPositions: [[Int]] = [], bias: [Float] = []
        for b in 0..<batch {
            let kept = keep[b]
            let keptSet = Set(kept)
            let dropped = (0..<(kept.max() ?? -1)).filter { !keptSet.contains($0) }
            precondition(!dropped.isEmpty, "LlamaModel.merging: sequence \(b) leaves out no row to merge")
            let own = positions[positions.count == 1 ? 0 : b]
            let sequence = states.sliced(alongAxis: 0, b..<(b + 1))
            let mean = sequence.indexSelect(dropped, alongAxis: 1).mean(alongAxis: 1).reshaped(to: [1, 1, -1])
            let after = dropped.last!
            let before = kept.filter { $0 < after }, later = kept.filter { $0 > after }
            var pieces: [Tensor] = []
            if !before.isEmpty { pieces.append(sequence.indexSelect(before, alongAxis: 1)) }
            pieces.append(mean)
            if !later.isEmpty { pieces.append(sequence.indexSelect(later, alongAxis: 1)) }
            sequences.append(Tensor.concatenated(pieces, alongAxis: 1))
            rows.append(before + [-1] + later)
            let meanPosition = Int((Double(dropped.reduce(0) { $0 + own[$1] }) / Double(dropped.count)).rounded())
            newPositions.append(before.map { own[$0] } + [meanPosition] + later.map { own[$0] })
            bias += before.map { _ in 0 } + [Float(Foundation.log(Double(dropped.count)))] + later.map { _ in 0 }
        }
        let length = rows[0].count
        precondition(rows.allSatisfy { $0.count == length }, "LlamaModel.merging: sequences of different lengths")
        return (Tensor.concatenated(sequences, alongAxis: 0), rows, newPositions, Tensor(shape: [batch, 1, 1, length], scalars: bias))
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        scoped("embed_tokens", embedTokens) + layers.enumerated().flatMap { scoped("layers.\($0.offset)", $0.element) } + scoped("norm", norm)
    }
    public var description: String { "LlamaModel(\(layers.count) layers, d \(configuration.hiddenSize), vocabulary \(configuration.vocabularySize))" }
}

extension Tensor {
    /// Row `rows[b]` of each sequence of `[B, T, D]`, as `[B, 1, D]`.
    func gatheringRows(_ rows: [Int]) -> Tensor {
        let (batch, length, width) = (shape[0], shape[1], shape[2])
        return reshaped(to: [batch * length, width]).indexSelect(rows.enumerated().map { $0.offset * length + $0.element }, alongAxis: 0)
            .reshaped(to: [batch, 1, width])
    }
}
