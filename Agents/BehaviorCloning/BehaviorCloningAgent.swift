import Foundation
import Gym
import NN
import Policies
import TensorCore

/// Behaviour cloning's hyperparameters (defaults follow the `imitation` library's `BC`:
/// Adam 1e-3, batch 32, entropy weight 1e-3, no L2; a 32-32 tanh policy).
public struct BehaviorCloningConfiguration: Codable, Sendable, Equatable {
    /// Adam's learning rate.
    public var learningRate: Float = 1e-3
    /// Transitions per gradient step.
    public var batchSize = 32
    /// Epochs at most (early stopping usually ends sooner).
    public var maximumEpochs = 50
    /// Weight w of the entropy bonus in −log π(a|s) − w·H (`imitation`'s ent_weight).
    public var entropyWeight: Float = 1e-3
    /// Weight of the L2 penalty on the parameters (`imitation`'s l2_weight).
    public var l2Weight: Float = 0
    /// Fraction of the demonstration *episodes* held out for the validation loss.
    public var validationFraction = 0.1
    /// Stop after this many epochs without a better validation loss; the best weights are kept.
    public var patience = 5
    /// Hidden layer sizes of the MLP actor-critic (when no network is passed).
    public var hiddenSizes = [32, 32]
    /// Activation of the hidden layers.
    public var activation: Activation = .tanh

    /// The defaults.
    public init() {}

    /// Throws `AgentError.invalidConfiguration` naming the first impossible setting.
    public func validate() throws {
        func fail(_ reason: String) -> AgentError { .invalidConfiguration(agent: "bc", reason: reason) }
        if !(learningRate > 0) { throw fail("learning_rate must be positive, got \(learningRate)") }
        if batchSize < 1 { throw fail("batch_size must be ≥ 1, got \(batchSize)") }
        if maximumEpochs < 1 { throw fail("maximum_epochs must be ≥ 1, got \(maximumEpochs)") }
        if entropyWeight < 0 || l2Weight < 0 { throw fail("entropy_weight and l2_weight must be ≥ 0") }
        if !(0..<1).contains(validationFraction) { throw fail("validation_fraction must be in [0, 1), got \(validationFraction)") }
        if patience < 1 { throw fail("patience must be ≥ 1, got \(patience)") }
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case learningRate = "learning_rate", batchSize = "batch_size", maximumEpochs = "maximum_epochs"
        case entropyWeight = "entropy_weight", l2Weight = "l2_weight", validationFraction = "validation_fraction"
        case patience, hiddenSizes = "hidden_sizes", activation
    }

    public init(from decoder: Decoder) throws {
        try ConfigurationKeys.rejectUnknown(in: decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = BehaviorCloningConfiguration()
        learningRate = try c.decodeIfPresent(Float.self, forKey: .learningRate) ?? d.learningRate
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
        maximumEpochs = try c.decodeIfPresent(Int.self, forKey: .maximumEpochs) ?? d.maximumEpochs
        entropyWeight = try c.decodeIfPresent(Float.self, forKey: .entropyWeight) ?? d.entropyWeight
        l2Weight = try c.decodeIfPresent(Float.self, forKey: .l2Weight) ?? d.l2Weight
        validationFraction = try c.decodeIfPresent(Double.self, forKey: .validationFraction) ?? d.validationFraction
        patience = try c.decodeIfPresent(Int.self, forKey: .patience) ?? d.patience
        hiddenSizes = try c.decodeIfPresent([Int].self, forKey: .hiddenSizes) ?? d.hiddenSizes
        activation = try c.decodeIfPresent(Activation.self, forKey: .activation) ?? d.activation
    }
}

/// Behaviour cloning: fits a policy to demonstrated (observation, action) pairs by maximum
/// likelihood (Pomerleau 1991; `imitation`'s `BC`):
///
///     loss = −mean(log π(a|s)) − w_H·mean(H(π(·|s))) + w₂·½‖θ‖²
///
/// — cross-entropy for `Discrete`, binary cross-entropy over the valid entries for `MultiBinary`,
/// Gaussian negative log-likelihood for `Box`. Whole episodes are held out for validation; the
/// weights with the lowest validation loss are kept (early stopping with `patience`).
///
/// The policy is an `ActorCritic` (its actor is trained), so cloned weights can start PPO.
public final class BehaviorCloningAgent<Observation: Sendable, Action: Sendable>: DemonstrationLearner {
    public static var kind: String { "bc" }
    public static var version: Int { 1 }

