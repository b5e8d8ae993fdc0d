import BehaviorCloning
import Foundation
import Gym
import NN
import Policies
import PPO
import Pruners
import TensorCore
import TokenPruning
import VLM

/// The whole TPRL recipe's settings (snake_case JSON; omitted keys take these defaults, unknown
/// keys are rejected).
public struct TPRLConfiguration: Codable, Sendable, Equatable {
    /// Seed of every draw of the recipe (autoencoder, demonstrations, networks, PPO).
    public var seed: UInt64 = 0
    /// Training images whose tokens train the autoencoder, and epochs over them.
    public var autoencoderImages = 200
    /// Epochs over those images.
    public var autoencoderEpochs = 4
    /// Width of the autoencoder's token code (`code_width`); nil is D/16, the paper's ratio.
    public var codeWidth: Int?
    /// What the policy observes of each token (`encoder`): `autoencoder` (the paper's state
    /// compression) or `identity` (the raw D-wide token — the "no autoencoder" ablation).
    public var encoder = "autoencoder"
    /// The demonstrators behaviour cloning can imitate: VisPruner (the paper's), the leave-one-out
    /// oracle, the language model's own attention (`AttentionPruner`), gradient saliency
    /// (`SaliencyPruner`) or the dataset's grounding annotation (`GroundingPruner`).
    public static let demonstrators = ["vispruner", "oracle", "llm-attention", "saliency", "grounding", "grounding-cls", "grounding-nested", "grounding-ranked"]
    /// Demonstration episodes and their demonstrator (`vispruner` as the paper, or another of `demonstrators`);
    /// 0 skips behaviour cloning (PPO from a random initialisation).
    public var demonstrations = 600
    /// Which pruner demonstrates (`demonstrators`).
    public var demonstrator = "vispruner"
    /// Behaviour-cloning epochs at most (early stopping on held-out episodes).
    public var behaviorCloningEpochs = 8
    /// PPO updates after behaviour cloning (0 skips PPO).
    public var ppoUpdates = 30
    /// PPO's parallel environments and steps per rollout (a rollout of 8 × 6 steps is 16 episodes of T_max = 3).
    public var ppoEnvironments = 8
    /// Steps per environment per PPO rollout.
    public var ppoStepsPerRollout = 6
    /// PPO's Adam learning rate.
    public var ppoLearningRate: Float = 1e-4
    /// Whether PPO's episodes keep exactly the budget's k tokens, drawn from the policy's
    /// Bernoulli conditioned on k ones (`TPRLActorCritic.exactBudget`), so that the policy
    /// gradient changes the ranking top-k inference reads. Needs `max_steps` 1.
    public var ppoExactBudget = false
    /// With a group size G > 0, the PPO phase is group-relative (`GroupRelativePPO`): each update
    /// plays `ppo_environments` tasks G times each with exact-budget draws and scores each episode
    /// against its group. 0: the generic PPO agent.
    public var ppoGroupSize = 0
    /// The temperature of the exact-budget draws (`TPRLActorCritic.exactBudgetTemperature`).
    public var ppoTemperature: Float = 1
    /// With group-relative PPO, what divides each episode's reward minus its group's mean
    /// (`GroupRelativePPO.AdvantageScale`): `group` (GRPO's standard deviation of the group),
    /// `update` (one standard deviation over the update) or `none` (Dr. GRPO).
    public var ppoAdvantageScale = GroupRelativePPO.AdvantageScale.group
    /// Weight of the entropy bonus in PPO's loss (the paper's loss has one; the reference code computes it and drops it).
    public var entropyCoefficient: Float = 1e-3
    /// One policy for every budget (the budget is an input) instead of one per budget.
    public var budgetConditioned = true
    /// The MDP the policy trains in: reward r_t = α·R_task + β·R_eff, T_max, budgets (paper §3.2).
    public var environment = TokenPruningConfiguration.tprlDefault
    /// Width of the policy's transformer trunk. 32 since release 0.5: on the built-in model it
    /// prunes as well as 64 did (validation, mean over 33% / 22% / 11%: 91.4% and 90.4% for seeds
    /// 0 and 1, against 91.2% for 64) at a fifth of the policy's FLOPs with first-step inference;
    /// 16 lost two points (89.2%).
    public var width = 32
    /// Whether the policy also reads each token's class-token attention (`class_attention_input`),
    /// the signal VisPruner ranks by; false (the default) is the paper's state: codes, positions
    /// and query. With it behaviour cloning fits the VisPruner demonstrations better (loss 87
    /// against 102) but the policy prunes no better (Benchmarks/EXPERIMENTS.md, "Earlier models").
    public var classAttentionInput = false
    /// Whether each keep logit is a learned correction to c·log(1 + N·a_i) of the observed
    /// attention (`attention_prior`; `TPRLActorCritic.attentionPrior`): the untrained policy then
    /// ranks as the attention does — CLS attention before the LLM, FastV's score with
    /// `prune_after_layer` — and behaviour cloning and PPO learn what to change. False (the
    /// default) is the paper's network.
    public var attentionPrior = false
    /// Validation questions on which the trained policy's two top-k inferences (`stepped`, and
    /// the top k of the `first-step` logits) are compared at each training budget; the better
    /// one is recorded in `tprl.json` and used by `eval-pruning` (`inference_selection_questions`;
    /// 0 records `stepped` without comparing). Which is better depends on the training: at 11%,
    /// stepping gained 4 points for one policy and lost 4 for the quickstart's (Benchmarks/EXPERIMENTS.md). The two
    /// are often within a point, so the comparison needs many questions: on the 920k-sample
    /// model 500 per budget chose first-step by 0.5 points where 2000 showed stepped ahead by 0.4.
    public var inferenceSelectionQuestions = 2000

