import Foundation
import TensorCore

/// Ends an episode with `truncated = true` after `maxEpisodeSteps` steps (Gymnasium's
/// `TimeLimit`). When the limit and a termination fall on the same step both flags are set.
public final class TimeLimit<Inner: Environment>: Environment {
    /// The wrapped environment's observation.
    public typealias Observation = Inner.Observation
    /// The wrapped environment's action.
    public typealias Action = Inner.Action

    /// The wrapped environment.
    public let inner: Inner
    /// Steps after which an episode is truncated.
    public let maxEpisodeSteps: Int
    /// Steps taken in the current episode.
    public private(set) var elapsedSteps = 0
    private var episode = EpisodeGuard()

    /// - Precondition: `maxEpisodeSteps > 0`.
    public init(_ inner: Inner, maxEpisodeSteps: Int) {
        precondition(maxEpisodeSteps > 0, "TimeLimit: maxEpisodeSteps must be positive, got \(maxEpisodeSteps)")
        self.inner = inner
        self.maxEpisodeSteps = maxEpisodeSteps
    }

    public var name: String { "TimeLimit<\(inner.name)>" }
    public var observationSpace: any Space<Observation> { inner.observationSpace }
    public var actionSpace: any Space<Action> { inner.actionSpace }

    public func reset(seed: UInt64?, options: ResetOptions) throws -> Reset<Observation> {
        let reset = try inner.reset(seed: seed, options: options)
        elapsedSteps = 0
        episode.begin()
        return reset
    }

    public func step(_ action: Action) throws -> Step<Observation> {
        try episode.checkCanStep(name)
        var step = try inner.step(action)
        elapsedSteps += 1
        if elapsedSteps >= maxEpisodeSteps { step.truncated = true }
        episode.end(if: step.isDone)
        return step
    }

    public func snapshot() throws -> EnvironmentSnapshot {
        var snapshot = EnvironmentSnapshot()
        snapshot.embed(try inner.snapshot(), as: "inner")
        snapshot.set("elapsed", integers: [elapsedSteps])
        episode.save(into: &snapshot)
        return snapshot
    }

    public func restore(_ snapshot: EnvironmentSnapshot) throws {
        try inner.restore(snapshot.nested("inner"))
        elapsedSteps = try snapshot.integers("elapsed", in: name).first ?? 0
        try episode.restore(from: snapshot, environment: name)
    }

    public func close() { inner.close() }
}

/// Return, length and start time of the running episode (shared by the statistics wrappers).
struct EpisodeAccumulator {
    var episodeReturn = 0.0
    var length = 0
    var start = Date()

    mutating func begin() {
        episodeReturn = 0
        length = 0
        start = Date()
    }

    /// Adds a step; returns the episode's statistics when the step ends it.
    mutating func add(_ reward: Double, done: Bool) -> EpisodeStatistics? {
        episodeReturn += reward
        length += 1
        return done ? EpisodeStatistics(episodeReturn: episodeReturn, length: length, seconds: Date().timeIntervalSince(start)) : nil
    }

    func save(into snapshot: inout EnvironmentSnapshot) {
        snapshot.set("return", doubles: [episodeReturn])
        snapshot.set("length", integers: [length])
    }

    mutating func restore(from snapshot: EnvironmentSnapshot, environment: String) throws {
        episodeReturn = try snapshot.doubles("return", in: environment).first ?? 0
        length = try snapshot.integers("length", in: environment).first ?? 0
        start = Date()
    }
}

/// Adds `Info.episode` (return, length, wall-clock seconds) on the step that ends an episode and
/// keeps the last `bufferLength` returns and lengths (Gymnasium's `RecordEpisodeStatistics`).
public final class RecordEpisodeStatistics<Inner: Environment>: Environment {
    /// The wrapped environment's observation.
    public typealias Observation = Inner.Observation
    /// The wrapped environment's action.
    public typealias Action = Inner.Action

