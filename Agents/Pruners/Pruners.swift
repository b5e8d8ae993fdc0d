import Foundation
import Gym
import TensorCore
import TokenPruning
import VLM

/// How a pruner wants a question answered.
public enum PruningPlan: Sendable, Equatable {
    /// The language model reads only these visual tokens (ascending indices).
    case tokens([Int])
    /// FastV: the language model reads every visual token up to layer `layer` and keeps the `keep`
    /// with the highest last-token attention after it.
    case insideLLM(layer: Int, keep: Int)
    /// The language model reads every visual token up to layer `layer` and only `tokens`
    /// (ascending indices) after it, with their original positions: FastV's mechanism with the
    /// pruner's own choice.
    case tokensAfterLayer(layer: Int, tokens: [Int])
    /// `.tokens` and one token more: the mean of the other visual tokens, attended in proportion
    /// to how many it stands for (`MergingPruner`).
    case mergedTokens([Int])
    /// `.tokensAfterLayer` with the visual tokens left out after layer `layer` merged into one
    /// token, their mean, attended in proportion to how many it stands for: the language model
    /// reads `tokens` and that one after the cut (`MergingPruner`).
    case mergedAfterLayer(layer: Int, tokens: [Int])
    /// `.insideLLM` (FastV) with the tokens it leaves out merged into one, as `.mergedAfterLayer`
    /// merges them: `keep` and that one are read after the cut.
    case mergedInsideLLM(layer: Int, keep: Int)

    /// True for the plans that merge the tokens they leave out into one (`MergingPruner`).
    public var merges: Bool {
        switch self {
        case .mergedTokens, .mergedAfterLayer, .mergedInsideLLM: return true
        case .tokens, .insideLLM, .tokensAfterLayer: return false
        }
    }

    /// Keeping `kept` (ascending) where `simulator` prunes: `.tokens` before the language model,
    /// `.tokensAfterLayer` after its layer `pruneAfterLayer` (policies that play the environment).
    public static func keeping(_ kept: [Int], in simulator: PruningSimulator) -> PruningPlan {
        simulator.pruneAfterLayer.map { .tokensAfterLayer(layer: $0, tokens: kept) } ?? .tokens(kept)
    }
}

/// A plan and what the pruner computed to choose it.
public struct CostedPlan: Sendable, Equatable {
    /// What the language model reads.
    public var plan: PruningPlan
    /// The pruner's own FLOPs for this choice (`TokenPruner.selectionFLOPs`); nil when not counted.
    public var selectionFLOPs: Double?

    /// A plan and its selection cost.
    public init(plan: PruningPlan, selectionFLOPs: Double?) {
        self.plan = plan
        self.selectionFLOPs = selectionFLOPs
    }
}

/// A token-pruning method: picks which of a task's visual tokens to keep for a budget of `budget`
/// tokens. Pruners see the simulator's cached task entry (tokens, class attention, query) and may
/// query the model (FastV, the oracle).
public protocol TokenPruner: AnyObject {
    /// Short name used on the command line and in tables (`random`, `cls`, …).
    var name: String { get }
    /// True when the choice does not depend on the generator (evaluations then run one seed and
    /// report it for every seed, with std 0).
    var isDeterministic: Bool { get }
    func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan
    /// What choosing costs, in `FLOPCount`'s convention (multiply–accumulates of matrix products):
    /// everything the pruner computes beyond the vision tower, which runs anyway and gives the
    /// class attention for free, and beyond the answer, which the evaluation counts itself (FastV's
    /// full-width early layers included). nil (the default) when the pruner does not count it; the
    /// evaluation then reports the model's FLOPs alone and says so.
    func selectionFLOPs(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator) -> Double?
    /// `plan` with its selection cost. Pruners whose cost depends on what they compute along the
    /// way (TPRL's threshold inference) implement this; the default asks `selectionFLOPs`.
    func costedPlan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> CostedPlan
}

extension TokenPruner {
    public var isDeterministic: Bool { true }
    /// Not counted (nil) unless the pruner says.
    public func selectionFLOPs(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator) -> Double? { nil }
    /// `plan` with `selectionFLOPs`.
    public func costedPlan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> CostedPlan {
        CostedPlan(plan: try plan(entry, budget: budget, simulator: simulator, generator: &generator),
                   selectionFLOPs: selectionFLOPs(entry, budget: budget, simulator: simulator))
    }
}

