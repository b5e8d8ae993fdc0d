import Foundation
import Gym
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
}

/// The simulator behind the token-pruning environment: a `VisionLanguageModel`, a task source and
/// a token encoder, with a bounded cache of per-task entries. Answer calls of many environments
/// are batched into one model call (`answer(_:)`). Thread-safe.
public final class PruningSimulator: @unchecked Sendable {
    /// The VLM answering.
    public let model: any VisionLanguageModel
    /// Where tasks come from.
    public let source: any PruningTaskSource
    /// How tokens are encoded for the policy (autoencoder or identity).
    public let encoder: any TokenEncoder
    /// Task entries cached at most.
    public let capacity: Int
    private var cache: [String: TaskEntry] = [:]
    private var order: [String] = []
    private let lock = NSLock()
    /// Model calls made so far (answer batches and encodes), for throughput reports.
    public private(set) var answerCalls = 0

    /// A simulator caching up to `capacity` task entries.
    public init(model: any VisionLanguageModel, source: any PruningTaskSource, encoder: any TokenEncoder, capacity: Int = 4096) {
        self.model = model
        self.source = source
        self.encoder = encoder
        self.capacity = max(1, capacity)
    }

    /// Visual tokens per image (N).
    public var tokenCount: Int { model.visualTokenCount }
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
            lock.withLock {
                for entry in computed {
                    let key = "\(split)/\(entry.index)"
                    if cache[key] == nil { order.append(key) }
                    cache[key] = entry
                }
                while order.count > capacity { cache.removeValue(forKey: order.removeFirst()) }
            }
        }
        return keys.map { found[$0]! }
    }

    private func compute(_ indices: [Int], split: String) throws -> [TaskEntry] {
        var result: [TaskEntry] = []
        for start in stride(from: 0, to: indices.count, by: 32) {
            let chunk = Array(indices[start..<min(indices.count, start + 32)])
            let tasks = chunk.map { source.task($0, split: split) }
            let size = tasks[0].imageSize
            try withInferenceMode {
                let images = Tensor(shape: [tasks.count, 3, size, size], scalars: tasks.flatMap(\.pixels))
                let features = model.encode(images)
                let attention = model.classAttention(images)
                let n = features.shape[1]
                let perTask = (0..<tasks.count).map { features.sliced(alongAxis: 0, $0..<($0 + 1)).reshaped(to: [n, -1]) }
                let requests = zip(tasks, perTask).map { AnswerRequest(features: $1, keep: Array(0..<n), prefix: $0.prefix, suffix: $0.suffix) }
                let logits = try model.answerLogits(requests)
                let vocabulary = logits.shape[1]
                let logitValues = logits.scalars, attentionValues = attention.scalars
                for (b, task) in tasks.enumerated() {
                    let codes = encoder.encode(perTask[b]).scalars
                    let query = task.query.isEmpty ? Tensor.zeros([1, model.tokenWidth]) : model.textEmbeddings(task.query)
                    result.append(TaskEntry(index: chunk[b], split: split, task: task, tokens: perTask[b], codes: codes,
                                            classAttention: Array(attentionValues[(b * n)..<((b + 1) * n)]),
                                            query: query.mean(alongAxis: 0).scalars, wordEmbeddings: task.query.isEmpty ? [] : query.scalars,
                                            fullLogits: Array(logitValues[(b * vocabulary)..<((b + 1) * vocabulary)])))
                }
            }
        }
        return result
    }

    /// Answer logits (one row per request) for each entry answering from its `keep` indices.
    public func answer(_ requests: [(entry: TaskEntry, keep: [Int])]) throws -> [[Float]] {
        guard !requests.isEmpty else { return [] }
        var rows: [[Float]] = []
        for start in stride(from: 0, to: requests.count, by: 64) {
            let chunk = requests[start..<min(requests.count, start + 64)]
            let logits = try withInferenceMode {
                try model.answerLogits(chunk.map { AnswerRequest(features: $0.entry.tokens, keep: $0.keep, prefix: $0.entry.task.prefix, suffix: $0.entry.task.suffix) })
            }
            let v = logits.shape[1], values = logits.scalars
            for r in 0..<chunk.count { rows.append(Array(values[(r * v)..<((r + 1) * v)])) }
        }
        lock.lock(); answerCalls += 1; lock.unlock()
        return rows
    }

    /// FLOPs of answering `entry`'s question with `visualTokens` tokens.
    public func flops(_ entry: TaskEntry, visualTokens: Int) -> Double {
        model.flops(visualTokens: visualTokens, textTokens: entry.task.prefix.count + entry.task.suffix.count).total
    }
}

/// Arg-max of a logit row.
public func argmax(_ row: [Float]) -> Int {
    var best = 0
    for i in row.indices where row[i] > row[best] { best = i }
    return best
}
