// PruningBench: throughput of TokenPruning-v0 on the built-in model — environment steps per second
// with random keep masks, a single environment and a vector of 8 whose model calls are batched
// into one (`BatchSteppingEnvironment`). Visual tokens are computed once per sample and cached;
// the figures are for warm caches (each sample seen before) and include resets.
//
//   swift run -c release PruningBench [--model DIR] [--steps N]
import Foundation
import Gym
import TensorCore
import TokenPruning

func print(_ text: String = "") { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }

var modelPath: String?
var steps = 600
var iterator = CommandLine.arguments.dropFirst().makeIterator()
while let argument = iterator.next() {
    switch argument {
    case "--model": modelPath = iterator.next()
    case "--steps": steps = Int(iterator.next() ?? "") ?? steps
    case "--help", "-h":
        print("usage: swift run -c release PruningBench [--model DIR] [--steps N]\nexample: swift run -c release PruningBench --steps 600")
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

    print("TokenPruning-v0 on the built-in model (\(simulator.tokenCount) visual tokens, random keep masks, warm cache)")
    print("| setting | steps/s |")
    print("|---|---|")
    print(String(format: "| single environment | %.0f |", singleRate))
    print(String(format: "| 8 environments, one batched model call per step | %.0f (%.1f× single) |", vectorRate, vectorRate / singleRate))
} catch {
    FileHandle.standardError.write(Data("PruningBench: \(error)\n".utf8))
    exit(1)
}