    /// The defaults: the paper's recipe (`examples/tprl-paper.json`) — VisPruner demonstrations,
    /// behaviour cloning, then the generic PPO agent in episodes of T_max = 3 steps rewarding
    /// α·Δaccuracy + β·(token ratio). Reward ablations and sweeps vary this one. The shipped
    /// policy's recipe is `beforeLLM`.
    public init() {}

    /// The recipe of the shipped policy that prunes before the language model (`models/tprl`,
    /// `examples/tprl.json`, `tprl train` without --config, the quickstart's): the paper's state,
    /// demonstrations and behaviour cloning, then group-relative PPO in episodes of one step
    /// (`ppo_group_size` 8: each of 32 tasks played 8 times with exact-budget draws sharpened by
    /// `ppo_temperature` 0.5, 100 updates at 3e-4) rewarding the negative KL divergence to the
    /// unpruned answer, every episode at the smallest budget, 11% (`budget_choices` [0.111]).
    /// The policy still serves every budget by its top k: trained at 11% alone it ranks better
    /// at 33% and 22% too than trained at the three budgets (why is open: the groups' rewards do
    /// differ less at 33%, but advantages not divided by each group's spread did not give those
    /// budgets back). On the built-in model it is ahead of VisPruner at every budget
    /// (Benchmarks/EXPERIMENTS.md, "Pruning before the LLM, the paper's setting").
    public static var beforeLLM: TPRLConfiguration {
        var c = groupRelative(TPRLConfiguration())
        c.environment.budgetChoices = [0.111]
        return c
    }

    /// `recipe` with the group-relative PPO phase of the shipped recipes: episodes of one step,
    /// each of 32 tasks played 8 times with exact-budget draws at temperature 0.5, 100 updates at
    /// 3e-4, rewarding the negative KL divergence to the unpruned answer.
    private static func groupRelative(_ recipe: TPRLConfiguration) -> TPRLConfiguration {
        var c = recipe
        (c.ppoGroupSize, c.ppoEnvironments, c.ppoUpdates, c.ppoLearningRate, c.ppoTemperature) = (8, 32, 100, 3e-4, 0.5)
        c.environment.maxSteps = 1
        c.environment.taskScore = .negativeKL
        return c
    }

    /// The recipe of the policy that prunes inside the language model (`models/tprl-llm`,
    /// `examples/tprl-llm.json`): after LLM layer 0, FastV's place on the built-in model, observing
    /// the raw hidden states there (`encoder` identity), each keep logit a learned correction to
    /// FastV's score (`attention_prior`), cloned from the LLM's own attention in its
    /// second-to-last layer (`llm-attention`), in episodes of one step (`max_steps` 1: the policy
    /// picks the final set at once, so its top k is what it was trained to keep; three steps
    /// scored lower on validation), then fine-tuned by group-relative PPO (`ppo_group_size` 8:
    /// each of 32 tasks played 8 times with exact-budget draws sharpened by `ppo_temperature` 0.5,
    /// 100 updates at 3e-4, rewarding the negative KL divergence to the unpruned answer). Through
    /// release 0.7.16 the PPO phase was plain PPO (`insideLLMPlainPPO`, `examples/tprl-llm-ppo.json`);
    /// on the built-in model since 0.7.17, trained on FastV's subsets, that policy falls behind
    /// FastV at 33% and this one does not (Benchmarks/EXPERIMENTS.md).
    public static var insideLLM: TPRLConfiguration { afterLayer0(groupRelative(TPRLConfiguration())) }

    /// `insideLLM` with the plain PPO phase of releases through 0.7.16 (30 updates of 8
    /// environments at 1e-4, rewarding accuracy; `examples/tprl-llm-ppo.json`).
    public static var insideLLMPlainPPO: TPRLConfiguration { afterLayer0(TPRLConfiguration()) }

    /// `recipe` moved after LLM layer 0, as the inside-LLM recipes are: the raw hidden states
    /// there, FastV's score as the prior, the LLM's own attention as the demonstrator, and
    /// episodes of one step.
    private static func afterLayer0(_ recipe: TPRLConfiguration) -> TPRLConfiguration {
        var c = recipe
        (c.encoder, c.attentionPrior, c.demonstrator) = ("identity", true, "llm-attention")
        (c.environment.pruneAfterLayer, c.environment.maxSteps) = (0, 1)
        return c
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case seed, autoencoderImages = "autoencoder_images", autoencoderEpochs = "autoencoder_epochs", demonstrations, demonstrator
        case behaviorCloningEpochs = "behavior_cloning_epochs", ppoUpdates = "ppo_updates", ppoEnvironments = "ppo_environments"
        case ppoStepsPerRollout = "ppo_steps_per_rollout", ppoLearningRate = "ppo_learning_rate", ppoExactBudget = "ppo_exact_budget", ppoGroupSize = "ppo_group_size", ppoTemperature = "ppo_temperature", entropyCoefficient = "entropy_coefficient"
        case ppoAdvantageScale = "ppo_advantage_scale"
        case budgetConditioned = "budget_conditioned", environment, width, codeWidth = "code_width", encoder
        case classAttentionInput = "class_attention_input", inferenceSelectionQuestions = "inference_selection_questions"
        case attentionPrior = "attention_prior"
    }

