import Foundation
import Gym
import Synchronization
import TensorCore
import VLM

/// What the simulator knows about one task, computed once and cached: the visual tokens, their
/// codes for the policy, the class-token attention, the query embedding and the unpruned answer.
public struct TaskEntry: @unchecked Sendable {
    /// The task's index in its split.
    public let index: Int
    /// The task's split.
    public let split: String
    public let task: PruningTask
    /// Visual tokens `[N, D]`.
    public let tokens: Tensor
    /// Autoencoder codes `[N, k]`, row-major.
    public let codes: [Float]
    /// Class-token attention over the N tokens (sums to about 1).
    public let classAttention: [Float]
    /// Mean embedding of the question's words `[D]`.
    public let query: [Float]
    /// Embedding of each of the question's words `[L, D]`, row-major (L = `task.query.count`).
    public let wordEmbeddings: [Float]
    /// Answer logits with every visual token kept.
    public let fullLogits: [Float]
    /// In a simulator that prunes inside the language model (`PruningSimulator.pruneAfterLayer`
    /// K): the last text token's attention over the N visual tokens in layer K, mean over heads
    /// (FastV's score); nil otherwise.
    public var llmAttention: [Float]? = nil

    /// The attention the environment ranks by and shows the policy: `llmAttention` when the
    /// simulator prunes inside the language model, the class-token attention otherwise.
    public var rankingAttention: [Float] { llmAttention ?? classAttention }
}

/// The simulator behind the token-pruning environment: a `VisionLanguageModel`, a task source and
/// a token encoder, with a bounded cache of per-task entries. Answer calls of many environments
/// are batched into one model call (`answer(_:)`). Thread-safe.
///
/// **Where pruning happens.** By default (the TPRL paper's setting) the language model reads only
/// the kept visual tokens. With `pruneAfterLayer` K it reads every visual token up to its layer K
/// and only the kept ones after it, with their original positions — FastV's mechanism with the
/// agent's choice. The agent then observes the model's state after layer K instead of the
/// projector's output: each entry's `codes` are the encoder applied to the visual tokens' hidden
/// states there (each row scaled to unit root-mean-square, as the model's RMSNorm does before its
/// weight), its `query` is the last text token's hidden state there (scaled alike), which has read
/// the question and the whole image, and `llmAttention` is that token's attention over the visual
/// tokens in layer K (FastV's score). These are computed once per task, with its entry; each answer
/// runs the first K + 1 layers on every token again (they do not depend on the choice, but their
/// keys and values are not cached), and FLOPs count them (`VisionLanguageModel.fastVFLOPs`).
public final class PruningSimulator: @unchecked Sendable {
    /// The VLM answering.
    public let model: any VisionLanguageModel
    /// Where tasks come from.
    public let source: any PruningTaskSource
    /// How tokens are encoded for the policy (autoencoder or identity).
    public let encoder: any TokenEncoder
    /// Task entries cached at most.
    public let capacity: Int
    /// The language-model layer after which the kept set applies; nil (the default) prunes
    /// before the language model.
    public let pruneAfterLayer: Int?
    private var cache: [String: TaskEntry] = [:]
    private var order: [String] = []
    private let lock = NSLock()
    /// Shared by the simulators made from one another (`pruning(afterLayer:encoder:)`,
    /// `sibling(pruningAfter:)`): the same model and the same tasks.
    private let lineage: Int
    private static let lineages = Mutex(0)
    /// `sibling(pruningAfter:)`'s simulators, by layer (−1: before the language model).
    private var siblings: [Int: PruningSimulator] = [:]
    /// Model calls made so far (answer batches and encodes), for throughput reports.
    public private(set) var answerCalls = 0

    /// A simulator caching up to `capacity` task entries, pruning before the language model or,
    /// with `pruneAfterLayer` K, after its layer K.
    public convenience init(model: any VisionLanguageModel, source: any PruningTaskSource, encoder: any TokenEncoder, capacity: Int = 4096,
                            pruneAfterLayer: Int? = nil) {
        let lineage = Self.lineages.withLock { count in
            count += 1
            return count
        }
        self.init(model: model, source: source, encoder: encoder, capacity: capacity, pruneAfterLayer: pruneAfterLayer, lineage: lineage)
    }

