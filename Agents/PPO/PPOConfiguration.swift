import Foundation
import Gym
import NN

/// PPO's hyperparameters. Defaults are CleanRL's `ppo.py` (Huang et al. 2022); every field may be
/// omitted from a JSON configuration and takes its default.
public struct PPOConfiguration: Codable, Sendable, Equatable {
    /// Parallel environments (CleanRL's num_envs).
    public var environmentCount = 4
    /// Steps per environment per rollout (num_steps).
    public var stepsPerRollout = 128
    /// Minibatches per epoch (num_minibatches).
    public var minibatchCount = 4
    /// Epochs over each rollout (update_epochs).
    public var epochs = 4
    /// Adam's learning rate (linearly annealed to 0 when `anneals_learning_rate`).
    public var learningRate: Float = 2.5e-4
    /// Anneal the learning rate linearly to 0 over the updates.
    public var annealsLearningRate = true
    /// Discount γ.
    public var gamma = 0.99
    /// GAE λ.
    public var gaeLambda = 0.95
    /// Clip range ε of the surrogate ratio.
    public var clipCoefficient: Float = 0.2
    /// Anneal the clip coefficient linearly to 0 (SB3 zoo's `lin_0.2`).
    public var annealsClipCoefficient = false
    /// Clip the value loss around the old values (CleanRL's clip_vloss).
    public var clipsValueLoss = true
    /// Weight of the entropy bonus.
    public var entropyCoefficient: Float = 0.01
    /// Weight of the value loss.
    public var valueCoefficient: Float = 0.5
    /// Global gradient-norm clip.
    public var maxGradientNorm: Float = 0.5
    /// Stop the epochs of an update early once the approximate KL exceeds this (checked after each epoch).
    public var targetKL: Float? = nil
    /// Normalise advantages per minibatch.
    public var normalizesAdvantages = true
    /// Adam's ε (CleanRL: 1e-5).
    public var adamEpsilon: Float = 1e-5
    /// Hidden layer sizes of the MLP actor-critic.
    public var hiddenSizes = [64, 64]
    /// Activation of the hidden layers.
    public var activation: Activation = .tanh
    /// Running observation normalisation (clip ±10) inside the agent.
    public var normalizesObservations = false
    /// Bootstrap truncated episodes from V(final observation); CleanRL does not (cleanrl#198).
    public var bootstrapsTruncation = true
    /// Multiplies rewards before learning (returns are logged unscaled).
    public var rewardScale = 1.0

    /// CleanRL's `ppo.py` defaults.
    public init() {}

    /// CleanRL `ppo.py` defaults (discrete actions).
    public static let cleanRL = PPOConfiguration()

    /// CleanRL `ppo_continuous_action.py` defaults: 1 env × 2048 steps, 32 minibatches,
    /// 10 epochs, lr 3e-4, no entropy bonus, observation normalisation.
    public static var cleanRLContinuous: PPOConfiguration {
        var c = PPOConfiguration()
        c.environmentCount = 1
        c.stepsPerRollout = 2048
        c.minibatchCount = 32
        c.epochs = 10
        c.learningRate = 3e-4
        c.entropyCoefficient = 0
        c.normalizesObservations = true
        return c
    }

    /// CartPole-v1 within 100k steps: rl-baselines3-zoo's tuned PPO (8 envs × 32 steps,
    /// minibatch 256, 20 epochs, γ 0.98, λ 0.8, lr 1e-3 and clip 0.2 both annealed, no entropy).
    public static var cartPole: PPOConfiguration {
        var c = PPOConfiguration()
        c.environmentCount = 8
        c.stepsPerRollout = 32
        c.minibatchCount = 1
        c.epochs = 20
        c.learningRate = 1e-3
        c.gamma = 0.98
        c.gaeLambda = 0.8
        c.entropyCoefficient = 0
        c.annealsClipCoefficient = true
        return c
    }

    /// Pendulum-v1 within 200k steps: rl-baselines3-zoo's settings without gSDE (4 envs × 1024
    /// steps, 64 minibatches, 10 epochs, γ 0.9, λ 0.95, no entropy bonus) with observation
    /// normalisation, rewards scaled by 0.1, no value clipping and lr 3e-4. Measured (evaluation
    /// return, seeds 0–5): −162, −219, −146, −168, −181, −159. With CleanRL's ±0.2 value clip on
    /// returns in the hundreds V moved too slowly (return ≈ −850); unscaled rewards left seeds 1
    /// and 2 near −600; lr 1e-3 left one seed of three near −680.
    public static var pendulum: PPOConfiguration {
        var c = PPOConfiguration()
        c.environmentCount = 4
        c.stepsPerRollout = 1024
        c.minibatchCount = 64
        c.epochs = 10
        c.learningRate = 3e-4
        c.gamma = 0.9
        c.gaeLambda = 0.95
        c.entropyCoefficient = 0
        c.normalizesObservations = true
        c.clipsValueLoss = false
        c.rewardScale = 0.1
        return c
    }

    /// The preset used when training `environmentID` without a configuration file.
    public static func preset(for environmentID: String) -> PPOConfiguration {
        switch environmentID {
        case "CartPole-v1": return .cartPole
        case "Pendulum-v1": return .pendulum
        default: return .cleanRL
        }
    }

