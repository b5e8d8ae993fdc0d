import Foundation
import TensorCore
import TestSupport
import Testing
import VLM

@Suite("The pruning-aware API")
struct PruningAPITests {
    static func setup() throws -> (LlavaModel, Tensor, [Int], [Int], [Int], Tensor) {
        let model = try LlavaCheckpoint.load(Fixtures.url("hf-llava-tiny"))
        let golden = try SafeTensorsFile(contentsOf: Fixtures.url("hf-llava-tiny/golden.safetensors"))
        let ids = try golden.integers("input_ids").values
        let features = model.encode(try golden.tensor("pixel_values"))
        return (model, features, Array(ids[0..<4]), Array(ids[20..<26]), try golden.integers("keep_indices").values, try golden.tensor("pruned_logits"))
    }

    @Test("answer logits of a request equal transformers' pruned logits at the last position")
    func matchesFixture() throws {
        let (model, features, prefix, suffix, keep, pruned) = try Self.setup()
        let request = AnswerRequest(features: features.sliced(alongAxis: 0, 0..<1).reshaped(to: [16, 48]), keep: keep, prefix: prefix, suffix: suffix)
        let logits = try model.answerLogits([request])
        let expected = pruned.sliced(alongAxis: 0, 0..<1).sliced(alongAxis: 1, 14..<15).reshaped(to: [1, 120])
        expectClose(logits, expected, absolute: 1e-4, relative: 0)
    }