    /// A simulator of `lineage` (a new one, or that of the simulator it is made from).
    private init(model: any VisionLanguageModel, source: any PruningTaskSource, encoder: any TokenEncoder, capacity: Int,
                 pruneAfterLayer: Int?, lineage: Int) {
        self.model = model
        self.source = source
        self.encoder = encoder
        self.capacity = max(1, capacity)
        self.pruneAfterLayer = pruneAfterLayer
        self.lineage = lineage
    }

    /// Visual tokens per image (N).
    public var tokenCount: Int { model.visualTokenCount }
    /// Layers of the model's language model when it says (a LLaVA model); nil otherwise.
    public var languageModelLayerCount: Int? { (model as? LlavaModel)?.configuration.text.layerCount }

    /// Throws `GymError.invalidOption` unless `layer` (a `prune_after_layer`; nil prunes before
    /// the language model) is one of the language model's layers, where it says how many it has.
    public func checkCut(afterLayer layer: Int?) throws {
        if let layer, let layers = languageModelLayerCount, layer >= layers {
            throw GymError.invalidOption(environment: "TokenPruning", reason: "prune_after_layer \(layer) is outside the language model's layers 0..<\(layers)")
        }
    }
    public var gridSize: Int { model.gridSize }

    /// Entries for `indices` of `split`, computing the missing ones in one batched encode.
    public func entries(_ indices: [Int], split: String) throws -> [TaskEntry] {
        let keys = indices.map { "\(split)/\($0)" }
        var found: [String: TaskEntry] = [:]
        lock.withLock { for key in keys { if let entry = cache[key] { found[key] = entry } } }
        let missing = Array(Set(zip(indices, keys).filter { found[$0.1] == nil }.map(\.0))).sorted()
        if !missing.isEmpty {
            let computed = try compute(missing, split: split)
            for entry in computed { found["\(split)/\(entry.index)"] = entry }
            insert(computed)
        }
        return keys.map { found[$0]! }
    }

    /// Caches `entries`, dropping the oldest beyond `capacity`.
    private func insert(_ entries: [TaskEntry]) {
        lock.withLock {
            for entry in entries {
                let key = "\(entry.split)/\(entry.index)"
                if cache[key] == nil { order.append(key) }
                cache[key] = entry
            }
            if order.count > capacity {
                let dropped = order.count - capacity
                for key in order.prefix(dropped) { cache.removeValue(forKey: key) }
                order.removeFirst(dropped)
            }
        }
    }

    private func compute(_ indices: [Int], split: String) throws -> [TaskEntry] {
        var result: [TaskEntry] = []
        for start in stride(from: 0, to: indices.count, by: 32) {
            let chunk = Array(indices[start..<min(indices.count, start + 32)])
            let tasks = chunk.map { source.task($0, split: split) }
            let size = tasks[0].imageSize
            try withInferenceMode {
                let images = Tensor(shape: [tasks.count, 3, size, size], scalars: tasks.flatMap(\.pixels))
                let (features, attention) = model.encodeWithClassAttention(images)
                let n = features.shape[1]
                let perTask = (0..<tasks.count).map { features.sliced(alongAxis: 0, $0..<($0 + 1)).reshaped(to: [n, -1]) }
                let requests = zip(tasks, perTask).map { AnswerRequest(features: $1, keep: Array(0..<n), prefix: $0.prefix, suffix: $0.suffix) }
                let logits = try model.answerLogits(requests)
                let vocabulary = logits.shape[1]
                let logitValues = logits.scalars, attentionValues = attention.scalars
                let states = try pruneAfterLayer.map { try model.layerStates(requests, layer: $0) }
                let d = model.tokenWidth
                for (b, task) in tasks.enumerated() {
                    let words = task.query.isEmpty ? Tensor.zeros([1, d]) : model.textEmbeddings(task.query)
                    result.append(entry(index: chunk[b], split: split, task: task, tokens: perTask[b],
                                        classAttention: Array(attentionValues[(b * n)..<((b + 1) * n)]),
                                        fullLogits: Array(logitValues[(b * vocabulary)..<((b + 1) * vocabulary)]),
                                        wordEmbeddings: task.query.isEmpty ? [] : words.scalars,
                                        wordsMean: states == nil ? words.mean(alongAxis: 0).scalars : [], state: states?[b]))
                }
            }
        }
        return result
    }