/// Selection costs shared by the pruners (`TokenPruner.selectionFLOPs`).
enum SelectionCost {
    /// All pairwise cosine similarities of the N visual tokens in one GEMM: N²·D.
    static func pairwise(_ entry: TaskEntry) -> Double {
        let n = Double(entry.tokens.shape[0]), d = Double(entry.tokens.shape[1])
        return n * n * d
    }

    /// The language model's prefill and head over every visual token of `entry` and its text.
    static func fullPass(_ entry: TaskEntry, simulator: PruningSimulator) -> Double {
        let count = simulator.model.flops(visualTokens: simulator.tokenCount, textTokens: entry.task.prefix.count + entry.task.suffix.count)
        return count.prefill + count.head
    }
}

/// Keeps `budget` tokens drawn uniformly without replacement.
public final class RandomPruner: TokenPruner {
    public let name = "random"
    public var isDeterministic: Bool { false }
    /// A random pruner.
    public init() {}
    /// Drawing costs no matrix products.
    public func selectionFLOPs(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator) -> Double? { 0 }
    public func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
        .tokens(Array(generator.permutation(simulator.tokenCount).prefix(budget)).sorted())
    }
}

/// Keeps tokens evenly spaced over the patch grid (every (N/k)-th token in raster order, centred):
/// the spatial-uniform baseline, query- and content-agnostic.
public final class UniformPruner: TokenPruner {
    public let name = "uniform"
    /// A uniform-grid pruner.
    public init() {}
    /// A fixed grid: no matrix products.
    public func selectionFLOPs(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator) -> Double? { 0 }
    public func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
        let n = simulator.tokenCount
        return .tokens(evenlySpaced(max(1, min(budget, n)), of: Array(0..<n)))
    }
}

/// Top-k tokens by the class token's attention in the vision layer whose output is selected —
/// FasterVLM's rule and VisionZip's dominant tokens (Yang et al., CVPR 2025; HiRED scores the same
/// way): the vision encoder's own notion of importance, query-agnostic.
public final class ClassAttentionPruner: TokenPruner {
    public let name = "cls"
    /// A class-attention pruner.
    public init() {}
    /// The class attention comes with the vision tower: choosing is a sort.
    public func selectionFLOPs(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator) -> Double? { 0 }
    public func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
        .tokens(largestIndices(entry.classAttention, count: budget))
    }
}

extension ClassAttentionPruner: ScoringPruner {
    /// The class-token attention, as the tower gives it.
    public func keepScores(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator) throws -> (scores: [Float], selectionFLOPs: Double?) {
        (entry.classAttention, 0)
    }
    public func plan(keeping kept: [Int], simulator: PruningSimulator) -> PruningPlan { .tokens(kept) }
}

/// VisPruner (Zhang et al., ICCV 2025, arXiv 2412.01818): the top ⌊r·k⌋ tokens by class-token
/// attention ("important"), plus diverse tokens from the rest: repeatedly split the remaining
/// tokens into even/odd halves, score each token of one half by its highest cosine similarity to the
/// other half (ToMe-style bipartite matching on the normalised features), and delete the 8 most
/// redundant, until k − ⌊r·k⌋ remain. r = 0.5 for budgets above 1/4 of the tokens, 0.75 below (the
/// paper's README: 0.5 at 128 of 576, 0.75 at 64).
public final class VisPrunerPruner: TokenPruner {
    public let name = "vispruner"
    /// VisPruner with the paper's split between important and diverse tokens.
    public init() {}
    /// The tokens' pairwise cosine similarities (N²·D); the class attention is the tower's.
    public func selectionFLOPs(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator) -> Double? { SelectionCost.pairwise(entry) }
    public func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
        let n = simulator.tokenCount, k = min(budget, n)
        let ratio = Double(k) / Double(n) > 0.25 ? 0.5 : 0.75
        let important = largestIndices(entry.classAttention, count: Int(Double(k) * ratio))
        let chosen = Set(important)
        var rest = (0..<n).filter { !chosen.contains($0) }
        let similarity = cosineSimilarities(entry.tokens)
        while rest.count > k - important.count {
            let even = stride(from: 0, to: rest.count, by: 2).map { rest[$0] }, odd = stride(from: 1, to: rest.count, by: 2).map { rest[$0] }
            guard !odd.isEmpty else { rest.removeLast(rest.count - (k - important.count)); break }
            // Redundancy of each even token: its best similarity to an odd one.
            let redundancy = even.map { e in
                var best = -Float.infinity
                for o in odd { best = max(best, similarity[e * n + o]) }
                return best
            }
            let removable = min(8, rest.count - (k - important.count))
            let drop = Set(largestIndices(redundancy, count: removable).map { even[$0] })
            rest.removeAll { drop.contains($0) }
        }
        return .tokens((important + rest).sorted())
    }
}

