import Foundation
import Gym
import NN
import Policies
import TensorCore

/// Proximal Policy Optimization (Schulman et al. 2017) with CleanRL's implementation details
/// (`ppo.py`, `ppo_continuous_action.py`): orthogonal initialisation, Adam ε 1e-5, linear
/// learning-rate annealing, GAE, shuffled minibatches over several epochs, per-minibatch
/// advantage normalisation, clipped surrogate and value losses, entropy bonus, global
/// gradient-norm clipping, optional target-KL early stop. Unlike CleanRL, truncated episodes are
/// bootstrapped from their final observation (configurable).
///
/// Works on any environment with a `Discrete`, `MultiBinary` (optionally masked) or `Box` action
/// space and any observation space (observations are flattened). Bring another network by
/// passing an `ActorCritic`.
public final class PPOAgent<Observation: Sendable, Action: Sendable>: OnPolicyAgent {
    public static var kind: String { "ppo" }
    /// Bumped when the checkpoint layout changes.
    public static var version: Int { 1 }

    /// The hyperparameters.
    public let configuration: PPOConfiguration
    public let observationSpace: any Space<Observation>
    public let actionSpace: any Space<Action>
    /// How actions map to the network's output (Discrete, MultiBinary, Box).
    public let actionKind: ActionKind
    /// The actor-critic trained.
    public let network: ActorCritic
    /// Adam with ε from the configuration.
    public let optimizer: Adam
    /// The generator of sampled actions and minibatch shuffles.
    public private(set) var generator: SeededGenerator
    /// Running observation statistics, when the configuration normalises observations.
    public private(set) var normalizer: ObservationNormalizer?

    /// - Parameters:
    ///   - network: the actor-critic to train; `MLPActorCritic` from the configuration when nil.
    ///   - maskRange: for MultiBinary actions, where the validity mask sits in the flat observation.
    public init(observationSpace: any Space<Observation>, actionSpace: any Space<Action>, configuration: PPOConfiguration = .cleanRL,
                seed: UInt64, network: ActorCritic? = nil, maskRange: Range<Int>? = nil) throws {
        try configuration.validate()
        self.configuration = configuration
        self.observationSpace = observationSpace
        self.actionSpace = actionSpace
        actionKind = try ActionKind(actionSpace.descriptor, agent: Self.kind)
        var generator = SeededGenerator(seed: seed)
        var networkGenerator = generator.fork()
        self.network = network ?? MLPActorCritic(
            observationWidth: observationSpace.flatDimension, action: actionKind, hidden: configuration.hiddenSizes,
            activation: configuration.activation, maskRange: maskRange, generator: &networkGenerator)
        self.generator = generator
        optimizer = Adam(self.network.namedParameters, learningRate: configuration.learningRate, epsilon: configuration.adamEpsilon)
        normalizer = configuration.normalizesObservations ? ObservationNormalizer(dimension: observationSpace.flatDimension) : nil
    }

    public var rolloutSettings: RolloutSettings {
        RolloutSettings(environmentCount: configuration.environmentCount, stepsPerRollout: configuration.stepsPerRollout,
                        gamma: configuration.gamma, gaeLambda: configuration.gaeLambda, bootstrapsTruncation: configuration.bootstrapsTruncation,
                        rewardScale: configuration.rewardScale)
    }
    public var observationWidth: Int { observationSpace.flatDimension }
    public var actionWidth: Int { actionKind.width }

    /// Flat, normalised observation rows (updating the statistics when `updating`).
    func rows(_ observations: [Observation], updating: Bool) -> Tensor {
        var rows = observationSpace.flatRows(observations)
        if normalizer != nil {
            if updating { normalizer!.update(rows, count: observations.count) }
            normalizer!.normalize(&rows)
        }
        return Tensor(shape: [observations.count, observationWidth], scalars: rows)
    }

    private func actions(from rows: Tensor) -> [Action] { actionKind.actions(from: rows, space: actionSpace) }

    public func act(_ observations: [Observation], deterministic: Bool) throws -> [Action] {
        withInferenceMode {
            let distribution = network.distribution(rows(observations, updating: false))
            return actions(from: deterministic ? distribution.mode() : distribution.sample(using: &generator))
        }
    }

    public func decide(_ observations: [Observation]) throws -> RolloutDecision<Action> {
        try withInferenceMode {
            let input = rows(observations, updating: true)
            let distribution = network.distribution(input)
            let sampled = distribution.sample(using: &generator)
            let logProbabilities = distribution.logProbability(of: sampled).scalars
            let values = network.value(input).scalars
            guard values.allSatisfy(\.isFinite), logProbabilities.allSatisfy(\.isFinite) else {
                throw AgentError.nonFinite(agent: Self.kind, what: "the policy's output")
            }
            return RolloutDecision(actions: actions(from: sampled), flatActions: sampled.scalars, logProbabilities: logProbabilities,
                                   values: values, flatObservations: input.scalars)
        }
    }

