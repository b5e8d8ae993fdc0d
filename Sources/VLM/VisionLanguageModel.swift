import Foundation
import NN
import TensorCore

/// A question to answer from a subset of one image's visual tokens: the language model runs on
/// `[prefix, features[keep] (original order), suffix]` with positions 0..n−1 (as transformers does
/// for `inputs_embeds`), and the answer is read at the last suffix token.
public struct AnswerRequest {
    /// The image's visual tokens `[N, D]` (from `encode`).
    public var features: Tensor
    /// Indices of the kept tokens, ascending, each in 0..<N.
    public var keep: [Int]
    /// Token ids before the image.
    public var prefix: [Int]
    /// Token ids after the image; the last one's logits answer.
    public var suffix: [Int]

    /// A request for the answer to one prompt with some of its visual tokens.
    public init(features: Tensor, keep: [Int], prefix: [Int], suffix: [Int]) {
        self.features = features
        self.keep = keep
        self.prefix = prefix
        self.suffix = suffix
    }
}

/// What the language model holds after one of its layers, for one request: what a policy that
/// prunes inside the LLM (`answerLogits(_:prunedAfter:kept:)`) sees.
public struct LayerState: Sendable {
    /// Hidden states of the request's kept visual tokens after the layer, `[n, D]` row-major,
    /// aligned with the request's `keep`.
    public var visual: [Float]
    /// Hidden state of the last text token (where the answer is read) after the layer, `[D]`.
    public var last: [Float]
    /// The last text token's attention over the kept visual tokens in the layer, mean over heads
    /// (FastV's score), aligned with `keep`.
    public var attention: [Float]

    /// A layer state.
    public init(visual: [Float], last: [Float], attention: [Float]) {
        self.visual = visual
        self.last = last
        self.attention = attention
    }
}

extension VisionLanguageModel {
    /// `encode` and `classAttention`, one after the other.
    public func encodeWithClassAttention(_ images: Tensor) -> (tokens: Tensor, classAttention: Tensor) {
        (encode(images), classAttention(images))
    }

    /// Models that cannot stop inside the language model say so.
    public func layerStates(_ requests: [AnswerRequest], layer: Int) throws -> [LayerState] {
        throw VLMError.invalidInput(reason: "\(Self.self) cannot expose its language model's hidden states: pruning inside the LLM needs a model such as LlavaModel")
    }

    /// Models that cannot prune inside the language model say so.
    public func answerLogits(_ requests: [AnswerRequest], prunedAfter layer: Int, kept: [[Int]]) throws -> Tensor {
        throw VLMError.invalidInput(reason: "\(Self.self) cannot prune inside its language model: use a model such as LlavaModel")
    }

    /// Models that cannot merge pruned tokens inside the language model say so.
    public func answerLogits(_ requests: [AnswerRequest], prunedAfter layer: Int, mergingRestOf kept: [[Int]]) throws -> Tensor {
        throw VLMError.invalidInput(reason: "\(Self.self) cannot merge the tokens it prunes inside its language model: use a model such as LlavaModel")
    }

    /// Models that cannot merge pruned tokens say so.
    public func answerLogits(_ requests: [AnswerRequest], mergingRestOf kept: [[Int]]) throws -> Tensor {
        throw VLMError.invalidInput(reason: "\(Self.self) cannot merge the tokens it prunes: use a model such as LlavaModel")
    }

    /// FastV without merging; models that cannot merge pruned tokens say so.
    public func fastVAnswerLogits(_ requests: [AnswerRequest], layer: Int, keptAfter: Int, mergingRest: Bool) throws -> Tensor {
        guard mergingRest else { return try fastVAnswerLogits(requests, layer: layer, keptAfter: keptAfter) }
        throw VLMError.invalidInput(reason: "\(Self.self) cannot merge the tokens it prunes inside its language model: use a model such as LlavaModel")
    }