    /// The wrapped environment.
    public let inner: Inner
    /// Finished episodes kept in the queues.
    public let bufferLength: Int
    /// Returns of the last `bufferLength` episodes.
    public private(set) var returnQueue: [Double] = []
    /// Lengths of the last `bufferLength` episodes.
    public private(set) var lengthQueue: [Int] = []
    /// Episodes finished since construction.
    public private(set) var episodeCount = 0
    private var running = EpisodeAccumulator()

    /// Records each episode's return, length and time into the final step's `info.episode`.
    public init(_ inner: Inner, bufferLength: Int = 100) {
        self.inner = inner
        self.bufferLength = bufferLength
    }

    public var name: String { "RecordEpisodeStatistics<\(inner.name)>" }
    public var observationSpace: any Space<Observation> { inner.observationSpace }
    public var actionSpace: any Space<Action> { inner.actionSpace }

    public func reset(seed: UInt64?, options: ResetOptions) throws -> Reset<Observation> {
        let reset = try inner.reset(seed: seed, options: options)
        running.begin()
        return reset
    }

    public func step(_ action: Action) throws -> Step<Observation> {
        var step = try inner.step(action)
        if let statistics = running.add(step.reward, done: step.isDone) {
            step.info.episode = statistics
            returnQueue.append(statistics.episodeReturn)
            lengthQueue.append(statistics.length)
            if returnQueue.count > bufferLength {
                returnQueue.removeFirst()
                lengthQueue.removeFirst()
            }
            episodeCount += 1
        }
        return step
    }

    public func snapshot() throws -> EnvironmentSnapshot {
        var snapshot = EnvironmentSnapshot()
        snapshot.embed(try inner.snapshot(), as: "inner")
        running.save(into: &snapshot)
        snapshot.set("episodes", integers: [episodeCount])
        snapshot.set("returnQueue", doubles: returnQueue)
        snapshot.set("lengthQueue", integers: lengthQueue)
        return snapshot
    }

    public func restore(_ snapshot: EnvironmentSnapshot) throws {
        try inner.restore(snapshot.nested("inner"))
        try running.restore(from: snapshot, environment: name)
        episodeCount = try snapshot.integers("episodes", in: name).first ?? 0
        returnQueue = try snapshot.doubles("returnQueue", in: name)
        lengthQueue = try snapshot.integers("lengthQueue", in: name)
    }

    public func close() { inner.close() }
}

/// Clips continuous actions into the inner `Box` action space before stepping (Gymnasium's
/// `ClipAction`); the exposed action space is unbounded: `Box(-inf, inf)` of the same shape.
public final class ClipAction<Inner: Environment>: Environment where Inner.Action == [Float] {
    /// The wrapped environment's observation.
    public typealias Observation = Inner.Observation
    /// A real vector (clipped into the action space).
    public typealias Action = [Float]

    /// The wrapped environment.
    public let inner: Inner
    private let bounds: Box
    public let actionSpace: any Space<[Float]>

    /// - Precondition: the inner action space is a `Box`.
    public init(_ inner: Inner) {
        guard let box = inner.actionSpace as? Box else {
            preconditionFailure("ClipAction needs a Box action space, \(inner.name) has \(inner.actionSpace)")
        }
        self.inner = inner
        bounds = box
        actionSpace = Box(low: -.infinity, high: .infinity, shape: box.shape)
    }

    public var name: String { "ClipAction<\(inner.name)>" }
    public var observationSpace: any Space<Observation> { inner.observationSpace }

    public func reset(seed: UInt64?, options: ResetOptions) throws -> Reset<Observation> { try inner.reset(seed: seed, options: options) }

    public func step(_ action: [Float]) throws -> Step<Observation> {
        guard action.count == bounds.flatDimension, !action.contains(where: \.isNaN) else {
            throw GymError.invalidAction(environment: name, space: actionSpace.description, action: actionSpace.describe(action))
        }
        return try inner.step(bounds.clipped(action))
    }

    public func snapshot() throws -> EnvironmentSnapshot { try inner.snapshot() }
    public func restore(_ snapshot: EnvironmentSnapshot) throws { try inner.restore(snapshot) }
    public func close() { inner.close() }
}