/// DivPrune (Alvar et al., CVPR 2025, arXiv 2503.02175): max–min diversity on the projected tokens,
/// solved greedily — first the token farthest from its nearest neighbour, then repeatedly the token
/// whose minimum cosine distance to the chosen set is largest.
public final class DivPrunePruner: TokenPruner {
    public let name = "divprune"
    /// A DivPrune pruner.
    public init() {}
    /// The tokens' pairwise cosine distances (N²·D).
    public func selectionFLOPs(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator) -> Double? { SelectionCost.pairwise(entry) }
    public func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
        let n = simulator.tokenCount, k = min(budget, n)
        let distance = cosineSimilarities(entry.tokens).map { 1 - $0 }
        let nearest = (0..<n).map { i -> Float in
            var smallest = Float.infinity
            for j in 0..<n where j != i { smallest = min(smallest, distance[i * n + j]) }
            return n > 1 ? smallest : 0
        }
        var chosen = [nearest.indices.max { nearest[$0] < nearest[$1] }!]
        var minimum = (0..<n).map { distance[chosen[0] * n + $0] }
        while chosen.count < k {
            for c in chosen { minimum[c] = -1 }
            let next = minimum.indices.max { minimum[$0] < minimum[$1] }!
            chosen.append(next)
            for i in 0..<n { minimum[i] = min(minimum[i], distance[next * n + i]) }
        }
        return .tokens(chosen.sorted())
    }
}

/// Query similarity: top-k tokens by cosine similarity between the projected token and the mean
/// embedding of the question's words (the text-relevance score of query-guided pruners such as
/// SparseVLM's raters, reduced to its simplest pre-LLM form).
public final class QueryPruner: TokenPruner {
    public let name = "query"
    /// A query-similarity pruner.
    public init() {}
    /// One dot product per token with the query (N·D).
    public func selectionFLOPs(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator) -> Double? {
        Double(entry.tokens.shape[0] * entry.tokens.shape[1])
    }
    public func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
        let features = normalisedRows(entry.tokens), width = entry.tokens.shape[1]
        let norm = max(1e-12, entry.query.reduce(0) { $0 + $1 * $1 }.squareRoot())
        let scores = (0..<simulator.tokenCount).map { i in (0..<width).reduce(Float(0)) { $0 + features[i * width + $1] * entry.query[$1] } / norm }
        return .tokens(largestIndices(scores, count: budget))
    }
}

/// FastV (Chen et al., ECCV 2024, arXiv 2403.06764), as its official code does it: after LLM layer
/// `layer`, keep the visual tokens with the highest attention from the last input token (averaged
/// over heads), with their original positions. K = 2 of LLaVA's 32 layers is about the first 6%
/// of depth; for the built-in 4-layer model that is the first layer (`layer` 0).
public final class FastVPruner: TokenPruner {
    /// `fastv`, or `fastv@K` for a layer other than 0.
    public let name: String
    /// The LLM layer after which tokens are dropped (K).
    public let layer: Int
    /// FastV after LLM layer `layer`.
    public init(layer: Int = 0) {
        self.layer = layer
        name = layer == 0 ? "fastv" : "fastv@\(layer)"
    }
    /// Its scores come from the layers the answer runs anyway (counted in the answer's FLOPs).
    public func selectionFLOPs(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator) -> Double? { 0 }
    public func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
        try PrunerError.checkLayer(layer, of: simulator, pruner: name)
        return .insideLLM(layer: layer, keep: budget)
    }
}