    /// `answerLogits(_:prunedAfter:kept:)`, then every request whose answer `standing` rejects
    /// answered again from scratch over all of its `keep` tokens (`answerLogits(_:)`): the
    /// cascade of a model that cannot continue a pass (`continuationFLOPs` counts a full one).
    public func answerLogits(_ requests: [AnswerRequest], prunedAfter layer: Int, kept: [[Int]],
                             standing: ([Float]) -> Bool) throws -> (logits: [[Float]], again: [Int]) {
        try answeringAgain(try answerLogits(requests, prunedAfter: layer, kept: kept).scalarRows(), requests, standing: standing)
    }

    /// `rows` with each one `standing` rejects answered again from scratch over all of its
    /// request's `keep` tokens, and the indices answered again.
    func answeringAgain(_ rows: [[Float]], _ requests: [AnswerRequest], standing: ([Float]) -> Bool) throws -> (logits: [[Float]], again: [Int]) {
        var rows = rows
        let again = rows.indices.filter { !standing(rows[$0]) }
        if !again.isEmpty {
            for (r, row) in zip(again, try answerLogits(again.map { requests[$0] }).scalarRows()) { rows[r] = row }
        }
        return (rows, again)
    }

    /// `fastVAnswerLogits(_:layer:keptAfter:)`, then every request whose answer `standing` rejects
    /// answered again from scratch over all of its `keep` tokens: FastV's cascade for a model that
    /// cannot continue a pass.
    public func fastVAnswerLogits(_ requests: [AnswerRequest], layer: Int, keptAfter: Int,
                                  standing: ([Float]) -> Bool) throws -> (logits: [[Float]], again: [Int]) {
        try answeringAgain(try fastVAnswerLogits(requests, layer: layer, keptAfter: keptAfter).scalarRows(), requests, standing: standing)
    }

    /// A full prefill and head: what the default cascade's second answer costs.
    public func continuationFLOPs(visualTokens: Int, textTokens: Int, afterLayer layer: Int) -> Double {
        let count = flops(visualTokens: visualTokens, textTokens: textTokens)
        return count.prefill + count.head
    }

    /// Models that do not expose their weights cannot say.
    public var weightDigest: String? { nil }

    /// Models without a differentiable forward pass cannot say.
    public func answerSaliency(_ requests: [AnswerRequest], answers: [Int]) throws -> [[Float]] {
        throw VLMError.invalidInput(reason: "\(Self.self) has no gradients: answer saliency needs a differentiable model such as LlavaModel")
    }
}