    /// The settings.
    public let configuration: BehaviorCloningConfiguration
    public let observationSpace: any Space<Observation>
    public let actionSpace: any Space<Action>
    /// How actions map to the network's output.
    public let actionKind: ActionKind
    /// The network trained (shared with PPO when passed in, as in the TPRL recipe).
    public let network: ActorCritic
    /// The optimizer (its state is in checkpoints).
    public let optimizer: Adam
    /// The generator of shuffles and sampled actions.
    public private(set) var generator: SeededGenerator

    /// A cloner for these spaces; `network` replaces the default MLP, `maskRange` masks MultiBinary actions.
    public init(observationSpace: any Space<Observation>, actionSpace: any Space<Action>,
                configuration: BehaviorCloningConfiguration = BehaviorCloningConfiguration(), seed: UInt64,
                network: ActorCritic? = nil, maskRange: Range<Int>? = nil) throws {
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
        optimizer = Adam(self.network.namedParameters, learningRate: configuration.learningRate)
    }

    /// The loss terms on a batch of flat rows: (total, negative log-likelihood, entropy).
    public func loss(observations: Tensor, actions: Tensor) -> (total: Tensor, negativeLogLikelihood: Tensor, entropy: Tensor) {
        let distribution = network.distribution(observations)
        let negativeLogLikelihood = -distribution.logProbability(of: actions).mean()
        let entropy = distribution.entropy().mean()
        var total = negativeLogLikelihood - entropy * configuration.entropyWeight
        if configuration.l2Weight > 0 {
            let squares = network.parameters.map { $0.tensor.squared().sum() }
            total = total + squares.dropFirst().reduce(squares[0], +) * (0.5 * configuration.l2Weight)
        }
        return (total, negativeLogLikelihood, entropy)
    }

    /// Called after every training batch of `learn(from:)` with the batches done, the batches
    /// of all `maximumEpochs`, and a status (epoch and running loss) — for a progress bar.
    public var onBatch: ((_ done: Int, _ total: Int, _ status: String) -> Void)?

    /// Trains on `demonstrations`; returns one metrics row per epoch
    /// (`epoch`, `train_loss`, `validation_loss`, `negative_log_likelihood`, `entropy`).
    public func learn(from demonstrations: [Trajectory<Observation, Action>]) throws -> [[(String, Double)]] {
        guard !demonstrations.isEmpty else { throw AgentError.invalidDemonstrations(reason: "no trajectories") }
        for (index, trajectory) in demonstrations.enumerated() {
            guard !trajectory.actions.isEmpty, trajectory.observations.count == trajectory.actions.count + 1 else {
                throw AgentError.invalidDemonstrations(reason: "trajectory \(index) has \(trajectory.observations.count) observations and \(trajectory.actions.count) actions; need T + 1 and T with T ≥ 1")
            }
            for (step, action) in trajectory.actions.enumerated() where !actionSpace.contains(action) {
                throw AgentError.invalidDemonstrations(reason: "trajectory \(index), step \(step): action \(actionSpace.describe(action)) is not in \(actionSpace)")
            }
        }
        var order = generator.permutation(demonstrations.count)
        let validationCount = demonstrations.count > 1 ? Int((Double(demonstrations.count) * configuration.validationFraction).rounded()) : 0
        let validation = flatten(order.prefix(validationCount).map { demonstrations[$0] })
        order.removeFirst(validationCount)
        let training = flatten(order.map { demonstrations[$0] })

        var best = (loss: Double.infinity, state: network.stateDictionary())
        var epochsWithoutImprovement = 0
        var rows: [[(String, Double)]] = []
        let batchesPerEpoch = (training.count + configuration.batchSize - 1) / configuration.batchSize
        var batchesDone = 0
        for epoch in 1...configuration.maximumEpochs {
            var totals = (loss: 0.0, nll: 0.0, entropy: 0.0, batches: 0)
            let permutation = generator.permutation(training.count)
            for start in stride(from: 0, to: training.count, by: configuration.batchSize) {
                let indices = Array(permutation[start..<min(start + configuration.batchSize, training.count)])
                let (observations, actions) = training.batch(indices)
                let terms = loss(observations: observations, actions: actions)
                guard terms.total.scalar.isFinite else { throw AgentError.nonFinite(agent: Self.kind, what: "the loss") }
                optimizer.zeroGradients()
                terms.total.backward()
                optimizer.step()
                totals = (totals.loss + Double(terms.total.scalar), totals.nll + Double(terms.negativeLogLikelihood.scalar),
                          totals.entropy + Double(terms.entropy.scalar), totals.batches + 1)
                batchesDone += 1
                onBatch?(batchesDone, batchesPerEpoch * configuration.maximumEpochs,
                         String(format: "epoch %d/%d, loss %.4g", epoch, configuration.maximumEpochs, totals.loss / Double(totals.batches)))
            }
            let batches = Double(totals.batches)
            let validationLoss: Double = validation.count == 0 ? totals.loss / batches : withInferenceMode {
                let (observations, actions) = validation.batch(Array(0..<validation.count))
                return Double(loss(observations: observations, actions: actions).total.scalar)
            }
            rows.append([("epoch", Double(epoch)), ("train_loss", totals.loss / batches), ("validation_loss", validationLoss),
                         ("negative_log_likelihood", totals.nll / batches), ("entropy", totals.entropy / batches)])
            if validationLoss < best.loss {
                best = (validationLoss, network.stateDictionary())
                epochsWithoutImprovement = 0
            } else {
                epochsWithoutImprovement += 1
                if epochsWithoutImprovement >= configuration.patience { break }
            }
        }
        try network.load(best.state, source: "best validation weights")
        return rows
    }

