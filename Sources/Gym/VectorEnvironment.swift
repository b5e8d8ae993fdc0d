import Dispatch
import Foundation

/// What a vector environment's `step` returns: one entry per sub-environment.
public struct VectorStep<Observation: Sendable>: Sendable {
    /// The next observation; for a sub-environment whose episode just ended, the first
    /// observation of its next episode (same-step autoreset).
    public var observations: [Observation]
    /// Each environment's reward.
    public var rewards: [Double]
    /// Each environment's terminated flag (it was reset in the same step).
    public var terminated: [Bool]
    /// Each environment's truncated flag (it was reset in the same step).
    public var truncated: [Bool]
    /// Each environment's info (of the step that ended it, for ended ones).
    public var infos: [Info]
    /// For a sub-environment whose episode ended on this step, the true last observation of that
    /// episode (bootstrap from it when truncated); nil otherwise.
    public var finalObservations: [Observation?]
    /// The info of the step that ended the episode (with `episode` statistics), nil otherwise.
    public var finalInfos: [Info?]
}

/// N copies of an environment stepped together, with **same-step autoreset**: a
/// sub-environment whose episode ends is reset inside the same `step` call; the returned
/// observation is the new episode's first, and the ended episode's last observation and info are
/// kept in `finalObservations` / `finalInfos`. This is Gymnasium's `AutoresetMode.SAME_STEP`
/// (Gym 0.26's and SB3's behaviour), chosen because it lets a rollout buffer bootstrap a
/// truncated episode from its final observation without a dummy transition.
///
/// `reset(seed: s)` seeds sub-environment i with `s + i`, as Gymnasium's vector environments.
/// With `.threaded` execution the sub-environments step concurrently on a dispatch pool; results
/// are identical to `.synchronous` for the same seeds, since each sub-environment owns its state
/// and generator.
public final class VectorEnvironment<Env: Environment> {
    /// Step the copies one after another or on several threads.
    public enum Execution: String, Sendable, Codable {
        case synchronous
        case threaded
    }

    /// The copies.
    public let environments: [Env]
    /// How they are stepped.
    public let execution: Execution
    /// Number of copies.
    public var count: Int { environments.count }
    /// Observation space of one copy.
    public var singleObservationSpace: any Space<Env.Observation> { environments[0].observationSpace }
    /// Action space of one copy.
    public var singleActionSpace: any Space<Env.Action> { environments[0].actionSpace }

    /// - Precondition: `environments` is not empty.
    public init(_ environments: [Env], execution: Execution = .synchronous) {
        precondition(!environments.isEmpty, "VectorEnvironment needs at least one environment")
        self.environments = environments
        self.execution = execution
    }

    /// Builds `count` environments with `make(index)`.
    public convenience init(count: Int, execution: Execution = .synchronous, make: (Int) throws -> Env) rethrows {
        self.init(try (0..<count).map(make), execution: execution)
    }

    /// Resets every sub-environment; sub-environment i gets seed `seed + i` when a seed is given.
    public func reset(seed: UInt64? = nil, options: ResetOptions = ResetOptions()) throws -> [Reset<Env.Observation>] {
        try run { index, environment in
            try environment.reset(seed: seed.map { $0 + UInt64(index) }, options: options)
        }
    }

