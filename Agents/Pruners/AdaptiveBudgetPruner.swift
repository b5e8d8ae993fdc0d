import Foundation
import Gym
import TensorCore
import TokenPruning

/// A pruner that ranks tokens by a score of its own: what `AdaptiveBudgetPruner` needs to keep a
/// varying number of them per question.
public protocol ScoringPruner: TokenPruner {
    /// One keep score per visual token of `entry` (higher keeps first; the pruner's top k at a
    /// budget of k tokens are the k highest) as the pruner computes it for that budget, and what
    /// computing it cost (`TokenPruner.selectionFLOPs`' convention; nil when not counted).
    func keepScores(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator) throws -> (scores: [Float], selectionFLOPs: Double?)
    /// The plan that keeps `kept` (ascending) where the pruner prunes.
    func plan(keeping kept: [Int], simulator: PruningSimulator) -> PruningPlan
}

/// A budget met on average rather than by every question: `base`'s scores thresholded at the
/// level t_k above which, over `calibrationQuestions` questions of the validation split, its
/// tokens number k per question on average. A question whose scores are spread over many tokens
/// (several objects to count, say) keeps more than k, one whose scores sit on a few tokens keeps
/// fewer; at least one (the best-scored) always stays. This is the TPRL paper's threshold
/// inference with the threshold set for a budget, and applies to any scoring pruner, so that
/// FastV gets the same freedom as the policy.
///
/// The calibration reads no answers (only scores), is made once per budget on first use, and
/// never looks at the evaluated split unless that is the validation split. The evaluation counts
/// what each question reads, so a row's mean tokens and GFLOPs are what was spent (close to, not
/// exactly, the budget's: the threshold is the validation questions', not the evaluated ones').
public final class AdaptiveBudgetPruner: TokenPruner {
    /// The pruner whose scores are thresholded.
    public let base: any ScoringPruner
    /// Validation questions the threshold of each budget is set on.
    public let calibrationQuestions: Int
    /// `base`'s name with `+adaptive`.
    public let name: String
    /// The cut of each (simulator, budget), made on first use.
    private var levels: [LevelKey: Level] = [:]
    private struct LevelKey: Hashable { var simulator: ObjectIdentifier, budget: Int }
    private let lock = NSLock()

    /// `base` meeting each budget on average over `calibrationQuestions` validation questions (at
    /// least 1).
    public init(base: any ScoringPruner, calibrationQuestions: Int = 1000) throws {
        guard calibrationQuestions >= 1 else {
            throw AgentError.invalidConfiguration(agent: "\(base.name)+adaptive", reason: "it needs at least 1 calibration question, got \(calibrationQuestions)")
        }
        self.base = base
        self.calibrationQuestions = calibrationQuestions
        name = "\(base.name)+adaptive"
    }

    /// `pruner` itself, or the base of a cascade over one; nil otherwise.
    public static func within(_ pruner: any TokenPruner) -> AdaptiveBudgetPruner? {
        pruner as? AdaptiveBudgetPruner ?? (pruner as? FallbackPruner).flatMap { within($0.base) }
    }

    /// `base`'s: the threshold itself draws nothing.
    public var isDeterministic: Bool { base.isDeterministic }

    public func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
        try costedPlan(entry, budget: budget, simulator: simulator, generator: &generator).plan
    }

    /// The tokens whose score reaches the budget's threshold (at least the best one), and
    /// `base`'s cost of scoring them. At a budget of every token, `base`'s own plan.
    public func costedPlan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> CostedPlan {
        guard budget < simulator.tokenCount else { return try base.costedPlan(entry, budget: budget, simulator: simulator, generator: &generator) }
        let level = try self.level(budget: budget, simulator: simulator)
        let (scores, cost) = try base.keepScores(entry, budget: budget, simulator: simulator)
        return CostedPlan(plan: base.plan(keeping: level.kept(scores), simulator: simulator), selectionFLOPs: cost)
    }

    /// Where a budget's scores are cut: every token scoring above `threshold`, and of those scoring
    /// exactly `threshold` the share `tieShare` (rounded, the first of equals), so that tied scores
    /// — FastV's zeros, say — do not all fall on one side.
    public struct Level: Sendable, Equatable {
        /// The score at the cut.
        public var threshold: Float
        /// The share of the tokens scoring exactly `threshold` that stay, in [0, 1].
        public var tieShare: Double

        /// The cut that keeps `count` of `pooled`'s scores (clamped to the non-NaN ones), ties
        /// shared out; NaN scores are never kept.
        public init(pooled: [Float], keeping count: Int) {
            let sorted = pooled.filter { !$0.isNaN }.sorted(by: >)
            guard !sorted.isEmpty, count > 0 else {
                threshold = .infinity
                tieShare = 0
                return
            }
            let cut = sorted[min(sorted.count, count) - 1]
            let above = sorted.prefix { $0 > cut }.count
            let tied = sorted[above...].prefix { $0 == cut }.count
            threshold = cut
            tieShare = Double(min(sorted.count, count) - above) / Double(tied)
        }

        /// The tokens of `scores` this cut keeps, ascending; the best-scored one (the first of
        /// equals) when it keeps none.
        public func kept(_ scores: [Float]) -> [Int] {
            let tied = scores.indices.filter { scores[$0] == threshold }
            let tiedKept = Set(tied.prefix(Int((tieShare * Double(tied.count)).rounded())))
            let kept = scores.indices.filter { scores[$0] > threshold || tiedKept.contains($0) }
            if !kept.isEmpty || scores.isEmpty { return kept }
            var best = 0
            for i in scores.indices where scores[i] > scores[best] || scores[best].isNaN { best = i }
            return [best]
        }
    }

    /// The cut for `budget` tokens in `simulator` (made once per pair): at the (Q·k)-th highest of the scores of the first Q validation
    /// questions pooled, so that Q·k of their tokens are kept.
    public func level(budget: Int, simulator: PruningSimulator) throws -> Level {
        let key = LevelKey(simulator: ObjectIdentifier(simulator), budget: budget)
        if let known = lock.withLock({ levels[key] }) { return known }
        var pooled: [Float] = []
        pooled.reserveCapacity(calibrationQuestions * simulator.tokenCount)
        for start in stride(from: 0, to: calibrationQuestions, by: 64) {
            for entry in try simulator.entries(Array(start..<min(calibrationQuestions, start + 64)), split: "validation") {
                pooled += try base.keepScores(entry, budget: budget, simulator: simulator).scores
            }
        }
        let level = Level(pooled: pooled, keeping: calibrationQuestions * budget)
        lock.withLock { levels[key] = level }
        return level
    }
}