/// The simulator backend of the token-pruning environment: encodes an image to visual tokens once
/// and answers questions from any subset of them, many requests per call.
public protocol VisionLanguageModel: AnyObject {
    /// Visual tokens per image.
    var visualTokenCount: Int { get }
    /// Side of the (square) patch grid the tokens come from, row-major.
    var gridSize: Int { get }
    /// Width of a visual token (the LLM's hidden size).
    var tokenWidth: Int { get }
    /// Vocabulary size of the answer logits.
    var vocabularySize: Int { get }
    /// Visual tokens of images `[B, C, H, W]` → `[B, N, D]`.
    func encode(_ images: Tensor) -> Tensor
    /// The class token's attention over the patch tokens in the vision layer whose output is
    /// selected: `[B, N]` (VisionZip / HiRED / VisPruner scores).
    func classAttention(_ images: Tensor) -> Tensor
    /// `encode` and `classAttention` of the same images together (by default the two calls; a
    /// model can share the work of both).
    func encodeWithClassAttention(_ images: Tensor) -> (tokens: Tensor, classAttention: Tensor)
    /// Answer logits `[R, V]`, one row per request.
    func answerLogits(_ requests: [AnswerRequest]) throws -> Tensor
    /// The last text token's attention over the kept visual tokens at LLM layer `layer`, averaged
    /// over heads: one array per request, aligned with `keep` (FastV's score).
    func lastTokenAttention(_ requests: [AnswerRequest], layer: Int) throws -> [[Float]]
    /// Answer logits when the LLM keeps only the `keptAfter` visual tokens with the highest
    /// last-token attention after layer `layer` (FastV), one row per request.
    func fastVAnswerLogits(_ requests: [AnswerRequest], layer: Int, keptAfter: Int) throws -> Tensor
    /// The language model's state after layer `layer` (0-based) for each request, reading its
    /// `keep` tokens: the visual tokens' and the last text token's hidden states and FastV's score.
    func layerStates(_ requests: [AnswerRequest], layer: Int) throws -> [LayerState]
    /// Answer logits when the language model reads each request's `keep` tokens up to layer
    /// `layer` and only `kept[r]` (visual token indices, ascending, a subset of `requests[r].keep`)
    /// after it, with their original positions: FastV's mechanism with the choice made elsewhere.
    func answerLogits(_ requests: [AnswerRequest], prunedAfter layer: Int, kept: [[Int]]) throws -> Tensor
    /// `answerLogits(_:prunedAfter:kept:)` where the visual tokens each request leaves out after
    /// layer `layer` are not dropped but merged into one token, their mean, which the layers after
    /// it attend to in proportion to how many it stands for (`LlamaModel.merging`): `kept[r]`
    /// plus one token are read after the cut. Each request must leave out at least one token.
    func answerLogits(_ requests: [AnswerRequest], prunedAfter layer: Int, mergingRestOf kept: [[Int]]) throws -> Tensor
    /// `answerLogits(_:)` over `kept[r]` (visual token indices, ascending, a subset of
    /// `requests[r].keep`) and one token more: the mean of the other tokens of `keep`, placed after
    /// the last of them and attended in proportion to how many it stands for, positions
    /// renumbered 0… as before the language model (`LlamaModel.merging`). Each request must leave
    /// out at least one token.
    func answerLogits(_ requests: [AnswerRequest], mergingRestOf kept: [[Int]]) throws -> Tensor
    /// `fastVAnswerLogits(_:layer:keptAfter:)` with the tokens FastV leaves out merged into one,
    /// as `answerLogits(_:prunedAfter:mergingRestOf:)` merges them.
    func fastVAnswerLogits(_ requests: [AnswerRequest], layer: Int, keptAfter: Int, mergingRest: Bool) throws -> Tensor
    /// A cascade inside the language model: `answerLogits(_:prunedAfter:kept:)`, and each request
    /// whose logits `standing` rejects answered again from every token of its `keep`, returning
    /// all the logits and the indices answered again. A model that can continues the same pass
    /// from its states after layer `layer` (LlavaModel: layers `layer` + 1… over all tokens); the
    /// default answers again from scratch.
    func answerLogits(_ requests: [AnswerRequest], prunedAfter layer: Int, kept: [[Int]],
                      standing: ([Float]) -> Bool) throws -> (logits: [[Float]], again: [Int])
    /// FastV as a cascade: `fastVAnswerLogits(_:layer:keptAfter:)`, and each request whose logits
    /// `standing` rejects answered again from every token of its `keep`, as
    /// `answerLogits(_:prunedAfter:kept:standing:)` does (LlavaModel continues the same pass; the
    /// default answers again from scratch).
    func fastVAnswerLogits(_ requests: [AnswerRequest], layer: Int, keptAfter: Int,
                           standing: ([Float]) -> Bool) throws -> (logits: [[Float]], again: [Int])
    /// FLOPs of a cascade's second answer after layer `layer` (see `answerLogits(_:prunedAfter:kept:standing:)`):
    /// the layers after `layer` over every token and the head, or a full pass by default.
    func continuationFLOPs(visualTokens: Int, textTokens: Int, afterLayer layer: Int) -> Double
    /// Token embeddings of `ids`: `[T, D]` (the query the policy sees).
    func textEmbeddings(_ ids: [Int]) -> Tensor
    /// A fingerprint of the model's weights (`Module.parameterDigest`), recorded with what is
    /// trained on the model (a TPRL policy's `tprl.json`) so that it is not used on another one
    /// unknowingly; nil (the default) for a model that cannot say.
    var weightDigest: String? { get }
    /// FLOPs of answering with `visualTokens` visual and `textTokens` text tokens (see `FLOPCount`).
    func flops(visualTokens: Int, textTokens: Int) -> FLOPCount
    /// Total FLOPs of answering when FastV keeps `keptAfter` visual tokens after LLM layer `layer`.
    func fastVFLOPs(visualTokens: Int, textTokens: Int, layer: Int, keptAfter: Int) -> Double
    /// Gradient × input of log p(`answers[r]`) with respect to each kept visual token's embedding:
    /// one array per request, aligned with `keep` (how much the right answer leans on each token,
    /// to first order). Models without gradients throw.
    func answerSaliency(_ requests: [AnswerRequest], answers: [Int]) throws -> [[Float]]
}

