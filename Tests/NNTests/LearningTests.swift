import Foundation
import NN
import Testing
import TensorCore
import TestSupport

@Suite("Models learn, resume exactly and are deterministic")
struct LearningTests {
    @Test("a small MLP learns XOR")
    func xor() {
        var g = testGenerator(0)
        let mlp = MLP(sizes: [2, 8, 1], activation: .tanh, generator: &g)
        let optimizer = Adam(mlp.namedParameters, learningRate: 0.05)
        let x = Tensor(shape: [4, 2], scalars: [0, 0, 0, 1, 1, 0, 1, 1])
        let y = Tensor(shape: [4, 1], scalars: [0, 1, 1, 0])
        for _ in 0..<300 {
            optimizer.zeroGradients()
            Loss.binaryCrossEntropy(logits: mlp(x), targets: y).backward()
            optimizer.step()
        }
        let predictions = withInferenceMode { mlp(x).scalars.map { $0 > 0 ? Float(1) : 0 } }
        #expect(predictions == y.scalars)
    }

    /// A two-layer transformer that sorts sequences of digits.
    final class Sorter: Module {
        let tokens: Embedding
        let positions: Embedding
        let encoder: TransformerEncoder
        let head: Linear
        let length: Int

        init(vocabulary: Int, length: Int, generator: inout SeededGenerator) {
            tokens = Embedding(vocabulary, 32, initializer: .normal(standardDeviation: 0.5), generator: &generator)
            positions = Embedding(length, 32, initializer: .normal(standardDeviation: 0.5), generator: &generator)
            encoder = TransformerEncoder(layerCount: 2, modelSize: 32, headCount: 4, mlpSize: 64, generator: &generator)
            head = Linear(32, vocabulary, generator: &generator)
            self.length = length
        }

        func callAsFunction(_ batch: [[Int]]) -> Tensor {
            let x = tokens(batch.flatMap { $0 }, shape: [batch.count, length]) + positions(Array(0..<length), shape: [length])
            return head(encoder(x))
        }

        var namedParameters: [(name: String, parameter: Parameter)] {
            scoped("tokens", tokens) + scoped("positions", positions) + scoped("encoder", encoder) + scoped("head", head)
        }
        var description: String { "Sorter" }
    }

    static func sortBatch(_ count: Int, vocabulary: Int, length: Int, using g: inout SeededGenerator) -> ([[Int]], [Int]) {
        let inputs = (0..<count).map { _ in (0..<length).map { _ in g.integer(below: vocabulary) } }
        return (inputs, inputs.flatMap { $0.sorted() })
    }

    @Test("a two-layer transformer learns to sort to high accuracy")
    func sorting() {
        var g = testGenerator(1)
        let (vocabulary, length) = (8, 6)
        let model = Sorter(vocabulary: vocabulary, length: length, generator: &g)
        let steps = 600
        let optimizer = Adam.adamW(model.namedParameters, learningRate: 3e-3, weightDecay: 0.01)
        let schedule = CosineSchedule(peak: 3e-3, minimum: 3e-4, totalSteps: steps, warmupSteps: 30)
        for step in 0..<steps {
            let (inputs, targets) = Self.sortBatch(32, vocabulary: vocabulary, length: length, using: &g)
            optimizer.learningRate = schedule.learningRate(atStep: step)
            optimizer.zeroGradients()
            Loss.crossEntropy(model(inputs), targets: targets).backward()
            clipGradientNorm(model.parameters, maxNorm: 1)
            optimizer.step()
        }
        var test = testGenerator(99)
        let (inputs, targets) = Self.sortBatch(256, vocabulary: vocabulary, length: length, using: &test)
        let logits = withInferenceMode { model(inputs).reshaped(to: [-1, vocabulary]) }
        let predicted = logits.scalars.chunked(vocabulary).map { row in row.indices.max { row[$0] < row[$1] }! - row.startIndex }
        let accuracy = Double(zip(predicted, targets).filter { $0 == $1 }.count) / Double(targets.count)
        #expect(accuracy > 0.95, "token accuracy \(accuracy)")
    }

    /// Trains `steps` steps of a small model with dropout and AdamW; returns the losses.
    static func train(_ model: MLP, _ optimizer: Adam, _ data: inout SeededGenerator, _ context: TrainingContext, steps: Int) -> [Float] {
        let dropout = Dropout(0.1)
        return (0..<steps).map { _ in
            let x = Tensor.normal([16, 4], using: &data)
            let y = (x.sum(alongAxis: 1, keepingDimensions: true) * 0.5).sin()
            optimizer.zeroGradients()
            let loss = Loss.meanSquaredError(model(dropout(x, context: context)), y)
            loss.backward()
            optimizer.step()
            return loss.scalar
        }
    }