    /// Throws on values no run can use, naming the field.
    public func validate() throws {
        func fail(_ reason: String) -> AgentError { .invalidConfiguration(agent: "ppo", reason: reason) }
        if environmentCount < 1 { throw fail("environment_count must be ≥ 1, got \(environmentCount)") }
        if stepsPerRollout < 1 { throw fail("steps_per_rollout must be ≥ 1, got \(stepsPerRollout)") }
        if minibatchCount < 1 || minibatchCount > environmentCount * stepsPerRollout {
            throw fail("minibatch_count must be in 1...\(environmentCount * stepsPerRollout), got \(minibatchCount)")
        }
        if epochs < 1 { throw fail("epochs must be ≥ 1, got \(epochs)") }
        if !(learningRate > 0) || !learningRate.isFinite { throw fail("learning_rate must be positive, got \(learningRate)") }
        if !(0...1).contains(gamma) { throw fail("gamma must be in [0, 1], got \(gamma)") }
        if !(0...1).contains(gaeLambda) { throw fail("gae_lambda must be in [0, 1], got \(gaeLambda)") }
        if !(clipCoefficient > 0) { throw fail("clip_coefficient must be positive, got \(clipCoefficient)") }
        if entropyCoefficient < 0 || !entropyCoefficient.isFinite { throw fail("entropy_coefficient must be ≥ 0, got \(entropyCoefficient)") }
        if valueCoefficient < 0 || !valueCoefficient.isFinite { throw fail("value_coefficient must be ≥ 0, got \(valueCoefficient)") }
        if !(maxGradientNorm > 0) { throw fail("max_gradient_norm must be positive, got \(maxGradientNorm)") }
        if let targetKL, !(targetKL > 0) { throw fail("target_kl must be positive, got \(targetKL)") }
        if !(rewardScale > 0) || !rewardScale.isFinite { throw fail("reward_scale must be positive, got \(rewardScale)") }
        if hiddenSizes.isEmpty || hiddenSizes.contains(where: { $0 < 1 }) { throw fail("hidden_sizes must be positive, got \(hiddenSizes)") }
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case environmentCount = "environment_count", stepsPerRollout = "steps_per_rollout", minibatchCount = "minibatch_count"
        case epochs, learningRate = "learning_rate", annealsLearningRate = "anneal_learning_rate", gamma, gaeLambda = "gae_lambda"
        case clipCoefficient = "clip_coefficient", annealsClipCoefficient = "anneal_clip_coefficient", clipsValueLoss = "clip_value_loss"
        case entropyCoefficient = "entropy_coefficient", valueCoefficient = "value_coefficient", maxGradientNorm = "max_gradient_norm"
        case targetKL = "target_kl", normalizesAdvantages = "normalize_advantages", adamEpsilon = "adam_epsilon"
        case hiddenSizes = "hidden_sizes", activation, normalizesObservations = "normalize_observations"
        case bootstrapsTruncation = "bootstrap_truncation", rewardScale = "reward_scale"
    }

    public init(from decoder: Decoder) throws {
        try ConfigurationKeys.rejectUnknown(in: decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = PPOConfiguration()
        environmentCount = try c.decodeIfPresent(Int.self, forKey: .environmentCount) ?? d.environmentCount
        stepsPerRollout = try c.decodeIfPresent(Int.self, forKey: .stepsPerRollout) ?? d.stepsPerRollout
        minibatchCount = try c.decodeIfPresent(Int.self, forKey: .minibatchCount) ?? d.minibatchCount
        epochs = try c.decodeIfPresent(Int.self, forKey: .epochs) ?? d.epochs
        learningRate = try c.decodeIfPresent(Float.self, forKey: .learningRate) ?? d.learningRate
        annealsLearningRate = try c.decodeIfPresent(Bool.self, forKey: .annealsLearningRate) ?? d.annealsLearningRate
        gamma = try c.decodeIfPresent(Double.self, forKey: .gamma) ?? d.gamma
        gaeLambda = try c.decodeIfPresent(Double.self, forKey: .gaeLambda) ?? d.gaeLambda
        clipCoefficient = try c.decodeIfPresent(Float.self, forKey: .clipCoefficient) ?? d.clipCoefficient
        annealsClipCoefficient = try c.decodeIfPresent(Bool.self, forKey: .annealsClipCoefficient) ?? d.annealsClipCoefficient
        clipsValueLoss = try c.decodeIfPresent(Bool.self, forKey: .clipsValueLoss) ?? d.clipsValueLoss
        entropyCoefficient = try c.decodeIfPresent(Float.self, forKey: .entropyCoefficient) ?? d.entropyCoefficient
        valueCoefficient = try c.decodeIfPresent(Float.self, forKey: .valueCoefficient) ?? d.valueCoefficient
        maxGradientNorm = try c.decodeIfPresent(Float.self, forKey: .maxGradientNorm) ?? d.maxGradientNorm
        targetKL = try c.decodeIfPresent(Float.self, forKey: .targetKL)
        normalizesAdvantages = try c.decodeIfPresent(Bool.self, forKey: .normalizesAdvantages) ?? d.normalizesAdvantages
        adamEpsilon = try c.decodeIfPresent(Float.self, forKey: .adamEpsilon) ?? d.adamEpsilon
        hiddenSizes = try c.decodeIfPresent([Int].self, forKey: .hiddenSizes) ?? d.hiddenSizes
        activation = try c.decodeIfPresent(Activation.self, forKey: .activation) ?? d.activation
        normalizesObservations = try c.decodeIfPresent(Bool.self, forKey: .normalizesObservations) ?? d.normalizesObservations
        bootstrapsTruncation = try c.decodeIfPresent(Bool.self, forKey: .bootstrapsTruncation) ?? d.bootstrapsTruncation
        rewardScale = try c.decodeIfPresent(Double.self, forKey: .rewardScale) ?? d.rewardScale
    }
}