extension LlavaModel: VisionLanguageModel {
    public var visualTokenCount: Int { configuration.imageTokenCount }
    public var gridSize: Int { configuration.vision.gridSize }
    public var tokenWidth: Int { configuration.text.hiddenSize }
    public var vocabularySize: Int { configuration.text.vocabularySize }
    /// `Module.parameterDigest`: every weight, by name, shape and bits.
    public var weightDigest: String? { parameterDigest }

    public func encode(_ images: Tensor) -> Tensor { imageFeatures(images) }

    public func classAttention(_ images: Tensor) -> Tensor {
        visionTower.classAttention(images, layer: classAttentionLayer)
    }

    /// Both from one pass through the vision tower, the same values as the two calls: the layers
    /// before the class attention's run once instead of twice.
    public func encodeWithClassAttention(_ images: Tensor) -> (tokens: Tensor, classAttention: Tensor) {
        let layer = classAttentionLayer
        let states = visionTower.hiddenStates(images, upTo: Swift.max(featureLayerIndex, layer))
        return (projector(selectedFeatures(states[featureLayerIndex])), visionTower.classAttention(layer: layer, input: states[layer]))
    }

    public func textEmbeddings(_ ids: [Int]) -> Tensor {
        languageModel.embedTokens(ids, shape: [ids.count])
    }

    public func flops(visualTokens: Int, textTokens: Int) -> FLOPCount {
        configuration.flops(visualTokens: visualTokens, textTokens: textTokens)
    }

    public func fastVFLOPs(visualTokens: Int, textTokens: Int, layer: Int, keptAfter: Int) -> Double {
        var count = configuration.flops(visualTokens: visualTokens, textTokens: textTokens)
        count.prefill = configuration.fastVPrefillFLOPs(visualTokens: visualTokens, textTokens: textTokens, layer: layer, keptAfter: keptAfter)
        return count.total
    }

    /// Right-padded embeddings of the requests `[R, L, D]`, each sequence's last index and where
    /// its visual tokens start.
    public func requestBatch(_ requests: [AnswerRequest]) throws -> (embeddings: Tensor, last: [Int], visualStart: [Int]) {
        guard !requests.isEmpty else { throw VLMError.invalidInput(reason: "no requests") }
        let width = configuration.text.hiddenSize
        let lengths = requests.map { $0.prefix.count + $0.keep.count + $0.suffix.count }
        let length = lengths.max()!
        var rows: [Tensor] = []
        for (request, rowLength) in zip(requests, lengths) {
            let n = request.features.shape[0]
            guard request.features.rank == 2, request.features.shape[1] == width else {
                throw VLMError.invalidInput(reason: "request features must be [N, \(width)], got \(request.features.shape)")
            }
            guard !request.suffix.isEmpty else { throw VLMError.invalidInput(reason: "a request needs a non-empty suffix (the question)") }
            if let bad = request.keep.first(where: { $0 < 0 || $0 >= n }) { throw VLMError.invalidInput(reason: "keep index \(bad) outside 0..<\(n)") }
            if zip(request.keep, request.keep.dropFirst()).contains(where: { $0 >= $1 }) { throw VLMError.invalidInput(reason: "keep indices must be strictly ascending") }
            let vocabulary = configuration.text.vocabularySize
            if let bad = (request.prefix + request.suffix).first(where: { $0 < 0 || $0 >= vocabulary }) {
                throw VLMError.invalidInput(reason: "token id \(bad) outside the vocabulary 0..<\(vocabulary)")
            }
            var pieces: [Tensor] = []
            if !request.prefix.isEmpty { pieces.append(languageModel.embedTokens(request.prefix, shape: [request.prefix.count])) }
            if !request.keep.isEmpty { pieces.append(request.features.indexSelect(request.keep, alongAxis: 0)) }
            pieces.append(languageModel.embedTokens(request.suffix, shape: [request.suffix.count]))
            if rowLength < length { pieces.append(Tensor.zeros([length - rowLength, width])) }
            rows.append(Tensor.concatenated(pieces, alongAxis: 0))
        }
        return (Tensor.stacked(rows), lengths.map { $0 - 1 }, requests.map(\.prefix.count))
    }