/// Replaces each reward by `transform(reward)` (Gymnasium's `TransformReward`): scaling,
/// shaping, and reward ablations. A transform that returns NaN or ±∞ makes `step` throw.
public final class TransformReward<Inner: Environment>: Environment {
    /// The wrapped environment's observation.
    public typealias Observation = Inner.Observation
    /// The wrapped environment's action.
    public typealias Action = Inner.Action

    /// The wrapped environment.
    public let inner: Inner
    /// The reward transform.
    public let transform: @Sendable (Double) -> Double
    /// A name for the transform, shown in the wrapper's name.
    public let label: String

    /// Applies `transform` to every reward of `inner`.
    public init(_ inner: Inner, label: String = "f", _ transform: @escaping @Sendable (Double) -> Double) {
        self.inner = inner
        self.transform = transform
        self.label = label
    }

    public var name: String { "TransformReward<\(inner.name), \(label)>" }
    public var observationSpace: any Space<Observation> { inner.observationSpace }
    public var actionSpace: any Space<Action> { inner.actionSpace }

    public func reset(seed: UInt64?, options: ResetOptions) throws -> Reset<Observation> { try inner.reset(seed: seed, options: options) }

    public func step(_ action: Action) throws -> Step<Observation> {
        var step = try inner.step(action)
        step.reward = transform(step.reward)
        guard step.reward.isFinite else { throw GymError.nonFinite(environment: name, what: "the transformed reward (\(step.reward))") }
        return step
    }

    public func snapshot() throws -> EnvironmentSnapshot { try inner.snapshot() }
    public func restore(_ snapshot: EnvironmentSnapshot) throws { try inner.restore(snapshot) }
    public func close() { inner.close() }
}

/// Appends one CSV row per finished episode — `episode,return,length,seconds,terminated` — to a
/// file (the header is written when the file is new). Like SB3's `Monitor`.
public final class EpisodeMonitor<Inner: Environment>: Environment {
    /// The wrapped environment's observation.
    public typealias Observation = Inner.Observation
    /// The wrapped environment's action.
    public typealias Action = Inner.Action

    /// The wrapped environment.
    public let inner: Inner
    /// The CSV file episodes are appended to.
    public let url: URL
    private var running = EpisodeAccumulator()
    private var episodeIndex = 0

    /// Opens (creating if needed) the CSV file at `url`.
    public init(_ inner: Inner, url: URL) throws {
        self.inner = inner
        self.url = url
        if !FileManager.default.fileExists(atPath: url.path) {
            try AtomicFile.prepareDirectory(url.deletingLastPathComponent())
            try Data("episode,return,length,seconds,terminated\n".utf8).write(to: url)
        } else {
            let text = try String(contentsOf: url, encoding: .utf8)
            episodeIndex = max(0, text.split(separator: "\n").count - 1)
        }
    }

    public var name: String { "EpisodeMonitor<\(inner.name)>" }
    public var observationSpace: any Space<Observation> { inner.observationSpace }
    public var actionSpace: any Space<Action> { inner.actionSpace }

    public func reset(seed: UInt64?, options: ResetOptions) throws -> Reset<Observation> {
        let reset = try inner.reset(seed: seed, options: options)
        running.begin()
        return reset
    }

    public func step(_ action: Action) throws -> Step<Observation> {
        let step = try inner.step(action)
        if let statistics = running.add(step.reward, done: step.isDone) {
            let line = "\(episodeIndex),\(statistics.episodeReturn),\(statistics.length),\(String(format: "%.6f", statistics.seconds)),\(step.terminated)\n"
            let handle = try FileHandle(forWritingTo: url)
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(line.utf8))
            episodeIndex += 1
        }
        return step
    }

    public func snapshot() throws -> EnvironmentSnapshot {
        var snapshot = EnvironmentSnapshot()
        snapshot.embed(try inner.snapshot(), as: "inner")
        running.save(into: &snapshot)
        return snapshot
    }

    public func restore(_ snapshot: EnvironmentSnapshot) throws {
        try inner.restore(snapshot.nested("inner"))
        try running.restore(from: snapshot, environment: name)
    }

    public func close() { inner.close() }
}