    /// The entry of `task` from what the model gives for it: before the language model the codes
    /// of its visual tokens and its words' mean (`wordsMean`, read only then) as the query; after
    /// layer `pruneAfterLayer` (`state`), the codes of the visual tokens' hidden states there and
    /// the last text token's, each row scaled to unit root-mean-square, and that token's attention.
    private func entry(index: Int, split: String, task: PruningTask, tokens: Tensor, classAttention: [Float], fullLogits: [Float],
                       wordEmbeddings: [Float], wordsMean: [Float], state: LayerState?) -> TaskEntry {
        let n = tokens.shape[0], d = model.tokenWidth
        var codes: [Float], query: [Float]
        if let state {
            codes = encoder.encode(Tensor(shape: [n, d], scalars: unitRootMeanSquareRows(state.visual, width: d))).scalars
            query = unitRootMeanSquareRows(state.last, width: d)
        } else {
            codes = encoder.encode(tokens).scalars
            query = wordsMean
        }
        var entry = TaskEntry(index: index, split: split, task: task, tokens: tokens, codes: codes, classAttention: classAttention,
                              query: query, wordEmbeddings: wordEmbeddings, fullLogits: fullLogits)
        entry.llmAttention = state?.attention
        return entry
    }

    /// `entry`'s question over its visual tokens, reading `keep` of them.
    public func request(_ entry: TaskEntry, keeping keep: [Int]) -> AnswerRequest {
        AnswerRequest(features: entry.tokens, keep: keep, prefix: entry.task.prefix, suffix: entry.task.suffix)
    }

    /// Answer logits (one row per request) for each entry answering from its `keep` indices,
    /// where this simulator prunes (`pruneAfterLayer`).
    public func answer(_ requests: [(entry: TaskEntry, keep: [Int])]) throws -> [[Float]] {
        try answer(requests, prunedAfter: pruneAfterLayer)
    }

    /// Answer logits (one row per request) for each entry keeping its `keep` indices before the
    /// language model (`layer` nil) or after its layer `layer`, in model calls of at most 64.
    /// With `mergingRest`, the tokens an entry leaves out are merged into one, before the language
    /// model or after its layer `layer` (`VisionLanguageModel.answerLogits(_:mergingRestOf:)`,
    /// `answerLogits(_:prunedAfter:mergingRestOf:)`).
    public func answer(_ requests: [(entry: TaskEntry, keep: [Int])], prunedAfter layer: Int?, mergingRest: Bool = false) throws -> [[Float]] {
        guard !requests.isEmpty else { return [] }
        var rows: [[Float]] = []
        let all = Array(0..<tokenCount)
        for start in stride(from: 0, to: requests.count, by: 64) {
            let chunk = requests[start..<min(requests.count, start + 64)]
            let logits = try withInferenceMode {
                if mergingRest {
                    let full = chunk.map { request($0.entry, keeping: all) }, kept = chunk.map(\.keep)
                    return try layer.map { try model.answerLogits(full, prunedAfter: $0, mergingRestOf: kept) } ?? model.answerLogits(full, mergingRestOf: kept)
                }
                if let layer {
                    return try model.answerLogits(chunk.map { request($0.entry, keeping: all) }, prunedAfter: layer, kept: chunk.map(\.keep))
                }
                return try model.answerLogits(chunk.map { request($0.entry, keeping: $0.keep) })
            }
            rows += logits.scalarRows()
        }
        lock.lock(); answerCalls += 1; lock.unlock()
        return rows
    }

    /// A cascade after LLM layer `layer`: each entry answered from its `keep` indices there, and
    /// those whose logits `standing` rejects answered again from every token, continuing the same
    /// pass where the model can (`VisionLanguageModel.answerLogits(_:prunedAfter:kept:standing:)`),
    /// in model calls of at most 64. Returns the logits and the indices answered again.
    public func answer(_ requests: [(entry: TaskEntry, keep: [Int])], prunedAfter layer: Int,
                       standing: ([Float]) -> Bool) throws -> (logits: [[Float]], again: [Int]) {
        var rows: [[Float]] = [], again: [Int] = []
        let all = Array(0..<tokenCount)
        for start in stride(from: 0, to: requests.count, by: 64) {
            let chunk = requests[start..<min(requests.count, start + 64)]
            let (logits, chunkAgain) = try withInferenceMode {
                try model.answerLogits(chunk.map { request($0.entry, keeping: all) }, prunedAfter: layer, kept: chunk.map(\.keep), standing: standing)
            }
            rows += logits
            again += chunkAgain.map { start + $0 }
        }
        lock.lock(); answerCalls += 1; lock.unlock()
        return (rows, again)
    }

