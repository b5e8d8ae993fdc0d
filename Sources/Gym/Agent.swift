import Foundation
import TensorCore

/// An agent: acts on observations of an environment and saves and loads itself. How it learns is
/// given by a refinement — `OnPolicyAgent` (learns from a `RolloutBuffer`, e.g. PPO) or
/// `DemonstrationLearner` (learns from demonstrations, e.g. behaviour cloning).
///
/// Any agent runs on any environment whose spaces it supports; an agent checks the spaces at
/// construction and throws `AgentError.unsupportedSpace` otherwise.
public protocol Agent<Observation, Action>: AnyObject {
    associatedtype Observation: Sendable
    associatedtype Action: Sendable

    /// The agent's name in checkpoints and on the command line (`ppo`, `bc`, `random`).
    static var kind: String { get }

    /// Actions for a batch of observations: sampled from the policy, or its mode when
    /// `deterministic` (argmax, mean, probability > ½).
    func act(_ observations: [Observation], deterministic: Bool) throws -> [Action]

    /// Writes the agent's complete state (weights, optimizer, generators, statistics) atomically.
    func save(to url: URL) throws
    /// Restores a state written by `save(to:)`; throws if it belongs to another kind of agent or
    /// to other spaces.
    func load(from url: URL) throws
}

/// Errors an agent raises on input a user controls.
public enum AgentError: Error, CustomStringConvertible, Equatable {
    case unsupportedSpace(agent: String, space: String, reason: String)
    case checkpointMismatch(path: String, reason: String)
    case invalidConfiguration(agent: String, reason: String)
    case nonFinite(agent: String, what: String)
    case invalidDemonstrations(reason: String)

    public var description: String {
        switch self {
        case let .unsupportedSpace(agent, space, reason): return "agent '\(agent)' does not support the space \(space): \(reason)"
        case let .checkpointMismatch(path, reason): return "\(path): cannot load this checkpoint: \(reason)"
        case let .invalidConfiguration(agent, reason): return "agent '\(agent)': invalid configuration: \(reason)"
        case let .nonFinite(agent, what): return "agent '\(agent)': \(what) is not finite (NaN or ±∞); lower the learning rate or check the rewards"
        case let .invalidDemonstrations(reason): return "demonstrations: \(reason)"
        }
    }
}

/// What an on-policy agent decides for a batch of observations during a rollout.
public struct RolloutDecision<Action: Sendable> {
    /// The actions to send to the environments (e.g. clipped into a Box).
    public var actions: [Action]
    /// The actions as stored for learning, flat (`count × actionWidth`; e.g. unclipped samples).
    public var flatActions: [Float]
    /// log π(a|s) of each sampled action (the old log-probabilities PPO's ratio uses).
    public var logProbabilities: [Float]
    public var values: [Float]
    /// The observations as the agent saw them, flat (`count × observationWidth`).
    public var flatObservations: [Float]

    /// Bundles one `decide` call's results.
    public init(actions: [Action], flatActions: [Float], logProbabilities: [Float], values: [Float], flatObservations: [Float]) {
        self.actions = actions
        self.flatActions = flatActions
        self.logProbabilities = logProbabilities
        self.values = values
        self.flatObservations = flatObservations
    }
}

/// Rollout settings an on-policy agent asks of the training loop.
public struct RolloutSettings: Sendable, Codable, Equatable {
    /// Parallel environments the agent wants (`VectorEnvironment` copies).
    public var environmentCount: Int
    /// Steps collected from each environment per update.
    public var stepsPerRollout: Int
    /// Discount factor γ of the returns.
    public var gamma: Double
    /// λ of generalised advantage estimation (1 = Monte-Carlo returns minus the baseline).
    public var gaeLambda: Double
    /// Bootstrap truncated episodes from V(final observation) (SB3) rather than treating them as
    /// terminal (CleanRL).
    public var bootstrapsTruncation: Bool
    /// Rewards are multiplied by this before they enter the buffer (episode returns are logged
    /// unscaled): a fixed reward scale, as many PPO setups use for large-magnitude rewards.
    public var rewardScale: Double

    /// Rollout settings; `bootstrapsTruncation` false gives CleanRL's treatment of time limits.
    public init(environmentCount: Int, stepsPerRollout: Int, gamma: Double, gaeLambda: Double, bootstrapsTruncation: Bool = true, rewardScale: Double = 1) {
        self.environmentCount = environmentCount
        self.stepsPerRollout = stepsPerRollout
        self.gamma = gamma
        self.gaeLambda = gaeLambda
        self.bootstrapsTruncation = bootstrapsTruncation
        self.rewardScale = rewardScale
    }
}

/// An agent that learns from on-policy rollouts (PPO, A2C, REINFORCE, …), driven by
/// `OnPolicyTrainer`.
public protocol OnPolicyAgent<Observation, Action>: Agent {
    // Restated so that `any OnPolicyAgent<O, A>` can name them (primary associated types).
    associatedtype Observation
    associatedtype Action
    var rolloutSettings: RolloutSettings { get }
    var observationWidth: Int { get }
    var actionWidth: Int { get }
    /// Samples actions and records what learning needs. May update running statistics.
    func decide(_ observations: [Observation]) throws -> RolloutDecision<Action>
    /// V(s) for each observation (without updating statistics).
    func values(_ observations: [Observation]) throws -> [Float]
    /// One update from a full buffer with computed advantages; `update` counts from 0 to
    /// `updateCount − 1` (for annealing). Returns named scalars for `metrics.csv`.
    func learn(from buffer: RolloutBuffer, update: Int, updateCount: Int) throws -> [(String, Double)]
}

