import Foundation
import Gym
import NN
import Policies
import Pruners
import TensorCore
import TokenPruning

/// The trained TPRL policy as a pruner. For a budget of k tokens (top-k inference) it walks the
/// episode's T_max steps as its demonstrations did: step t keeps the k_t = N·(k/N)^{(t+1)/T}
/// kept tokens with the highest keep logit z, the last step exactly k, each step observing only
/// what the previous one kept — no model call until the answer. `stepped = false` instead keeps
/// the top k of the first step's logits (the first step of a demonstration keeps about half the
/// tokens, so its logits rank the final choice only coarsely). `threshold` keeps those with
/// p = σ(z) ≥ τ at every step, through the environment's transition (the floor rule applies when
/// too few pass) but without its rewards, so the policy decides how many it keeps and the model is
/// not called until the answer. A policy trained to prune after an LLM layer (`prune_after_layer`)
/// needs a simulator that prunes there (`simulator:`, or the evaluation's), and its plan is
/// `PruningPlan.tokensAfterLayer`.
public final class TPRLPruner: TokenPruner {
    public let name: String
    /// The trained policy.
    public let network: TPRLActorCritic
    /// The environment it was trained in (observation layout; the split comes from each task).
    public let configuration: TokenPruningConfiguration
    /// Keep by threshold τ (ignoring the budget) instead of top-k.
    public var threshold: Float?
    /// Top-k through the episode's steps (true) or of the first step's logits only; which is
    /// better depends on the trained policy, so training records its validation choice
    /// (`TPRLPolicyFiles.steppedInference`) and `eval-pruning` sets this from it.
    public var stepped = true
    /// The simulator whose encoder the policy was trained with, when it differs from the
    /// evaluation's (each policy directory has its own autoencoder); nil uses the evaluation's.
    public let ownSimulator: PruningSimulator?
    /// One environment per (simulator, split), reused to build observations.
    private var environments: [String: TokenPruningEnvironment] = [:]

    /// The policy as a pruner (top-k unless `threshold` is set). `simulator`, if given, supplies
    /// the observations (its encoder is the policy's); the plan applies to any simulator of the
    /// same model and tasks.
    public init(network: TPRLActorCritic, configuration: TokenPruningConfiguration, name: String = "tprl", simulator: PruningSimulator? = nil) {
        self.network = network
        self.configuration = configuration
        self.name = name
        ownSimulator = simulator
    }

    /// The flat observation row of the first step of `entry` with `budget` as the target.
    public func firstObservation(_ entry: TaskEntry, simulator: PruningSimulator, budget: Double) throws -> [Float] {
        let environment = try self.environment(for: entry, simulator: simulator)
        return environment.observationSpace.flattened(environment.observation(entry, kept: Array(0..<simulator.tokenCount), step: 0, budget: budget))
    }

    /// The (cached) environment of `entry`'s split: its observations and transitions, never its
    /// episode — inference builds each step's observation itself.
    func environment(for entry: TaskEntry, simulator: PruningSimulator) throws -> TokenPruningEnvironment {
        let key = "\(ObjectIdentifier(simulator))/\(entry.split)"
        if let cached = environments[key] { return cached }
        var config = configuration
        config.split = entry.split
        let environment = try TokenPruningEnvironment(simulator: simulator, configuration: config)
        environments[key] = environment
        return environment
    }

