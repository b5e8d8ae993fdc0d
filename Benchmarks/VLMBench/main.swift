// VLMBench: forward latency of the built-in model at each token budget, beside transformers.
//
//   swift run -c release VLMBench [--model DIR] [--threads N] [--repeats R] [--rounds K] [--pairs P] [--skip-peers]
//   swift run -c release VLMBench --train CONFIG.json [--repeats R]   (the training step instead)
//
// Encode (vision tower + projector) + LLM prefill of [bos, kept visual tokens, question] + answer
// logits, batch 1 and 16, at 100%, 33%, 22% and 11% of the visual tokens (median of R runs), with
// FLOPs at each budget; the same weights in transformers on CPU with the same thread count
// (Benchmarks/peers/hf_llava.py), measured in the same run, the two sides alternating K rounds so
// that a shared machine's drift hits both (speed-up: median and range of the per-round ratios). Targets: ≥ 1.5× faster than
// transformers at batch 1, at least as fast at batch 16; prefill at 11% ≤ 40% of the time at 100%; the answer's time at
// 33% within 15% of what the FLOPs predict (printed per round against the convention's FLOPs and the executed ones, then
// call by call: P pairs of one answer at each budget, back to back, the order alternating).
import Foundation
import TensorCore
import VLM

// OpenBLAS's kernels for this CPU's vector instructions, if it does not recognise the CPU.
BLAS.restartWithMatchingKernels()

func print(_ text: String = "") { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }

var modelPath = "models/shapes-llava"
var repeats = 20
var rounds = 3
var skipPeers = false
var pairs = 100
var profile = false
var trainingConfiguration: String? = nil
var threads = ProcessInfo.processInfo.activeProcessorCount
var iterator = CommandLine.arguments.dropFirst().makeIterator()
while let argument = iterator.next() {
    switch argument {
    case "--model": modelPath = iterator.next() ?? modelPath
    case "--repeats": repeats = Int(iterator.next() ?? "") ?? repeats
    case "--rounds": rounds = max(1, Int(iterator.next() ?? "") ?? rounds)
    case "--threads": threads = Int(iterator.next() ?? "") ?? threads
    case "--skip-peers": skipPeers = true
    case "--pairs": pairs = max(0, Int(iterator.next() ?? "") ?? pairs)
    case "--profile": profile = true
    case "--train": trainingConfiguration = iterator.next() ?? "examples/vlm-two-hours.json"
    case "--help", "-h":
        print("""
            usage: swift run -c release VLMBench [--model DIR] [--threads N] [--repeats R] [--rounds K] [--pairs P] [--skip-peers] [--profile]
                   swift run -c release VLMBench --train CONFIG.json [--repeats R]
              --rounds K       alternate PruneGym's and transformers' measurements K times (default 3) and report the median of each and the median and range of the per-round speed-up, so that a shared machine's drift hits both sides
              --pairs P        then time the answer at 33% and at 100% of the tokens call by call, P pairs per batch size (default 100; 0 skips), the order alternating, and report the median and quartiles of the per-pair ratios
              --profile        where the vision tower's time goes at batch 1 and 16 (median per stage), then exit
              --train CONFIG   the training step of `prunegym vlm train --config CONFIG` instead: R steps (default 20) of each phase, the vision tower alone and the whole model, from the seed's initialisation, after 3 unmeasured steps; the median step, its spread, and samples/s over all R steps, which predicts a run's time (no peer: transformers has no trainer for these objectives)
            examples:
              swift run -c release VLMBench --model models/shapes-llava
              swift run -c release VLMBench --train examples/vlm-two-hours.json
            """)
        exit(0)
    default:
        FileHandle.standardError.write(Data("VLMBench: unknown option \(argument) (try --help)\n".utf8))
        exit(2)
    }
}