    public func values(_ observations: [Observation]) throws -> [Float] {
        withInferenceMode { network.value(rows(observations, updating: false)).scalars }
    }

    public func learn(from buffer: RolloutBuffer, update: Int, updateCount: Int) throws -> [(String, Double)] {
        let c = configuration
        let remaining = 1 - Float(update) / Float(updateCount)  // CleanRL: frac = 1 − (iteration − 1)/num_iterations
        optimizer.learningRate = c.annealsLearningRate ? remaining * c.learningRate : c.learningRate
        let clip = c.annealsClipCoefficient ? remaining * c.clipCoefficient : c.clipCoefficient
        let minibatchSize = buffer.capacity / c.minibatchCount
        var last: PPOLoss?
        var clipFractions: [Float] = []
        var epochsRun = 0
        for _ in 0..<c.epochs {
            epochsRun += 1
            for indices in buffer.minibatches(size: minibatchSize, using: &generator) {
                let batch = buffer.batch(indices)
                let distribution = network.distribution(batch.observations)
                let loss = PPOLoss.compute(
                    newLogProbabilities: distribution.logProbability(of: batch.actions), oldLogProbabilities: batch.logProbabilities,
                    advantages: batch.advantages, newValues: network.value(batch.observations), oldValues: batch.values,
                    returns: batch.returns, entropy: distribution.entropy(), clipCoefficient: clip, clipsValueLoss: c.clipsValueLoss,
                    normalizesAdvantages: c.normalizesAdvantages, entropyCoefficient: c.entropyCoefficient, valueCoefficient: c.valueCoefficient)
                guard loss.total.scalar.isFinite else { throw AgentError.nonFinite(agent: Self.kind, what: "the loss") }
                optimizer.zeroGradients()
                loss.total.backward()
                clipGradientNorm(network.parameters, maxNorm: c.maxGradientNorm)
                optimizer.step()
                clipFractions.append(loss.clipFraction)
                last = loss
            }
            if let target = c.targetKL, let last, last.approximateKL > target { break }
        }
        let metrics = last!
        return [
            ("learning_rate", Double(optimizer.learningRate)),
            ("policy_loss", Double(metrics.policy.scalar)),
            ("value_loss", Double(metrics.value.scalar)),
            ("entropy", Double(metrics.entropy.scalar)),
            ("old_approx_kl", Double(metrics.oldApproximateKL)),
            ("approx_kl", Double(metrics.approximateKL)),
            ("clip_fraction", Double(clipFractions.reduce(0, +) / Float(clipFractions.count))),
            ("explained_variance", explainedVariance(predictions: buffer.values, targets: buffer.returns)),
            ("epochs", Double(epochsRun)),
        ]
    }

    // MARK: Checkpoints

    var identity: AgentIdentity {
        AgentIdentity(kind: Self.kind, version: Self.version, observationSpace: observationSpace.description, actionSpace: actionSpace.description)
    }

    public func save(to url: URL) throws {
        var metadata = identity.metadata
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        metadata["agent.configuration"] = String(decoding: try encoder.encode(configuration), as: UTF8.self)
        if let normalizer { metadata["agent.observation_statistics"] = normalizer.metadata }
        try Checkpoint.save(model: network, optimizer: optimizer, generators: ["policy": generator], metadata: metadata, to: url)
    }

    public func load(from url: URL) throws {
        let metadata = try identity.verify(url)
        var normalizer = self.normalizer
        if normalizer != nil {
            guard let text = metadata["agent.observation_statistics"] else {
                throw AgentError.checkpointMismatch(path: url.path, reason: "no observation statistics, but this agent normalises observations")
            }
            try normalizer!.restore(metadata: text, source: url.path)
        }
        let (generators, _) = try Checkpoint.load(from: url, model: network, optimizer: optimizer)
        guard let generator = generators["policy"] else {
            throw AgentError.checkpointMismatch(path: url.path, reason: "no policy generator state")
        }
        self.generator = generator
        self.normalizer = normalizer
    }
}

/// `ppo` in an `AgentRegistry`: the configuration is `PPOConfiguration` JSON (default: the preset
/// for the environment), and a `mask` entry of a Dict observation masks a MultiBinary action.
public struct PPOAgentFactory: AgentFactory {
    public let name = "ppo"
    public let summary = "PPO with CleanRL's details (Discrete, MultiBinary with masks, Box)"

    /// The factory for `AgentRegistry`.
    public init() {}

    public func make<O: Sendable, A: Sendable>(_ request: AgentRequest<O, A>) throws -> any OnPolicyAgent<O, A> {
        let configuration = try request.decode(PPOConfiguration.self, agent: name, fallback: .preset(for: request.environmentID))
        return try PPOAgent(observationSpace: request.observationSpace, actionSpace: request.actionSpace, configuration: configuration,
                            seed: request.seed, maskRange: request.maskRange)
    }
}