extension FastVPruner: ScoringPruner {
    /// The last text token's attention over the visual tokens in layer `layer`, mean over heads —
    /// the score FastV ranks by, from the layer the answer runs anyway (no FLOPs of its own).
    public func keepScores(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator) throws -> (scores: [Float], selectionFLOPs: Double?) {
        try PrunerError.checkLayer(layer, of: simulator, pruner: name)
        guard let attention = try simulator.sibling(pruningAfter: layer).entry(like: entry).llmAttention else {
            throw AgentError.invalidConfiguration(agent: name, reason: "the simulator gives no language-model attention at layer \(layer)")
        }
        return (attention, 0)
    }
    /// Every token up to layer `layer`, `kept` after it.
    public func plan(keeping kept: [Int], simulator: PruningSimulator) -> PruningPlan { .tokensAfterLayer(layer: layer, tokens: kept) }
}

/// The language model's own routing as a choice of input tokens: run the LLM once on every visual
/// token and keep the k with the highest attention from the last text token at LLM layer `layer`
/// (mean over heads) — FastV's score (Chen et al., ECCV 2024), but used to prune *before* the
/// LLM. It costs a full forward pass per question, so it is no efficiency method: it is a
/// demonstrator for behaviour cloning (the policy learns to predict, from the autoencoded tokens
/// and the query, what the model will attend to) and a reference row. `layer` nil takes the
/// second-to-last layer, where the built-in model's routing objective trains the answer token's
/// attention onto the question's objects.
public final class AttentionPruner: TokenPruner {
    public let name = "llm-attention"
    /// The LLM layer whose attention scores the tokens (nil: the second-to-last).
    public let layer: Int?
    /// Scores by the attention at `layer`.
    public init(layer: Int? = nil) { self.layer = layer }
    /// A full language-model pass over every token before the answer.
    public func selectionFLOPs(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator) -> Double? {
        SelectionCost.fullPass(entry, simulator: simulator)
    }
    public func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
        let layerCount = simulator.languageModelLayerCount ?? 2
        let chosen = layer ?? max(0, layerCount - 2)
        let all = Array(0..<simulator.tokenCount)
        let request = AnswerRequest(features: entry.tokens, keep: all, prefix: entry.task.prefix, suffix: entry.task.suffix)
        let scores = try withInferenceMode { try simulator.model.lastTokenAttention([request], layer: chosen)[0] }
        return .tokens(largestIndices(scores, count: budget))
    }
}

/// Gradient × input saliency (Simonyan et al. 2014; Shrikumar et al. 2017) of the right answer's
/// log-probability with respect to each visual token, from one forward and one backward pass of
/// the language model on every token: keep the k tokens with the largest g·x — to first order,
/// how much log p(answer) would drop without each (the oracle's score, linearised). It uses the answer label, like the oracle, so it is a demonstrator for behaviour
/// cloning and a reference row — a first-order, N-times-cheaper stand-in for leave-one-out.
public final class SaliencyPruner: TokenPruner {
    public let name = "saliency"
    /// A saliency pruner.
    public init() {}
    /// A forward and a backward pass over every token, the backward counted as twice the forward.
    public func selectionFLOPs(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator) -> Double? {
        3 * SelectionCost.fullPass(entry, simulator: simulator)
    }
    public func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
        let request = AnswerRequest(features: entry.tokens, keep: Array(0..<simulator.tokenCount), prefix: entry.task.prefix, suffix: entry.task.suffix)
        let scores = try simulator.model.answerSaliency([request], answers: [entry.task.answer])[0]
        return .tokens(largestIndices(scores, count: budget))
    }
}

/// An upper bound for small evaluations: leave-one-out with the model. Each token's score is how
/// much the log-probability of the right answer drops when that token alone is removed; keep the
/// top k. N + 1 model calls per question (batched), so evaluations mark it and use a subset.
public final class OraclePruner: TokenPruner {
    public let name = "oracle"
    /// The leave-one-out oracle.
    public init() {}
    /// One pass over every token and one over each leave-one-out set (N + 1 passes).
    public func selectionFLOPs(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator) -> Double? {
        let n = simulator.tokenCount, text = entry.task.prefix.count + entry.task.suffix.count
        let all = simulator.model.flops(visualTokens: n, textTokens: text), less = simulator.model.flops(visualTokens: n - 1, textTokens: text)
        return all.prefill + all.head + Double(n) * (less.prefill + less.head)
    }
    public func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
        let n = simulator.tokenCount
        let all = Array(0..<n)
        let requests = [(entry, all)] + (0..<n).map { i in (entry, all.filter { $0 != i }) }
        let rows = try simulator.answer(requests.map { (entry: $0.0, keep: $0.1) })
        let answer = entry.task.answer
        let base = logSoftmaxValue(rows[0], answer)
        let drops = (0..<n).map { base - logSoftmaxValue(rows[$0 + 1], answer) }
        return .tokens(largestIndices(drops, count: budget))
    }
}