    public init(from decoder: Decoder) throws {
        try ConfigurationKeys.rejectUnknown(in: decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TPRLConfiguration()
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        autoencoderImages = try c.decodeIfPresent(Int.self, forKey: .autoencoderImages) ?? d.autoencoderImages
        autoencoderEpochs = try c.decodeIfPresent(Int.self, forKey: .autoencoderEpochs) ?? d.autoencoderEpochs
        demonstrations = try c.decodeIfPresent(Int.self, forKey: .demonstrations) ?? d.demonstrations
        demonstrator = try c.decodeIfPresent(String.self, forKey: .demonstrator) ?? d.demonstrator
        behaviorCloningEpochs = try c.decodeIfPresent(Int.self, forKey: .behaviorCloningEpochs) ?? d.behaviorCloningEpochs
        ppoUpdates = try c.decodeIfPresent(Int.self, forKey: .ppoUpdates) ?? d.ppoUpdates
        ppoEnvironments = try c.decodeIfPresent(Int.self, forKey: .ppoEnvironments) ?? d.ppoEnvironments
        ppoStepsPerRollout = try c.decodeIfPresent(Int.self, forKey: .ppoStepsPerRollout) ?? d.ppoStepsPerRollout
        ppoLearningRate = try c.decodeIfPresent(Float.self, forKey: .ppoLearningRate) ?? d.ppoLearningRate
        ppoExactBudget = try c.decodeIfPresent(Bool.self, forKey: .ppoExactBudget) ?? d.ppoExactBudget
        ppoGroupSize = try c.decodeIfPresent(Int.self, forKey: .ppoGroupSize) ?? d.ppoGroupSize
        ppoTemperature = try c.decodeIfPresent(Float.self, forKey: .ppoTemperature) ?? d.ppoTemperature
        if let text = try c.decodeIfPresent(String.self, forKey: .ppoAdvantageScale) {
            guard let scale = GroupRelativePPO.AdvantageScale(rawValue: text) else {
                throw AgentError.invalidConfiguration(agent: "tprl", reason: "ppo_advantage_scale must be one of \(GroupRelativePPO.AdvantageScale.allCases.map(\.rawValue).joined(separator: ", ")), got '\(text)'")
            }
            ppoAdvantageScale = scale
        } else {
            ppoAdvantageScale = d.ppoAdvantageScale
        }
        entropyCoefficient = try c.decodeIfPresent(Float.self, forKey: .entropyCoefficient) ?? d.entropyCoefficient
        budgetConditioned = try c.decodeIfPresent(Bool.self, forKey: .budgetConditioned) ?? d.budgetConditioned
        environment = try c.decodeIfPresent(TokenPruningConfiguration.self, forKey: .environment) ?? d.environment
        width = try c.decodeIfPresent(Int.self, forKey: .width) ?? d.width
        codeWidth = try c.decodeIfPresent(Int.self, forKey: .codeWidth) ?? d.codeWidth
        encoder = try c.decodeIfPresent(String.self, forKey: .encoder) ?? d.encoder
        classAttentionInput = try c.decodeIfPresent(Bool.self, forKey: .classAttentionInput) ?? d.classAttentionInput
        attentionPrior = try c.decodeIfPresent(Bool.self, forKey: .attentionPrior) ?? d.attentionPrior
        inferenceSelectionQuestions = try c.decodeIfPresent(Int.self, forKey: .inferenceSelectionQuestions) ?? d.inferenceSelectionQuestions
    }

    /// Throws `AgentError.invalidConfiguration` naming the first impossible setting.
    public func validate() throws {
        func fail(_ reason: String) -> AgentError { .invalidConfiguration(agent: "tprl", reason: reason) }
        if !["autoencoder", "identity"].contains(encoder) { throw fail("encoder must be autoencoder or identity, got '\(encoder)'") }
        if let codeWidth, codeWidth < 1 { throw fail("code_width must be ≥ 1, got \(codeWidth)") }
        if autoencoderImages < 1 { throw fail("autoencoder_images must be ≥ 1, got \(autoencoderImages)") }
        if autoencoderEpochs < 1 { throw fail("autoencoder_epochs must be ≥ 1, got \(autoencoderEpochs)") }
        if behaviorCloningEpochs < 1 { throw fail("behavior_cloning_epochs must be ≥ 1 (demonstrations 0 skips behaviour cloning), got \(behaviorCloningEpochs)") }
        if width < TPRLActorCritic.defaultHeadCount || width % TPRLActorCritic.defaultHeadCount != 0 {
            throw fail("width must be a positive multiple of \(TPRLActorCritic.defaultHeadCount), the policy's attention heads, got \(width)")
        }
        if !(ppoLearningRate > 0) || !ppoLearningRate.isFinite { throw fail("ppo_learning_rate must be a positive number, got \(ppoLearningRate)") }
        if !(entropyCoefficient >= 0) || !entropyCoefficient.isFinite { throw fail("entropy_coefficient must be a finite number ≥ 0, got \(entropyCoefficient)") }
        if demonstrations != 0 && demonstrations < 2 { throw fail("demonstrations must be 0 (no behaviour cloning) or ≥ 2, got \(demonstrations)") }
        if !Self.demonstrators.contains(demonstrator) {
            throw fail("demonstrator must be one of \(Self.demonstrators.joined(separator: ", ")), got '\(demonstrator)'")
        }
        if ppoUpdates < 0 { throw fail("ppo_updates must be ≥ 0, got \(ppoUpdates)") }
        if inferenceSelectionQuestions < 0 { throw fail("inference_selection_questions must be ≥ 0, got \(inferenceSelectionQuestions)") }
        if ppoGroupSize < 0 || ppoGroupSize == 1 { throw fail("ppo_group_size must be 0 (plain PPO) or ≥ 2, got \(ppoGroupSize)") }
        if ppoGroupSize == 0 && ppoAdvantageScale != .group {
            throw fail("ppo_advantage_scale '\(ppoAdvantageScale.rawValue)' applies to group-relative PPO only; set ppo_group_size ≥ 2 or drop it")
        }
        if (ppoExactBudget || ppoGroupSize > 0) && environment.maxSteps != 1 {
            throw fail("\(ppoGroupSize > 0 ? "ppo_group_size" : "ppo_exact_budget") needs episodes of one step (\"max_steps\": 1), got max_steps \(environment.maxSteps)")
        }
        if !(ppoTemperature > 0) || !ppoTemperature.isFinite { throw fail("ppo_temperature must be a positive number, got \(ppoTemperature)") }
        if ppoEnvironments < 1 || ppoStepsPerRollout < 1 { throw fail("ppo_environments and ppo_steps_per_rollout must be ≥ 1") }
        // The environment's settings by their keys in this file: "environment.max_steps …".
        do { try environment.validate() } catch let GymError.invalidOption(_, reason) { throw fail("environment.\(reason)") }
    }
}

extension TokenPruningConfiguration {
    /// The environment the TPRL recipe trains in: the paper's reward (α = 1 on accuracy, β = 0.5 on
    /// the token ratio, T_max = 3) with budgets drawn from the evaluation's 33% / 22% / 11%.
    public static var tprlDefault: TokenPruningConfiguration {
        var c = TokenPruningConfiguration()
        c.budgetChoices = [0.333, 0.222, 0.111]
        return c
    }
}

/// Autoencoder training on the visual tokens of training images (`prunegym ae train`).
public enum TokenAutoencoderTraining {
    /// Trains `autoencoder` on the tokens of `images` training tasks as `simulator` encodes them
    /// (give it the identity encoder: the projected tokens, or the hidden states after the
    /// simulator's `pruneAfterLayer`); returns the validation reconstruction error (MSE on
    /// standardised tokens; 1 = predicting the mean).
    public static func train(_ autoencoder: TokenAutoencoder, simulator: PruningSimulator, images: Int, epochs: Int, seed: UInt64,
                             log: (String) -> Void = { _ in }) throws -> (training: Float, validation: Float) {
        let width = simulator.encoder.codeWidth
        func tokens(_ split: String, _ count: Int) throws -> Tensor {
            Tensor.concatenated(try simulator.entries(Array(0..<count), split: split).map { Tensor(shape: [$0.codes.count / width, width], scalars: $0.codes) }, alongAxis: 0)
        }
        let train = try tokens("train", images)
        let validation = try tokens("validation", max(1, images / 4))
        autoencoder.fitStandardisation(train)
        let optimizer = Adam(autoencoder.namedParameters.filter { $0.parameter.requiresGradient }, learningRate: 2e-3)
        var generator = SeededGenerator(seed: seed)
        let rows = train.shape[0], batch = 256
        var last: Float = .nan
        for epoch in 1...max(1, epochs) {
            let order = generator.permutation(rows)
            var total: Float = 0, batches = 0
            for start in stride(from: 0, to: rows, by: batch) {
                let indices = Array(order[start..<min(rows, start + batch)])
                let loss = autoencoder.loss(train.indexSelect(indices, alongAxis: 0))
                optimizer.zeroGradients()
                loss.backward()
                optimizer.step()
                total += loss.scalar
                batches += 1
            }
            last = total / Float(batches)
            log(String(format: "autoencoder epoch %d: training reconstruction error %.4f", epoch, last))
        }
        let error = withInferenceMode { autoencoder.loss(validation).scalar }
        return (last, error)
    }
}

/// Demonstrations for behaviour cloning: 3-step episodes in which a heuristic pruner shrinks the
/// kept set geometrically to the episode's budget b (step t keeps N·b^{(t+1)/T} tokens), keeping
/// its own choice for the final budget first, then the rest by the observed attention
/// (class-token attention, or FastV's score when the simulator prunes after an LLM layer).
public enum Demonstrations {
    /// `episodes` demonstrations: the demonstrator's choice for the episode's budget, reached in T_max geometric steps (k_t = N·b^{t/T}), ranked by the observed attention.
    public static func collect(environment: TokenPruningEnvironment, demonstrator: any TokenPruner, episodes: Int, seed: UInt64)
        throws -> [Trajectory<[String: SpaceValue], [Bool]>] {
        var trajectories: [Trajectory<[String: SpaceValue], [Bool]>] = []
        var generator = SeededGenerator(seed: seed)
        let simulator = environment.simulator
        let n = simulator.tokenCount
        let steps = environment.configuration.maxSteps
        for episode in 0..<episodes {
            let reset = try environment.reset(seed: seed &+ UInt64(episode))
            guard let entry = environment.currentEntry else { break }
            let budget = environment.currentBudget
            let finalCount = TokenPruningConfiguration.tokenCount(budget: budget, of: n)
            guard case let .tokens(choice) = try demonstrator.plan(entry, budget: finalCount, simulator: simulator, generator: &generator) else {
                throw AgentError.invalidDemonstrations(reason: "demonstrator \(demonstrator.name) does not select input tokens")
            }
            let chosen = Set(choice), attention = entry.rankingAttention
            let ranking = choice.sorted { attention[$0] > attention[$1] }
                + (0..<n).filter { !chosen.contains($0) }.sorted { attention[$0] > attention[$1] }
            var observations = [reset.observation], actions: [[Bool]] = [], rewards: [Double] = []
            for t in 0..<steps {
                let count = max(1, Int((Double(n) * Foundation.pow(budget, Double(t + 1) / Double(steps))).rounded()))
                let keep = Set(ranking.prefix(count))
                let action = (0..<n).map { keep.contains($0) }
                let step = try environment.step(action)
                observations.append(step.observation)
                actions.append(action)
                rewards.append(step.reward)
                if step.isDone { break }
            }
            trajectories.append(Trajectory(observations: observations, actions: actions, rewards: rewards, terminal: true))
        }
        return trajectories
    }
}

/// What the recipe produced.
public struct TPRLArtifacts {
    /// The trained token autoencoder E (state compression, paper §3.1).
    /// Nil for the `identity` encoder (the policy then observes the raw tokens).
    public let autoencoder: TokenAutoencoder?
    /// The trained policy and value network.
    public let network: TPRLActorCritic
    /// The simulator with `autoencoder` as its encoder (what the policy observes).
    public let simulator: PruningSimulator
    /// Reconstruction error of the autoencoder on validation tokens (1 = predicting the mean
    /// token; 0 for the identity encoder).
    public let autoencoderError: Float
    /// Behaviour cloning's per-epoch metrics.
    public let behaviorCloning: [[(String, Double)]]
    /// PPO's per-update metrics from this call (a resumed run has only the updates it ran).
    public let ppo: [[(String, Double)]]
    /// The top-k inference chosen on validation questions (`TPRLInferenceChoice`).
    public let inference: TPRLInferenceChoice
}

/// Which top-k inference a trained policy uses, and the validation accuracies it was chosen by.
public struct TPRLInferenceChoice: Codable, Sendable, Equatable {
    /// `stepped` (top-k through the episode's steps) or `first-step` (top k of the first step's logits).
    public var mode: String
    /// Mean validation accuracy over the training budgets of each mode (empty when not compared).
    public var validationAccuracy: [String: Double]
    /// Validation questions per budget the comparison used.
    public var questions: Int

