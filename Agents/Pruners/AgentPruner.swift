import Foundation
import Gym
import TensorCore
import TokenPruning

/// Any `Agent` trained on `TokenPruning-v0` as a pruner, so that it sits in the same eval-pruning
/// table as the baselines: for each question it plays one episode of the environment (the target
/// budget set to the evaluated budget; `TokenPruningEnvironment.walk`, so without the rewards'
/// model calls) and keeps what is left at the end. The retained-token
/// column then shows what the agent chose — an agent is not forced to the budget.
///
/// `sampling` draws the agent's stochastic actions (its own seeded generator, as in training);
/// otherwise the agent's deterministic action is used. An agent trained to prune after an LLM
/// layer (`prune_after_layer`) observes through a simulator that does, and its plan applies there.
public final class AgentPruner: TokenPruner {
    public let name: String
    /// The trained agent.
    public let agent: any Agent<[String: SpaceValue], [Bool]>
    /// The environment it was trained in (its split is set from each task).
    public let configuration: TokenPruningConfiguration
    /// Sample the agent's actions instead of taking its deterministic ones.
    public let sampling: Bool
    public var isDeterministic: Bool { !sampling }
    private var environments: [String: TokenPruningEnvironment] = [:]

    /// `configuration` is the environment the agent was trained in (its observation layout and
    /// reward; the split is taken from each evaluated task).
    public init(name: String, agent: any Agent<[String: SpaceValue], [Bool]>, configuration: TokenPruningConfiguration, sampling: Bool = false) {
        self.name = name
        self.agent = agent
        self.configuration = configuration
        self.sampling = sampling
    }

    public func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
        let evaluation = simulator
        let simulator = evaluation.sibling(pruningAfter: configuration.pruneAfterLayer)
        let entry = try simulator.entry(like: entry, from: evaluation)
        let environment = try self.environment(simulator: simulator, split: entry.split)
        // The episode's transitions without its rewards: the model answers only once, from the end.
        let kept = try environment.walk(entry, budget: Double(budget) / Double(simulator.tokenCount)) { observation, _ in
            try agent.act([observation], deterministic: !sampling)[0]
        }
        return .keeping(kept, in: simulator)
    }

    private func environment(simulator: PruningSimulator, split: String) throws -> TokenPruningEnvironment {
        let key = "\(ObjectIdentifier(simulator))/\(split)"
        if let cached = environments[key] { return cached }
        var config = configuration
        config.split = split
        let environment = try TokenPruningEnvironment(simulator: simulator, configuration: config)
        environments[key] = environment
        return environment
    }
}