/// Keeps the tokens the task's grounding annotation marks as showing the question's objects
/// (`PruningTask.relevantTokens`: for ShapesVQA each object's anchor first, then its other
/// patches), then fills the budget with tokens spread evenly over the rest of the image — the
/// token-level analogue of the region annotations grounding datasets provide. On the built-in
/// model the spread fill scores higher than filling by class-token attention (1000 validation
/// questions: 89.4 / 88.7 against 88.7 / 86.4 at 33% / 11%): the answer needs the question's
/// objects and some context from everywhere, not more of the most salient patches. It reads the
/// annotation, so like the oracle and saliency it is a demonstrator and a reference row, not an
/// efficiency method; it is cheap (no model call), so demonstrations from it come in the thousands.
///
/// `grounding-cls` fills by class-token attention instead. Its choices are nested — the set for a
/// smaller budget lies inside the set for a larger one, as a ranking's top-k do — which the spread
/// fill's are not, so it is the one a policy that ranks tokens over three shrinking steps can clone.
/// `grounding-nested` keeps the spread and makes it nested: the other tokens in one fixed
/// coarse-to-fine order of the grid (`coarseToFineOrder`), whose first k are spread over the image
/// for every k. `grounding-ranked` fills by `TaskEntry.rankingAttention` — after an LLM layer
/// (`grounding-ranked@0`) FastV's score, the policy's attention prior there — and scores below the
/// spread: the attention fills add pieces of the other objects (Benchmarks/EXPERIMENTS.md, "Pruning
/// inside the language model").
public final class GroundingPruner: TokenPruner {
    /// How the budget left after the question's objects is filled.
    public enum Fill: Sendable {
        /// Evenly spread over the other tokens in raster order (`grounding`).
        case spread
        /// The other tokens with the highest class-token attention (`grounding-cls`).
        case classAttention
        /// The other tokens in the grid's coarse-to-fine order (`grounding-nested`).
        case nestedSpread
        /// The other tokens with the highest attention the environment ranks by
        /// (`TaskEntry.rankingAttention`: FastV's score where the simulator prunes after an LLM
        /// layer, class-token attention before the LLM) (`grounding-ranked`).
        case rankingAttention
    }
    public let name: String
    /// The fill rule.
    public let fill: Fill
    /// A grounding pruner with the given fill.
    public init(fill: Fill = .spread) {
        self.fill = fill
        switch fill {
        case .spread: name = "grounding"
        case .classAttention: name = "grounding-cls"
        case .nestedSpread: name = "grounding-nested"
        case .rankingAttention: name = "grounding-ranked"
        }
    }
    /// It reads the annotation: no matrix products.
    public func selectionFLOPs(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator) -> Double? { 0 }
    public func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
        guard let relevant = entry.task.relevantTokens else {
            throw PrunerError.needsAnnotation(name: name)
        }
        let n = simulator.tokenCount
        var chosen = Set<Int>()
        let first = relevant.filter { $0 >= 0 && $0 < n && chosen.insert($0).inserted }  // in range, first occurrence
        let k = max(1, min(n, budget))
        guard first.count < k else { return .tokens(Array(first.prefix(k)).sorted()) }
        let rest = (0..<n).filter { !chosen.contains($0) }
        switch fill {
        case .spread:
            // The rest of the budget spread evenly over the other tokens in raster order (as `uniform`).
            return .tokens((first + evenlySpaced(k - first.count, of: rest)).sorted())
        case .classAttention, .rankingAttention:
            let attention = fill == .classAttention ? entry.classAttention : entry.rankingAttention
            return .tokens((first + largestIndices(rest.map { attention[$0] }, count: k - first.count).map { rest[$0] }).sorted())
        case .nestedSpread:
            let order = coarseToFineOrder(grid: simulator.gridSize).filter { $0 < n && !chosen.contains($0) }
            return .tokens((first + order.prefix(k - first.count)).sorted())
        }
    }
}

