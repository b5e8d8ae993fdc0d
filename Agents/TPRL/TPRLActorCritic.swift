import Foundation
import Gym
import NN
import Policies
import TensorCore
import TokenPruning

/// Where each part of a flattened `TokenPruning-v0` observation sits (the `DictSpace` key order:
/// tokens, mask, positions, query, step, budget, attention, and with `query_words` > 0 words and
/// word_mask).
public struct TokenPruningLayout: Sendable, Equatable, Codable {
    /// Visual token slots N (the image's token count).
    public var tokenCount: Int
    /// Width of each token's autoencoder code z_i = E(v_i) (d_l = d_v/16 in the paper).
    public var codeWidth: Int
    /// Width of the query embedding q.
    public var queryWidth: Int
    /// T_max: the step index runs over 0…maxSteps.
    public var maxSteps: Int
    /// Question words observed one by one (the environment's `query_words`; 0: the mean only).
    public var wordCount: Int

    /// The layout of `TokenPruning-v0` observations with these sizes.
    public init(tokenCount: Int, codeWidth: Int, queryWidth: Int, maxSteps: Int, wordCount: Int = 0) {
        self.tokenCount = tokenCount
        self.codeWidth = codeWidth
        self.queryWidth = queryWidth
        self.maxSteps = maxSteps
        self.wordCount = wordCount
    }

    enum CodingKeys: String, CodingKey { case tokenCount, codeWidth, queryWidth, maxSteps, wordCount }

    /// Reads a layout; files written before per-word queries existed have no `wordCount` (0).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        tokenCount = try c.decode(Int.self, forKey: .tokenCount)
        codeWidth = try c.decode(Int.self, forKey: .codeWidth)
        queryWidth = try c.decode(Int.self, forKey: .queryWidth)
        maxSteps = try c.decode(Int.self, forKey: .maxSteps)
        wordCount = try c.decodeIfPresent(Int.self, forKey: .wordCount) ?? 0
    }

    /// The codes Z_t of the kept tokens (zeros in pruned slots), N × codeWidth.
    public var tokens: Range<Int> { 0..<(tokenCount * codeWidth) }
    /// Which slots are still kept (1) — the validity mask of the MultiBinary action.
    public var mask: Range<Int> { tokens.upperBound..<(tokens.upperBound + tokenCount) }
    /// (row, column) of every slot on the patch grid, scaled to [0, 1].
    public var positions: Range<Int> { mask.upperBound..<(mask.upperBound + 2 * tokenCount) }
    /// The query embedding q (mean of the question's token embeddings).
    public var query: Range<Int> { positions.upperBound..<(positions.upperBound + queryWidth) }
    /// The step index (Discrete(maxSteps + 1) flattens to its value).
    public var step: Range<Int> { query.upperBound..<(query.upperBound + 1) }
    /// The target budget (share of tokens) the episode was given.
    public var budget: Range<Int> { step.upperBound..<(step.upperBound + 1) }
    /// Each slot's class-token attention relative to uniform (N·a_i; zeros in pruned slots).
    public var attention: Range<Int> { budget.upperBound..<(budget.upperBound + tokenCount) }
    /// The embeddings of the question's first `wordCount` words, wordCount × queryWidth (zeros after the last).
    public var words: Range<Int> { attention.upperBound..<(attention.upperBound + wordCount * queryWidth) }
    /// Which of the `wordCount` word rows are words (1) rather than padding.
    public var wordMask: Range<Int> { words.upperBound..<(words.upperBound + wordCount) }
    /// The whole flat observation's width.
    public var width: Int { wordMask.upperBound }
}

