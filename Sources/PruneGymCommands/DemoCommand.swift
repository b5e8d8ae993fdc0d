import Foundation
import Gym
import NN
import TensorCore

/// `prunegym demo`: trains a two-layer transformer to sort digit sequences — the numeric core
/// end to end (embeddings, attention, AdamW, cosine schedule, clipping, checkpoint).
enum DemoCommand {
    static let help = """
        usage: prunegym demo [--steps N] [--seed S] [--batch B] [--run-dir DIR]

        Trains a 2-layer pre-norm transformer (d 64, 4 heads) to sort sequences of 8 digits with
        AdamW and a cosine schedule, shows progress, prints the token and sequence accuracy on
        held-out sequences, and saves a checkpoint (model + optimizer + generators) atomically.

        options:
          --steps N      training steps (default 1500)
          --seed S       seed of every random draw (default 0)
          --batch B      sequences per step (default 64)
          --run-dir DIR  where checkpoint.safetensors is written (default runs/demo)

        example:
          swift run -c release prunegym demo --steps 1500 --seed 0
        """

    final class Sorter: Module {
        let tokens: Embedding
        let positions: Embedding
        let encoder: TransformerEncoder
        let head: Linear
        let length: Int

        init(vocabulary: Int, length: Int, generator: inout SeededGenerator) {
            tokens = Embedding(vocabulary, 64, initializer: .normal(standardDeviation: 0.5), generator: &generator)
            positions = Embedding(length, 64, initializer: .normal(standardDeviation: 0.5), generator: &generator)
            encoder = TransformerEncoder(layerCount: 2, modelSize: 64, headCount: 4, mlpSize: 128, generator: &generator)
            head = Linear(64, vocabulary, generator: &generator)
            self.length = length
        }

        /// Shapes: `batch` sequences of `length` digits → logits `[batch, length, vocabulary]`.
        func callAsFunction(_ batch: [[Int]]) -> Tensor {
            let x = tokens(batch.flatMap { $0 }, shape: [batch.count, length]) + positions(Array(0..<length), shape: [length])
            return head(encoder(x))
        }

        var namedParameters: [(name: String, parameter: Parameter)] {
            scoped("tokens", tokens) + scoped("positions", positions) + scoped("encoder", encoder) + scoped("head", head)
        }
        var description: String { "Sorter(\(encoder))" }
    }

    static func batch(_ count: Int, length: Int, vocabulary: Int, using g: inout SeededGenerator) -> ([[Int]], [Int]) {
        let inputs = (0..<count).map { _ in (0..<length).map { _ in g.integer(below: vocabulary) } }
        return (inputs, inputs.flatMap { $0.sorted() })
    }

    static func run(_ arguments: [String]) throws {
        let args = try Arguments(command: "demo", arguments, flags: [], options: ["steps", "seed", "batch", "run-dir"])
        if args.flag("help") {
            print(help)
            return
        }
        let steps = try args.integer("steps", default: 1500, range: 1...10_000_000)
        let seed = try args.integer("seed", default: 0)
        let batchSize = try args.integer("batch", default: 64, range: 1...100_000)
        let runDirectory = URL(fileURLWithPath: args.string("run-dir", default: "runs/demo"))
        let (vocabulary, length) = (10, 8)

        var generator = SeededGenerator(seed: UInt64(seed))
        let model = Sorter(vocabulary: vocabulary, length: length, generator: &generator)
        let optimizer = Adam.adamW(model.namedParameters, learningRate: 2e-3, weightDecay: 0.01)
        let schedule = CosineSchedule(peak: 2e-3, minimum: 1e-4, totalSteps: steps, warmupSteps: min(100, steps / 10))
        var data = generator.fork()
        print("prunegym demo: \(model.parameterCount) parameters, \(steps) steps of \(batchSize) sequences, seed \(seed)")
        let progress = ProgressBar(total: steps, label: "training")
        var recent: [Float] = []
        for step in 0..<steps {
            let (inputs, targets) = batch(batchSize, length: length, vocabulary: vocabulary, using: &data)
            optimizer.learningRate = schedule.learningRate(atStep: step)
            optimizer.zeroGradients()
            let loss = Loss.crossEntropy(model(inputs), targets: targets)
            guard loss.scalar.isFinite else {
                throw UsageError(message: "prunegym demo: the loss became \(loss.scalar) at step \(step); try a smaller learning rate or another --seed")
            }
            loss.backward()
            clipGradientNorm(model.parameters, maxNorm: 1)
            optimizer.step()
            recent.append(loss.scalar)
            if recent.count > 50 { recent.removeFirst() }
            progress.update(step + 1, status: String(format: "loss %.4f", recent.reduce(0, +) / Float(recent.count)))
        }

        var test = SeededGenerator(seed: UInt64(seed) &+ 1_000_003)
        let (inputs, targets) = batch(1000, length: length, vocabulary: vocabulary, using: &test)
        let logits = withInferenceMode { model(inputs) }.scalars
        var predicted: [Int] = []
        for row in 0..<targets.count {
            let scores = logits[(row * vocabulary)..<((row + 1) * vocabulary)]
            predicted.append(scores.indices.max { scores[$0] < scores[$1] }! - scores.startIndex)
        }
        let tokenAccuracy = Double(zip(predicted, targets).filter { $0 == $1 }.count) / Double(targets.count)
        let sequences = (0..<inputs.count).filter { i in predicted[(i * length)..<((i + 1) * length)] == targets[(i * length)..<((i + 1) * length)] }
        print("")
        print("| held-out sequences | token accuracy | sequence accuracy |")
        print("|---|---|---|")
        print(String(format: "| %d | %.2f%% | %.2f%% |", inputs.count, tokenAccuracy * 100, Double(sequences.count) / Double(inputs.count) * 100))
        try AtomicFile.prepareDirectory(runDirectory)
        let checkpoint = runDirectory.appendingPathComponent("checkpoint.safetensors")
        try Checkpoint.save(model: model, optimizer: optimizer, generators: ["data": data], metadata: ["task": "sort", "steps": String(steps), "seed": String(seed)], to: checkpoint)
        print("checkpoint: \(checkpoint.path)")
    }
}