/// Any pruner's choice applied inside the language model: every visual token is read up to LLM
/// layer `layer`, and only the tokens `base` chooses after it (FastV's mechanism, the base
/// pruner's choice). On the command line, `NAME@K` (`grounding@0`; `fastv@K` is FastV at layer K).
///
/// The base pruner sees the task as a simulator pruning after layer `layer` does
/// (`PruningSimulator.sibling(pruningAfter:)`): `rankingAttention` is FastV's score there,
/// `codes` and `query` are the layer's hidden states, so `grounding-ranked@0` fills by FastV's
/// score, as the environment's demonstrations after layer 0 do.
public final class AfterLayerPruner: TokenPruner {
    /// The pruner whose choice is applied.
    public let base: any TokenPruner
    /// The LLM layer after which the choice applies.
    public let layer: Int
    public var name: String { "\(base.name)@\(layer)" }
    public var isDeterministic: Bool { base.isDeterministic }
    /// `base`'s choice applied after LLM layer `layer`.
    public init(_ base: any TokenPruner, layer: Int) {
        self.base = base
        self.layer = layer
    }
    /// The base pruner's costed plan, its tokens applied after `layer`; throws when the base
    /// pruner does not choose input tokens (FastV).
    public func costedPlan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> CostedPlan {
        try PrunerError.checkLayer(layer, of: simulator, pruner: name)
        let own = simulator.sibling(pruningAfter: layer)
        let costed = try base.costedPlan(try own.entry(like: entry), budget: budget, simulator: own, generator: &generator)
        guard case let .tokens(tokens) = costed.plan else {
            throw PrunerError.notMovable(name: base.name)
        }
        return CostedPlan(plan: .tokensAfterLayer(layer: layer, tokens: tokens), selectionFLOPs: costed.selectionFLOPs)
    }
    /// The base pruner's: moving its choice into the LLM computes nothing more.
    public func selectionFLOPs(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator) -> Double? {
        base.selectionFLOPs(entry, budget: budget, simulator: simulator)
    }
    public func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
        try costedPlan(entry, budget: budget, simulator: simulator, generator: &generator).plan
    }
}

/// Pruners by command-line name.
public enum PrunerRegistry {
    /// The names `make` knows.
    public static let names = ["random", "uniform", "cls", "vispruner", "divprune", "query", "fastv", "llm-attention", "saliency", "grounding", "grounding-cls", "grounding-nested", "grounding-ranked", "oracle"]

    /// The pruner called `name`; `NAME@K` applies its choice after LLM layer K (`AfterLayerPruner`).
    public static func make(_ name: String) throws -> any TokenPruner {
        if let at = name.lastIndex(of: "@") {
            let baseName = String(name[..<at]), layerText = String(name[name.index(after: at)...])
            guard let layer = Int(layerText), layer >= 0 else { throw PrunerError.badLayer(name: name) }
            if baseName == "fastv" { return FastVPruner(layer: layer) }
            return AfterLayerPruner(try make(baseName), layer: layer)
        }
        switch name {
        case "random": return RandomPruner()
        case "uniform": return UniformPruner()
        case "cls": return ClassAttentionPruner()
        case "vispruner": return VisPrunerPruner()
        case "divprune": return DivPrunePruner()
        case "query": return QueryPruner()
        case "fastv": return FastVPruner()
        case "llm-attention": return AttentionPruner()
        case "saliency": return SaliencyPruner()
        case "grounding": return GroundingPruner()
        case "grounding-cls": return GroundingPruner(fill: .classAttention)
        case "grounding-nested": return GroundingPruner(fill: .nestedSpread)
        case "grounding-ranked": return GroundingPruner(fill: .rankingAttention)
        case "oracle": return OraclePruner()
        default:
            throw PrunerError.unknown(name: name, known: names)
        }
    }
}

/// An unknown pruner name, with the known ones.
public enum PrunerError: Error, CustomStringConvertible {
    case unknown(name: String, known: [String])
    /// The pruner reads the grounding annotation (`PruningTask.relevantTokens`) and the task has none.
    case needsAnnotation(name: String)
    /// `NAME@K` with a K that is not a layer index.
    case badLayer(name: String)
    /// `NAME@K` for a pruner whose plan is not a set of input tokens.
    case notMovable(name: String)
    /// A layer the model's language model does not have.
    case layerOutOfRange(name: String, layer: Int, layers: Int)
    /// A paired comparison against a method the results do not contain.
    case notEvaluated(name: String, evaluated: [String])

