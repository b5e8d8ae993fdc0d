import Foundation
import Gym

/// What the task term of the reward measures (R_task = Score_t − Score_{t−1}).
public enum TaskScore: String, Codable, Sendable, CaseIterable {
    /// 1 when the answer (arg-max token) is right, else 0 — the TPRL paper's choice.
    case accuracy
    /// Probability of the right answer.
    case probability
    /// Log-probability of the right answer.
    case logProbability = "log_probability"
    /// −KL(p_unpruned ‖ p_t): how far the answer distribution moved from the unpruned one.
    case negativeKL = "negative_kl"
}

/// What the efficiency term of the reward measures.
public enum EfficiencyTerm: String, Codable, Sendable, CaseIterable {
    /// R_eff = 1 − K_t / K_{t−1} — the TPRL paper's choice.
    case tokenRatio = "token_ratio"
    /// 1 − F_t / F_{t−1}, F the FLOPs of answering (vision tower, projector and LLM prefill).
    case flopsSaved = "flops_saved"
    /// |K_{t−1}/N − b| − |K_t/N − b|: progress towards the target budget b (`targetBudget`).
    case budgetDistance = "budget_distance"
}

/// The MDP's settings. Every field may be omitted from JSON (snake_case keys); unknown keys are
/// rejected by name.
public struct TokenPruningConfiguration: Codable, Sendable, Equatable {
    /// The tokens a budget (a share of `n`) keeps: round(budget·n), at least 1 and at most n —
    /// the rule of the evaluation, the demonstrations and the exact-budget policy alike.
    public static func tokenCount(budget: Double, of n: Int) -> Int { max(1, min(n, Int((budget * Double(n)).rounded()))) }

    /// Weight α of the task term.
    public var alpha: Double = 1
    /// Weight β of the efficiency term.
    public var beta: Double = 0.5
    /// The task term of the reward.
    public var taskScore: TaskScore = .accuracy
    /// The efficiency term of the reward.
    public var efficiency: EfficiencyTerm = .tokenRatio
    /// Pay the whole reward at the last step: α·(Score_T − Score_0) + β·E(K_0 → K_T).
    public var terminalOnly = false
    /// Pruning steps per episode (T_max).
    public var maxSteps = 3
    /// The floor: at least this many tokens stay kept (see `TokenPruningEnvironment` for the rule).
    public var minimumTokens = 1
    /// Target budget b ∈ (0, 1] (share of visual tokens) for `budget_distance`, and the budget the
    /// observation reports to budget-conditioned policies.
    public var targetBudget = 0.333
    /// Draw the target budget per episode uniformly from these (budget-conditioned training);
    /// empty keeps `targetBudget`.
    public var budgetChoices: [Double] = []
    /// Dataset split the episodes come from, and how many distinct samples of it are used.
    public var split = "train"
    /// Distinct samples of the split drawn from.
    public var datasetSize = 20_000
    /// Question words the observation carries one by one (`query_words`): with L > 0 it gains
    /// `words` (the embeddings of the question's first L words, zeros after the last) and
    /// `word_mask`, so a policy can match words to tokens instead of reading only their mean.
    /// 0 (the default, and what an absent key reads as) is the paper's state: the mean only.
    public var queryWords = 0
    /// Where the kept set applies (`prune_after_layer`): nil (the default, and what an absent key
    /// reads as) is the paper's setting, pruning before the language model; K prunes after the
    /// language model's layer K, FastV's place, and the agent observes the model's state there
    /// (see `PruningSimulator`). The simulator must prune there too.
    public var pruneAfterLayer: Int? = nil

    /// The paper's defaults.
    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case alpha, beta, taskScore = "task_score", efficiency, terminalOnly = "terminal_only", maxSteps = "max_steps"
        case minimumTokens = "minimum_tokens", targetBudget = "target_budget", budgetChoices = "budget_choices", split
        case datasetSize = "dataset_size", queryWords = "query_words", pruneAfterLayer = "prune_after_layer"
    }

    public init(from decoder: Decoder) throws {
        try ConfigurationKeys.rejectUnknown(in: decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TokenPruningConfiguration()
        alpha = try c.decodeIfPresent(Double.self, forKey: .alpha) ?? d.alpha
        beta = try c.decodeIfPresent(Double.self, forKey: .beta) ?? d.beta
        taskScore = try c.decodeIfPresent(TaskScore.self, forKey: .taskScore) ?? d.taskScore
        efficiency = try c.decodeIfPresent(EfficiencyTerm.self, forKey: .efficiency) ?? d.efficiency
        terminalOnly = try c.decodeIfPresent(Bool.self, forKey: .terminalOnly) ?? d.terminalOnly
        maxSteps = try c.decodeIfPresent(Int.self, forKey: .maxSteps) ?? d.maxSteps
        minimumTokens = try c.decodeIfPresent(Int.self, forKey: .minimumTokens) ?? d.minimumTokens
        targetBudget = try c.decodeIfPresent(Double.self, forKey: .targetBudget) ?? d.targetBudget
        budgetChoices = try c.decodeIfPresent([Double].self, forKey: .budgetChoices) ?? d.budgetChoices
        split = try c.decodeIfPresent(String.self, forKey: .split) ?? d.split
        datasetSize = try c.decodeIfPresent(Int.self, forKey: .datasetSize) ?? d.datasetSize
        queryWords = try c.decodeIfPresent(Int.self, forKey: .queryWords) ?? d.queryWords
        pruneAfterLayer = try c.decodeIfPresent(Int.self, forKey: .pruneAfterLayer) ?? d.pruneAfterLayer
    }

    /// Throws `GymError.invalidOption` naming the first impossible value's key.
    public func validate() throws {
        func fail(_ key: String, _ reason: String) -> GymError { .invalidOption(environment: "TokenPruning", reason: "\(key) \(reason)") }
        guard alpha.isFinite && alpha >= 0 else { throw fail("alpha", "must be finite and ≥ 0, got \(alpha)") }
        guard beta.isFinite && beta >= 0 else { throw fail("beta", "must be finite and ≥ 0, got \(beta)") }
        guard maxSteps >= 1 else { throw fail("max_steps", "must be ≥ 1, got \(maxSteps)") }
        guard minimumTokens >= 1 else { throw fail("minimum_tokens", "must be ≥ 1, got \(minimumTokens)") }
        guard targetBudget > 0 && targetBudget <= 1 else { throw fail("target_budget", "must be in (0, 1], got \(targetBudget)") }
        if let bad = budgetChoices.first(where: { !($0 > 0 && $0 <= 1) }) { throw fail("budget_choices", "each budget must be in (0, 1], got \(bad)") }
        guard ["train", "validation", "test"].contains(split) else { throw fail("split", "must be train, validation or test, got '\(split)'") }
        guard datasetSize >= 1 else { throw fail("dataset_size", "must be ≥ 1, got \(datasetSize)") }
        guard queryWords >= 0 else { throw fail("query_words", "must be ≥ 0, got \(queryWords)") }
        if let layer = pruneAfterLayer, layer < 0 { throw fail("prune_after_layer", "must be a layer index ≥ 0 (or absent: before the language model), got \(layer)") }
    }
}
