import Foundation
import Gym
import TensorCore
import TokenPruning

/// Any pruner with a confidence fallback: the model answers from `base`'s tokens, and when that
/// answer's probability (the largest of the answer softmax) is below `threshold` it answers again
/// from every visual token. This is a cascade in the sense of early-exit inference: the pruned
/// pass is the cheap model, the unpruned pass the expensive one, and the model's own confidence
/// decides. The evaluation (`PruningEvaluation`) carries out the second answer and counts it — a
/// question that falls back reads `k + N` visual tokens, and its FLOPs include the second answer:
/// for a base that prunes after an LLM layer (`tprl-llm`, FastV), the same pass continued from that
/// layer's states over all N tokens (`VisionLanguageModel.continuationFLOPs`); for the others a
/// second prefill over all N (the vision tower is not run again) — so a fallback row's mean
/// tokens and GFLOPs are what the cascade spends, not the base budget's.
///
/// Answers are right or wrong by the model's top answer either way; the threshold is a choice
/// to make on the validation split (`eval-pruning --split validation`), never on test.
public final class FallbackPruner: TokenPruner {
    /// The pruner whose tokens the first answer reads.
    public let base: any TokenPruner
    /// The answer probability below which the model answers again from every token, in (0, 1].
    public let threshold: Float
    /// `base`'s name with `+fallback`.
    public let name: String

    /// `base` with a fallback below `threshold`; throws unless 0 < threshold ≤ 1.
    public init(base: any TokenPruner, threshold: Float) throws {
        guard threshold > 0 && threshold <= 1 else {
            throw AgentError.invalidConfiguration(agent: "\(base.name)+fallback", reason: "the fallback threshold must be in (0, 1], got \(threshold)")
        }
        self.base = base
        self.threshold = threshold
        name = "\(base.name)+fallback"
    }

    /// `base`'s: the fallback itself draws nothing.
    public var isDeterministic: Bool { base.isDeterministic }

    /// `base`'s plan: what the first answer reads.
    public func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
        try base.plan(entry, budget: budget, simulator: simulator, generator: &generator)
    }

    /// `base`'s choosing; the second pass is the model's, counted by the evaluation.
    public func selectionFLOPs(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator) -> Double? {
        base.selectionFLOPs(entry, budget: budget, simulator: simulator)
    }

    /// `base`'s plan and choosing cost.
    public func costedPlan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> CostedPlan {
        try base.costedPlan(entry, budget: budget, simulator: simulator, generator: &generator)
    }

    /// Whether the answer of `logits` stands: its probability, the largest of softmax(logits), is
    /// at least `threshold`. Non-finite logits never stand.
    public func accepts(_ logits: [Float]) -> Bool {
        guard let top = logits.max(), top.isFinite else { return false }
        let total = logits.reduce(Float(0)) { $0 + Foundation.exp($1 - top) }
        return 1 / total >= threshold
    }
}