    /// Row `last[b]` of each sequence of `hidden` `[B, T, D]`, as `[B, D]`.
    func gatherLast(_ hidden: Tensor, _ last: [Int]) -> Tensor {
        hidden.gatheringRows(last).reshaped(to: [last.count, hidden.shape[2]])
    }

    public func answerLogits(_ requests: [AnswerRequest]) throws -> Tensor {
        let (embedded, last, _) = try requestBatch(requests)
        var cache: KeyValueCache? = nil
        let hidden = languageModel.forward(embedded, positions: [Array(0..<embedded.shape[1])], cache: &cache, outputRows: last).hidden
        return logits(hidden.reshaped(to: [requests.count, -1]))
    }

    /// Gradient × input of each request's `answers` log-probability with respect to each kept visual
    /// token (one forward and one backward pass of the language model for the whole batch).
    public func answerSaliency(_ requests: [AnswerRequest], answers: [Int]) throws -> [[Float]] {
        guard answers.count == requests.count else { throw VLMError.invalidInput(reason: "\(answers.count) answers for \(requests.count) requests") }
        let vocabulary = configuration.text.vocabularySize
        if let bad = answers.first(where: { $0 < 0 || $0 >= vocabulary }) { throw VLMError.invalidInput(reason: "answer id \(bad) outside 0..<\(vocabulary)") }
        return try GradientTape.$isRecording.withValue(true) {
            let (embedded, last, starts) = try requestBatch(requests)
            let input = Parameter(embedded.detached())
            var cache: KeyValueCache? = nil
            let hidden = languageModel.forward(input.tensor, positions: [Array(0..<embedded.shape[1])], cache: &cache).hidden
            let logProbabilities = logits(gatherLast(hidden, last)).logSoftmax(alongAxis: -1)
            var pick = [Float](repeating: 0, count: requests.count * vocabulary)
            for (r, answer) in answers.enumerated() { pick[r * vocabulary + answer] = 1 }
            (logProbabilities * Tensor(shape: [requests.count, vocabulary], scalars: pick)).sum().backward()
            defer { for parameter in parameters { parameter.zeroGradient() } }
            guard let gradient = input.gradient?.scalars else { throw VLMError.invalidInput(reason: "no gradient reached the inputs") }
            let values = embedded.scalars, (length, width) = (embedded.shape[1], embedded.shape[2])
            return requests.enumerated().map { r, request in
                (0..<request.keep.count).map { k in
                    let base = (r * length + starts[r] + k) * width
                    var sum: Float = 0
                    for d in 0..<width { sum += gradient[base + d] * values[base + d] }
                    return sum
                }
            }
        }
    }

    /// FastV's score is part of the state after the layer (`layerStates`).
    public func lastTokenAttention(_ requests: [AnswerRequest], layer: Int) throws -> [[Float]] {
        try layerStates(requests, layer: layer).map(\.attention)
    }

    /// Mean over heads of the one-row attention `weights` `[B, heads, 1, S]`
    /// (`forward(attentionRows:)`'s) over each sequence's visual tokens `starts[b] ..< starts[b] + counts[b]`.
    static func lastRowAttention(_ weights: Tensor, starts: [Int], counts: [Int]) -> [[Float]] {
        precondition(weights.shape[2] == 1, "lastRowAttention: one query row per sequence expected, got \(weights.shape)")
        let (heads, s) = (weights.shape[1], weights.shape[3])
        let values = weights.scalars
        return starts.indices.map { b in
            (0..<counts[b]).map { k in
                var sum: Float = 0
                for h in 0..<heads { sum += values[(b * heads + h) * s + starts[b] + k] }
                return sum / Float(heads)
            }
        }
    }

