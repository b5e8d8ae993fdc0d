import Foundation
import NN
import Testing
import TensorCore
import TestSupport

@Suite("Layers: gradients, names, modes")
struct LayerTests {
    static func input(_ shape: [Int], seed: UInt64 = 1) -> Tensor {
        var g = testGenerator(seed)
        return Tensor.normal(shape, using: &g)
    }

    @Test("Linear (with and without bias), MLP and Embedding gradients")
    func linearGradients() {
        var g = testGenerator()
        let linear = Linear(5, 3, generator: &g)
        let x = Parameter(Self.input([2, 4, 5]))
        GradientCheck.check(parameters: linear.parameters + [x]) { linear(x.tensor) }
        let noBias = Linear(5, 3, bias: false, generator: &g)
        #expect(noBias.namedParameters.map(\.name) == ["weight"])
        GradientCheck.check(parameters: noBias.parameters) { noBias(Self.input([5])) }
        let mlp = MLP(sizes: [4, 6, 6, 2], activation: .tanh, generator: &g)
        GradientCheck.check(parameters: mlp.parameters) { mlp(Self.input([3, 4])) }
        let embedding = Embedding(7, 3, generator: &g)
        GradientCheck.check(parameters: embedding.parameters) { embedding([1, 6, 1, 0], shape: [2, 2]) }
    }

    @Test("LayerNorm and RMSNorm layers")
    func normGradients() {
        let ln = LayerNorm(6)
        ln.weight!.value = Self.input([6], seed: 3) + 1
        ln.bias!.value = Self.input([6], seed: 4)
        let x = Parameter(Self.input([4, 6], seed: 2))
        GradientCheck.check(parameters: ln.parameters + [x]) { ln(x.tensor) }
        let rms = RMSNorm(6)
        rms.weight.value = Self.input([6], seed: 5)
        GradientCheck.check(parameters: rms.parameters + [x]) { rms(x.tensor) }
    }

    @Test("attention: plain, causal, padded, grouped-query, rotary", arguments: [
        (4, 4, false, false), (4, 2, true, false), (4, 1, false, true), (2, 2, true, true),
    ])
    func attentionGradients(configuration: (Int, Int, Bool, Bool)) {
        let (heads, kvHeads, causal, rope) = configuration
        var g = testGenerator(UInt64(heads * 10 + kvHeads))
        let attention = MultiHeadAttention(modelSize: 8, headCount: heads, keyValueHeadCount: kvHeads, generator: &g)
        let x = Parameter(Self.input([2, 5, 8], seed: 6))
        let padding = Tensor(shape: [2, 5], scalars: [1, 1, 1, 1, 1, 1, 1, 1, 0, 0])
        let tables = Tensor.rotaryTables(positions: Array(0..<5), dimension: 8 / heads, base: 10000)
        GradientCheck.check(parameters: attention.parameters + [x]) {
            attention(x.tensor, keyPaddingMask: padding, causal: causal, rotary: rope ? tables : nil)
        }
    }

    @Test("pre-norm encoder layer and encoder stack")
    func encoderGradients() {
        var g = testGenerator(8)
        let encoder = TransformerEncoder(layerCount: 2, modelSize: 8, headCount: 2, mlpSize: 12, generator: &g)
        let x = Parameter(Self.input([2, 3, 8], seed: 9))
        GradientCheck.check(parameters: encoder.parameters + [x]) { encoder(x.tensor, causal: true) }
    }

    @Test("parameter names are stable dotted paths")
    func names() {
        var g = testGenerator()
        let encoder = TransformerEncoder(layerCount: 2, modelSize: 8, headCount: 2, mlpSize: 12, generator: &g)
        let names = encoder.namedParameters.map(\.name)
        #expect(names.contains("layers.0.self_attn.q_proj.weight"))
        #expect(names.contains("layers.1.mlp.fc2.bias"))
        #expect(names.contains("layers.1.layer_norm2.weight"))
        #expect(names.last == "norm.bias")
        #expect(Set(names).count == names.count)
        #expect(encoder.parameterCount == 2 * (4 * (64 + 8) + 2 * 16 + (8 * 12 + 12) + (12 * 8 + 8)) + 16)
    }

