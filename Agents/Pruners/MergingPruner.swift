import Foundation
import Gym
import TensorCore
import TokenPruning

/// What a pruner drops, kept as one token: at a budget of k tokens, `base` chooses k − 1 and the
/// other visual tokens are merged into a k-th, their mean, which the language model attends to
/// in proportion to how many tokens it stands for (a key bias of log m for m tokens in every
/// layer that reads it: ToMe's proportional attention, Bolya et al., ICLR 2023). VisionZip keeps
/// such "contextual" tokens beside its dominant ones (Yang et al., 2024); here one stands in for
/// the whole pruned set, so that the attention the text pays to the image keeps its total.
///
/// Before the language model (`.tokens` plans) the mean is of the projector's outputs, placed
/// after the last token it merges, positions renumbered as for any kept set; inside it
/// (`tprl-llm`, FastV, `NAME@K`) it is of the hidden states after the cut, at the rounded mean
/// of their positions (`LlamaModel.merging`). The language model reads k tokens where the base
/// would read k, so a row's tokens and model FLOPs are those of the base at k; the mean adds
/// m·D additions, counted as the pruner's own.
public final class MergingPruner: TokenPruner {
    /// The pruner that chooses the k − 1 tokens kept as they are.
    public let base: any TokenPruner
    /// `base`'s name with `+merge`.
    public let name: String

    /// `base` with the rest merged into one token.
    public init(base: any TokenPruner) {
        self.base = base
        name = "\(base.name)+merge"
    }

    public var isDeterministic: Bool { base.isDeterministic }

    public func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
        try costedPlan(entry, budget: budget, simulator: simulator, generator: &generator).plan
    }

    /// `base`'s plan for k − 1 tokens with the rest merged, and `base`'s choosing cost plus the
    /// mean's m·D additions. At a budget of every token, or of one, `base`'s own plan.
    public func costedPlan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> CostedPlan {
        let n = simulator.tokenCount
        // Every token, or too few to merge and still choose one: the base's own plan.
        guard budget >= 2 && budget < n else { return try base.costedPlan(entry, budget: budget, simulator: simulator, generator: &generator) }
        let costed = try base.costedPlan(entry, budget: budget - 1, simulator: simulator, generator: &generator)
        let merged: PruningPlan, kept: Int
        switch costed.plan {
        case let .tokensAfterLayer(layer, tokens): (merged, kept) = (.mergedAfterLayer(layer: layer, tokens: tokens), tokens.count)
        case let .insideLLM(layer, keep): (merged, kept) = (.mergedInsideLLM(layer: layer, keep: keep), min(keep, n))
        case let .tokens(tokens): (merged, kept) = (.mergedTokens(tokens), tokens.count)
        case .mergedTokens, .mergedAfterLayer, .mergedInsideLLM: return costed
        }
        let mean = Double((n - kept) * simulator.model.tokenWidth)
        return CostedPlan(plan: merged, selectionFLOPs: costed.selectionFLOPs.map { $0 + mean })
    }
}