    /// Steps every sub-environment with its action, resetting those whose episode ends.
    public func step(_ actions: [Env.Action]) throws -> VectorStep<Env.Observation> {
        guard actions.count == environments.count else { throw GymError.actionCount(expected: environments.count, actual: actions.count) }
        let results: [(Step<Env.Observation>, Reset<Env.Observation>?)]
        if let batching = Env.self as? any BatchSteppingEnvironment.Type {
            // One batched step for all (e.g. one model call), then the resets of finished episodes.
            let steps = try batching.erasedStep(environments, actions).map { $0 as! Step<Env.Observation> }
            results = try run { index, environment in
                (steps[index], steps[index].isDone ? try environment.reset(seed: nil) : nil)
            }
        } else {
            results = try run { index, environment in
                let step = try environment.step(actions[index])
                return (step, step.isDone ? try environment.reset(seed: nil) : nil)
            }
        }
        var output = VectorStep<Env.Observation>(
            observations: [], rewards: [], terminated: [], truncated: [], infos: [], finalObservations: [], finalInfos: [])
        for (step, reset) in results {
            output.observations.append(reset?.observation ?? step.observation)
            output.rewards.append(step.reward)
            output.terminated.append(step.terminated)
            output.truncated.append(step.truncated)
            output.infos.append(reset?.info ?? step.info)
            output.finalObservations.append(reset == nil ? nil : step.observation)
            output.finalInfos.append(reset == nil ? nil : step.info)
        }
        return output
    }

    public func snapshot() throws -> [EnvironmentSnapshot] { try environments.map { try $0.snapshot() } }

    public func restore(_ snapshots: [EnvironmentSnapshot]) throws {
        guard snapshots.count == environments.count else {
            throw GymError.invalidSnapshot(environment: "vector environment", reason: "\(snapshots.count) snapshots for \(environments.count) environments")
        }
        for (environment, snapshot) in zip(environments, snapshots) { try environment.restore(snapshot) }
    }

    public func close() { for environment in environments { environment.close() } }

    /// Runs `body` for every sub-environment, serially or concurrently; errors name the index.
    private func run<T>(_ body: @escaping (Int, Env) throws -> T) throws -> [T] {
        let results = UnsafeResults<T>(count: environments.count)
        let environments = self.environments
        let work: (Int) -> Void = { index in
            do { results.set(index, .success(try body(index, environments[index]))) }
            catch { results.set(index, .failure(error)) }
        }
        if execution == .synchronous || environments.count == 1 {
            for index in environments.indices { work(index) }
        } else {
            concurrentlyPerform(environments.count, UncheckedBox(work))
        }
        return try results.unwrapped()
    }
}

/// Runs `work.value(0..<count)` on the dispatch pool (a non-generic function, so the `@Sendable`
/// closure captures no generic metatype).
private func concurrentlyPerform(_ count: Int, _ work: UncheckedBox<(Int) -> Void>) {
    DispatchQueue.concurrentPerform(iterations: count) { index in work.value(index) }
}

/// A value handed to worker threads; each thread touches only its own sub-environment.
private struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Per-index result slots written by distinct threads (disjoint indices, joined before reading).
private final class UnsafeResults<T>: @unchecked Sendable {
    var values: [Result<T, Error>?]
    private let lock = NSLock()
    init(count: Int) { values = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ value: Result<T, Error>) {
        lock.lock()
        values[index] = value
        lock.unlock()
    }

    /// The values in index order; throws the first failure, naming its sub-environment.
    func unwrapped() throws -> [T] {
        var output: [T] = []
        output.reserveCapacity(values.count)
        for index in values.indices {
            switch values[index] {
            case let .success(value)?: output.append(value)
            case let .failure(error)?: throw GymError.subEnvironment(index: index, underlying: "\(error)")
            case nil: preconditionFailure("VectorEnvironment: sub-environment \(index) produced no result")
            }
        }
        return output
    }
}

/// An environment whose instances step together more cheaply than one by one (e.g. by batching
/// the calls of all of them to one model). `VectorEnvironment` uses `step(batch:actions:)` when its
/// environments conform; the result must equal stepping each environment alone.
public protocol BatchSteppingEnvironment: Environment {
    static func step(batch environments: [Self], actions: [Action]) throws -> [Step<Observation>]
}

extension BatchSteppingEnvironment {
    static func erasedStep(_ environments: [Any], _ actions: [Any]) throws -> [Any] {
        try step(batch: environments.map { $0 as! Self }, actions: actions.map { $0 as! Action })
    }
}