    @Test("strict loading names the missing, unexpected or mis-shaped key")
    func strictLoading() throws {
        var g = testGenerator()
        let linear = Linear(3, 2, generator: &g)
        #expect(throws: ModuleError.missingKey(source: "ckpt", key: "bias")) {
            try linear.load(["weight": Tensor.zeros([2, 3])], source: "ckpt")
        }
        #expect(throws: ModuleError.unexpectedKey(source: "ckpt", key: "extra")) {
            try linear.load(["weight": Tensor.zeros([2, 3]), "bias": Tensor.zeros([2]), "extra": Tensor.zeros([1])], source: "ckpt")
        }
        #expect(throws: ModuleError.shapeMismatch(source: "ckpt", key: "weight", expected: [2, 3], actual: [3, 2])) {
            try linear.load(["weight": Tensor.zeros([3, 2]), "bias": Tensor.zeros([2])], source: "ckpt")
        }
    }

    @Test("a model round-trips through safetensors")
    func saveLoad() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var g = testGenerator(1)
        let a = TransformerEncoder(layerCount: 1, modelSize: 8, headCount: 2, mlpSize: 8, generator: &g)
        let b = TransformerEncoder(layerCount: 1, modelSize: 8, headCount: 2, mlpSize: 8, generator: &g)
        let url = directory.appendingPathComponent("m.safetensors")
        try a.save(to: url)
        try b.load(from: url)
        let x = Self.input([1, 4, 8])
        #expect(a(x) == b(x))
    }

    /// The digest is FNV-1a over names, shapes and value bits (checked against a Python
    /// computation of the same definition), equal for equal weights however they were loaded,
    /// and changed by one changed value.
    @Test("the parameter digest fingerprints names, shapes and values")
    func parameterDigest() throws {
        var g = testGenerator(1)
        let linear = Linear(2, 1, generator: &g)
        linear.namedParameters[0].parameter.value = Tensor(shape: [1, 2], scalars: [1, -2])
        linear.namedParameters[1].parameter.value = Tensor(shape: [1], scalars: [0.5])
        // python: h = 0xcbf29ce484222325; for each word: h = (h ^ word) * 0x100000001b3 mod 2^64,
        // words = bytes of "weight", 0xff, 1, 2, 0xfe, bits of 1.0 and -2.0, then "bias", 0xff, 1, 0xfe, bits of 0.5.
        #expect(linear.parameterDigest == "4a8ae09bc30bccee")
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let a = TransformerEncoder(layerCount: 1, modelSize: 8, headCount: 2, mlpSize: 8, generator: &g)
        let b = TransformerEncoder(layerCount: 1, modelSize: 8, headCount: 2, mlpSize: 8, generator: &g)
        #expect(a.parameterDigest != b.parameterDigest)
        try a.save(to: directory.appendingPathComponent("m.safetensors"))
        try b.load(from: directory.appendingPathComponent("m.safetensors"))
        #expect(a.parameterDigest == b.parameterDigest)
        var values = b.namedParameters[0].parameter.value.scalars
        values[0] = values[0].nextUp
        b.namedParameters[0].parameter.value = Tensor(shape: b.namedParameters[0].parameter.value.shape, scalars: values)
        #expect(a.parameterDigest != b.parameterDigest)
    }

    @Test("dropout is seeded, scales kept values by 1/(1−p), and is off in evaluation")
    func dropout() {
        let dropout = Dropout(0.25)
        let x = Tensor.ones([1000])
        #expect(dropout(x, context: nil) == x)
        let first = dropout(x, context: TrainingContext(seed: 3))
        let second = dropout(x, context: TrainingContext(seed: 3))
        #expect(first == second)
        let kept = first.scalars.filter { $0 != 0 }
        #expect(kept.allSatisfy { Swift.abs($0 - 1 / 0.75) < 1e-6 })
        #expect(Swift.abs(Double(kept.count) / 1000 - 0.75) < 0.05)
    }
}

@Suite("Initialisers and schedules")
struct InitializerTests {
    @Test("orthogonal matrices are orthogonal times the gain, tall or wide", arguments: [[6, 4], [4, 6], [5, 5], [3, 2, 2]])
    func orthogonal(shape: [Int]) {
        var g = testGenerator()
        let w = Initializer.orthogonal(gain: 1.4).tensor(shape, using: &g).reshaped(to: [shape[0], -1])
        let (rows, columns) = (w.shape[0], w.shape[1])
        let gram = rows <= columns ? Tensor.matmul(w, w, transposeB: true) : Tensor.matmul(w, w, transposeA: true)
        let n = min(rows, columns)
        var identity = [Float](repeating: 0, count: n * n)
        for i in 0..<n { identity[i * n + i] = 1.96 }
        expectClose(gram.scalars, identity, absolute: 1e-5)
    }

    @Test("Xavier and Kaiming scale with the fans")
    func scaled() {
        var g = testGenerator()
        let xavier = Initializer.xavierUniform().tensor([200, 300], using: &g).scalars
        let bound = (6.0 / 500).squareRoot()
        #expect(xavier.allSatisfy { Double(Swift.abs($0)) <= bound } && Double(xavier.map(Swift.abs).max()!) > 0.95 * bound)
        let kaiming = Initializer.kaimingNormal().tensor([400, 100], using: &g).scalars
        let variance = kaiming.reduce(0) { $0 + Double($1 * $1) } / Double(kaiming.count)
        #expect(Swift.abs(variance - 2.0 / 100) < 0.001)
    }

    @Test("linear and cosine schedules with warm-up")
    func schedules() {
        let linear = LinearSchedule(peak: 1, final: 0, totalSteps: 10, warmupSteps: 2)
        expectClose((0...10).map { linear.learningRate(atStep: $0) }, [0, 0.5, 1, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0])
        let cosine = CosineSchedule(peak: 2, minimum: 0.5, totalSteps: 5, warmupSteps: 1)
        expectClose((0...5).map { cosine.learningRate(atStep: $0) },
                    [0, 2, 0.5 + 1.5 * 0.853553391, 1.25, 0.5 + 1.5 * 0.146446609, 0.5])
    }
}