    public func fastVAnswerLogits(_ requests: [AnswerRequest], layer: Int, keptAfter: Int) throws -> Tensor {
        try prunedAnswer(requests, layer: layer, choose: Self.fastVChoice(keptAfter: keptAfter))
    }

    public func answerLogits(_ requests: [AnswerRequest], prunedAfter layer: Int, kept: [[Int]]) throws -> Tensor {
        let slots = try keptSlots(requests, kept)
        return try prunedAnswer(requests, layer: layer, readsAttention: false) { _, _, _ in slots }
    }

    public func answerLogits(_ requests: [AnswerRequest], prunedAfter layer: Int, mergingRestOf kept: [[Int]]) throws -> Tensor {
        let slots = try keptSlots(requests, kept)
        if let r = requests.indices.first(where: { slots[$0].count >= requests[$0].keep.count }) {
            throw VLMError.invalidInput(reason: "request \(r) keeps all \(requests[r].keep.count) of its visual tokens: there is nothing to merge")
        }
        return try prunedAnswer(requests, layer: layer, readsAttention: false, merging: true) { _, _, _ in slots }
    }

    public func answerLogits(_ requests: [AnswerRequest], mergingRestOf kept: [[Int]]) throws -> Tensor {
        let slots = try keptSlots(requests, kept)
        if let r = requests.indices.first(where: { slots[$0].count >= requests[$0].keep.count }) {
            throw VLMError.invalidInput(reason: "request \(r) keeps all \(requests[r].keep.count) of its visual tokens: there is nothing to merge")
        }
        let (embedded, last, starts) = try requestBatch(requests)
        let rows = Self.keptRows(slots, starts: starts, counts: requests.map(\.keep.count), last: last)
        let merged = LlamaModel.merging(embedded, keep: rows, positions: [Array(0..<embedded.shape[1])])
        let length = merged.rows[0].count
        var cache: KeyValueCache? = nil
        let hidden = languageModel.forward(merged.states, positions: [Array(0..<length)], cache: &cache,
                                           outputRows: last.indices.map { merged.rows[$0].firstIndex(of: last[$0])! }, keyBias: merged.keyBias).hidden
        return logits(hidden.reshaped(to: [requests.count, -1]))
    }

    public func fastVAnswerLogits(_ requests: [AnswerRequest], layer: Int, keptAfter: Int, mergingRest: Bool) throws -> Tensor {
        guard mergingRest else { return try fastVAnswerLogits(requests, layer: layer, keptAfter: keptAfter) }
        if let r = requests.indices.first(where: { keptAfter >= requests[$0].keep.count }) {
            throw VLMError.invalidInput(reason: "FastV keeps \(keptAfter) of request \(r)'s \(requests[r].keep.count) visual tokens: there is nothing to merge")
        }
        return try prunedAnswer(requests, layer: layer, merging: true, choose: Self.fastVChoice(keptAfter: keptAfter))
    }

    /// The cascade continuing one pass: layers 0…`layer` over every token once, then the layers
    /// after it over the kept tokens (the same logits as `answerLogits(_:prunedAfter:kept:)`) and,
    /// for the requests `standing` rejects, over every token from the same states.
    public func answerLogits(_ requests: [AnswerRequest], prunedAfter layer: Int, kept: [[Int]],
                             standing: ([Float]) -> Bool) throws -> (logits: [[Float]], again: [Int]) {
        let slots = try keptSlots(requests, kept)
        return try cascade(requests, layer: layer, readsAttention: false, standing: standing) { _, _, _ in slots }
    }

    /// FastV's cascade continuing one pass: layers 0…`layer` over every token once, FastV's choice
    /// from that layer's last-token attention, the layers after it over the kept tokens (the same
    /// logits as `fastVAnswerLogits(_:layer:keptAfter:)`) and, for the requests `standing`
    /// rejects, over every token from the same states.
    public func fastVAnswerLogits(_ requests: [AnswerRequest], layer: Int, keptAfter: Int,
                                  standing: ([Float]) -> Bool) throws -> (logits: [[Float]], again: [Int]) {
        try cascade(requests, layer: layer, readsAttention: true, standing: standing, choose: Self.fastVChoice(keptAfter: keptAfter))
    }

