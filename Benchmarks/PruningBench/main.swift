// PruningBench: throughput of TokenPruning-v0 on the built-in model — environment steps per second
// with random keep masks, a single environment and a vector of 8 whose model calls are batched
// into one (`BatchSteppingEnvironment`). Visual tokens are computed once per sample and cached;
// the figures are for warm caches (each sample seen before) and include resets; once pruning before
// the LLM and once after its layer 0 (`prune_after_layer`, tprl-llm's setting). Then the time each
// pruner takes to choose its tokens for one answer (batch 1) beside the model's time to answer from
// them, each with the FLOPs it computes: the TPRL policy runs a transformer over the tokens at each
// step, which on a model this small costs a good part of the answer's time.
//
//   swift run -c release PruningBench [--model DIR] [--steps N]
import Foundation
import Gym
import Pruners
import TensorCore
import TokenPruning
import TPRL

// OpenBLAS's kernels for this CPU's vector instructions, if it does not recognise the CPU.
BLAS.restartWithMatchingKernels()

func print(_ text: String = "") { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }

var modelPath: String?
var steps = 600
var choosingOnly = false
var iterator = CommandLine.arguments.dropFirst().makeIterator()
while let argument = iterator.next() {
    switch argument {
    case "--model": modelPath = iterator.next()
    case "--steps": steps = Int(iterator.next() ?? "") ?? steps
    case "--choosing-only": choosingOnly = true
    case "--help", "-h":
        print("usage: swift run -c release PruningBench [--model DIR] [--steps N] [--choosing-only]\n  --choosing-only  only the pruners' time to choose (skip the environment throughput)\nexample: swift run -c release PruningBench --steps 600")
        exit(0)
    default:
        FileHandle.standardError.write(Data("PruningBench: unknown option \(argument) (try --help)\n".utf8))
        exit(2)
    }
}

do {
    let simulator = try BuiltinSimulator.make(modelDirectory: modelPath.map { URL(fileURLWithPath: $0) })
    var configuration = TokenPruningConfiguration()
    configuration.datasetSize = 256
    if !choosingOnly {
        try throughput(simulator, configuration, steps: steps)
        // The same with the kept set applied after LLM layer 0 (`prune_after_layer`, tprl-llm's setting).
        var inside = configuration
        inside.pruneAfterLayer = 0
        print()
        try throughput(simulator.pruning(afterLayer: 0, encoder: IdentityTokenEncoder(width: simulator.model.tokenWidth)), inside, steps: steps)
    }
    try choosing(simulator)
} catch {
    FileHandle.standardError.write(Data("PruningBench: \(error)\n".utf8))
    exit(1)
}

/// Steps per second of one environment and of 8 batched, random keep masks, warm cache.
func throughput(_ simulator: PruningSimulator, _ configuration: TokenPruningConfiguration, steps: Int) throws {
    // Warm the cache: every sample's tokens and unpruned answer.
    _ = try simulator.entries(Array(0..<configuration.datasetSize), split: "train")
    var generator = SeededGenerator(seed: 0)
    func randomMask(_ n: Int) -> [Bool] { (0..<n).map { _ in generator.bernoulli(0.6) } }

    let single = try TokenPruningEnvironment(simulator: simulator, configuration: configuration, seed: 0)
    _ = try single.reset(seed: 0)
    var start = DispatchTime.now().uptimeNanoseconds
    for _ in 0..<steps {
        if try single.step(randomMask(simulator.tokenCount)).isDone { _ = try single.reset() }
    }
    let singleRate = Double(steps) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)

    let vector = try VectorEnvironment<TokenPruningEnvironment>(count: 8) { try TokenPruningEnvironment(simulator: simulator, configuration: configuration, seed: UInt64($0)) }
    _ = try vector.reset(seed: 0)
    start = DispatchTime.now().uptimeNanoseconds
    for _ in 0..<(steps / 8) { _ = try vector.step((0..<8).map { _ in randomMask(simulator.tokenCount) }) }
    let vectorRate = Double(steps / 8 * 8) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)

    let place = configuration.pruneAfterLayer.map { "pruning after LLM layer \($0)" } ?? "pruning before the LLM"
    print("TokenPruning-v0 on the built-in model (\(simulator.tokenCount) visual tokens, \(place), random keep masks, warm cache)")
    print("| setting | steps/s |")
    print("|---|---|")
    print(String(format: "| single environment | %.0f |", singleRate))
    print(String(format: "| 8 environments, one batched model call per step | %.0f (%.1f× single) |", vectorRate, vectorRate / singleRate))
}

