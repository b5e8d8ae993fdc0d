import Foundation
import NN
import Testing
import TensorCore
import TestSupport

/// NN components against values PyTorch computed (tools/gen_nn_fixtures.py).
@Suite("NN matches PyTorch")
struct TorchParityTests {
    static let reference: SafeTensorsFile = {
        try! SafeTensorsFile(contentsOf: Fixtures.url("torch/nn-reference.safetensors"))
    }()
    static func tensor(_ name: String) -> Tensor { try! reference.tensor(name) }

    @Test("optimizer trajectories", arguments: ["sgd", "sgd_momentum", "sgd_nesterov", "adam", "adamw"])
    func optimizers(name: String) {
        let parameter = Parameter(Self.tensor("opt.p0"))
        let named = [(name: "p", parameter: parameter)]
        let optimizer: Optimizer = switch name {
        case "sgd": SGD(named, learningRate: 0.1)
        case "sgd_momentum": SGD(named, learningRate: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 0.01)
        case "sgd_nesterov": SGD(named, learningRate: 0.1, momentum: 0.9, weightDecay: 0.01, nesterov: true)
        case "adam": Adam(named, learningRate: 0.01, weightDecay: 0.1)
        default: Adam.adamW(named, learningRate: 0.01, epsilon: 1e-5, weightDecay: 0.1)
        }
        let gradients = Self.tensor("opt.grads").split(into: 5, alongAxis: 0)
        let expected = Self.tensor("opt.\(name)").split(into: 5, alongAxis: 0)
        for step in 0..<5 {
            parameter.gradient = gradients[step].squeezed(at: 0)
            optimizer.step()
            expectClose(parameter.value, expected[step].squeezed(at: 0), absolute: 1e-6, relative: 1e-5, "step \(step + 1)")
        }
    }

    @Test("cross-entropy with ignore index and label smoothing, and its gradient")
    func crossEntropy() {
        let logits = Parameter(Self.tensor("ce.logits"))
        let targets = try! Self.reference.integers("ce.targets").values
        let loss = Loss.crossEntropy(logits.tensor, targets: targets, ignoreIndex: -100, labelSmoothing: 0.1)
        expectClose([loss.scalar], Self.tensor("ce.loss").scalars, absolute: 1e-6)
        loss.backward()
        expectClose(logits.gradient!, Self.tensor("ce.grad"), absolute: 1e-6)
    }

    @Test("binary cross-entropy with logits and weights, and its gradient")
    func binaryCrossEntropy() {
        let logits = Parameter(Self.tensor("bce.logits"))
        let loss = Loss.binaryCrossEntropy(logits: logits.tensor, targets: Self.tensor("bce.targets"), weights: Self.tensor("bce.weights"))
        expectClose([loss.scalar], Self.tensor("bce.loss").scalars, absolute: 1e-6)
        loss.backward()
        expectClose(logits.gradient!, Self.tensor("bce.grad"), absolute: 1e-6)
    }

    @Test("Huber and MSE losses")
    func regression() {
        let prediction = Parameter(Self.tensor("huber.prediction"))
        let target = Self.tensor("huber.target")
        let loss = Loss.huber(prediction.tensor, target, delta: 0.7)
        expectClose([loss.scalar], Self.tensor("huber.loss").scalars, absolute: 1e-6)
        loss.backward()
        expectClose(prediction.gradient!, Self.tensor("huber.grad"), absolute: 1e-6)
        expectClose([Loss.meanSquaredError(prediction.value, target).scalar], Self.tensor("mse.loss").scalars, absolute: 1e-6)
    }

    @Test("gradient-norm clipping")
    func clipping() {
        let a = Parameter(Tensor.zeros([3, 3])), b = Parameter(Tensor.zeros([5]))
        a.gradient = Self.tensor("clip.a")
        b.gradient = Self.tensor("clip.b")
        let norm = clipGradientNorm([a, b], maxNorm: 1.5)
        expectClose([norm], Self.tensor("clip.norm").scalars, absolute: 1e-5)
        expectClose(a.gradient!, Self.tensor("clip.a_clipped"), absolute: 1e-6)
        expectClose(b.gradient!, Self.tensor("clip.b_clipped"), absolute: 1e-6)
    }

    static func attention() -> MultiHeadAttention {
        var g = testGenerator()
        let attention = MultiHeadAttention(modelSize: 8, headCount: 4, keyValueHeadCount: 2, headSize: 4, generator: &g)
        var state: [String: Tensor] = [:]
        for (name, _) in attention.namedParameters {
            let key = name.replacingOccurrences(of: "out_proj", with: "o_proj")
            state[name] = tensor("attn." + key)
        }
        try! attention.load(state)
        return attention
    }

    @Test("grouped-query attention with a padding mask")
    func groupedQueryAttention() {
        let output = Self.attention()(Self.tensor("attn.x"), keyPaddingMask: Self.tensor("attn.padding"))
        expectClose(output, Self.tensor("attn.out"), absolute: 1e-5)
    }

    @Test("grouped-query attention, causal, padded, with rotary embedding")
    func causalRotaryAttention() {
        let (cos, sin) = Tensor.rotaryTables(positions: Array(0..<5), dimension: 4, base: 10000)
        let output = Self.attention()(Self.tensor("attn.x"), keyPaddingMask: Self.tensor("attn.padding"), causal: true, rotary: (cos, sin))
        expectClose(output, Self.tensor("attn.out_causal_rope"), absolute: 1e-5)
    }

    @Test("pre-norm encoder layer")
    func encoderLayer() throws {
        var g = testGenerator()
        let layer = TransformerEncoderLayer(modelSize: 8, headCount: 2, mlpSize: 16, generator: &g)
        var state: [String: Tensor] = [:]
        for (name, _) in layer.namedParameters { state[name] = Self.tensor("encoder." + name) }
        try layer.load(state)
        expectClose(layer(Self.tensor("attn.x")), Self.tensor("encoder.out"), absolute: 1e-5)
    }
}