    struct Rows {
        var observations: [Float] = []
        var actions: [Float] = []
        var count = 0
        let observationWidth: Int
        let actionWidth: Int

        func batch(_ indices: [Int]) -> (Tensor, Tensor) {
            var o = [Float](), a = [Float]()
            o.reserveCapacity(indices.count * observationWidth)
            a.reserveCapacity(indices.count * actionWidth)
            for index in indices {
                o.append(contentsOf: observations[index * observationWidth ..< (index + 1) * observationWidth])
                a.append(contentsOf: actions[index * actionWidth ..< (index + 1) * actionWidth])
            }
            return (Tensor(shape: [indices.count, observationWidth], scalars: o), Tensor(shape: [indices.count, actionWidth], scalars: a))
        }
    }

    /// (observation, action) pairs of the trajectories as flat rows: obs[t] with act[t].
    func flatten(_ trajectories: [Trajectory<Observation, Action>]) -> Rows {
        var rows = Rows(observationWidth: observationSpace.flatDimension, actionWidth: actionKind.width)
        for trajectory in trajectories {
            for (observation, action) in zip(trajectory.observations, trajectory.actions) {
                observationSpace.flatten(observation, into: &rows.observations)
                rows.actions.append(contentsOf: actionKind.row(for: action, space: actionSpace))
                rows.count += 1
            }
        }
        return rows
    }

    public func act(_ observations: [Observation], deterministic: Bool) throws -> [Action] {
        withInferenceMode {
            let rows = observationSpace.flatRows(observations)
            let distribution = network.distribution(Tensor(shape: [observations.count, observationSpace.flatDimension], scalars: rows))
            return actionKind.actions(from: deterministic ? distribution.mode() : distribution.sample(using: &generator), space: actionSpace)
        }
    }

    var identity: AgentIdentity {
        AgentIdentity(kind: Self.kind, version: Self.version, observationSpace: observationSpace.description, actionSpace: actionSpace.description)
    }

    public func save(to url: URL) throws {
        try Checkpoint.save(model: network, optimizer: optimizer, generators: ["policy": generator], metadata: identity.metadata, to: url)
    }

    public func load(from url: URL) throws {
        try identity.verify(url)
        let (generators, _) = try Checkpoint.load(from: url, model: network, optimizer: optimizer)
        if let generator = generators["policy"] { self.generator = generator }
    }
}