    @Test("the same seed gives bit-identical training losses")
    func determinism() {
        func run() -> [Float] {
            var g = testGenerator(5)
            let model = MLP(sizes: [4, 16, 1], generator: &g)
            let optimizer = Adam.adamW(model.namedParameters, learningRate: 1e-2)
            return Self.train(model, optimizer, &g, TrainingContext(generator: g.fork()), steps: 60)
        }
        let (a, b) = (run(), run())
        #expect(a.map(\.bitPattern) == b.map(\.bitPattern))
        #expect(a.suffix(10).reduce(0, +) < a.prefix(10).reduce(0, +))
    }

    @Test("resuming from a checkpoint continues exactly like an uninterrupted run")
    func resume() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("checkpoint.safetensors")
        // Uninterrupted: 20 steps.
        var g = testGenerator(11)
        let model = MLP(sizes: [4, 16, 1], generator: &g)
        let optimizer = Adam.adamW(model.namedParameters, learningRate: 1e-2)
        var data = g.fork()
        let context = TrainingContext(generator: g.fork())
        let first = Self.train(model, optimizer, &data, context, steps: 10)
        try Checkpoint.save(model: model, optimizer: optimizer, generators: ["data": data, "dropout": context.generator],
                            metadata: ["step": "10"], to: url)
        let uninterrupted = Self.train(model, optimizer, &data, context, steps: 10)
        // Resumed: a fresh model and optimizer loaded from the checkpoint.
        var other = testGenerator(12345)
        let restored = MLP(sizes: [4, 16, 1], generator: &other)
        let restoredOptimizer = Adam.adamW(restored.namedParameters, learningRate: 0.5)
        let (generators, metadata) = try Checkpoint.load(from: url, model: restored, optimizer: restoredOptimizer)
        #expect(metadata == ["step": "10"])
        #expect(restoredOptimizer.stepCount == 10 && restoredOptimizer.learningRate == 1e-2)
        var restoredData = try #require(generators["data"])
        let resumed = Self.train(restored, restoredOptimizer, &restoredData, TrainingContext(generator: try #require(generators["dropout"])), steps: 10)
        #expect(resumed.map(\.bitPattern) == uninterrupted.map(\.bitPattern))
        #expect(first.count == 10)
        // Loading into the wrong optimizer kind fails clearly.
        #expect(throws: OptimizerError.self) {
            try Checkpoint.load(from: url, model: restored, optimizer: SGD(restored.namedParameters, learningRate: 0.1))
        }
    }

    /// A model with a head added after a checkpoint was written.
    final class Extended: Module {
        let body: MLP, head: Linear
        init(generator: inout SeededGenerator) {
            body = MLP(sizes: [4, 16, 1], generator: &generator)
            head = Linear(16, 2, generator: &generator)
        }
        var namedParameters: [(name: String, parameter: Parameter)] { scoped("body", body) + scoped("head", head) }
        var description: String { "Extended" }
    }

    @Test("a checkpoint without a newly added head loads only when the head is declared optional")
    func optionalParameters() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("checkpoint.safetensors")
        var g = testGenerator(3)
        let old = MLP(sizes: [4, 16, 1], generator: &g)
        let oldOptimizer = Adam.adamW(scoped("body", old), learningRate: 1e-2)
        _ = Self.train(old, oldOptimizer, &g, TrainingContext(generator: g.fork()), steps: 3)
        final class Wrapper: Module {
            let body: MLP
            init(_ body: MLP) { self.body = body }
            var namedParameters: [(name: String, parameter: Parameter)] { scoped("body", body) }
            var description: String { "Wrapper" }
        }
        try Checkpoint.save(model: Wrapper(old), optimizer: oldOptimizer, to: url)

        let extended = Extended(generator: &g)
        let headBefore = extended.head.weight.value.scalars
        #expect(throws: ModuleError.self) {
            try Checkpoint.load(from: url, model: extended, optimizer: Adam.adamW(extended.namedParameters, learningRate: 1e-2))
        }
        let optimizer = Adam.adamW(extended.namedParameters, learningRate: 1e-2)
        try Checkpoint.load(from: url, model: extended, optimizer: optimizer, optionalParameters: ["head.weight", "head.bias"])
        #expect(extended.body.namedParameters.map(\.parameter.value.scalars) == old.namedParameters.map(\.parameter.value.scalars))
        #expect(extended.head.weight.value.scalars == headBefore)
        #expect(optimizer.stepCount == 3)
    }
}

extension Array {
    func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}

extension Tensor {
    /// sin, for the test's regression target (not part of the library API).
    func sin() -> Tensor { Tensor(shape: shape, scalars: scalars.map { Foundation.sin($0) }) }
}