    /// FastV's choice as a cut's `choose`: from the last text token's attention in the cut layer
    /// (`[B, heads, 1, S]`), the `keptAfter` highest-scoring slots of each request, ascending.
    static func fastVChoice(keptAfter: Int) -> (Tensor?, [Int], [Int]) -> [[Int]] {
        { weights, starts, counts in
            lastRowAttention(weights!, starts: starts, counts: counts).map { largestIndices($0, count: keptAfter) }
        }
    }

    /// The cascades' one pass: layers 0…`layer` over every token (with the last text token's
    /// attention in `layer` when `readsAttention`), the kept slots `choose` returns from it, the
    /// layers after `layer` over them, and over every token for the requests `standing` rejects.
    /// No requests, no answers; a layer outside the model throws.
    func cascade(_ requests: [AnswerRequest], layer: Int, readsAttention: Bool, standing: ([Float]) -> Bool,
                 choose: (Tensor?, [Int], [Int]) -> [[Int]]) throws -> (logits: [[Float]], again: [Int]) {
        guard layer >= 0 && layer < languageModel.layers.count else { throw VLMError.invalidInput(reason: "LLM layer \(layer) outside 0..<\(languageModel.layers.count)") }
        guard !requests.isEmpty else { return ([], []) }
        let (embedded, last, starts) = try requestBatch(requests)
        let length = embedded.shape[1]
        let counts = requests.map(\.keep.count)
        var cache: KeyValueCache? = nil
        let (states, weights) = readsAttention
            ? languageModel.forward(embedded, positions: [Array(0..<length)], cache: &cache, attentionLayer: layer, stopAfter: layer, attentionRows: last)
            : (languageModel.forward(embedded, positions: [Array(0..<length)], cache: &cache, stopAfter: layer).hidden, nil)
        func sequence(_ b: Int) -> Tensor { states.sliced(alongAxis: 0, b..<(b + 1)) }
        let keep = Self.keptRows(choose(weights, starts, counts), starts: starts, counts: counts, last: last)
        let pruned = Tensor.concatenated(requests.indices.map { sequence($0).indexSelect(keep[$0], alongAxis: 1) }, alongAxis: 0)
        let hidden = languageModel.forward(pruned, positions: keep, cache: &cache, outputRows: requests.indices.map { keep[$0].firstIndex(of: last[$0])! },
                                           startLayer: layer + 1).hidden
        var rows = logits(hidden.reshaped(to: [requests.count, -1])).scalarRows()
        let again = rows.indices.filter { !standing(rows[$0]) }
        guard !again.isEmpty else { return (rows, again) }
        // Answered again: the same states over every token, trimmed to the longest of these sequences.
        let span = again.map { last[$0] + 1 }.max()!
        let full = Tensor.concatenated(again.map { sequence($0).sliced(alongAxis: 1, 0..<span) }, alongAxis: 0)
        let fullHidden = languageModel.forward(full, positions: [Array(0..<span)], cache: &cache, outputRows: again.map { last[$0] },
                                               startLayer: layer + 1).hidden
        for (r, row) in zip(again, logits(fullHidden.reshaped(to: [again.count, -1])).scalarRows()) { rows[r] = row }
        return (rows, again)
    }

    /// The layers after `layer` over every token, and the head.
    public func continuationFLOPs(visualTokens: Int, textTokens: Int, afterLayer layer: Int) -> Double {
        configuration.continuationFLOPs(visualTokens: visualTokens, textTokens: textTokens, afterLayer: layer)
    }

    /// Kept token indices → positions within each request's `keep`.
    func keptSlots(_ requests: [AnswerRequest], _ kept: [[Int]]) throws -> [[Int]] {
        guard kept.count == requests.count else { throw VLMError.invalidInput(reason: "\(kept.count) kept sets for \(requests.count) requests") }
        return try zip(requests, kept).map { request, kept -> [Int] in
            var slot: [Int: Int] = [:]
            for (k, token) in request.keep.enumerated() { slot[token] = k }
            if zip(kept, kept.dropFirst()).contains(where: { $0 >= $1 }) { throw VLMError.invalidInput(reason: "kept indices must be strictly ascending") }
            return try kept.map { token in
                guard let k = slot[token] else { throw VLMError.invalidInput(reason: "kept token \(token) is not among the request's keep indices (what the layers before the cut read)") }
                return k
            }
        }
    }

