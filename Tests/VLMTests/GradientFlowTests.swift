import Foundation
import NN
import TensorCore
import TestSupport
import Testing
import VLM

@Suite("Gradients flow through the whole VLM")
struct GradientFlowTests {
    static func tinyConfiguration() -> LlavaConfiguration {
        var c = LlavaConfiguration()
        c.vision = CLIPVisionConfiguration()
        c.vision.hiddenSize = 8
        c.vision.intermediateSize = 16
        c.vision.layerCount = 1
        c.vision.headCount = 2
        c.vision.imageSize = 8
        c.vision.patchSize = 4
        c.visionFeatureLayer = -1
        c.text = LlamaConfiguration()
        c.text.vocabularySize = 12
        c.text.hiddenSize = 8
        c.text.intermediateSize = 16
        c.text.layerCount = 2
        c.text.headCount = 2
        c.text.keyValueHeadCount = 1
        c.imageTokenIndex = 11
        return c
    }

    @Test("answer logits: gradients with respect to image features and pixels match finite differences")
    func answerPath() {
        var generator = testGenerator(3)
        let model = LlavaModel(Self.tinyConfiguration(), generator: &generator)
        let features = Parameter(Tensor.normal([2, 4, 8], using: &generator))
        let ids = [[1, 5, 11, 11, 11, 11, 3], [1, 11, 11, 11, 11, 4, 0]]
        GradientCheck.check(parameters: [features]) {
            try! model.answerLogits(ids: ids, last: [6, 5], imageFeatures: features.tensor)
        }
        let pixels = Parameter(Tensor.normal([2, 3, 8, 8], using: &generator))
        GradientCheck.check(parameters: [pixels]) {
            try! model.answerLogits(ids: ids, last: [6, 5], imageFeatures: model.imageFeatures(pixels.tensor))
        }
    }
}

@Suite("Attention at the built-in model's sizes")
struct LongSequenceAttentionTests {
    @Test("fused causal GQA attention equals the composed one for 270 tokens, forward and backward")
    func longCausal() {
        var generator = testGenerator(9)
        let (batch, t, heads, kvHeads, d) = (3, 270, 4, 2, 32)
        let q = Parameter(Tensor.normal([batch, t, heads * d], using: &generator))
        let k = Parameter(Tensor.normal([batch, t, kvHeads * d], using: &generator))
        let v = Parameter(Tensor.normal([batch, t, kvHeads * d], using: &generator))
        let weights = Tensor.normal([batch, t, heads * d], using: &generator)
        let fused = Tensor.scaledDotProductAttention(query: q.tensor, key: k.tensor, value: v.tensor, heads: heads, keyValueHeads: kvHeads, causal: true).output
        (fused * weights).sum().backward()
        let fusedGradients = [q, k, v].map { $0.gradient! }
        for p in [q, k, v] { p.zeroGradient() }
        let composed = MultiHeadAttention.composedAttention(q.tensor, k.tensor, v.tensor, heads: heads, keyValueHeads: kvHeads, mask: nil, causal: true).output
        (composed * weights).sum().backward()
        expectClose(fused, composed, absolute: 1e-4, relative: 1e-4)
        for (a, p) in zip(fusedGradients, [q, k, v]) { expectClose(a, p.gradient!, absolute: 1e-3, relative: 1e-3) }
    }
}