/// The TPRL policy and value network (the TPRL paper, §3.3): a shared pre-norm transformer over
/// [visual tokens; query] — 2 layers, 8 heads — a per-token keep head and a value head on the
/// mean-pooled token features.
///
/// - Token input: the autoencoder code of each kept token plus a 2-D sinusoidal encoding of its
///   (row, column) on the patch grid (the reference code gives the policy no positions at all),
///   and, with `attentionInput`, log(1 + N·a_i) of its class-token attention a_i (an extension:
///   the paper's state has codes and the query only).
///   Pruned slots are padding: masked out as keys and ignored by the distribution.
/// - Query input: the question embedding, with the step index and (for budget-conditioned
///   policies) the target budget added as learned embeddings. With a layout of `wordCount` > 0
///   each question word is a row of its own as well (its embedding plus a learned embedding of
///   its place in the question; padding rows masked out as keys), so token rows can attend to
///   the words that name them — an extension: the paper's query is the mean embedding only.
/// - With `attentionPrior`, each keep logit also gets c·log(1 + N·a_i) of the observation's
///   attention (c learned, starting at 1) and the keep head starts at zero, so the untrained policy
///   ranks exactly as the attention does (CLS attention before the LLM, FastV's score after a
///   layer) and training learns corrections to that ranking — an extension.
/// - Keep probability with the step discount (paper Eq. 8): a_{t,i} ~ Bernoulli(λ^t · p_{t,i}),
///   p = σ(z). `distribution(_:)` folds λ^t into the Bernoulli logits, so the same discount is in
///   the log-probabilities of the rollout and of every PPO update (the reference code applies it
///   to only one of them).
public final class TPRLActorCritic: ActorCritic {
    /// The observation layout the network reads.
    public let layout: TokenPruningLayout
    /// Model width of the trunk.
    public let width: Int
    /// The step discount λ of a_{t,i} ~ Bernoulli(λ^t · p_{t,i}) (0.5 in the paper).
    public let discount: Float
    /// Whether the target budget is an input (one policy for every budget).
    public let conditionOnBudget: Bool
    /// Whether each token's class-token attention is part of its input.
    public let attentionInput: Bool
    /// Whether the keep logit is a learned correction to c·log(1 + N·a_i) (see above).
    public let attentionPrior: Bool
    /// Whether `distribution(_:)` keeps exactly the observation's budget, k = round(budget·N) of
    /// the valid slots: the Bernoulli(σ(z)) of the slots conditioned on k ones
    /// (`ConditionalBernoulli`), so that PPO learns the ranking the top-k inference reads. Only
    /// for episodes of one step (the step discount does not apply). Not saved with the weights: a
    /// recipe sets it for its PPO phase.
    public var exactBudget = false
    /// The temperature T of the exact-budget distribution (its logits are z/T): below 1 its draws
    /// lie closer to the top k.
    public var exactBudgetTemperature: Float = 1
    let tokenInput: Linear
    let queryInput: Linear
    let stepEmbedding: Linear
    let budgetInput: Linear
    let wordInput: Linear?
    let wordPosition: Linear?
    let encoder: TransformerEncoder
    let keepHead: Linear
    let valueHead: Linear
    /// c of the attention prior (a 1 → 1 map, weight 1 and bias 0 at the start).
    let keepPrior: Linear?
    static let frequencies = 8
    /// The trunk's attention heads unless `init` is told otherwise (the paper's 8); the recipe's
    /// `width` must be a multiple of it.
    public static let defaultHeadCount = 8

    /// A policy for `layout`; `discount` is λ of the step discount.
    public init(layout: TokenPruningLayout, width: Int = 64, layers: Int = 2, heads: Int = defaultHeadCount, discount: Float = 0.5,
                conditionOnBudget: Bool = false, attentionInput: Bool = false, attentionPrior: Bool = false, generator: inout SeededGenerator) {
        self.layout = layout
        self.width = width
        self.discount = discount
        self.conditionOnBudget = conditionOnBudget
        self.attentionInput = attentionInput
        self.attentionPrior = attentionPrior
        tokenInput = Linear(layout.codeWidth + 4 * Self.frequencies + (attentionInput ? 1 : 0), width, generator: &generator)
        queryInput = Linear(layout.queryWidth, width, generator: &generator)
        stepEmbedding = Linear(layout.maxSteps + 1, width, bias: false, generator: &generator)
        budgetInput = Linear(1, width, generator: &generator)
        if layout.wordCount > 0 {
            wordInput = Linear(layout.queryWidth, width, generator: &generator)
            wordPosition = Linear(layout.wordCount, width, bias: false, generator: &generator)
        } else {
            wordInput = nil
            wordPosition = nil
        }
        encoder = TransformerEncoder(layerCount: layers, modelSize: width, headCount: heads, mlpSize: 4 * width, generator: &generator)
        keepHead = Linear(width, 1, generator: &generator)
        valueHead = Linear(width, 1, generator: &generator)
        if attentionPrior {
            keepPrior = Linear(1, 1, weightInitializer: .constant(1), biasInitializer: .zeros, generator: &generator)
            keepHead.weight.value = Tensor.zeros(keepHead.weight.shape)
            keepHead.bias?.value = Tensor.zeros([1])
        } else {
            keepPrior = nil
        }
    }

