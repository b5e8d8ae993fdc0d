import Foundation
import Gym
import NN
import Policies
import Pruners
import TensorCore
import TokenPruning

/// The trained TPRL policy as a pruner: for a budget of k tokens it keeps the k tokens with the
/// highest keep probability p = σ(z) at the first step (top-k inference); `threshold` instead
/// keeps those with p ≥ τ, stepping through the episode as the environment would.
public final class TPRLPruner: TokenPruner {
    public let name: String
    public let network: TPRLActorCritic
    public let configuration: TokenPruningConfiguration
    /// Keep by threshold τ (ignoring the budget) instead of top-k.
    public var threshold: Float?
    /// One environment per (simulator, split), reused to build observations.
    private var environments: [String: TokenPruningEnvironment] = [:]

    public init(network: TPRLActorCritic, configuration: TokenPruningConfiguration, name: String = "tprl") {
        self.network = network
        self.configuration = configuration
        self.name = name
    }

    /// The flat observation row of the first step of `entry` with `budget` as the target.
    public func firstObservation(_ entry: TaskEntry, simulator: PruningSimulator, budget: Double) throws -> [Float] {
        let key = "\(ObjectIdentifier(simulator))/\(entry.split)"
        let environment: TokenPruningEnvironment
        if let cached = environments[key] {
            environment = cached
        } else {
            var config = configuration
            config.split = entry.split
            environment = try TokenPruningEnvironment(simulator: simulator, configuration: config)
            environments[key] = environment
        }
        let reset = try environment.reset(seed: 0, options: ResetOptions(values: ["index": .number(Double(entry.index)), "budget": .number(budget)]))
        var row: [Float] = []
        environment.observationSpace.flatten(reset.observation, into: &row)
        return row
    }

    public func plan(_ entry: TaskEntry, budget: Int, simulator: PruningSimulator, generator: inout SeededGenerator) throws -> PruningPlan {
        let row = try firstObservation(entry, simulator: simulator, budget: Double(budget) / Double(simulator.tokenCount))
        let z = withInferenceMode { network.keepLogits(Tensor(shape: [1, row.count], scalars: row)).scalars }
        if let threshold {
            let logit = Foundation.log(threshold / (1 - threshold))
            let kept = z.indices.filter { z[$0] >= logit }
            return .tokens(kept.isEmpty ? [z.indices.max { z[$0] < z[$1] }!] : kept)
        }
        let k = max(1, min(budget, z.count))
        return .tokens(z.indices.sorted { z[$0] > z[$1] || (z[$0] == z[$1] && $0 < $1) }.prefix(k).sorted())
    }
}