    @Test("a batch of requests with different token subsets equals the requests one by one")
    func batchingIsExact() throws {
        let (model, features, prefix, suffix, _, _) = try Self.setup()
        let image = features.sliced(alongAxis: 0, 1..<2).reshaped(to: [16, 48])
        let requests = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], [3, 9], [], [15]].map {
            AnswerRequest(features: image, keep: $0, prefix: prefix, suffix: suffix)
        }
        let batched = try model.answerLogits(requests)
        for (index, request) in requests.enumerated() {
            expectClose(batched.sliced(alongAxis: 0, index..<(index + 1)), try model.answerLogits([request]), absolute: 2e-5, relative: 0)
        }
        #expect(throws: VLMError.self) { try model.answerLogits([AnswerRequest(features: image, keep: [3, 2], prefix: prefix, suffix: suffix)]) }
        #expect(throws: VLMError.self) { try model.answerLogits([AnswerRequest(features: image, keep: [16], prefix: prefix, suffix: suffix)]) }
    }

    @Test("FastV keeping every token equals no pruning; its scores are a distribution over kept tokens")
    func fastV() throws {
        let (model, features, prefix, suffix, _, _) = try Self.setup()
        let image = features.sliced(alongAxis: 0, 0..<1).reshaped(to: [16, 48])
        let requests = [AnswerRequest(features: image, keep: Array(0..<16), prefix: prefix, suffix: suffix),
                        AnswerRequest(features: image, keep: [1, 4, 9], prefix: prefix, suffix: Array(suffix.prefix(3)))]
        expectClose(try model.fastVAnswerLogits(requests, layer: 0, keptAfter: 16), try model.answerLogits(requests), absolute: 2e-5, relative: 0)
        let scores = try model.lastTokenAttention(requests, layer: 1)
        #expect(scores.map(\.count) == [16, 3])
        #expect(scores.allSatisfy { $0.allSatisfy { $0 >= 0 } && $0.reduce(0, +) < 1.0001 })
        let pruned = try model.fastVAnswerLogits(requests, layer: 0, keptAfter: 4)
        #expect(pruned.shape == [2, 120])
        let pixels = try SafeTensorsFile(contentsOf: Fixtures.url("hf-llava-tiny/golden.safetensors")).tensor("pixel_values")
        let attention = model.classAttention(pixels)
        #expect(attention.shape == [2, 16])
        // From one pass through the tower: the bits of the two calls.
        let (tokens, together) = model.encodeWithClassAttention(pixels)
        #expect(tokens.shape == model.encode(pixels).shape && together.shape == attention.shape)
        #expect(tokens.scalars.map(\.bitPattern) == model.encode(pixels).scalars.map(\.bitPattern))
        #expect(together.scalars.map(\.bitPattern) == attention.scalars.map(\.bitPattern))
    }

    @Test("pruning after an LLM layer: every token kept or a cut after the last layer changes nothing, FastV's choice equals FastV, bad sets throw")
    func prunedAfterLayer() throws {
        let (model, features, prefix, suffix, _, _) = try Self.setup()
        let image = features.sliced(alongAxis: 0, 0..<1).reshaped(to: [16, 48])
        let requests = [AnswerRequest(features: image, keep: Array(0..<16), prefix: prefix, suffix: suffix),
                        AnswerRequest(features: image, keep: [1, 4, 9, 12], prefix: prefix, suffix: Array(suffix.prefix(3)))]
        let full = try model.answerLogits(requests)
        expectClose(try model.answerLogits(requests, prunedAfter: 0, kept: requests.map(\.keep)), full, absolute: 2e-5, relative: 0)
        // After the last layer only the answer position's state matters: any kept set gives the unpruned answer.
        let lastLayer = model.configuration.text.layerCount - 1
        expectClose(try model.answerLogits(requests, prunedAfter: lastLayer, kept: [[3], []]), full, absolute: 2e-5, relative: 0)
        // The states after layer 0: one row per kept token, FastV's score equal to lastTokenAttention's.
        let states = try model.layerStates(requests, layer: 0)
        let width = model.configuration.text.hiddenSize
        #expect(states.map(\.visual.count) == [16 * width, 4 * width])
        #expect(states.allSatisfy { $0.last.count == width })
        for (state, scores) in zip(states, try model.lastTokenAttention(requests, layer: 0)) {
            #expect(zip(state.attention, scores).allSatisfy { abs($0 - $1) < 1e-6 })
        }
        // Keeping FastV's top 3 by those scores is FastV.
        let top = states.map { state in state.attention.indices.sorted { state.attention[$0] > state.attention[$1] }.prefix(3).sorted() }
        let kept = zip(requests, top).map { request, slots in slots.map { request.keep[$0] } }
        expectClose(try model.answerLogits(requests, prunedAfter: 0, kept: kept), try model.fastVAnswerLogits(requests, layer: 0, keptAfter: 3),
                    absolute: 2e-5, relative: 0)
        // A different cut gives a different answer than keeping everything.
        #expect(try model.answerLogits(requests, prunedAfter: 0, kept: [[0], [1]]).scalars != full.scalars)
        #expect(throws: VLMError.self) { try model.answerLogits(requests, prunedAfter: 0, kept: [[2, 1], [1]]) }
        #expect(throws: VLMError.self) { try model.answerLogits(requests, prunedAfter: 0, kept: [[0], [2]]) }  // 2 is not read by request 1
        #expect(throws: VLMError.self) { try model.answerLogits(requests, prunedAfter: 0, kept: [[0]]) }
        #expect(throws: VLMError.self) { try model.answerLogits(requests, prunedAfter: lastLayer + 1, kept: [[0], [1]]) }
        #expect(throws: VLMError.self) { try model.layerStates(requests, layer: -1) }
    }

    @Test("the cascade continuing one pass: the pruned answers are answerLogits(prunedAfter:)'s (and FastV's fastVAnswerLogits') bit for bit, the ones answered again the unpruned answers; its second answer's FLOPs are the layers after the cut and the head")
    func cascadeContinuesThePass() throws {
        let (model, features, prefix, suffix, _, _) = try Self.setup()
        let image = features.sliced(alongAxis: 0, 0..<1).reshaped(to: [16, 48])
        let other = features.sliced(alongAxis: 0, 1..<2).reshaped(to: [16, 48])
        let requests = [AnswerRequest(features: image, keep: Array(0..<16), prefix: prefix, suffix: suffix),
                        AnswerRequest(features: other, keep: Array(0..<16), prefix: prefix, suffix: Array(suffix.prefix(3))),
                        AnswerRequest(features: image, keep: Array(0..<16), prefix: prefix, suffix: Array(suffix.prefix(4)))]
        let kept = [[1, 4, 9], [0, 15], [2, 3, 5, 8]]
        for layer in [0, 1] {
            let pruned = try model.answerLogits(requests, prunedAfter: layer, kept: kept)
            let v = pruned.shape[1]
            let rows = (0..<3).map { Array(pruned.scalars[($0 * v)..<(($0 + 1) * v)]) }
            // Nothing rejected: exactly the one-pass pruned logits.
            let kept1 = try model.answerLogits(requests, prunedAfter: layer, kept: kept, standing: { _ in true })
            #expect(kept1.again.isEmpty && kept1.logits == rows)
            // Requests 0 and 2 rejected: those answered from every token, request 1 as pruned.
            let again = try model.answerLogits(requests, prunedAfter: layer, kept: kept, standing: { $0 == rows[1] })
            #expect(again.again == [0, 2] && again.logits[1] == rows[1])
            let full = try model.answerLogits([requests[0], requests[2]])
            expectClose(Tensor(shape: [2, v], scalars: again.logits[0] + again.logits[2]), full, absolute: 2e-5, relative: 0)
        }
        // FastV's cascade: its own choice from the cut layer's attention, the same pass continued.
        for layer in [0, 1] {
            let fastV = try model.fastVAnswerLogits(requests, layer: layer, keptAfter: 5)
            let v = fastV.shape[1]
            let rows = (0..<3).map { Array(fastV.scalars[($0 * v)..<(($0 + 1) * v)]) }
            let kept1 = try model.fastVAnswerLogits(requests, layer: layer, keptAfter: 5, standing: { _ in true })
            #expect(kept1.again.isEmpty && kept1.logits == rows)
            let again = try model.fastVAnswerLogits(requests, layer: layer, keptAfter: 5, standing: { $0 == rows[1] })
            #expect(again.again == [0, 2] && again.logits[1] == rows[1])
            let full = try model.answerLogits([requests[0], requests[2]])
            expectClose(Tensor(shape: [2, v], scalars: again.logits[0] + again.logits[2]), full, absolute: 2e-5, relative: 0)
        }
        #expect(throws: VLMError.self) { try model.fastVAnswerLogits(requests, layer: 2, keptAfter: 5, standing: { _ in true }) }
        #expect(throws: VLMError.self) { try model.answerLogits(requests, prunedAfter: 0, kept: [[0]], standing: { _ in true }) }
        #expect(throws: VLMError.self) { try model.answerLogits(requests, prunedAfter: 2, kept: kept, standing: { _ in true }) }
        let none = try model.answerLogits([], prunedAfter: 0, kept: [], standing: { _ in false })
        #expect(none.logits.isEmpty && none.again.isEmpty)
        // FLOPs: the layers after the cut over every token, and the head.
        let c = model.configuration
        let count = c.flops(visualTokens: 16, textTokens: 10)
        let layers = Double(c.text.layerCount)
        #expect(abs(model.continuationFLOPs(visualTokens: 16, textTokens: 10, afterLayer: 0) - (count.prefill * (layers - 1) / layers + count.head)) < 1e-6 * count.prefill)
        #expect(model.continuationFLOPs(visualTokens: 16, textTokens: 10, afterLayer: c.text.layerCount - 1) == count.head)
    }

    @Test("forward(outputRows:) and forward(attentionRows:) return the full forward's rows, computing those rows alone")
    func outputRows() throws {
        let (model, features, prefix, suffix, _, _) = try Self.setup()
        let image = features.sliced(alongAxis: 0, 0..<1).reshaped(to: [16, 48])
        // Two sequences of different lengths (right-padded), so the rows differ.
        let (embedded, last, _) = try model.requestBatch([AnswerRequest(features: image, keep: Array(0..<16), prefix: prefix, suffix: suffix),
                                                          AnswerRequest(features: image, keep: [2, 7], prefix: prefix, suffix: Array(suffix.prefix(2)))])
        let (batch, length, width) = (embedded.shape[0], embedded.shape[1], embedded.shape[2])
        var cache: KeyValueCache? = nil
        let positions = [Array(0..<length)]
        let full = model.languageModel.forward(embedded, positions: positions, cache: &cache).hidden
        let rows = model.languageModel.forward(embedded, positions: positions, cache: &cache, outputRows: last).hidden
        #expect(rows.shape == [batch, 1, width])
        let expected = Tensor.stacked((0..<batch).map { b in full.sliced(alongAxis: 0, b..<(b + 1)).sliced(alongAxis: 1, last[b]..<(last[b] + 1)).reshaped(to: [1, width]) })
        expectClose(rows, expected, absolute: 2e-5, relative: 0)
        // Asking for the last layer's attention runs it in full and still returns the rows.
        let layer = model.configuration.text.layerCount - 1
        let withAttention = model.languageModel.forward(embedded, positions: positions, cache: &cache, attentionLayer: layer, outputRows: last)
        expectClose(withAttention.hidden, expected, absolute: 2e-5, relative: 0)
        #expect(withAttention.attention?.shape == [batch, model.configuration.text.headCount, length, length])
        // Asking for the attention of one row per sequence gives those rows of the full probabilities.
        let heads = model.configuration.text.headCount
        for attentionLayer in 0...layer {
            let full = model.languageModel.forward(embedded, positions: positions, cache: &cache, attentionLayer: attentionLayer).attention!
            let rows = model.languageModel.forward(embedded, positions: positions, cache: &cache, attentionLayer: attentionLayer, attentionRows: last)
            #expect(rows.attention?.shape == [batch, heads, 1, length])
            let wanted = Tensor.stacked((0..<batch).map { b in
                full.sliced(alongAxis: 0, b..<(b + 1)).sliced(alongAxis: 2, last[b]..<(last[b] + 1)).reshaped(to: [heads, 1, length])
            })
            expectClose(rows.attention!, wanted, absolute: 1e-6, relative: 0)
            expectClose(rows.hidden, model.languageModel.forward(embedded, positions: positions, cache: &cache).hidden, absolute: 2e-5, relative: 0)
        }
    }

    @Test("answer saliency is gradient × input: the derivative of log p(answer) when a token is scaled by 1 + ε")
    func saliency() throws {
        let (model, features, prefix, suffix, _, _) = try Self.setup()
        let image = features.sliced(alongAxis: 0, 0..<1).reshaped(to: [16, 48])
        let keep = [0, 2, 5, 7, 11]
        let answer = 17
        let scores = try model.answerSaliency([AnswerRequest(features: image, keep: keep, prefix: prefix, suffix: suffix)], answers: [answer])[0]
        #expect(scores.count == keep.count)
        func logProbability(scaling token: Int, by factor: Float) throws -> Double {
            var values = image.scalars
            for d in 0..<48 { values[token * 48 + d] *= factor }
            let logits = try model.answerLogits([AnswerRequest(features: Tensor(shape: [16, 48], scalars: values), keep: keep, prefix: prefix, suffix: suffix)]).scalars.map(Double.init)
            let top = logits.max()!
            return logits[answer] - top - Foundation.log(logits.map { Foundation.exp($0 - top) }.reduce(0, +))
        }
        let epsilon: Float = 1e-2
        for (k, token) in keep.enumerated() {
            let numeric = (try logProbability(scaling: token, by: 1 + epsilon) - logProbability(scaling: token, by: 1 - epsilon)) / Double(2 * epsilon)
            #expect(abs(Double(scores[k]) - numeric) < 2e-3 + 0.02 * abs(numeric), "token \(token): \(scores[k]) vs \(numeric)")
        }
        // No gradients are left on the model's parameters.
        #expect(model.parameters.allSatisfy { $0.gradient == nil })
        #expect(throws: VLMError.self) { try model.answerSaliency([AnswerRequest(features: image, keep: keep, prefix: prefix, suffix: suffix)], answers: [999]) }
    }

    /// A configuration whose text model is 2 layers of width 64, 4 heads, MLP 128.
    static func twoLayerText() -> LlavaConfiguration {
        var c = LlavaConfiguration()
        c.text.hiddenSize = 64
        c.text.headCount = 4
        c.text.intermediateSize = 128
        c.text.layerCount = 2
        return c
    }

    @Test("FLOPs follow the stated convention and reduce to FastV's 4nd² + 2n²d + 2ndm")
    func flops() {
        var c = Self.twoLayerText()
        let n = 10.0, d = 64.0, m = 128.0
        // SwiGLU has three matrices: FastV's formula with 3ndm in place of 2ndm.
        let expected = 2 * (4 * n * d * d + 2 * n * n * d + 3 * n * d * m)
        #expect(c.flops(visualTokens: 6, textTokens: 4).prefill == expected)
        c.text.keyValueHeadCount = 2  // GQA halves the k and v projections
        #expect(c.flops(visualTokens: 6, textTokens: 4).prefill == expected - 2 * (n * d * d))
        #expect(c.fastVPrefillFLOPs(visualTokens: 6, textTokens: 4, layer: 5, keptAfter: 0) == c.flops(visualTokens: 6, textTokens: 4).prefill)
    }

    @Test("executed FLOPs: causal blocks of 32 query rows against the keys they see, the last layer's answer row alone")
    func executedFLOPs() {
        let c = Self.twoLayerText()
        let (d, m) = (64.0, 128.0)
        // 40 tokens: rows 0…31 score keys 0…31, rows 32…39 keys 0…39.
        let n = 40.0, pairs = 32.0 * 32 + 8 * 40
        let first = 4 * n * d * d + 2 * pairs * d + 3 * n * d * m
        let last = 2 * n * d * d + 2 * d * d + 2 * n * d + 3 * d * m  // k, v for all; q, o, one attention row, MLP for one
        let whole = c.flops(visualTokens: 30, textTokens: 10)
        #expect(c.executedFLOPs(visualTokens: 30, textTokens: 10) == whole.vision + whole.projector + whole.head + first + last)
    }

    @Test("merging what a pruner leaves out: one token left out and merged is no pruning at all, inside the LLM and before it, FastV's merged cut likewise, and nothing to merge throws")
    func mergingOneTokenChangesNothing() throws {
        let (model, features, prefix, suffix, _, _) = try Self.setup()
        let image = features.sliced(alongAxis: 0, 0..<1).reshaped(to: [16, 48])
        let request = AnswerRequest(features: image, keep: Array(0..<16), prefix: prefix, suffix: suffix)
        let full = try model.answerLogits([request])
        // The merged row is then the token itself, at its own place and position, weighing log 1 = 0.
        for left in [0, 7, 15] {
            let kept = Array(0..<16).filter { $0 != left }
            expectClose(try model.answerLogits([request], prunedAfter: 0, mergingRestOf: [kept]), full, absolute: 2e-5, relative: 0)
        }
        expectClose(try model.fastVAnswerLogits([request], layer: 1, keptAfter: 15, mergingRest: true), full, absolute: 2e-5, relative: 0)
        // Before the language model too: the merged input is the token's own embedding, in place.
        for left in [0, 7, 15] {
            expectClose(try model.answerLogits([request], mergingRestOf: [Array(0..<16).filter { $0 != left }]), full, absolute: 2e-5, relative: 0)
        }
        #expect(try model.answerLogits([request], mergingRestOf: [[1, 4, 9]]).scalars
                != model.answerLogits([AnswerRequest(features: image, keep: [1, 4, 9], prefix: prefix, suffix: suffix)]).scalars)
        #expect(throws: VLMError.self) { try model.answerLogits([request], mergingRestOf: [Array(0..<16)]) }
        expectClose(try model.fastVAnswerLogits([request], layer: 0, keptAfter: 3, mergingRest: false), try model.fastVAnswerLogits([request], layer: 0, keptAfter: 3),
                    absolute: 0, relative: 0)
        // Merging differs from dropping when it stands for several tokens.
        let kept = [1, 4, 9]
        #expect(try model.answerLogits([request], prunedAfter: 0, mergingRestOf: [kept]).scalars
                != model.answerLogits([request], prunedAfter: 0, kept: [kept]).scalars)
        #expect(throws: VLMError.self) { try model.answerLogits([request], prunedAfter: 0, mergingRestOf: [Array(0..<16)]) }
        #expect(throws: VLMError.self) { try model.fastVAnswerLogits([request], layer: 0, keptAfter: 16, mergingRest: true) }
    }

    @Test("a merged row's key bias log m is attention to m copies of it: one layer over [a, b, c] with log 2 on b equals [a, b, b, c] at c")
    func proportionalAttention() throws {
        let model = try LlavaCheckpoint.load(Fixtures.url("hf-llava-tiny")).languageModel
        var generator = SeededGenerator(seed: 3)
        let rows = Tensor.normal([3, 48], using: &generator)
        let three = rows.reshaped(to: [1, 3, 48])
        let four = rows.indexSelect([0, 1, 1, 2], alongAxis: 0).reshaped(to: [1, 4, 48])
        var cache: KeyValueCache? = nil
        let bias = Tensor(shape: [1, 1, 1, 3], scalars: [0, Float(Foundation.log(2.0)), 0])
        let merged = model.forward(three, positions: [[0, 1, 2]], cache: &cache, stopAfter: 0, keyBias: bias).hidden
        let copies = model.forward(four, positions: [[0, 1, 1, 2]], cache: &cache, stopAfter: 0).hidden
        expectClose(merged.sliced(alongAxis: 1, 2..<3), copies.sliced(alongAxis: 1, 3..<4), absolute: 1e-5, relative: 0)
        expectClose(merged.sliced(alongAxis: 1, 0..<1), copies.sliced(alongAxis: 1, 0..<1), absolute: 1e-5, relative: 0)
    }

    @Test("LlamaModel.merging lays out the kept rows and the mean of the others after the last of them, at their mean position, with bias log m")
    func mergingLayout() throws {
        let states = Tensor(shape: [1, 6, 2], scalars: (0..<12).map(Float.init))
        // Rows 1, 2 and 4 are left out (5 is the last kept row; none after it).
        let merged = LlamaModel.merging(states, keep: [[0, 3, 5]], positions: [[10, 11, 12, 13, 14, 15]])
        #expect(merged.rows == [[0, 3, -1, 5]])
        #expect(merged.positions == [[10, 13, 12, 15]])  // (11 + 12 + 14) / 3 = 12.33 → 12
        #expect(merged.states.shape == [1, 4, 2])
        expectClose(merged.states, Tensor(shape: [1, 4, 2], scalars: [0, 1, 6, 7, 14 / 3, 17 / 3, 10, 11]), absolute: 1e-6, relative: 0)
        #expect(merged.keyBias.shape == [1, 1, 1, 4])
        #expect(merged.keyBias.scalars == [0, 0, Float(Foundation.log(3.0)), 0])
    }

    @Test("the forward pass and generation refuse images of another size and an image without image tokens, as transformers does, instead of crashing")
    func refusesMismatchedInputs() throws {
        let model = try LlavaCheckpoint.load(Fixtures.url("hf-llava-tiny"))
        let golden = try SafeTensorsFile(contentsOf: Fixtures.url("hf-llava-tiny/golden.safetensors"))
        let ids = try golden.integers("input_ids").values
        let rows = [Array(ids[0..<26]), Array(ids[26..<52])]
        let pixels = try golden.tensor("pixel_values")
        for bad in [Tensor.zeros([2, 3, 16, 16]), Tensor.zeros([2, 1, 32, 32]), Tensor.zeros([3, 32, 32])] {
            #expect(throws: VLMError.invalidInput(reason: "pixel_values must be [B, 3, 32, 32] (vision_config's num_channels and image_size), got \(bad.shape)")) {
                _ = try model(inputIDs: rows, pixels: bad)
            }
            #expect(throws: VLMError.self) { _ = try model.generate(inputIDs: rows, pixels: bad, count: 1) }
        }
        let textOnly = rows.map { $0.filter { $0 != model.configuration.imageTokenIndex } }
        #expect(throws: VLMError.self) { _ = try model(inputIDs: textOnly, pixels: pixels) }
        #expect(try model(inputIDs: textOnly, pixels: nil).shape == [2, 10, 120], "text alone, without an image, still runs")
    }
}