    /// Keep logits `[B, S]` from the token rows' trunk features `[B, S, width]` and their
    /// observed attention `[B, S]` (N·a_i), with the prior when there is one.
    func keepLogits(hidden: Tensor, attention: Tensor) -> Tensor {
        let (batch, s) = (hidden.shape[0], hidden.shape[1])
        let z = keepHead(hidden).reshaped(to: [batch, s])
        guard let keepPrior else { return z }
        return z + keepPrior((attention.reshaped(to: [batch, s, 1]) + 1).log()).reshaped(to: [batch, s])
    }

    /// 2-D sinusoidal features of the positions in flat observation rows `[B, width]` (row,
    /// column in [0, 1]) → `[B, S, 4F]` for the slots `slots` (every slot when nil).
    func positionFeatures(_ rows: [Float], batch: Int, slots: [Int]? = nil) -> Tensor {
        let f = Self.frequencies
        let chosen = slots ?? Array(0..<layout.tokenCount)
        let s = chosen.count
        var values = [Float](repeating: 0, count: batch * s * 4 * f)
        for b in 0..<batch {
            for (row, i) in chosen.enumerated() {
                for axis in 0..<2 {
                    let x = rows[b * layout.width + layout.positions.lowerBound + 2 * i + axis]
                    for k in 0..<f {
                        let angle = x * Float.pi * Float(1 << k) / 2
                        let base = ((b * s + row) * 4 * f) + axis * 2 * f + 2 * k
                        values[base] = Foundation.sin(angle)
                        values[base + 1] = Foundation.cos(angle)
                    }
                }
            }
        }
        return Tensor(shape: [batch, s, 4 * f], scalars: values)
    }

    /// Transformer features `[B, N + 1 + L, width]` (token rows, the query row, then the L word
    /// rows) and the validity mask `[B, N]`.
    func features(_ observations: Tensor) -> (hidden: Tensor, mask: Tensor) {
        precondition(observations.rank == 2 && observations.shape[1] == layout.width,
                     "TPRLActorCritic: observations must be [B, \(layout.width)] (flattened TokenPruning-v0), got \(observations.shape)")
        let batch = observations.shape[0], n = layout.tokenCount
        let input = observations.detached()
        let codes = input.sliced(alongAxis: 1, layout.tokens).reshaped(to: [batch, n, layout.codeWidth])
        let attention = input.sliced(alongAxis: 1, layout.attention).reshaped(to: [batch, n, 1])
        let tokens = tokenFeatures(codes: codes, positions: positionFeatures(input.scalars, batch: batch), attention: attention)
        let mask = input.sliced(alongAxis: 1, layout.mask)
        var rows = [tokens, queryFeatures(input)]
        var keys = [mask, Tensor(repeating: 1, shape: [batch, 1])]
        if let words = wordFeatures(input) {
            rows.append(words)
            keys.append(input.sliced(alongAxis: 1, layout.wordMask))
        }
        return (encoder(Tensor.concatenated(rows, alongAxis: 1), keyPaddingMask: Tensor.concatenated(keys, alongAxis: 1)), mask)
    }

