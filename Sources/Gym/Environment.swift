import Foundation
import TensorCore

/// A reinforcement-learning environment with Gymnasium's semantics.
///
/// - `reset(seed:options:)` starts an episode and returns the first observation and an info.
///   A seed reseeds the environment's own generator; with no seed the generator carries on.
/// - `step(_:)` applies an action and returns the next observation, the reward, `terminated`
///   (a terminal state of the MDP: nothing follows, do not bootstrap) and `truncated` (stopped
///   from outside the MDP, e.g. a time limit: bootstrap from the observation), and an info.
/// - Stepping before the first reset, after an episode ended, or with an action outside
///   `actionSpace` throws a `GymError` naming the environment, the space and the action.
/// - The same seed gives the same trajectory, bit for bit.
///
/// Environments are reference types, as in Gymnasium: wrappers and vector environments hold them.
public protocol Environment<Observation, Action>: AnyObject {
    associatedtype Observation: Sendable
    associatedtype Action: Sendable

    var observationSpace: any Space<Observation> { get }
    var actionSpace: any Space<Action> { get }

    /// Starts a new episode.
    func reset(seed: UInt64?, options: ResetOptions) throws -> Reset<Observation>
    /// Advances the episode by one action.
    func step(_ action: Action) throws -> Step<Observation>

    /// A short name for messages, e.g. `CartPole` or `TimeLimit<CartPole>`.
    var name: String { get }
    /// The environment's complete internal state (generator included), for checkpoints.
    func snapshot() throws -> EnvironmentSnapshot
    /// Restores a state taken with `snapshot()`.
    func restore(_ snapshot: EnvironmentSnapshot) throws
    /// Releases resources; safe to call more than once.
    func close()
}

extension Environment {
    public var name: String { String(describing: type(of: self)) }
    public func close() {}

    /// `reset(seed:options:)` with default options.
    public func reset(seed: UInt64? = nil) throws -> Reset<Observation> { try reset(seed: seed, options: ResetOptions()) }

    public func snapshot() throws -> EnvironmentSnapshot {
        throw GymError.invalidSnapshot(environment: name, reason: "this environment does not implement snapshot()")
    }
    public func restore(_ snapshot: EnvironmentSnapshot) throws {
        throw GymError.invalidSnapshot(environment: name, reason: "this environment does not implement restore(_:)")
    }

    /// Throws `GymError.invalidAction` unless `action` is in the action space.
    public func validate(_ action: Action) throws {
        guard actionSpace.contains(action) else {
            throw GymError.invalidAction(environment: name, space: actionSpace.description, action: actionSpace.describe(action))
        }
    }
}

/// What `reset` returns.
public struct Reset<Observation: Sendable>: Sendable {
    /// The first observation of the episode.
    public var observation: Observation
    /// Environment-specific values at the start of the episode.
    public var info: Info
    /// The result of `reset`.
    public init(observation: Observation, info: Info = Info()) {
        self.observation = observation
        self.info = info
    }
}

/// What `step` returns.
public struct Step<Observation: Sendable>: Sendable {
    /// The observation after the action.
    public var observation: Observation
    /// The reward for the transition.
    public var reward: Double
    /// A terminal state of the MDP was reached: the value of what follows is zero.
    public var terminated: Bool
    /// The episode was cut short from outside the MDP (time limit): the state is not terminal.
    public var truncated: Bool
    /// Environment-specific values of this step; `episode` set by `RecordEpisodeStatistics` at the end.
    public var info: Info

    /// The result of `step`.
    public init(observation: Observation, reward: Double, terminated: Bool, truncated: Bool, info: Info = Info()) {
        self.observation = observation
        self.reward = reward
        self.terminated = terminated
        self.truncated = truncated
        self.info = info
    }

    /// `terminated || truncated`.
    public var isDone: Bool { terminated || truncated }
}

/// A value in an info or an option.
public enum InfoValue: Sendable, Equatable, CustomStringConvertible, Codable {
    case number(Double)
    case text(String)
    case flag(Bool)
    case numbers([Double])

    public var description: String {
        switch self {
        case let .number(value): return "\(value)"
        case let .text(value): return value
        case let .flag(value): return "\(value)"
        case let .numbers(values): return "\(values)"
        }
    }

    /// The value as a number, if it is one.
    public var number: Double? { if case let .number(value) = self { return value } else { return nil } }
}

/// The statistics of a finished episode (Gymnasium's `info["episode"]`: `r`, `l`, `t`).
public struct EpisodeStatistics: Sendable, Equatable, Codable {
    /// Sum of the episode's rewards.
    public var episodeReturn: Double
    /// Steps in the episode.
    public var length: Int
    /// Wall-clock seconds the episode took.
    public var seconds: Double
    /// Statistics of one finished episode.
    public init(episodeReturn: Double, length: Int, seconds: Double) {
        self.episodeReturn = episodeReturn
        self.length = length
        self.seconds = seconds
    }
}

/// Auxiliary information from `reset` and `step`: typed common fields plus named values.
public struct Info: Sendable, Equatable {
    /// Set by `RecordEpisodeStatistics` on the step that ends an episode.
    public var episode: EpisodeStatistics?
    /// Environment-specific values (e.g. `tokens_kept`, `flops`).
    public var values: [String: InfoValue]

