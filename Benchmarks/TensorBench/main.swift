// TensorBench: measured figures for the numeric core, each beside its peer from the same run.
//
//   swift run -c release TensorBench [--quick] [--threads N] [--rounds K]
//
// PruneGym and each peer take turns over K rounds (default 5); each ratio is the median of the
// per-round ratios, so that the drift of a shared machine hits both sides.
//
// 1. GEMM GFLOP/s through `Tensor.matmul` vs `cblas_sgemm` called directly (target: ≤ 5% overhead).
// 2. Training step (forward + backward + AdamW) of a 2-layer pre-norm encoder (d 128, 4 heads,
//    MLP 512, 256 tokens, batch 16) and of a 16-64-64-4 MLP at batch 64, vs PyTorch on CPU with
//    the same thread count (Benchmarks/peers/torch_step.py; skipped with a message if absent).
// 3. Inference-mode forward: tape nodes and tensor memory against training mode.
import COpenBLAS
import Foundation
import NN
import TensorCore

// OpenBLAS's kernels for this CPU's vector instructions, if it does not recognise the CPU.
BLAS.restartWithMatchingKernels()

struct Options {
    var quick = false
    /// Runs only training steps of the encoder (for a profiler) and exits.
    var profile = false
    var threads = ProcessInfo.processInfo.activeProcessorCount
    /// Rounds in which PruneGym and its peer are measured in turn (default 5; 1 with --quick).
    var rounds: Int?
    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--quick": quick = true
            case "--profile": profile = true
            case "--threads": threads = Int(iterator.next() ?? "") ?? threads
            case "--rounds":
                guard let value = Int(iterator.next() ?? ""), value >= 1 else {
                    FileHandle.standardError.write(Data("TensorBench: --rounds needs a whole number ≥ 1, e.g. --rounds 5\n".utf8))
                    exit(2)
                }
                rounds = value
            case "--help", "-h":
                print("""
                    usage: swift run -c release TensorBench [--quick] [--threads N] [--rounds K]
                    Prints GEMM throughput vs direct cblas_sgemm, training-step times vs PyTorch, and
                    inference-mode memory.
                      --rounds K  measure PruneGym and its peer in turn K times (default 5, 1 with --quick) and
                                  report the median of each and the median and range of the per-round ratios,
                                  so that a shared machine's drift hits both sides
                    Example: swift run -c release TensorBench --quick
                    """)
                exit(0)
            default:
                FileHandle.standardError.write(Data("TensorBench: unknown option \(argument) (try --help)\n".utf8))
                exit(2)
            }
        }
    }
}

let options = Options(CommandLine.arguments)
let rounds = options.rounds ?? (options.quick ? 1 : 5)