    /// The word rows' trunk input `[B, L, width]` (nil when the layout has no words).
    func wordFeatures(_ input: Tensor) -> Tensor? {
        guard let wordInput, let wordPosition else { return nil }
        let batch = input.shape[0], l = layout.wordCount
        let embeddings = wordInput(input.sliced(alongAxis: 1, layout.words).reshaped(to: [batch, l, layout.queryWidth]))
        let places = wordPosition(Tensor(shape: [l, l], scalars: (0..<(l * l)).map { Float($0 / l == $0 % l ? 1 : 0) }))
        return embeddings + places.reshaped(to: [1, l, width])
    }

    /// The token rows' trunk input `[B, S, width]` from their codes `[B, S, k]`, position
    /// features `[B, S, 4F]` and class attention `[B, S, 1]`.
    func tokenFeatures(codes: Tensor, positions: Tensor, attention: Tensor) -> Tensor {
        var parts = [codes, positions]
        if attentionInput { parts.append((attention + 1).log()) }
        return tokenInput(Tensor.concatenated(parts, alongAxis: 2))
    }

    /// The query row's trunk input `[B, 1, width]`: question, step and (conditioned) budget.
    func queryFeatures(_ input: Tensor) -> Tensor {
        let batch = input.shape[0]
        let oneHot = steps(input).flatMap { t in (0...layout.maxSteps).map { Float($0 == t ? 1 : 0) } }
        var query = queryInput(input.sliced(alongAxis: 1, layout.query)) + stepEmbedding(Tensor(shape: [batch, layout.maxSteps + 1], scalars: oneHot))
        if conditionOnBudget { query = query + budgetInput(input.sliced(alongAxis: 1, layout.budget)) }
        return query.reshaped(to: [batch, 1, width])
    }

    /// Multiply–accumulates of one keep-logit pass over `tokens` token rows (`FLOPCount`'s
    /// convention: matrix products only) — the input projections, the trunk over those rows, the
    /// query row and any word rows, and the keep head. Per trunk layer with R rows of width w:
    /// 4·R·w² (projections) + 2·R²·w (scores and mixing) + 2·R·w·m (MLP of width m).
    public func keepLogitFLOPs(tokens s: Int) -> Double {
        let w = Double(width), tokens = Double(s), words = Double(layout.wordCount)
        let rows = tokens + 1 + words
        var total = tokens * Double(tokenInput.inputSize) * w
            + Double(queryInput.inputSize + stepEmbedding.inputSize + (conditionOnBudget ? 1 : 0)) * w
            + words * Double(layout.queryWidth) * w
        for layer in encoder.layers {
            let m = Double(layer.mlp.fc1.outputSize)
            total += 4 * rows * w * w + 2 * rows * rows * w + 2 * rows * w * m
        }
        return total + tokens * w + (attentionPrior ? tokens : 0)
    }

    /// Keep logits z of the `slots` of one flat observation (in the order given), computing only
    /// those token rows: the other slots are padding the trunk never attends to, so these equal
    /// `keepLogits`' at the same slots (up to summation order) at a fraction of the cost once the
    /// episode has pruned. Top-k inference uses it for the later steps.
    public func keepLogits(_ observation: [Float], slots: [Int]) -> [Float] {
        precondition(observation.count == layout.width, "TPRLActorCritic: an observation has \(layout.width) values, got \(observation.count)")
        let k = layout.codeWidth, s = slots.count
        guard s > 0 else { return [] }
        let row = Tensor(shape: [1, layout.width], scalars: observation)
        var codes = [Float](), attention = [Float]()
        codes.reserveCapacity(s * k)
        for i in slots {
            codes += observation[(layout.tokens.lowerBound + i * k)..<(layout.tokens.lowerBound + (i + 1) * k)]
            attention.append(observation[layout.attention.lowerBound + i])
        }
        let tokens = tokenFeatures(codes: Tensor(shape: [1, s, k], scalars: codes), positions: positionFeatures(observation, batch: 1, slots: slots),
                                   attention: Tensor(shape: [1, s, 1], scalars: attention))
        var rows = [tokens, queryFeatures(row)]
        var keyMask: Tensor?
        if let words = wordFeatures(row) {
            rows.append(words)
            keyMask = Tensor.concatenated([Tensor(repeating: 1, shape: [1, s + 1]), row.sliced(alongAxis: 1, layout.wordMask)], alongAxis: 1)
        }
        let sequence = Tensor.concatenated(rows, alongAxis: 1)
        let hidden = keyMask.map { encoder(sequence, keyPaddingMask: $0) } ?? encoder(sequence)
        return keepLogits(hidden: hidden.sliced(alongAxis: 1, 0..<s), attention: Tensor(shape: [1, s], scalars: attention)).scalars
    }