    public func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
        try costedPlan(entry, budget: budget, simulator: simulator, generator: &generator).plan
    }

    /// The plan and what the policy computed for it: the token encoder on every visual token
    /// (nil when the encoder cannot count itself) and one keep-logit pass per step over the kept
    /// slots that step reads (`TPRLActorCritic.keepLogitFLOPs`).
    public func costedPlan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> CostedPlan {
        let (entry, simulator) = try observed(entry, in: simulator)
        let encoding = simulator.encoder.flopsPerToken.map { $0 * Double(simulator.tokenCount) }
        var passes = 0.0
        let plan = try choose(entry, budget: budget, simulator: simulator) { passes += network.keepLogitFLOPs(tokens: $0) }
        return CostedPlan(plan: plan, selectionFLOPs: encoding.map { $0 + passes })
    }

    /// `entry` as the policy observes it: through its own simulator (its encoder, where it cuts)
    /// when it has one other than `simulator`, which must have as many visual tokens.
    func observed(_ entry: TaskEntry, in simulator: PruningSimulator) throws -> (entry: TaskEntry, simulator: PruningSimulator) {
        guard let own = ownSimulator, own !== simulator else { return (entry, simulator) }
        guard own.tokenCount == simulator.tokenCount else {
            throw AgentError.invalidConfiguration(agent: name, reason: "its simulator has \(own.tokenCount) visual tokens, the evaluation's \(simulator.tokenCount)")
        }
        return (try own.entry(like: entry, from: simulator), own)
    }

    /// The choice itself; `pass(s)` is told of each keep-logit pass over s token rows.
    func choose(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, pass: (Int) -> Void) throws -> PruningPlan {
        let share = Double(budget) / Double(simulator.tokenCount)
        if let threshold {
            // The paper's threshold inference: at each of the episode's steps keep the tokens
            // with p = σ(z) ≥ τ (no step discount at inference), through the environment's own
            // transition (floor rule included) but without its rewards, so no model call: only
            // the kept slots go through the trunk, as in top-k inference.
            let logit = Foundation.log(threshold / (1 - threshold))
            let environment = try self.environment(for: entry, simulator: simulator)
            let kept = try environment.walk(entry, budget: share) { observation, kept in
                let logits = withInferenceMode { network.keepLogits(environment.observationSpace.flattened(observation), slots: kept) }
                pass(kept.count)
                var action = [Bool](repeating: false, count: simulator.tokenCount)
                for (slot, z) in zip(kept, logits) { action[slot] = z >= logit }
                return action
            }
            return .keeping(kept, in: simulator)
        }
        let environment = try self.environment(for: entry, simulator: simulator)
        let n = simulator.tokenCount, k = max(1, min(budget, n))
        let steps = stepped ? max(1, configuration.maxSteps) : 1
        var kept = Array(0..<n), observation = environment.observation(entry, kept: kept, step: 0, budget: share)
        for t in 0..<steps {
            let row = environment.observationSpace.flattened(observation)
            // Only the kept slots go through the trunk (the others are padding it ignores).
            let logits = withInferenceMode { network.keepLogits(row, slots: kept) }
            pass(kept.count)
            let target = t == steps - 1 ? k : max(k, Int((Double(n) * Foundation.pow(Double(k) / Double(n), Double(t + 1) / Double(steps))).rounded()))
            // `kept` ascends, so ties still go to the lower slot and the result still ascends.
            kept = largestIndices(logits, count: target).map { kept[$0] }
            if t + 1 < steps { observation = environment.observation(entry, kept: kept, step: t + 1, budget: share) }
        }
        return .keeping(kept, in: simulator)
    }
}

extension TPRLPruner: ScoringPruner {
    /// The keep logits of the episode's first step, with `budget` as the target a
    /// budget-conditioned policy is given, observed through the policy's own simulator; the cost is
    /// the encoder's and that one pass.
    public func keepScores(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator) throws -> (scores: [Float], selectionFLOPs: Double?) {
        let (entry, simulator) = try observed(entry, in: simulator)
        let n = simulator.tokenCount
        let environment = try self.environment(for: entry, simulator: simulator)
        let observation = environment.observation(entry, kept: Array(0..<n), step: 0, budget: Double(budget) / Double(n))
        let logits = withInferenceMode { network.keepLogits(environment.observationSpace.flattened(observation), slots: Array(0..<n)) }
        let encoding = simulator.encoder.flopsPerToken.map { $0 * Double(n) }
        return (logits, encoding.map { $0 + network.keepLogitFLOPs(tokens: n) })
    }

    /// Keeping `kept` where the policy prunes (its own simulator's layer, or before the LLM).
    public func plan(keeping kept: [Int], simulator: PruningSimulator) -> PruningPlan {
        .keeping(kept, in: ownSimulator ?? simulator)
    }
}