/// The median of `values` (the mean of the middle two for an even count).
func median(_ values: [Double]) -> Double {
    let sorted = values.sorted(), middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/// Runs `ours` and `peer` once per round, the side that goes first alternating, so that a shared
/// machine's drift hits both.
func inTurn(_ ours: () -> Void, _ peer: () -> Void) {
    for round in 0..<rounds {
        if round % 2 == 0 { ours(); peer() } else { peer(); ours() }
    }
}

/// "median (min–max)" of per-round values, or the value alone for one round.
func spread(_ values: [Double], _ format: String) -> String {
    let text = String(format: format, median(values))
    guard values.count > 1, let low = values.min(), let high = values.max() else { return text }
    return text + " (" + String(format: format, low) + "–" + String(format: format, high) + ")"
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// Median seconds per call of `body`, over `trials` trials of `repeats` calls.
func measure(trials: Int, repeats: Int, _ body: () -> Void) -> Double {
    body()
    var samples: [Double] = []
    for _ in 0..<trials {
        let start = now()
        for _ in 0..<repeats { body() }
        samples.append((now() - start) / Double(repeats))
    }
    return samples.sorted()[samples.count / 2]
}

func row(_ cells: [String], widths: [Int]) -> String {
    zip(cells, widths).map { cell, width in cell.padding(toLength: width, withPad: " ", startingAt: 0) }.joined(separator: "  ")
}

print("TensorBench — \(options.threads) threads (PRUNEGYM_THREADS sets PruneGym's), OpenBLAS \(BLAS.kernels) kernels, \(options.quick ? "quick" : "full") run")
print()
if options.profile { print("profile mode: 10 encoder training steps") }

// MARK: 1. GEMM

var generator = SeededGenerator(seed: 0)
if !options.profile { benchmarkGEMM() }

@MainActor func benchmarkGEMM() {
print("1. GEMM (square n×n · n×n), GFLOP/s, median of trials; \(rounds) round\(rounds == 1 ? "" : "s"), PruneGym and cblas_sgemm in turn")
let gemmWidths = [6, 14, 14, 26]
print(row(["n", "PruneGym", "cblas_sgemm", rounds == 1 ? "overhead" : "overhead (per-round range)"], widths: gemmWidths))
var generator = SeededGenerator(seed: 1)
let sizes = [64, 128, 256, 512, 1024]
let trials = options.quick ? 5 : 15
let operands = sizes.map { n in (Tensor.normal([n, n], using: &generator), Tensor.normal([n, n], using: &generator)) }
func repeats(_ n: Int) -> Int { max(1, Int(2e8 / (2 * Double(n * n * n)))) }
func ours() -> [Double] {
    zip(sizes, operands).map { n, ab in
        (0..<trials).map { _ in measure(trials: 1, repeats: repeats(n)) { _ = Tensor.matmul(ab.0, ab.1) } }.sorted()[trials / 2]
    }
}
// The peer is OpenBLAS with its own thread pool; PruneGym keeps OpenBLAS single-threaded and
// splits the product over its own workers.
func direct() -> [Double] {
    BLAS.threadCount = options.threads
    defer { BLAS.threadCount = 1 }
    return zip(sizes, operands).map { n, ab in
        var c = [Float](repeating: 0, count: n * n)
        return (0..<trials).map { _ in
            measure(trials: 1, repeats: repeats(n)) {
                ab.0.withUnsafeBufferPointer { pa in
                    ab.1.withUnsafeBufferPointer { pb in
                        c.withUnsafeMutableBufferPointer { pc in
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1,
                                        pa.baseAddress, Int32(n), pb.baseAddress, Int32(n), 0, pc.baseAddress, Int32(n))
                        }
                    }
                }
            }
        }.sorted()[trials / 2]
    }
}
// The two sides take turns by rounds, never call by call: OpenBLAS's own pool keeps spinning after
// its calls and would steal the cores PruneGym's workers use, so each side rests 0.3 s first.
var oursByRound: [[Double]] = [], directByRound: [[Double]] = []
inTurn({ Thread.sleep(forTimeInterval: 0.3); oursByRound.append(ours()) },
       { Thread.sleep(forTimeInterval: 0.3); directByRound.append(direct()) })
var worstOverhead = -Double.infinity
for (i, n) in sizes.enumerated() {
    let flops = 2 * Double(n * n * n)
    let overheads = (0..<rounds).map { (oursByRound[$0][i] / directByRound[$0][i] - 1) * 100 }
    worstOverhead = max(worstOverhead, median(overheads))
    print(row([String(n), String(format: "%.1f", flops / median(oursByRound.map { $0[i] }) / 1e9),
               String(format: "%.1f", flops / median(directByRound.map { $0[i] }) / 1e9),
               spread(overheads, "%+.1f%%")], widths: gemmWidths))
}
print("   worst overhead (median over rounds): \(String(format: "%+.1f%%", worstOverhead)) (target ≤ 5%)")
print()
}

// MARK: 2. Training steps

final class Encoder: Module {
    let layers: TransformerEncoder
    init(generator: inout SeededGenerator) {
        layers = TransformerEncoder(layerCount: 2, modelSize: 128, headCount: 4, mlpSize: 512, finalNorm: false, generator: &generator)
    }
    func callAsFunction(_ x: Tensor) -> Tensor { layers(x) }
    var namedParameters: [(name: String, parameter: Parameter)] { layers.namedParameters }
    var description: String { layers.description }
}

let encoder = Encoder(generator: &generator)
let encoderInput = Tensor.normal([16, 256, 128], using: &generator)
let encoderTarget = Tensor.normal([16, 256, 128], using: &generator)
let encoderOptimizer = Adam.adamW(encoder.namedParameters, learningRate: 1e-4)
@MainActor func encoderStep() {
    encoderOptimizer.zeroGradients()
    Loss.meanSquaredError(encoder(encoderInput), encoderTarget).backward()
    encoderOptimizer.step()
}

let mlp = MLP(sizes: [16, 64, 64, 4], activation: .tanh, generator: &generator)
let mlpInput = Tensor.normal([64, 16], using: &generator)
let mlpTarget = Tensor.normal([64, 4], using: &generator)
let mlpOptimizer = Adam.adamW(mlp.namedParameters, learningRate: 1e-4)
@MainActor func mlpStep() {
    mlpOptimizer.zeroGradients()
    Loss.meanSquaredError(mlp(mlpInput), mlpTarget).backward()
    mlpOptimizer.step()
}

if options.profile {
    for _ in 0..<10 { encoderStep() }
    exit(0)
}

let steps = options.quick ? 5 : 15

struct Peer: Decodable {
    let torch: String
    let threads: Int
    let transformer_ms: Double
    let mlp_ms: Double
    let inference_ms: Double
}

@MainActor func runPeer() -> Peer? {
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("peers/torch_step.py")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", script.path, "--threads", String(options.threads), "--steps", String(steps)]
    let output = Pipe(), errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    do { try process.run() } catch {
        print("   peer skipped: cannot run python3 (\(error))")
        return nil
    }
    let data = output.fileHandleForReading.readDataToEndOfFile()
    let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0, let peer = try? JSONDecoder().decode(Peer.self, from: data) else {
        let reason = errorText.contains("No module named 'torch'") ? "PyTorch is not installed (pip install torch)" : errorText.split(separator: "\n").last.map(String.init) ?? "no output"
        print("   peer skipped: \(reason)")
        return nil
    }
    return peer
}

print("2. Training step: forward + backward + AdamW, milliseconds per step (median); \(rounds) round\(rounds == 1 ? "" : "s"), PruneGym and PyTorch in turn")
/// PruneGym's three figures of one round, in milliseconds: encoder step, MLP step, inference forward.
@MainActor func oursRound() -> [Double] {
    [measure(trials: steps, repeats: 1, encoderStep) * 1000,
     measure(trials: options.quick ? 5 : 15, repeats: 200, mlpStep) * 1000,
     measure(trials: steps, repeats: 1) { _ = withInferenceMode { encoder(encoderInput) } } * 1000]
}
var stepRounds: [[Double]] = [], peerRounds: [Peer] = []
var peerMissing = false
inTurn({ stepRounds.append(oursRound()) }, {
    guard !peerMissing else { return }
    if let peer = runPeer() { peerRounds.append(peer) } else { peerMissing = true }
})
let stepWidths = [48, 12, 12, 28]
print(row(["workload", "PruneGym", "PyTorch", rounds == 1 ? "PyTorch/PruneGym" : "PyTorch/PruneGym (range)"], widths: stepWidths))
let peerFigures: [KeyPath<Peer, Double>] = [\.transformer_ms, \.mlp_ms, \.inference_ms]
let workloads = ["transformer 2×(d128, 4 heads, MLP 512), 16×256", "MLP 16-64-64-4 tanh, batch 64", "transformer forward, inference mode"]
for (i, workload) in workloads.enumerated() {
    let mine = median(stepRounds.map { $0[i] })
    guard peerRounds.count == rounds else {
        print(row([workload, String(format: "%.3f", mine), "skipped", "-"], widths: stepWidths))
        continue
    }
    let theirs = peerRounds.map { $0[keyPath: peerFigures[i]] }
    let ratios = (0..<rounds).map { theirs[$0] / stepRounds[$0][i] }
    print(row([workload, String(format: "%.3f", mine), String(format: "%.3f", median(theirs)), spread(ratios, "%.2f×")], widths: stepWidths))
}
if let peer = peerRounds.first { print("   peer: PyTorch \(peer.torch), \(peer.threads) threads") }
print()

// MARK: 3. Inference mode memory

print("3. Encoder forward (16×256 tokens): tape nodes and tensor memory")
func profile(_ body: () -> Tensor) -> (nodes: Int, peakMB: Double, heldMB: Double) {
    let baseline = MemoryStatistics.liveBytes
    MemoryStatistics.resetPeak()
    let nodes = TapeNode.createdCount
    let output = body()
    let held = MemoryStatistics.liveBytes - baseline
    let peak = MemoryStatistics.peakBytes - baseline
    _ = output.count
    return (TapeNode.createdCount - nodes, Double(peak) / 1e6, Double(held) / 1e6)
}
let training = profile { encoder(encoderInput) }
let inference = profile { withInferenceMode { encoder(encoderInput) } }
let memoryWidths = [16, 12, 16, 26]
print(row(["mode", "tape nodes", "peak MB", "held after forward MB"], widths: memoryWidths))
print(row(["training", String(training.nodes), String(format: "%.1f", training.peakMB), String(format: "%.1f", training.heldMB)], widths: memoryWidths))
print(row(["inference", String(inference.nodes), String(format: "%.1f", inference.peakMB), String(format: "%.1f", inference.heldMB)], widths: memoryWidths))