if let trainingConfiguration {
    // The training step alone, phase by phase: what `vlm train` spends its time on.
    do {
        guard let data = FileManager.default.contents(atPath: trainingConfiguration) else {
            throw VLMError.config(path: trainingConfiguration, reason: "cannot read the file (run from the repository root, or give its path)")
        }
        var configuration: VLMTrainingConfiguration
        do { configuration = try JSONDecoder().decode(VLMTrainingConfiguration.self, from: data) } catch {
            throw VLMError.config(path: trainingConfiguration, reason: "not a training configuration (`prunegym vlm train --config` reads the same file and says more): \(error)")
        }
        try configuration.validate()
        print("VLMBench --train: \(trainingConfiguration), batch \(configuration.batchSize), \(threads) threads, OpenBLAS \(BLAS.kernels) kernels; \(repeats) steps per phase after 3 unmeasured")
        print("phase                      median step   range (10th–90th)   samples/s (over all steps)")
        for (phase, visionOnly) in [("vision tower alone", true), ("whole model", false)] {
            configuration.visionOnlySamples = visionOnly ? configuration.samples : 0
            let trainer = VLMTrainer(configuration: configuration)
            for _ in 0..<3 { _ = try trainer.trainStep() }
            var times: [Double] = []
            for _ in 0..<repeats {
                let start = DispatchTime.now().uptimeNanoseconds
                _ = try trainer.trainStep()
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            times.sort()
            let median = times[times.count / 2], low = times[times.count / 10], high = times[(times.count * 9) / 10]
            print(phase.padding(toLength: 27, withPad: " ", startingAt: 0) + String(format: "%8.1f ms     %6.1f–%6.1f ms      %7.1f",
                                                                                  median * 1e3, low * 1e3, high * 1e3, Double(configuration.batchSize * repeats) / times.reduce(0, +)))
        }
        exit(0)
    } catch {
        FileHandle.standardError.write(Data("VLMBench: \(error)\n".utf8))
        exit(1)
    }
}

do {
    let directory = URL(fileURLWithPath: modelPath)
    let model = try LlavaCheckpoint.load(directory)
    let c = model.configuration
    let n = model.visualTokenCount
    let questionTokens = 10
    let fractions = [1.0, 0.333, 0.222, 0.111]
    print("VLMBench: \(modelPath) — vision \(c.vision.layerCount)×d\(c.vision.hiddenSize) on \(c.vision.gridSize)×\(c.vision.gridSize) patches, LLM \(c.text.layerCount)×d\(c.text.hiddenSize), \(n) visual tokens, \(questionTokens)-token question, \(threads) threads, OpenBLAS \(BLAS.kernels) kernels")

    var generator = SeededGenerator(seed: 0)
    func median(_ body: () throws -> Void) rethrows -> Double {
        for _ in 0..<3 { try body() }
        var times: [Double] = []
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        return times.sorted()[times.count / 2]
    }
    if profile {
        // The vision tower stage by stage, as CLIPVisionTower and TransformerEncoderLayer run it.
        let tower = model.visionTower
        for batch in [1, 16] {
            let pixels = Tensor.normal([batch, 3, c.vision.imageSize, c.vision.imageSize], using: &generator)
            var stages: [(String, Double)] = []
            withInferenceMode {
                stages.append(("embeddings (patchify, matmul, class + position, pre-LN)", median { _ = tower.embeddings(pixels) }))
                var h = tower.embeddings(pixels)
                for (index, layer) in tower.layers.prefix(max(1, c.vision.layerCount + c.visionFeatureLayer + 1)).enumerated() {
                    let attention = layer.selfAttention
                    let normed = layer.layerNorm1(h)
                    let (q, k, v) = (attention.queryProjection(normed), attention.keyProjection(normed), attention.valueProjection(normed))
                    let mixed = Tensor.scaledDotProductAttention(query: q, key: k, value: v, heads: attention.headCount, keyValueHeads: attention.keyValueHeadCount).output
                    let residual = h + attention.outputProjection(mixed)
                    let normed2 = layer.layerNorm2(residual)
                    let hidden = layer.mlp.fc1(normed2)
                    let activated = layer.mlp.activation(hidden)
                    stages.append(("layer \(index): layer norm 1", median { _ = layer.layerNorm1(h) }))
                    stages.append(("layer \(index): q, k, v projections", median { _ = (attention.queryProjection(normed), attention.keyProjection(normed), attention.valueProjection(normed)) }))
                    stages.append(("layer \(index): attention kernel (output only, as the tower runs)", median { _ = Tensor.scaledDotProductAttentionOutput(query: q, key: k, value: v, heads: attention.headCount, keyValueHeads: attention.keyValueHeadCount) }))
                    stages.append(("layer \(index):   (with probabilities, as when they are read)", median { _ = Tensor.scaledDotProductAttention(query: q, key: k, value: v, heads: attention.headCount, keyValueHeads: attention.keyValueHeadCount) }))
                    stages.append(("layer \(index): output projection + residual", median { _ = h + attention.outputProjection(mixed) }))
                    stages.append(("layer \(index): layer norm 2", median { _ = layer.layerNorm2(residual) }))
                    stages.append(("layer \(index): fc1", median { _ = layer.mlp.fc1(normed2) }))
                    stages.append(("layer \(index): activation", median { _ = layer.mlp.activation(hidden) }))
                    stages.append(("layer \(index): fc2 + residual", median { _ = residual + layer.mlp.fc2(activated) }))
                    h = layer(h)
                }
                let selected = model.visionFeatures(pixels)
                let projected = model.projector.linear1(selected)
                let projectedActivated = model.projector.activation(projected)
                stages.append(("selected features (every layer again, class token dropped)", median { _ = model.visionFeatures(pixels) }))
                stages.append(("projector: linear 1", median { _ = model.projector.linear1(selected) }))
                stages.append(("projector: activation (\(model.configuration.projectorActivation))", median { _ = model.projector.activation(projected) }))
                stages.append(("projector: linear 2", median { _ = model.projector.linear2(projectedActivated) }))
                stages.append(("whole encode (tower + projector)", median { _ = model.encode(pixels) }))
            }
            print("\nbatch \(batch): vision tower stages (median ms)")
            for (name, ms) in stages { print("  " + name.padding(toLength: 58, withPad: " ", startingAt: 0) + String(format: "%8.3f", ms)) }
        }
        exit(0)
    }
    var ours: [String: [Double]] = [:]
    var prefillOnly: [String: [Double]] = [:]
    var peer: [String: [Double]] = [:]
    var peerSkipped: String?
    let pixelsByBatch = [1, 16].map { batch in (batch, Tensor.normal([batch, 3, c.vision.imageSize, c.vision.imageSize], using: &generator)) }
    let question = (0..<questionTokens).map { 4 + $0 % 16 }
    func keepIndices(_ fraction: Double) -> [Int] {
        let kept = max(1, Int((Double(n) * fraction).rounded()))
        return (0..<kept).map { $0 * n / kept }
    }
    /// One request per image of `features` `[B, n, D]`: bos, the kept tokens, the question.
    func requests(_ features: Tensor, keep: [Int]) -> [AnswerRequest] {
        (0..<features.shape[0]).map { b in
            AnswerRequest(features: features.sliced(alongAxis: 0, b..<(b + 1)).reshaped(to: [n, -1]), keep: keep, prefix: [1], suffix: question)
        }
    }
    /// One answer, as the table times it: encode the batch's images, then prefill and answer logits.
    func answer(_ pixels: Tensor, keep: [Int]) throws {
        try withInferenceMode { _ = try model.answerLogits(requests(model.encode(pixels), keep: keep)) }
    }
    for round in 0..<rounds {
        if rounds > 1 { FileHandle.standardError.write(Data("VLMBench: round \(round + 1) of \(rounds)\n".utf8)) }
        for (batch, pixels) in pixelsByBatch {
            for fraction in fractions {
                let keep = keepIndices(fraction)
                ours["\(batch)@\(fraction)", default: []].append(try median { try answer(pixels, keep: keep) })
                let encoded = withInferenceMode { requests(model.encode(pixels), keep: keep) }
                prefillOnly["\(batch)@\(fraction)", default: []].append(try median { try withInferenceMode { _ = try model.answerLogits(encoded) } })
            }
        }

        guard !skipPeers, peerSkipped == nil else { continue }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("peers/hf_llava.py")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path, "--model", directory.path, "--threads", String(threads), "--repeats", String(repeats),
                             "--fractions", fractions.map { "\($0)" }.joined(separator: ","), "--question-tokens", String(questionTokens)]
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus == 0, let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let ms = object["ms"] as? [String: Double] {
            for (key, value) in ms { peer[key, default: []].append(value) }
        } else {
            peerSkipped = errorText.split(separator: "\n").last.map(String.init) ?? "no output"
            print("   peer skipped: \(peerSkipped!)")
        }
    }

    func middle(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
    func cell(_ text: String, _ width: Int) -> String { text.padding(toLength: width, withPad: " ", startingAt: 0) }
    if rounds > 1 { print("medians of \(rounds) alternating rounds; speed-up: median of the per-round ratios (range)") }
    print(cell("batch", 7) + cell("tokens", 14) + cell("GFLOPs", 9) + cell("PruneGym ms", 13) + cell("prefill ms", 12) + cell("transformers ms", 17) + "speed-up")
    for batch in [1, 16] {
        for fraction in fractions {
            let key = "\(batch)@\(fraction)"
            let kept = max(1, Int((Double(n) * fraction).rounded()))
            let flops = c.flops(visualTokens: kept, textTokens: questionTokens + 1).total * Double(batch) / 1e9
            let theirs = peer[key].flatMap { $0.count == ours[key]!.count ? $0 : nil }
            let ratios = theirs.map { zip($0, ours[key]!).map { $0 / $1 } }
            let speedUp = ratios.map { r in
                r.count > 1 ? String(format: "%.2f× (%.2f–%.2f)", middle(r), r.min()!, r.max()!) : String(format: "%.2f×", r[0])
            }
            print(cell("\(batch)", 7) + cell("\(kept) (\(Int((fraction * 100).rounded()))%)", 14) + cell(String(format: "%.3f", flops), 9)
                  + cell(String(format: "%.2f", middle(ours[key]!)), 13) + cell(String(format: "%.2f", middle(prefillOnly[key]!)), 12)
                  + cell(theirs.map { String(format: "%.2f", middle($0)) } ?? "skipped", 17) + (speedUp ?? "-"))
        }
    }
    for batch in [1, 16] {
        let ratio = middle(prefillOnly["\(batch)@0.111"]!) / middle(prefillOnly["\(batch)@1.0"]!)
        print(String(format: "batch %d: prefill at 11%% of tokens takes %.0f%% of the time at 100%% (target ≤ 40%%)", batch, ratio * 100))
    }
    // Time against FLOPs at 33% (target: within 15% of what the FLOPs predict), each round's two
    // times taken together so that the machine's drift between rounds cancels.
    let pruned = max(1, Int((Double(n) * 0.333).rounded()))
    for batch in [1, 16] {
        let ratios = zip(ours["\(batch)@0.333"]!, ours["\(batch)@1.0"]!).map { $0 / $1 }
        let convention = c.flops(visualTokens: pruned, textTokens: questionTokens + 1).total / c.flops(visualTokens: n, textTokens: questionTokens + 1).total
        let executed = c.executedFLOPs(visualTokens: pruned, textTokens: questionTokens + 1) / c.executedFLOPs(visualTokens: n, textTokens: questionTokens + 1)
        let measured = middle(ratios)
        print(String(format: "batch %d: the answer at 33%% of tokens takes %.3f of the time at 100%% (rounds %.3f–%.3f); FLOPs predict %.3f by the convention (%+.0f%%), %.3f as executed (%+.0f%%); target within 15%%",
                     batch, measured, ratios.min()!, ratios.max()!, convention, (measured / convention - 1) * 100, executed, (measured / executed - 1) * 100))
        guard pairs > 0, let pixels = pixelsByBatch.first(where: { $0.0 == batch })?.1 else { continue }
        // The same ratio call by call: each pair times one answer at 100% and one at 33% back to
        // back, the order alternating from pair to pair, so that what else the machine does lands
        // on both sides of a pair; the per-pair ratios' median and quartiles, and the ratio of each
        // side's fastest call.
        let full = keepIndices(1.0), kept = keepIndices(0.333)
        func time(_ keep: [Int]) throws -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            try answer(pixels, keep: keep)
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        }
        for _ in 0..<3 { _ = try time(full); _ = try time(kept) }
        var pairRatios: [Double] = [], fastestFull = Double.infinity, fastestPruned = Double.infinity
        for pair in 0..<pairs {
            let whole: Double, pruned: Double
            if pair.isMultiple(of: 2) {
                whole = try time(full)
                pruned = try time(kept)
            } else {
                pruned = try time(kept)
                whole = try time(full)
            }
            pairRatios.append(pruned / whole)
            fastestFull = min(fastestFull, whole)
            fastestPruned = min(fastestPruned, pruned)
        }
        pairRatios.sort()
        let pairMedian = pairRatios[pairRatios.count / 2]
        print(String(format: "batch %d: call by call (%d pairs, alternating order): %.3f of the time at 100%% (quartiles %.3f–%.3f; fastest calls %.2f / %.2f ms, %.3f); %+.0f%% against the convention's FLOPs, %+.0f%% against the executed",
                     batch, pairs, pairMedian, pairRatios[pairRatios.count / 4], pairRatios[(pairRatios.count * 3) / 4], fastestPruned, fastestFull,
                     fastestPruned / fastestFull, (pairMedian / convention - 1) * 100, (pairMedian / executed - 1) * 100))
    }
} catch {
    FileHandle.standardError.write(Data("VLMBench: \(error)\n".utf8))
    exit(1)
}