    /// The two modes.
    public static let modes = ["stepped", "first-step"]

    /// Whether the chosen inference walks the episode's steps.
    public var isStepped: Bool { mode == "stepped" }

    /// A choice of `mode` with the accuracies that decided it.
    public init(mode: String, validationAccuracy: [String: Double] = [:], questions: Int = 0) {
        self.mode = mode
        self.validationAccuracy = validationAccuracy
        self.questions = questions
    }

    enum CodingKeys: String, CodingKey { case mode, validationAccuracy = "validation_accuracy", questions }

    /// Compares the modes of `network` on `questions` validation questions at each of `budgets`;
    /// the higher mean accuracy wins (ties go to `stepped`).
    public static func select(network: TPRLActorCritic, environment: TokenPruningConfiguration, simulator: PruningSimulator,
                              budgets: [Double], questions: Int, log: (String) -> Void) throws -> TPRLInferenceChoice {
        guard questions > 0, !budgets.isEmpty else { return TPRLInferenceChoice(mode: "stepped") }
        guard environment.maxSteps > 1 else {
            log("    one step per episode: stepped and first-step inference coincide")
            return TPRLInferenceChoice(mode: "stepped")
        }
        let evaluation = PruningEvaluation(simulator: simulator, split: "validation", questions: questions, latencyQuestions: 0)
        var accuracy: [String: Double] = [:]
        for mode in modes {
            let pruner = TPRLPruner(network: network, configuration: environment)
            pruner.stepped = mode == "stepped"
            let results = try budgets.map { try evaluation.evaluate(pruner, budget: $0, seed: 0).accuracy }
            accuracy[mode] = results.reduce(0, +) / Double(results.count)
        }
        let mode = accuracy["first-step"]! > accuracy["stepped"]! ? "first-step" : "stepped"
        log(String(format: "    validation accuracy over budgets %@: stepped %.1f%%, first-step %.1f%% → %@",
                   budgets.map { String(format: "%.3f", $0) }.joined(separator: ", "), 100 * accuracy["stepped"]!, 100 * accuracy["first-step"]!, mode))
        return TPRLInferenceChoice(mode: mode, validationAccuracy: accuracy, questions: questions)
    }
}

/// The TPRL recipe: autoencoder → demonstrations → behaviour cloning → PPO (the TPRL paper, §3.3–3.4).
public enum TPRLRecipe {
    /// Runs the recipe on `model` and `source`; `log` receives one line per stage.
    public static func run(model: any VisionLanguageModel, source: any PruningTaskSource, configuration c: TPRLConfiguration,
                           runDirectory: RunDirectory? = nil, showsProgress: Bool = true, log: (String) -> Void = { print($0) }) throws -> TPRLArtifacts {
        try c.validate()
        var generator = SeededGenerator(seed: c.seed)
        var autoencoderGenerator = generator.fork()
        let cut = c.environment.pruneAfterLayer
        let rawSimulator = PruningSimulator(model: model, source: source, encoder: IdentityTokenEncoder(width: model.tokenWidth), pruneAfterLayer: cut)
        try rawSimulator.checkCut(afterLayer: cut)  // before the autoencoder trains on that layer
        let autoencoder: TokenAutoencoder?
        var errors: (training: Float, validation: Float) = (0, 0)
        if c.encoder == "identity" {
            autoencoder = nil
            log("1/4 no autoencoder: the policy observes the raw \(model.tokenWidth)-wide tokens")
        } else {
            let trained = TokenAutoencoder(inputWidth: model.tokenWidth, codeWidth: c.codeWidth, generator: &autoencoderGenerator)
            log("1/4 autoencoder on the tokens of \(c.autoencoderImages) training images")
            errors = try TokenAutoencoderTraining.train(trained, simulator: rawSimulator, images: c.autoencoderImages,
                                                        epochs: c.autoencoderEpochs, seed: c.seed, log: log)
            log(String(format: "    validation reconstruction error %.4f (1 = predicting the mean token)", errors.validation))
            autoencoder = trained
        }
        let simulator = autoencoder.map { PruningSimulator(model: model, source: source, encoder: $0, pruneAfterLayer: cut) } ?? rawSimulator

        var environmentConfiguration = c.environment
        if !c.budgetConditioned && environmentConfiguration.budgetChoices.count > 1 { environmentConfiguration.budgetChoices = [] }
        let environment = try TokenPruningEnvironment(simulator: simulator, configuration: environmentConfiguration, seed: c.seed)
        let layout = TokenPruningLayout(tokenCount: simulator.tokenCount, codeWidth: simulator.encoder.codeWidth, queryWidth: model.tokenWidth,
                                        maxSteps: environmentConfiguration.maxSteps, wordCount: environmentConfiguration.queryWords)
        var networkGenerator = generator.fork()
        let network = TPRLActorCritic(layout: layout, width: c.width, conditionOnBudget: c.budgetConditioned,
                                      attentionInput: c.classAttentionInput, attentionPrior: c.attentionPrior, generator: &networkGenerator)

        var bcRows: [[(String, Double)]] = []
        if c.demonstrations > 0 {
            log("2/4 \(c.demonstrations) demonstration episodes from \(c.demonstrator)")
            let demonstrator: any TokenPruner = try PrunerRegistry.make(c.demonstrator)
            let demonstrations = try Demonstrations.collect(environment: environment, demonstrator: demonstrator, episodes: c.demonstrations, seed: c.seed)

            log("3/4 behaviour cloning")
            var bcConfiguration = BehaviorCloningConfiguration()
            bcConfiguration.maximumEpochs = c.behaviorCloningEpochs
            bcConfiguration.batchSize = 32
            bcConfiguration.learningRate = 3e-4
            bcConfiguration.patience = 3
            let cloner = try BehaviorCloningAgent<[String: SpaceValue], [Bool]>(observationSpace: environment.observationSpace, actionSpace: environment.actionSpace,
                                                  configuration: bcConfiguration, seed: c.seed, network: network, maskRange: layout.mask)
            var bar: ProgressBar?
            if showsProgress {
                cloner.onBatch = { done, total, status in
                    if bar == nil { bar = ProgressBar(total: total, label: "behaviour cloning") }
                    bar?.update(done, status: status)
                }
            }
            bcRows = try cloner.learn(from: demonstrations)
            bar?.finish()
            if let last = bcRows.last { log("    " + last.map { "\($0.0) \(String(format: "%.4f", $0.1))" }.joined(separator: ", ")) }
            if let runDirectory {
                // Behaviour cloning reruns whole on a resume (it is deterministic), so its curve is rewritten.
                let url = runDirectory.url.appendingPathComponent("behavior-cloning.csv")
                try? FileManager.default.removeItem(at: url)
                let curve = try MetricsLog(url: url, writesTensorBoard: false)
                for row in bcRows { try curve.append(row) }
                log("    per-epoch losses in \(url.path)")
            }
        } else {
            log("2/4, 3/4 no demonstrations: PPO starts from the random initialisation")
        }

        var ppoRows: [[(String, Double)]] = []
        network.exactBudgetTemperature = c.ppoTemperature
        defer { network.exactBudgetTemperature = 1 }
        if c.ppoUpdates > 0 && c.ppoGroupSize > 0 {
            log("4/4 group-relative PPO, \(c.ppoUpdates) updates of \(c.ppoEnvironments) tasks × \(c.ppoGroupSize) exact-budget draws")
            var grpo = GroupRelativePPO()
            grpo.questions = c.ppoEnvironments
            grpo.groupSize = c.ppoGroupSize
            grpo.updates = c.ppoUpdates
            grpo.learningRate = c.ppoLearningRate
            grpo.entropyCoefficient = c.entropyCoefficient
            grpo.advantageScale = c.ppoAdvantageScale
            let bar = showsProgress ? ProgressBar(total: c.ppoUpdates, label: "group-relative PPO") : nil
            // A rerun of the recipe resumes the phase from its checkpoint and replays the updates it
            // restores, so the curve is rewritten from the start.
            let curve = try runDirectory.map { run -> MetricsLog in
                try? FileManager.default.removeItem(at: run.metricsURL)
                return try MetricsLog(url: run.metricsURL, writesTensorBoard: false)
            }
            ppoRows = try grpo.train(network: network, seed: c.seed &+ 1, make: { index in
                try TokenPruningEnvironment(simulator: simulator, configuration: environmentConfiguration, seed: c.seed &+ 100 &+ UInt64(index))
            }, checkpoint: runDirectory.map { $0.checkpointsURL.appendingPathComponent("grpo.safetensors") }, onUpdate: { update, row in
                try? curve?.append(row)
                let status = row.filter { ["reward_mean", "greedy_score", "approx_kl"].contains($0.0) }.map { "\($0.0) \(String(format: "%.3f", $0.1))" }.joined(separator: ", ")
                if let bar { bar.update(update + 1, status: status) } else { log("    update \(update + 1): " + status) }
            })
            bar?.finish()
        } else if c.ppoUpdates > 0 {
            log("4/4 PPO, \(c.ppoUpdates) updates of \(c.ppoEnvironments)×\(c.ppoStepsPerRollout) steps")
            var ppo = PPOConfiguration()
            ppo.environmentCount = c.ppoEnvironments
            ppo.stepsPerRollout = c.ppoStepsPerRollout
            ppo.minibatchCount = 2
            ppo.epochs = 4
            ppo.learningRate = c.ppoLearningRate
            ppo.gamma = 1
            ppo.gaeLambda = 0.95
            ppo.entropyCoefficient = c.entropyCoefficient
            network.exactBudget = c.ppoExactBudget
            defer { network.exactBudget = false }
            let agent = try PPOAgent<[String: SpaceValue], [Bool]>(observationSpace: environment.observationSpace, actionSpace: environment.actionSpace, configuration: ppo,
                                     seed: c.seed &+ 1, network: network, maskRange: layout.mask)
            let vector = try VectorEnvironment<TokenPruningEnvironment>(count: c.ppoEnvironments) { index in
                try TokenPruningEnvironment(simulator: simulator, configuration: environmentConfiguration, seed: c.seed &+ 100 &+ UInt64(index))
            }
            let trainer = try OnPolicyTrainer(agent: agent, environment: vector,
                                              configuration: TrainerConfiguration(totalSteps: c.ppoUpdates * c.ppoEnvironments * c.ppoStepsPerRollout,
                                                                                  seed: c.seed, showsProgress: showsProgress),
                                              runDirectory: runDirectory)
            ppoRows = try trainer.train()
        }
        let budgets = environmentConfiguration.budgetChoices.isEmpty ? [environmentConfiguration.targetBudget] : environmentConfiguration.budgetChoices
        if c.inferenceSelectionQuestions > 0 && environmentConfiguration.maxSteps > 1 { log("    choosing the top-k inference on \(c.inferenceSelectionQuestions) validation questions per budget") }
        let inference = try TPRLInferenceChoice.select(network: network, environment: environmentConfiguration, simulator: simulator, budgets: budgets,
                                                       questions: c.inferenceSelectionQuestions, log: log)
        return TPRLArtifacts(autoencoder: autoencoder, network: network, simulator: simulator, autoencoderError: errors.validation,
                             behaviorCloning: bcRows, ppo: ppoRows, inference: inference)
    }
}

/// A trained TPRL policy on disk: `tprl.json` (recipe configuration and the observation layout),
/// `policy.safetensors` (the actor-critic), `autoencoder.safetensors`. Written atomically.
public struct TPRLPolicyFiles: Codable {
    /// The PruneGym release that trained the policy.
    public var prunegymVersion: String
    /// The recipe it was trained with (its environment configuration is what inference uses).
    public var configuration: TPRLConfiguration
    /// The observation layout the policy expects.
    public var layout: TokenPruningLayout
    /// The autoencoder's validation reconstruction error.
    public var autoencoderValidationError: Float
    /// The top-k inference chosen on validation questions; nil in files written before the
    /// choice existed (they use `stepped`).
    public var inference: TPRLInferenceChoice?
    /// `model_digest`: the weight digest (`VisionLanguageModel.weightDigest`) of the model the
    /// policy was trained on; `load` refuses a simulator whose model has another. Nil in files
    /// written before release 0.7.15, and for models that cannot say: nothing is checked then.
    public var modelDigest: String?

