import Foundation
import TensorCore
import TokenPruning
import VLM

/// A scripted `VisionLanguageModel` for fast environment tests: 16 visual tokens on a 4×4 grid,
/// width 8. Task i's prefix is `[key token]`, its suffix `[answer id]`; the model answers right
/// (logit 4 on the answer, 0 elsewhere) exactly when the key token is kept, and otherwise puts
/// logit 4 on token 0 ("wrong"). Class attention prefers low token indices.
final class FakeVLM: VisionLanguageModel {
    let visualTokenCount = 16
    let gridSize = 4
    let tokenWidth = 8
    let vocabularySize = 6
    private(set) var answerCalls = 0

    func encode(_ images: Tensor) -> Tensor {
        // Token j of image b: its first pixel value plus a one-hot of j mod 8.
        let batch = images.shape[0], pixels = images.scalars, stride = images.count / batch
        var values = [Float](repeating: 0, count: batch * 16 * 8)
        for b in 0..<batch { for j in 0..<16 { values[(b * 16 + j) * 8 + j % 8] = 1; values[(b * 16 + j) * 8] += pixels[b * stride] } }
        return Tensor(shape: [batch, 16, 8], scalars: values)
    }

    func classAttention(_ images: Tensor) -> Tensor {
        let batch = images.shape[0]
        let row = (0..<16).map { Float(16 - $0) / 136 }
        return Tensor(shape: [batch, 16], scalars: Array((0..<batch).map { _ in row }.joined()))
    }

    func answerLogits(_ requests: [AnswerRequest]) throws -> Tensor {
        answerCalls += 1
        var values = [Float](repeating: 0, count: requests.count * vocabularySize)
        for (r, request) in requests.enumerated() {
            let right = request.keep.contains(request.prefix[0])
            values[r * vocabularySize + (right ? request.suffix[0] : 0)] = 4
        }
        return Tensor(shape: [requests.count, vocabularySize], scalars: values)
    }

    func lastTokenAttention(_ requests: [AnswerRequest], layer: Int) throws -> [[Float]] {
        requests.map { request in request.keep.map { $0 == request.prefix[0] ? 1 : 0 } }
    }

    func fastVAnswerLogits(_ requests: [AnswerRequest], layer: Int, keptAfter: Int) throws -> Tensor {
        try answerLogits(requests.map { AnswerRequest(features: $0.features, keep: keptAfter > 0 ? $0.keep : [], prefix: $0.prefix, suffix: $0.suffix) })
    }

    func textEmbeddings(_ ids: [Int]) -> Tensor {
        Tensor(shape: [ids.count, 8], scalars: ids.flatMap { id in (0..<8).map { $0 == id % 8 ? Float(1) : 0 } })
    }

    func flops(visualTokens: Int, textTokens: Int) -> FLOPCount {
        FLOPCount(vision: 1000, projector: 100, prefill: Double(visualTokens + textTokens) * 50, head: 10)
    }

    func fastVFLOPs(visualTokens: Int, textTokens: Int, layer: Int, keptAfter: Int) -> Double {
        flops(visualTokens: keptAfter, textTokens: textTokens).total
    }
}

/// Task i: key token i mod 16, answer 1 + i mod 5, an image whose pixels are all i/100.
struct FakeTasks: PruningTaskSource {
    func task(_ index: Int, split: String) -> PruningTask {
        let offset = split == "test" ? 1000 : split == "validation" ? 500 : 0
        let i = index + offset
        return PruningTask(pixels: [Float](repeating: Float(i % 100) / 100, count: 3 * 4 * 4), imageSize: 4, prefix: [i % 16],
                           suffix: [1 + i % 5], answer: 1 + i % 5, family: i % 2 == 0 ? "even" : "odd", query: [i % 16])
    }
    func word(_ id: Int) -> String { "w\(id)" }
}

func fakeSimulator() -> (PruningSimulator, FakeVLM) {
    let model = FakeVLM()
    return (PruningSimulator(model: model, source: FakeTasks(), encoder: IdentityTokenEncoder(width: 8)), model)
}