/// A demonstration: one episode's observations (T + 1, the last after the final action),
/// actions (T) and whether it ended in a terminal state (`imitation`'s `Trajectory`).
public struct Trajectory<Observation: Sendable, Action: Sendable>: Sendable {
    /// T + 1 observations: the first after reset, the last after the final action.
    public var observations: [Observation]
    /// The T actions taken.
    public var actions: [Action]
    /// The T rewards received (may be empty when only states and actions were recorded).
    public var rewards: [Double]
    /// Whether the episode ended in a terminal state (not a truncation).
    public var terminal: Bool

    /// A demonstration episode; `observations` must hold one more element than `actions`.
    public init(observations: [Observation], actions: [Action], rewards: [Double] = [], terminal: Bool) {
        self.observations = observations
        self.actions = actions
        self.rewards = rewards
        self.terminal = terminal
    }

    /// The undiscounted sum of the rewards.
    public var episodeReturn: Double { rewards.reduce(0, +) }
}

/// An agent that learns by imitating demonstrations.
public protocol DemonstrationLearner: Agent {
    /// Trains on `demonstrations`; returns per-epoch metrics.
    func learn(from demonstrations: [Trajectory<Observation, Action>]) throws -> [[(String, Double)]]
}

/// Uniformly random actions from the action space — the floor every learner must beat.
public final class RandomAgent<Observation: Sendable, Action: Sendable>: Agent {
    public static var kind: String { "random" }
    public let actionSpace: any Space<Action>
    /// The generator the actions are drawn from (saved in checkpoints).
    public private(set) var generator: SeededGenerator

    /// Draws uniformly from `actionSpace` with its own generator seeded by `seed`.
    public init(actionSpace: any Space<Action>, seed: UInt64) {
        self.actionSpace = actionSpace
        generator = SeededGenerator(seed: seed)
    }

    public func act(_ observations: [Observation], deterministic: Bool) throws -> [Action] {
        observations.map { _ in actionSpace.sample(using: &generator) }
    }

    public func save(to url: URL) throws {
        try AtomicFile.write(Data(generator.stateWords.map(String.init).joined(separator: ",").utf8), to: url)
    }

    public func load(from url: URL) throws {
        let text = try String(contentsOf: url, encoding: .utf8)
        let words = text.split(separator: ",").compactMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        guard words.count == 4, words.contains(where: { $0 != 0 }) else {
            throw AgentError.checkpointMismatch(path: url.path, reason: "not a random agent's generator state")
        }
        generator = SeededGenerator(state: words)
    }
}

/// A fixed policy given as a closure — experts for demonstrations, baselines, and tests.
public final class ScriptedAgent<Observation: Sendable, Action: Sendable>: Agent {
    public static var kind: String { "scripted" }
    /// The observation → action function the agent follows.
    public let policy: (Observation) -> Action

    /// An agent that always does what `policy` says (deterministic or not, it ignores the flag).
    public init(_ policy: @escaping (Observation) -> Action) { self.policy = policy }

    public func act(_ observations: [Observation], deterministic: Bool) throws -> [Action] { observations.map(policy) }
    /// A scripted agent has no state; saving writes an empty marker.
    public func save(to url: URL) throws { try AtomicFile.write(Data("scripted".utf8), to: url) }
    public func load(from url: URL) throws {}
}

/// Episodes of `agent` in `environment`, seeded `seed, seed + 1, …`.
public func rolloutEpisodes<E: Environment, A: Agent>(
    _ agent: A, in environment: E, episodes: Int, seed: UInt64, deterministic: Bool = true, maximumSteps: Int = 1_000_000
) throws -> [Trajectory<E.Observation, E.Action>] where A.Observation == E.Observation, A.Action == E.Action {
    var trajectories: [Trajectory<E.Observation, E.Action>] = []
    for episode in 0..<episodes {
        let reset = try environment.reset(seed: seed + UInt64(episode))
        var trajectory = Trajectory<E.Observation, E.Action>(observations: [reset.observation], actions: [], terminal: false)
        var observation = reset.observation
        for _ in 0..<maximumSteps {
            let action = try agent.act([observation], deterministic: deterministic)[0]
            let step = try environment.step(action)
            trajectory.actions.append(action)
            trajectory.rewards.append(step.reward)
            trajectory.observations.append(step.observation)
            observation = step.observation
            if step.isDone {
                trajectory.terminal = step.terminated
                break
            }
        }
        trajectories.append(trajectory)
    }
    return trajectories
}

/// Mean and (population) standard deviation of episode returns.
public struct ReturnSummary: Sendable, Codable, Equatable, CustomStringConvertible {
    /// Mean episode return.
    public var mean: Double
    /// Sample standard deviation of the returns (0 for one episode).
    public var standardDeviation: Double
    /// Episodes evaluated.
    public var episodes: Int
    /// Every episode's return, in order.
    public var returns: [Double]

    /// Summarises `returns`.
    public init(returns: [Double]) {
        self.returns = returns
        episodes = returns.count
        mean = returns.isEmpty ? 0 : returns.reduce(0, +) / Double(returns.count)
        let mean = self.mean
        standardDeviation = returns.isEmpty ? 0 : (returns.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(returns.count)).squareRoot()
    }

    public var description: String { String(format: "%.2f ± %.2f over %d episodes", mean, standardDeviation, episodes) }
}

/// Evaluates `agent` for `episodes` episodes (deterministic by default).
public func evaluate<E: Environment, A: Agent>(
    _ agent: A, in environment: E, episodes: Int, seed: UInt64, deterministic: Bool = true
) throws -> ReturnSummary where A.Observation == E.Observation, A.Action == E.Action {
    let trajectories = try rolloutEpisodes(agent, in: environment, episodes: episodes, seed: seed, deterministic: deterministic)
    return ReturnSummary(returns: trajectories.map(\.episodeReturn))
}
