import Foundation
import TensorCore
import Testing
import TestSupport
@testable import VLM

/// How `vlm train` runs its language model on a batch of answers of different lengths: in groups of
/// similar length (`VLMTrainer.lengthGroups`, `GroupedSequences`), each padded only to its own
/// longest, with the values of one batch padded to the longest; and the routing probe's attention,
/// which must be the layer's own, after a cut inside the LLM too.
@Suite struct TrainingBatchTests {
    @Test("lengthGroups: a partition of the sorted lengths that computes the fewest rows, a group's fixed cost included")
    func lengthGroups() {
        // Two short and two long: two groups (2·10 + 2·200 + 2·128 < 4·200 + 128).
        #expect(VLMTrainer.lengthGroups([200, 10, 200, 10]) == [[1, 3], [0, 2]])
        // Close lengths stay one group: padding 1 row costs less than a second group.
        #expect(VLMTrainer.lengthGroups([100, 101]) == [[0, 1]])
        #expect(VLMTrainer.lengthGroups([42]) == [[0]])
        #expect(VLMTrainer.lengthGroups([5, 50, 500], maximumGroups: 1) == [[0, 1, 2]])
        #expect(VLMTrainer.lengthGroups([5, 50, 500, 5000], groupCost: 0) == [[0], [1], [2], [3]])
        #expect(VLMTrainer.lengthGroups([5, 50, 500, 5000, 50000], groupCost: 0).count == 4, "at most four groups")

        var generator = testGenerator(3)
        for _ in 0..<50 {
            let lengths = (0..<32).map { _ in 20 + generator.integer(below: 260) }
            let groups = VLMTrainer.lengthGroups(lengths)
            #expect(groups.joined().sorted() == Array(lengths.indices), "every sequence once")
            #expect(groups.allSatisfy { $0 == $0.sorted() } && groups.count <= 4)
            let rows = groups.map { g in g.count * g.map { lengths[$0] }.max()! + 128 }.reduce(0, +)
            #expect(rows <= lengths.count * lengths.max()! + 128, "never more than one padded batch")
            // Groups follow the lengths: every length of a group is at most every length of the next.
            for (a, b) in zip(groups, groups.dropFirst()) { #expect(a.map { lengths[$0] }.max()! <= b.map { lengths[$0] }.min()!) }
        }
    }

    /// A tiny model of the built-in architecture (seeded weights) and requests of 3–16 visual tokens.
    static func modelAndRequests() throws -> (VLMTrainer, [AnswerRequest]) {
        var c = VLMTrainingConfiguration()
        (c.textLayers, c.visionLayers, c.visionOnlySamples) = (2, 1, 0)
        let trainer = VLMTrainer(configuration: c)
        let width = trainer.model.configuration.text.hiddenSize
        var generator = testGenerator(7)
        let counts = [16, 3, 15, 4, 16, 9]
        let requests = counts.enumerated().map { b, count in
            let features = Tensor(shape: [16, width], scalars: (0..<(16 * width)).map { _ in Float(generator.nextDouble() * 2 - 1) })
            let keep = Array((0..<16).filter { $0 % (b + 1) == 0 || $0 > 4 }.prefix(count))
            return AnswerRequest(features: features, keep: keep, prefix: [1, 5, 6], suffix: [7, 8, 9, 10, 11].prefix(2 + b % 3).map { $0 })
        }
        return (trainer, requests)
    }

    @Test("GroupedSequences: each sequence's rows as in one batch padded to the longest, before and after a cut; the groups differ")
    func groupedEqualsPadded() throws {
        let (trainer, requests) = try Self.modelAndRequests()
        let model = trainer.model, language = model.languageModel
        // Without a group's fixed cost: the tiny model's sequences are too short to split otherwise.
        var batch = try GroupedSequences(requests, model: model, groupCost: 0)
        #expect(batch.groups.count > 1, "lengths \(requests.map { $0.prefix.count + $0.keep.count + $0.suffix.count }) form groups")

        // The reference: the whole batch padded to the longest, through the model's own forward pass.
        let (embedded, last, starts) = try model.requestBatch(requests)
        var cache: KeyValueCache? = nil
        let full = language.forward(embedded, positions: [Array(0..<embedded.shape[1])], cache: &cache, stopAfter: 0).hidden
        batch.apply(language.layers[0])
        #expect(batch.last == last)
        // `stopAfter` returns the layer's output without the final norm.
        expectClose(batch.lastRows(), model.gatherLast(full, last), absolute: 1e-5, relative: 1e-5)
        let visual = batch.rows { b in Array(starts[b]..<(starts[b] + requests[b].keep.count)) }
        let expected = Tensor.concatenated(visual.order.map { b in
            full.sliced(alongAxis: 0, b..<(b + 1)).reshaped(to: [full.shape[1], -1]).sliced(alongAxis: 0, starts[b]..<(starts[b] + requests[b].keep.count))
        }, alongAxis: 0)
        expectClose(visual.rows, expected, absolute: 1e-5, relative: 1e-5)

        // A cut after layer 0: every other visual token of the first three, all of the rest. Against
        // answerLogits(prunedAfter:), which pads its cut batch to the longest.
        let kept = requests.indices.map { b in b < 3 ? Array(stride(from: 0, to: requests[b].keep.count, by: 2)) : Array(requests[b].keep.indices) }
        batch.cut(keeping: requests.indices.map { b in
            LlavaModel.keptRows(kept[b], start: starts[b], count: requests[b].keep.count, last: last[b])
        }, language)
        #expect(batch.positions[0].last == last[0] && batch.last[0] < last[0], "rows dropped, positions kept")
        for layer in language.layers.dropFirst() { batch.apply(layer) }
        batch.parts = batch.parts.map { language.norm($0) }
        let logits = try withInferenceMode {
            try model.answerLogits(requests, prunedAfter: 0, kept: requests.indices.map { b in kept[b].map { requests[b].keep[$0] } })
        }
        expectClose(model.logits(batch.lastRows()), logits, absolute: 1e-4, relative: 1e-4)
    }

    @Test("The routing probe's attention is the layer's own for the answer row, after a cut (rows dropped, positions kept) too")
    func routingProbeAttention() throws {
        let (trainer, _) = try Self.modelAndRequests()
        let language = trainer.model.languageModel
        let layer = language.layers[0]
        let width = language.configuration.hiddenSize
        var generator = testGenerator(11)
        // Two sequences of 6 rows: the first kept rows of positions 0, 1, 2, 5, 7, 9 (a cut), the second 0..<6.
        let positions = [[0, 1, 2, 5, 7, 9], Array(0..<6)]
        let input = Tensor(shape: [2, 6, width], scalars: (0..<(12 * width)).map { _ in Float(generator.nextDouble() * 2 - 1) })
        let table = language.rotary(positions: positions)
        let visual: [[(row: Int, role: Int)]] = [[(1, 1), (2, 0), (3, 2)], [(1, 0), (2, 1), (3, 2)]]
        _ = trainer.module.routing.loss(layer: layer, input: input, rotary: table, theta: language.configuration.ropeTheta,
                                        last: [5, 5], lastPositions: [9, 5], visual: visual)
        var keys: Tensor?, values: Tensor?
        let weights = try #require(layer.attention(layer.inputNorm(input), rotary: table, cachedKeys: &keys, cachedValues: &values, causal: true,
                                                   weightRows: [5, 5]).weights)  // [B, heads, 1, 6]
        let heads = layer.attention.headCount, groups = layer.attention.keyValueHeadCount
        let probe = trainer.module.routing.attentionLogProbabilities
        #expect(probe.count == min(2, groups))
        for (group, logProbabilities) in probe.enumerated() {
            let head = group * (heads / groups)
            let expected = (0..<2).flatMap { b in (0..<6).map { j in weights.scalars[((b * heads + head) * 1) * 6 + j] } }
            expectClose(logProbabilities.map { Foundation.exp($0) }, expected, absolute: 1e-5, relative: 1e-4, "head \(head)")
        }
    }
}