    enum CodingKeys: String, CodingKey {
        case prunegymVersion = "prunegym_version", configuration, layout, autoencoderValidationError = "autoencoder_validation_error", inference
        case modelDigest = "model_digest"
    }

    /// Whether the policy's top-k inference walks the episode's steps (its recorded choice).
    public var steppedInference: Bool { inference?.isStepped ?? true }

    public static func save(_ artifacts: TPRLArtifacts, configuration: TPRLConfiguration, to directory: URL) throws {
        try AtomicFile.prepareDirectory(directory)
        let autoencoderURL = directory.appendingPathComponent("autoencoder.safetensors")
        if let autoencoder = artifacts.autoencoder {
            try autoencoder.save(to: autoencoderURL)
        } else if FileManager.default.fileExists(atPath: autoencoderURL.path) {
            try FileManager.default.removeItem(at: autoencoderURL)  // an identity-encoder policy has none
        }
        try artifacts.network.save(to: directory.appendingPathComponent("policy.safetensors"), metadata: ["kind": "tprl", "version": "1"])
        let files = TPRLPolicyFiles(prunegymVersion: PruneGymVersion.current, configuration: configuration, layout: artifacts.network.layout,
                                    autoencoderValidationError: artifacts.autoencoderError, inference: artifacts.inference,
                                    modelDigest: artifacts.simulator.model.weightDigest)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(files), to: directory.appendingPathComponent("tprl.json"))
    }