    /// Runs layers 0…`layer` only (the rest is not needed for the states).
    public func layerStates(_ requests: [AnswerRequest], layer: Int) throws -> [LayerState] {
        guard layer >= 0 && layer < languageModel.layers.count else { throw VLMError.invalidInput(reason: "LLM layer \(layer) outside 0..<\(languageModel.layers.count)") }
        let (embedded, last, starts) = try requestBatch(requests)
        let length = embedded.shape[1], width = configuration.text.hiddenSize
        var cache: KeyValueCache? = nil
        let (hidden, weights) = languageModel.forward(embedded, positions: [Array(0..<length)], cache: &cache, attentionLayer: layer, stopAfter: layer,
                                                      attentionRows: last)
        let attention = Self.lastRowAttention(weights!, starts: starts, counts: requests.map(\.keep.count))
        let values = hidden.scalars
        return requests.indices.map { b in
            let visual = Array(values[((b * length + starts[b]) * width)..<((b * length + starts[b] + requests[b].keep.count) * width)])
            let lastRow = Array(values[((b * length + last[b]) * width)..<((b * length + last[b] + 1) * width)])
            return LayerState(visual: visual, last: lastRow, attention: attention[b])
        }
    }

    /// One sequence's rows after a cut: its text before the visual tokens (rows 0..<`start`), the
    /// chosen visual tokens (positions within its `count`), and its text after them up to `last`.
    static func keptRows(_ chosen: [Int], start: Int, count: Int, last: Int) -> [Int] {
        Array(0..<start) + chosen.map { start + $0 } + Array((start + count)...last)
    }

    /// The sequence rows each request keeps after a cut: the `chosen` visual tokens (positions
    /// within its `keep`, ascending, in original order), all text tokens up to its answer position
    /// `last`, and every row padded to the same count by repeating its last index (padding sits
    /// after the answer position, so causality keeps it out of the answer).
    static func keptRows(_ chosen: [[Int]], starts: [Int], counts: [Int], last: [Int]) -> [[Int]] {
        let rows = chosen.indices.map { b in keptRows(chosen[b], start: starts[b], count: counts[b], last: last[b]) }
        let width = rows.map(\.count).max()!
        return rows.map { $0 + Array(repeating: $0.last!, count: width - $0.count) }
    }

    /// Answer logits when, after layer `layer`, each request keeps the visual tokens `choose`
    /// returns (positions within its `keep`, ascending) from the last text token's row of that
    /// layer's attention `[B, heads, 1, S]` (nil unless `readsAttention`: a choice made beforehand
    /// does not pay for it), each request's visual start and visual count; text tokens are all kept.
    func prunedAnswer(_ requests: [AnswerRequest], layer: Int, readsAttention: Bool = true, merging: Bool = false,
                      choose: (Tensor?, [Int], [Int]) -> [[Int]]) throws -> Tensor {
        guard layer >= 0 && layer < languageModel.layers.count else { throw VLMError.invalidInput(reason: "LLM layer \(layer) outside 0..<\(languageModel.layers.count)") }
        let (embedded, last, starts) = try requestBatch(requests)
        let counts = requests.map(\.keep.count)
        let length = embedded.shape[1]
        var cache: KeyValueCache? = nil
        let hidden = withoutActuallyEscaping(choose) { choose in languageModel.forward(
            embedded, positions: [Array(0..<length)], cache: &cache,
            prune: (layer: layer, readsAttention: readsAttention, select: { weights in
                Self.keptRows(choose(weights, starts, counts), starts: starts, counts: counts, last: last)
            }), outputRows: last, attentionRows: readsAttention ? last : nil, mergeDropped: merging) }
        return logits(hidden.hidden.reshaped(to: [requests.count, -1]))
    }
}