    /// Info with optional episode statistics and named values.
    public init(episode: EpisodeStatistics? = nil, values: [String: InfoValue] = [:]) {
        self.episode = episode
        self.values = values
    }

    /// The value named `key`, if any.
    public subscript(key: String) -> InfoValue? {
        get { values[key] }
        set { values[key] = newValue }
    }
}

/// Options for `reset`: what the built-in environments understand, plus named values for
/// environments of one's own.
public struct ResetOptions: Sendable {
    /// Start from this internal state instead of a random one (its meaning is documented by each
    /// environment, e.g. CartPole's `[x, ẋ, θ, θ̇]`).
    public var initialState: [Double]?
    /// Bounds of the uniform distribution of the random start (CartPole's `low`/`high`).
    public var low: Double?
    /// Upper bound of the random start (CartPole's `high`).
    public var high: Double?
    public var values: [String: InfoValue]

    /// Reset options; all optional, each environment documents which it reads.
    public init(initialState: [Double]? = nil, low: Double? = nil, high: Double? = nil, values: [String: InfoValue] = [:]) {
        self.initialState = initialState
        self.low = low
        self.high = high
        self.values = values
    }
}

/// An environment's internal state, for checkpoints: named arrays of 64-bit words (doubles by
/// bit pattern, so the round trip is exact). Wrappers nest their own state under a prefix.
public struct EnvironmentSnapshot: Sendable, Codable, Equatable {
    /// The saved state: named arrays of 64-bit words (bit patterns, so restores are exact).
    public var words: [String: [UInt64]]
    /// A snapshot holding `words`.
    public init(words: [String: [UInt64]] = [:]) { self.words = words }

    /// Saves doubles bit for bit.
    public mutating func set(_ key: String, doubles: [Double]) { words[key] = doubles.map(\.bitPattern) }
    /// Saves integers.
    public mutating func set(_ key: String, integers: [Int]) { words[key] = integers.map { UInt64(bitPattern: Int64($0)) } }
    /// Saves a generator's full state.
    public mutating func set(_ key: String, generator: SeededGenerator) { words[key] = generator.stateWords }
    /// Saves a flag.
    public mutating func set(_ key: String, flag: Bool) { words[key] = [flag ? 1 : 0] }

    /// Reads doubles saved under `key`; a missing key throws `GymError.invalidSnapshot` naming `environment`.
    public func doubles(_ key: String, in environment: String) throws -> [Double] { try raw(key, environment).map(Double.init(bitPattern:)) }
    /// Reads integers saved under `key`.
    public func integers(_ key: String, in environment: String) throws -> [Int] { try raw(key, environment).map { Int(Int64(bitPattern: $0)) } }
    /// Reads a flag saved under `key`.
    public func flag(_ key: String, in environment: String) throws -> Bool { try raw(key, environment).first == 1 }
    /// Reads a generator saved under `key`; malformed state throws.
    public func generator(_ key: String, in environment: String) throws -> SeededGenerator {
        let words = try raw(key, environment)
        guard words.count == 4, words.contains(where: { $0 != 0 }) else {
            throw GymError.invalidSnapshot(environment: environment, reason: "generator state '\(key)' is malformed")
        }
        return SeededGenerator(state: words)
    }

    private func raw(_ key: String, _ environment: String) throws -> [UInt64] {
        guard let value = words[key] else { throw GymError.invalidSnapshot(environment: environment, reason: "missing '\(key)'") }
        return value
    }

    /// The entries under `prefix/`, with the prefix removed (a wrapper's inner state).
    public func nested(_ prefix: String) -> EnvironmentSnapshot {
        var result = EnvironmentSnapshot()
        for (key, value) in words where key.hasPrefix(prefix + "/") { result.words[String(key.dropFirst(prefix.count + 1))] = value }
        return result
    }

    /// Adds `inner`'s entries under `prefix/`.
    public mutating func embed(_ inner: EnvironmentSnapshot, as prefix: String) {
        for (key, value) in inner.words { words[prefix + "/" + key] = value }
    }
}

/// Tracks whether an episode is running, so environments can reject stepping before a reset
/// or after the end (Gymnasium's `OrderEnforcing`, made an error instead of a warning).
public struct EpisodeGuard: Sendable, Equatable {
    /// Where the episode is: before the first reset, running, or ended.
    public enum Phase: Int, Sendable { case notStarted = 0, running = 1, finished = 2 }
    /// The current phase.
    public private(set) var phase: Phase = .notStarted
    /// A guard before the first reset.
    public init() {}

    /// Marks an episode as started (call from `reset`).
    public mutating func begin() { phase = .running }
    /// Marks the episode finished when `done`.
    public mutating func end(if done: Bool) { if done { phase = .finished } }
    /// Throws unless an episode is running.
    public func checkCanStep(_ environment: String) throws {
        switch phase {
        case .notStarted: throw GymError.resetNeeded(environment: environment)
        case .finished: throw GymError.episodeFinished(environment: environment)
        case .running: return
        }
    }

    public func save(into snapshot: inout EnvironmentSnapshot) { snapshot.set("phase", integers: [phase.rawValue]) }
    public mutating func restore(from snapshot: EnvironmentSnapshot, environment: String) throws {
        guard let value = try snapshot.integers("phase", in: environment).first, let phase = Phase(rawValue: value) else {
            throw GymError.invalidSnapshot(environment: environment, reason: "malformed episode phase")
        }
        self.phase = phase
    }
}