    /// The encoder the policy in `directory` observes through: its `autoencoder.safetensors`, or
    /// the identity for a policy trained with `"encoder": "identity"`.
    public static func encoder(in directory: URL, tokenWidth: Int) throws -> any TokenEncoder {
        if try read(directory).configuration.encoder == "identity" { return IdentityTokenEncoder(width: tokenWidth) }
        return try TokenAutoencoder.load(from: directory.appendingPathComponent("autoencoder.safetensors"))
    }

    /// The `tprl.json` of `directory`.
    public static func read(_ directory: URL) throws -> TPRLPolicyFiles {
        let url = directory.appendingPathComponent("tprl.json")
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw FileError(path: url.path, reason: "cannot read the file; train a policy with `prunegym tprl train`") }
        do { return try JSONDecoder().decode(TPRLPolicyFiles.self, from: data) } catch {
            throw FileError(path: url.path, reason: "not a TPRL policy's description: \(JSONSyntax.describe(error, of: data)); train a policy with `prunegym tprl train`")
        }
    }

    /// Loads the policy in `directory`; its layout must match `simulator`'s tokens and encoder,
    /// and the model it was trained on (`model_digest`) must be the simulator's, unless
    /// `acceptingOtherModel` (a transfer experiment: the policy and its autoencoder learned one
    /// model's tokens and are run on another's).
    public static func load(from directory: URL, simulator: PruningSimulator,
                            acceptingOtherModel: Bool = false) throws -> (network: TPRLActorCritic, files: TPRLPolicyFiles) {
        let url = directory.appendingPathComponent("tprl.json")
        let files = try read(directory)
        if !acceptingOtherModel, let recorded = files.modelDigest, let actual = simulator.model.weightDigest, recorded != actual {
            throw FileError(path: url.path, reason: "the policy was trained on another model (weight digest \(recorded)) than the one it is asked to prune for (\(actual)); evaluate it with the model it was trained on (--model DIR), train a policy for this one (prunegym tprl train --model DIR), or run it here anyway as a transfer experiment (eval-pruning --any-model)")
        }
        guard files.layout.tokenCount == simulator.tokenCount, files.layout.codeWidth == simulator.encoder.codeWidth,
              files.layout.queryWidth == simulator.model.tokenWidth else {
            throw FileError(path: url.path, reason: "the policy expects \(files.layout.tokenCount) tokens of code width \(files.layout.codeWidth) and query width \(files.layout.queryWidth); the simulator has \(simulator.tokenCount), \(simulator.encoder.codeWidth), \(simulator.model.tokenWidth)")
        }
        // Inference builds its observations from the recorded environment: it must give the layout's.
        let environment = files.configuration.environment
        guard files.layout.wordCount == environment.queryWords, files.layout.maxSteps == environment.maxSteps else {
            throw FileError(path: url.path, reason: "the layout (wordCount \(files.layout.wordCount), maxSteps \(files.layout.maxSteps)) disagrees with the configuration's environment (query_words \(environment.queryWords), max_steps \(environment.maxSteps)); retrain the policy or restore the file")
        }
        var generator = SeededGenerator(seed: 0)
        let network = TPRLActorCritic(layout: files.layout, width: files.configuration.width, conditionOnBudget: files.configuration.budgetConditioned,
                                      attentionInput: files.configuration.classAttentionInput, attentionPrior: files.configuration.attentionPrior,
                                      generator: &generator)
        try network.load(from: directory.appendingPathComponent("policy.safetensors"))
        return (network, files)
    }
}