/// Each pruner's time to choose its tokens against the model's time to answer from them, one
/// test question at a time.
func choosing(_ simulator: PruningSimulator) throws {
    let entries = try simulator.entries(Array(0..<100), split: "test")
    let n = simulator.tokenCount
    var pruners: [(String, any TokenPruner)] = [("CLS attention", try PrunerRegistry.make("cls")), ("VisPruner", try PrunerRegistry.make("vispruner"))]
    let policy = BuiltinSimulator.modelsDirectory.appendingPathComponent("tprl")
    if FileManager.default.fileExists(atPath: policy.appendingPathComponent("tprl.json").path) {
        let (network, files) = try TPRLPolicyFiles.load(from: policy, simulator: simulator)
        let stepped = TPRLPruner(network: network, configuration: files.configuration.environment)
        let firstStep = TPRLPruner(network: network, configuration: files.configuration.environment)
        firstStep.stepped = false
        let threshold = TPRLPruner(network: network, configuration: files.configuration.environment)
        threshold.threshold = 0.5
        pruners += [("TPRL, top-k through the steps", stepped), ("TPRL, top-k of the first step", firstStep),
                    ("TPRL, threshold τ = 0.5 (sweeps' default)", threshold)]
    } else {
        print("(no TPRL policy in \(policy.path): train one with `prunegym tprl train`)")
    }
    // The policy that prunes after LLM layer 0 observes the model's state there (computed with
    // the entries, which are warmed here, so the timing is the choice alone).
    let llmPolicy = BuiltinSimulator.modelsDirectory.appendingPathComponent("tprl-llm")
    var inside: PruningSimulator?
    if FileManager.default.fileExists(atPath: llmPolicy.appendingPathComponent("tprl.json").path) {
        let files = try TPRLPolicyFiles.read(llmPolicy)
        let own = simulator.pruning(afterLayer: files.configuration.environment.pruneAfterLayer,
                                    encoder: try TPRLPolicyFiles.encoder(in: llmPolicy, tokenWidth: simulator.model.tokenWidth))
        _ = try own.entries(Array(0..<100), split: "test")
        let (network, _) = try TPRLPolicyFiles.load(from: llmPolicy, simulator: own)
        pruners.append(("TPRL inside the LLM (tprl-llm)", TPRLPruner(network: network, configuration: files.configuration.environment, simulator: own)))
        inside = own
    } else {
        print("(no policy in \(llmPolicy.path): train one with `prunegym tprl train --config examples/tprl-llm.json --out \(llmPolicy.path)`)")
    }
    func milliseconds(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6 / Double(entries.count)
    }
    let budgets = [(0.333, Int((0.333 * Double(n)).rounded())), (0.111, Int((0.111 * Double(n)).rounded()))]
    print("\nChoosing the tokens (ms per answer, batch 1, \(entries.count) test questions; vision tower not included), with the FLOPs")
    print("each choice computes (TokenPruner.selectionFLOPs) and those of the answer, in GFLOPs")
    print("| step | " + budgets.map { "\(Int(($0.0 * 100).rounded()))% (\($0.1) tokens): ms | GFLOPs" }.joined(separator: " | ") + " |")
    print("|---|" + String(repeating: "---|---|", count: budgets.count))
    for (label, pruner) in pruners {
        var cells: [String] = []
        for (_, k) in budgets {
            var g = SeededGenerator(seed: 0)
            let flops = try pruner.costedPlan(entries[0], budget: k, simulator: simulator, generator: &g).selectionFLOPs  // also the warm-up
            cells.append(String(format: "%.2f", try milliseconds { for e in entries { _ = try pruner.plan(e, budget: k, simulator: simulator, generator: &g) } }))
            cells.append(flops.map { String(format: "%.3f", $0 / 1e9) } ?? "–")
        }
        print("| \(label) chooses | " + cells.joined(separator: " | ") + " |")
    }
    var answers: [String] = []
    for (_, k) in budgets {
        let keep = Array(0..<k)
        _ = try simulator.answer([(entries[0], keep)])
        answers.append(String(format: "%.2f", try milliseconds { for e in entries { _ = try simulator.answer([(e, keep)]) } }))
        let model = simulator.model.flops(visualTokens: k, textTokens: entries[0].task.prefix.count + entries[0].task.suffix.count)
        answers.append(String(format: "%.3f", (model.prefill + model.head) / 1e9))
    }
    print("| the model answers from them | " + answers.joined(separator: " | ") + " |")
    if let inside, let layer = inside.pruneAfterLayer {
        let insideEntries = try inside.entries(Array(0..<entries.count), split: "test")
        var cells: [String] = []
        for (_, k) in budgets {
            let keep = Array(0..<k)
            _ = try inside.answer([(insideEntries[0], keep)])
            cells.append(String(format: "%.2f", try milliseconds { for e in insideEntries { _ = try inside.answer([(e, keep)]) } }))
            let text = insideEntries[0].task.prefix.count + insideEntries[0].task.suffix.count
            let model = simulator.model.flops(visualTokens: n, textTokens: text)
            cells.append(String(format: "%.3f", (simulator.model.fastVFLOPs(visualTokens: n, textTokens: text, layer: layer, keptAfter: k) - model.vision - model.projector) / 1e9))
        }
        print("| the model answers from them after LLM layer \(layer) (all tokens up to it) | " + cells.joined(separator: " | ") + " |")
    }
}
