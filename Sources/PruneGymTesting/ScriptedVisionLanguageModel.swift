import Foundation
import TensorCore
import TokenPruning
import VLM

/// A scripted `VisionLanguageModel` for fast token-pruning tests: no weights, answers in
/// microseconds, and an answer rule you can reason about.
///
/// - 16 visual tokens on a 4×4 grid, width 8, a vocabulary of 6 (token 0 = "wrong").
/// - Task i's prefix is `[key token]` and its suffix `[answer id]` (see `ScriptedTasks`): the model
///   answers right (logit 4 on the answer, 0 elsewhere) exactly when the key token is among the
///   kept tokens, and otherwise puts logit 4 on token 0.
/// - Class attention prefers low token indices; the last text token attends only to the key token.
/// - FLOPs: 1000 (vision) + 100 (projector) + 50 per prefill token + 10 (head); pruning after
///   layer K adds 50 per dropped token per layer up to the cut.
/// - After any LLM layer (`layerStates`) the visual tokens are their features, the last text
///   token its embedding, and the attention `lastTokenAttention`'s.
///
/// `answerCalls` counts calls to `answerLogits`, so tests can check batching and caching.
public final class ScriptedVisionLanguageModel: VisionLanguageModel {
    public let visualTokenCount = 16
    public let gridSize = 4
    public let tokenWidth = 8
    public let vocabularySize = 6
    /// Calls to `answerLogits` so far.
    public private(set) var answerCalls = 0
    /// The weight digest the model reports (nil by default, as a model without weights): set it
    /// to test what checks which model something was trained on (`tprl.json`'s `model_digest`).
    public var weightDigest: String?

    /// A scripted model.
    public init() {}

    public func encode(_ images: Tensor) -> Tensor {
        // Token j of image b: its first pixel value plus a one-hot of j mod 8.
        let batch = images.shape[0], pixels = images.scalars, stride = images.count / batch
        var values = [Float](repeating: 0, count: batch * 16 * 8)
        for b in 0..<batch {
            for j in 0..<16 {
                values[(b * 16 + j) * 8 + j % 8] = 1
                values[(b * 16 + j) * 8] += pixels[b * stride]
            }
        }
        return Tensor(shape: [batch, 16, 8], scalars: values)
    }

    public func classAttention(_ images: Tensor) -> Tensor {
        let batch = images.shape[0]
        let row = (0..<16).map { Float(16 - $0) / 136 }
        return Tensor(shape: [batch, 16], scalars: Array((0..<batch).map { _ in row }.joined()))
    }

    public func answerLogits(_ requests: [AnswerRequest]) throws -> Tensor {
        answerCalls += 1
        var values = [Float](repeating: 0, count: requests.count * vocabularySize)
        for (r, request) in requests.enumerated() {
            let right = request.keep.contains(request.prefix[0])
            values[r * vocabularySize + (right ? request.suffix[0] : 0)] = 4
        }
        return Tensor(shape: [requests.count, vocabularySize], scalars: values)
    }

    public func lastTokenAttention(_ requests: [AnswerRequest], layer: Int) throws -> [[Float]] {
        requests.map { request in request.keep.map { $0 == request.prefix[0] ? 1 : 0 } }
    }

    public func fastVAnswerLogits(_ requests: [AnswerRequest], layer: Int, keptAfter: Int) throws -> Tensor {
        try answerLogits(requests.map { AnswerRequest(features: $0.features, keep: keptAfter > 0 ? $0.keep : [], prefix: $0.prefix, suffix: $0.suffix) })
    }

    /// After any layer: the visual tokens' features themselves, the last text token's embedding,
    /// and `lastTokenAttention`'s scores.
    public func layerStates(_ requests: [AnswerRequest], layer: Int) throws -> [LayerState] {
        let scores = try lastTokenAttention(requests, layer: layer)
        return zip(requests, scores).map { request, scores in
            let features = request.features.scalars
            return LayerState(visual: request.keep.flatMap { k in features[(k * 8)..<((k + 1) * 8)] },
                              last: textEmbeddings([request.suffix.last!]).scalars, attention: scores)
        }
    }

    /// Answers as if only `kept` had been read (the answer rule only asks whether the key token is kept).
    public func answerLogits(_ requests: [AnswerRequest], prunedAfter layer: Int, kept: [[Int]]) throws -> Tensor {
        try answerLogits(zip(requests, kept).map { AnswerRequest(features: $0.features, keep: $1, prefix: $0.prefix, suffix: $0.suffix) })
    }

    /// 1 on the key token (the only one the answer depends on), 0 elsewhere.
    public func answerSaliency(_ requests: [AnswerRequest], answers: [Int]) throws -> [[Float]] {
        requests.map { request in request.keep.map { $0 == request.prefix[0] ? 1 : 0 } }
    }

    public func textEmbeddings(_ ids: [Int]) -> Tensor {
        Tensor(shape: [ids.count, 8], scalars: ids.flatMap { id in (0..<8).map { $0 == id % 8 ? Float(1) : 0 } })
    }

    public func flops(visualTokens: Int, textTokens: Int) -> FLOPCount {
        FLOPCount(vision: 1000, projector: 100, prefill: Double(visualTokens + textTokens) * 50, head: 10)
    }

    /// The kept tokens' prefill, plus 50 per dropped token for each layer up to the cut (K + 1).
    public func fastVFLOPs(visualTokens: Int, textTokens: Int, layer: Int, keptAfter: Int) -> Double {
        flops(visualTokens: keptAfter, textTokens: textTokens).total + Double((layer + 1) * (visualTokens - keptAfter)) * 50
    }

    /// A simulator over this model and `ScriptedTasks`, with the identity encoder.
    public static func simulator() -> (simulator: PruningSimulator, model: ScriptedVisionLanguageModel) {
        let model = ScriptedVisionLanguageModel()
        return (PruningSimulator(model: model, source: ScriptedTasks(), encoder: IdentityTokenEncoder(width: 8)), model)
    }
}

/// The tasks `ScriptedVisionLanguageModel` answers: task i (offset by 500 on validation and 1000
/// on test) has key token i mod 16 (also its grounding annotation), answer 1 + i mod 5, family
/// "even"/"odd" by i's parity, and an image whose pixels are all (i mod 100)/100.
public struct ScriptedTasks: PruningTaskSource {
    /// The scripted tasks.
    public init() {}

    public func task(_ index: Int, split: String) -> PruningTask {
        let offset = split == "test" ? 1000 : split == "validation" ? 500 : 0
        let i = index + offset
        return PruningTask(pixels: [Float](repeating: Float(i % 100) / 100, count: 3 * 4 * 4), imageSize: 4, prefix: [i % 16],
                           suffix: [1 + i % 5], answer: 1 + i % 5, family: i % 2 == 0 ? "even" : "odd", query: [i % 16],
                           relevantTokens: [i % 16])
    }

    public func word(_ id: Int) -> String { "w\(id)" }
}