    /// Throws `layerOutOfRange` when `simulator`'s model is a LLaVA whose language model has no layer `layer`.
    static func checkLayer(_ layer: Int, of simulator: PruningSimulator, pruner: String) throws {
        if let layers = simulator.languageModelLayerCount, layer >= layers {
            throw layerOutOfRange(name: pruner, layer: layer, layers: layers)
        }
    }
    public var description: String {
        switch self {
        case let .badLayer(name):
            return "'\(name)': the part after @ must be an LLM layer index (0, 1, …), as in grounding@0"
        case let .layerOutOfRange(name, layer, layers):
            return "pruner '\(name)': the language model has layers 0…\(layers - 1), not \(layer); pick K below \(layers) in NAME@K"
        case let .notMovable(name):
            return "pruner '\(name)' does not choose input tokens, so it cannot be applied after an LLM layer with @"
        case let .needsAnnotation(name):
            return "pruner '\(name)' needs tasks with a grounding annotation (PruningTask.relevantTokens) and this task source gives none; use saliency or vispruner instead"
        case let .notEvaluated(name, evaluated):
            return "no results for '\(name)' to compare against (evaluated: \(evaluated.joined(separator: ", "))); add it to --agents or compare against one of these"
        case let .unknown(name, known):
            let guess = nearestName(to: name, among: known + ["tprl"]).map { " (did you mean \($0)?)" } ?? ""
            return "unknown pruner '\(name)'\(guess); known: \(known.joined(separator: ", ")) (and tprl for a trained policy)"
        }
    }
}

// MARK: Helpers

/// The tokens of a `grid` × `grid` image in coarse-to-fine order: by the interleaved bits of the
/// bit-reversed row and column (a 2-D van der Corput order), so the first 4 lie one in each
/// quadrant, the first 16 one in each 4 × 4 block of a 16 × 16 grid, and so on — spread over the
/// image for every prefix, each prefix inside the next.
func coarseToFineOrder(grid: Int) -> [Int] {
    var bits = 0
    while (1 << bits) < grid { bits += 1 }
    func reversed(_ v: Int) -> Int { (0..<bits).reduce(0) { $0 | ((v >> $1) & 1) << (bits - 1 - $1) } }
    func key(_ token: Int) -> Int {
        let (r, c) = (reversed(token / grid), reversed(token % grid))
        return (0..<bits).reduce(0) { $0 | ((r >> (bits - 1 - $1)) & 1) << (2 * (bits - 1 - $1) + 1) | ((c >> (bits - 1 - $1)) & 1) << (2 * (bits - 1 - $1)) }
    }
    let keys = (0..<(grid * grid)).map(key)
    return keys.indices.sorted { keys[$0] < keys[$1] }
}

/// `k` of `items` (k ≤ items.count) at evenly spaced positions, the middle of each of k equal
/// stretches: items[⌊(j + ½)·count / k⌋] for j < k, in the order of `items`.
func evenlySpaced(_ k: Int, of items: [Int]) -> [Int] {
    (0..<k).map { j in items[min(items.count - 1, Int((Double(j) + 0.5) * Double(items.count) / Double(k)))] }
}

/// Rows of `[N, D]` scaled to unit length, row-major.
func normalisedRows(_ tokens: Tensor) -> [Float] {
    let (n, d) = (tokens.shape[0], tokens.shape[1])
    var values = tokens.scalars
    for i in 0..<n {
        var norm: Float = 0
        for j in 0..<d { norm += values[i * d + j] * values[i * d + j] }
        let scale = 1 / max(1e-12, norm.squareRoot())
        for j in 0..<d { values[i * d + j] *= scale }
    }
    return values
}

/// Cosine similarity of every pair of rows of `[N, D]`, row-major `[N·N]` (one GEMM).
func cosineSimilarities(_ tokens: Tensor) -> [Float] {
    let unit = Tensor(shape: tokens.shape, scalars: normalisedRows(tokens))
    return withInferenceMode { Tensor.matmul(unit, unit, transposeB: true).scalars }
}

func logSoftmaxValue(_ row: [Float], _ index: Int) -> Float {
    let m = row.max() ?? 0
    return row[index] - m - Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - m) })
}