    /// FLOPs of answering `entry`'s question with `visualTokens` tokens kept (after layer
    /// `pruneAfterLayer` when it is set).
    public func flops(_ entry: TaskEntry, visualTokens: Int) -> Double {
        let text = entry.task.prefix.count + entry.task.suffix.count
        if let layer = pruneAfterLayer {
            return model.fastVFLOPs(visualTokens: tokenCount, textTokens: text, layer: layer, keptAfter: visualTokens)
        }
        return model.flops(visualTokens: visualTokens, textTokens: text).total
    }

    /// A simulator of the same model, tasks and capacity that prunes after language-model layer
    /// `layer` (nil: before the language model), observed through `encoder`.
    public func pruning(afterLayer layer: Int?, encoder: any TokenEncoder) -> PruningSimulator {
        PruningSimulator(model: model, source: source, encoder: encoder, capacity: capacity, pruneAfterLayer: layer, lineage: lineage)
    }

    /// This simulator when it prunes after `layer` already, otherwise the one simulator (made on
    /// first use and kept, with its entry cache) of the same model, tasks and encoder that does:
    /// what evaluations and registries share to see tasks as the model is after that layer.
    public func sibling(pruningAfter layer: Int?) -> PruningSimulator {
        guard layer != pruneAfterLayer else { return self }
        let key = layer ?? -1
        return lock.withLock {
            if let made = siblings[key] { return made }
            let made = pruning(afterLayer: layer, encoder: encoder)
            siblings[key] = made
            return made
        }
    }

    /// This simulator's entry for the task of `entry` (computed or cached here, so its codes,
    /// query and attention are where this simulator prunes).
    public func entry(like entry: TaskEntry) throws -> TaskEntry {
        try entries([entry.index], split: entry.split)[0]
    }

    /// `entry(like:)` for an entry of `other`, a simulator of the same lineage (the same model and
    /// tasks) that prunes before the language model. This one's entry is then `entry` with its
    /// codes through this simulator's encoder — and, when this one prunes after a layer, its
    /// codes, query and attention from that layer's states, for which only the layers up to it
    /// run — without the vision tower or the unpruned answer again. The visual tokens, class
    /// attention, words and unpruned logits do not depend on the encoder or the cut, so this is
    /// what `entries` computes wherever the model's encode gives the same bits in a batch as
    /// alone (every image of a batch of 32 on the machines measured; the unpruned logits are the
    /// other's, which no choice reads). An evaluation's policies with their own autoencoders or
    /// cuts observe its tasks this way.
    public func entry(like entry: TaskEntry, from other: PruningSimulator) throws -> TaskEntry {
        guard other !== self, other.lineage == lineage, other.pruneAfterLayer == nil else { return try self.entry(like: entry) }
        if let cached = lock.withLock({ cache["\(entry.split)/\(entry.index)"] }) { return cached }
        let derived = try withInferenceMode {
            // After a layer, only the layers up to it run, on the other's visual tokens.
            let state = try pruneAfterLayer.map { try model.layerStates([request(entry, keeping: Array(0..<tokenCount))], layer: $0)[0] }
            return self.entry(index: entry.index, split: entry.split, task: entry.task, tokens: entry.tokens, classAttention: entry.classAttention,
                              fullLogits: entry.fullLogits, wordEmbeddings: entry.wordEmbeddings, wordsMean: entry.query, state: state)
        }
        insert([derived])
        return derived
    }
}

/// Each `width`-wide row of `values` scaled to unit root-mean-square.
func unitRootMeanSquareRows(_ values: [Float], width: Int) -> [Float] {
    var result = values
    for start in stride(from: 0, to: values.count, by: width) {
        var sum: Float = 0
        for j in start..<(start + width) { sum += values[j] * values[j] }
        let scale = 1 / (sum / Float(width) + 1e-6).squareRoot()
        for j in start..<(start + width) { result[j] *= scale }
    }
    return result
}

/// Arg-max of a logit row.
public func argmax(_ row: [Float]) -> Int {
    var best = 0
    for i in row.indices where row[i] > row[best] { best = i }
    return best
}
