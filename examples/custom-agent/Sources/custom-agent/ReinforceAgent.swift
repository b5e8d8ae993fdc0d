import Foundation
import Gym
import NN
import Policies
import TensorCore

/// REINFORCE with a learned baseline (Williams 1992; Sutton & Barto §13.4): one gradient step per
/// rollout on −mean(log π(a|s) · (G − V(s))) + ½·mean((V(s) − G)²), where G is the Monte-Carlo
/// return — GAE with γ = λ = 1 gives exactly A = G − V. Works on any environment whose action
/// space PruneGym's policies support (Discrete, MultiBinary with a validity mask, Box).
public final class ReinforceAgent<Observation: Sendable, Action: Sendable>: OnPolicyAgent {
    public static var kind: String { "reinforce" }
    public static var version: Int { 1 }

    public struct Configuration: Codable, Sendable {
        public var learningRate: Float = 1e-3
        public var environmentCount = 8
        public var stepsPerRollout = 24
        public var hiddenSizes = [64, 64]
        public var normalizesAdvantages = true

        public init() {}

        enum CodingKeys: String, CodingKey, CaseIterable {
            case learningRate = "learning_rate", environmentCount = "environment_count", stepsPerRollout = "steps_per_rollout"
            case hiddenSizes = "hidden_sizes", normalizesAdvantages = "normalize_advantages"
        }

        public init(from decoder: Decoder) throws {
            try ConfigurationKeys.rejectUnknown(in: decoder, CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = Configuration()
            learningRate = try c.decodeIfPresent(Float.self, forKey: .learningRate) ?? d.learningRate
            environmentCount = try c.decodeIfPresent(Int.self, forKey: .environmentCount) ?? d.environmentCount
            stepsPerRollout = try c.decodeIfPresent(Int.self, forKey: .stepsPerRollout) ?? d.stepsPerRollout
            hiddenSizes = try c.decodeIfPresent([Int].self, forKey: .hiddenSizes) ?? d.hiddenSizes
            normalizesAdvantages = try c.decodeIfPresent(Bool.self, forKey: .normalizesAdvantages) ?? d.normalizesAdvantages
        }
    }

    public let configuration: Configuration
    public let observationSpace: any Space<Observation>
    public let actionSpace: any Space<Action>
    let actionKind: ActionKind
    let network: MLPActorCritic
    let optimizer: Adam
    var generator: SeededGenerator

    public init(observationSpace: any Space<Observation>, actionSpace: any Space<Action>, configuration: Configuration = Configuration(),
                seed: UInt64, maskRange: Range<Int>? = nil) throws {
        self.configuration = configuration
        self.observationSpace = observationSpace
        self.actionSpace = actionSpace
        actionKind = try ActionKind(actionSpace.descriptor, agent: Self.kind)
        var generator = SeededGenerator(seed: seed)
        var networkGenerator = generator.fork()
        network = MLPActorCritic(observationWidth: observationSpace.flatDimension, action: actionKind, hidden: configuration.hiddenSizes,
                                 activation: .tanh, maskRange: maskRange, generator: &networkGenerator)
        self.generator = generator
        optimizer = Adam(network.namedParameters, learningRate: configuration.learningRate)
    }

    public var rolloutSettings: RolloutSettings {
        RolloutSettings(environmentCount: configuration.environmentCount, stepsPerRollout: configuration.stepsPerRollout,
                        gamma: 1, gaeLambda: 1, bootstrapsTruncation: true)
    }
    public var observationWidth: Int { observationSpace.flatDimension }
    public var actionWidth: Int { actionKind.width }

    func rows(_ observations: [Observation]) -> Tensor {
        Tensor(shape: [observations.count, observationWidth], scalars: observationSpace.flatRows(observations))
    }

    public func act(_ observations: [Observation], deterministic: Bool) throws -> [Action] {
        withInferenceMode {
            let distribution = network.distribution(rows(observations))
            return actionKind.actions(from: deterministic ? distribution.mode() : distribution.sample(using: &generator), space: actionSpace)
        }
    }

    public func decide(_ observations: [Observation]) throws -> RolloutDecision<Action> {
        withInferenceMode {
            let input = rows(observations)
            let distribution = network.distribution(input)
            let sampled = distribution.sample(using: &generator)
            return RolloutDecision(actions: actionKind.actions(from: sampled, space: actionSpace), flatActions: sampled.scalars,
                                   logProbabilities: distribution.logProbability(of: sampled).scalars,
                                   values: network.value(input).scalars, flatObservations: input.scalars)
        }
    }

    public func values(_ observations: [Observation]) throws -> [Float] {
        withInferenceMode { network.value(rows(observations)).scalars }
    }

    public func learn(from buffer: RolloutBuffer, update: Int, updateCount: Int) throws -> [(String, Double)] {
        let batch = buffer.batch(Array(0..<buffer.capacity))
        var advantages = batch.advantages.scalars
        if configuration.normalizesAdvantages && advantages.count > 1 {
            let mean = advantages.reduce(0, +) / Float(advantages.count)
            let std = (advantages.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(advantages.count - 1)).squareRoot()
            advantages = advantages.map { ($0 - mean) / (std + 1e-8) }
        }
        let distribution = network.distribution(batch.observations)
        let policyLoss = -(distribution.logProbability(of: batch.actions) * Tensor(shape: [advantages.count], scalars: advantages)).mean()
        let valueLoss = (network.value(batch.observations) - batch.returns.detached()).squared().mean() * 0.5
        let loss = policyLoss + valueLoss
        guard loss.scalar.isFinite else { throw AgentError.nonFinite(agent: Self.kind, what: "the loss") }
        optimizer.zeroGradients()
        loss.backward()
        clipGradientNorm(network.parameters, maxNorm: 0.5)
        optimizer.step()
        return [("policy_loss", Double(policyLoss.scalar)), ("value_loss", Double(valueLoss.scalar)),
                ("entropy", Double(distribution.entropy().mean().scalar))]
    }

    var identity: AgentIdentity {
        AgentIdentity(kind: Self.kind, version: Self.version, observationSpace: observationSpace.description, actionSpace: actionSpace.description)
    }

    public func save(to url: URL) throws {
        try Checkpoint.save(model: network, optimizer: optimizer, generators: ["policy": generator], metadata: identity.metadata, to: url)
    }

    /// Refuses a checkpoint of another agent kind, version or spaces, naming what differs.
    public func load(from url: URL) throws {
        _ = try identity.verify(url)
        let (generators, _) = try Checkpoint.load(from: url, model: network, optimizer: optimizer)
        guard let generator = generators["policy"] else { throw AgentError.checkpointMismatch(path: url.path, reason: "no policy generator state") }
        self.generator = generator
    }
}

/// `reinforce` in an `AgentRegistry`: `--config` JSON holds `Configuration` keys.
public struct ReinforceAgentFactory: AgentFactory {
    public let name = "reinforce"
    public let summary = "REINFORCE with a learned baseline (examples/custom-agent)"

    public init() {}

    public func make<O: Sendable, A: Sendable>(_ request: AgentRequest<O, A>) throws -> any OnPolicyAgent<O, A> {
        let configuration = try request.decode(ReinforceAgent<O, A>.Configuration.self, agent: name, fallback: .init())
        return try ReinforceAgent(observationSpace: request.observationSpace, actionSpace: request.actionSpace, configuration: configuration,
                                  seed: request.seed, maskRange: request.maskRange)
    }
}