    /// Keep logits z `[B, N]` before the step discount.
    public func keepLogits(_ observations: Tensor) -> Tensor {
        let (hidden, _) = features(observations)
        return keepLogits(hidden: hidden.sliced(alongAxis: 1, 0..<layout.tokenCount), attention: observations.detached().sliced(alongAxis: 1, layout.attention))
    }

    /// Step index of each row, clamped to 0…maxSteps.
    func steps(_ observations: Tensor) -> [Int] {
        observations.detached().sliced(alongAxis: 1, layout.step).scalars.map { min(layout.maxSteps, max(0, Int($0.rounded()))) }
    }

    /// Bernoulli(λ^t σ(z)) over the valid slots. Its logit is log p' − log(1 − p') =
    /// t·log λ + z − softplus(z + log(1 − λ^t)) for t ≥ 1, and z for t = 0.
    public func distribution(_ observations: Tensor) -> any ActionDistribution {
        let (hidden, mask) = features(observations)
        let z = keepLogits(hidden: hidden.sliced(alongAxis: 1, 0..<layout.tokenCount), attention: observations.detached().sliced(alongAxis: 1, layout.attention))
        if exactBudget {
            let counts = observations.detached().sliced(alongAxis: 1, layout.budget).scalars.map {
                TokenPruningConfiguration.tokenCount(budget: Double($0), of: layout.tokenCount)
            }
            return ConditionalBernoulli(logits: exactBudgetTemperature == 1 ? z : z * (1 / exactBudgetTemperature), mask: mask, counts: counts)
        }
        return Bernoulli(logits: discounted(z, steps: steps(observations)), mask: mask)
    }

    func discounted(_ z: Tensor, steps: [Int]) -> Tensor {
        guard steps.contains(where: { $0 > 0 }) else { return z }
        let batch = z.shape[0]
        let logLambda = Foundation.log(discount)
        let shift = Tensor(shape: [batch, 1], scalars: steps.map { Float($0) * logLambda })
        let logC = Tensor(shape: [batch, 1], scalars: steps.map { $0 == 0 ? 0 : Foundation.log(1 - Foundation.pow(discount, Float($0))) })
        let active = Tensor(shape: [batch, 1], scalars: steps.map { $0 == 0 ? 0 : 1 })
        return z + shift - (z + logC).softplus() * active
    }

    public func value(_ observations: Tensor) -> Tensor {
        let (hidden, mask) = features(observations)
        let batch = hidden.shape[0], n = layout.tokenCount
        let tokens = hidden.sliced(alongAxis: 1, 0..<n)
        let weights = mask.reshaped(to: [batch, n, 1])
        let pooled = (tokens * weights).sum(alongAxis: 1) / (mask.sum(alongAxis: 1, keepingDimensions: true) + 1e-6)
        return valueHead(pooled).reshaped(to: [batch])
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        scoped("token_input", tokenInput) + scoped("query_input", queryInput) + scoped("step_embedding", stepEmbedding)
            + scoped("budget_input", budgetInput) + (wordInput.map { scoped("word_input", $0) } ?? [])
            + (wordPosition.map { scoped("word_position", $0) } ?? []) + scoped("encoder", encoder) + scoped("keep_head", keepHead) + scoped("value_head", valueHead)
            + (keepPrior.map { scoped("keep_prior", $0) } ?? [])
    }
    public var description: String {
        "TPRLActorCritic(width \(width), \(encoder.layers.count) layers, λ = \(discount)\(attentionInput ? ", class attention in" : "")\(attentionPrior ? ", attention prior" : "")\(layout.wordCount > 0 ? ", \(layout.wordCount) query words" : ""))"
    }
}
