import Foundation

/// What the registry knows about an environment id (Gymnasium's `EnvSpec`).
public struct EnvironmentSpec: Sendable, Codable, Equatable {
    /// `[namespace/]Name-vN`.
    public var id: String
    /// Episodes are truncated after this many steps by a `TimeLimit` that `make` adds; nil for none.
    public var maxEpisodeSteps: Int?
    /// The return at which the task counts as solved.
    public var rewardThreshold: Double?
    /// True when the same seed does not reproduce a trajectory (the checker then skips that rule).
    public var nondeterministic: Bool
    /// One line on what the environment is.
    public var summary: String

    /// A registry entry; `maxEpisodeSteps` adds a `TimeLimit` in `make`.
    public init(id: String, maxEpisodeSteps: Int? = nil, rewardThreshold: Double? = nil, nondeterministic: Bool = false, summary: String = "") {
        self.id = id
        self.maxEpisodeSteps = maxEpisodeSteps
        self.rewardThreshold = rewardThreshold
        self.nondeterministic = nondeterministic
        self.summary = summary
    }
}

/// Named options passed to an environment's constructor by `make` (Gymnasium's `**kwargs`).
public typealias EnvironmentOptions = [String: InfoValue]

/// Environments by id: `register` a constructor with its spec, `make` an instance wrapped in a
/// `TimeLimit` of the spec's length (Gymnasium's `register`/`make`/`spec`).
///
/// A value type with no global instance: each module that ships environments offers a function
/// that registers them (e.g. `ClassicControl.register(in:)`), and a program builds the registry
/// it needs. Users register their own environments the same way.
public struct EnvironmentRegistry: Sendable {
    /// Builds an environment from its options.
    public typealias Constructor = @Sendable (EnvironmentOptions) throws -> any Environment

    private var entries: [String: (spec: EnvironmentSpec, constructor: Constructor)] = [:]

    /// An empty registry.
    public init() {}

    /// Registers `constructor` under `spec.id`. Throws if the id is taken.
    public mutating func register(_ spec: EnvironmentSpec, _ constructor: @escaping Constructor) throws {
        guard entries[spec.id] == nil else { throw GymError.duplicateRegistration(id: spec.id) }
        entries[spec.id] = (spec, constructor)
    }

    /// Every registered id, sorted.
    public var ids: [String] { entries.keys.sorted() }

    /// The spec registered under `id`.
    public func spec(_ id: String) throws -> EnvironmentSpec {
        guard let entry = entries[id] else { throw unknown(id) }
        return entry.spec
    }

    /// A new instance of `id`, in a `TimeLimit` when the spec has `maxEpisodeSteps`
    /// (`maxEpisodeSteps` here overrides it; 0 leaves the limit out).
    public func make(_ id: String, options: EnvironmentOptions = [:], maxEpisodeSteps: Int? = nil) throws -> any Environment {
        guard let entry = entries[id] else { throw unknown(id) }
        let environment = try entry.constructor(options)
        guard let limit = maxEpisodeSteps ?? entry.spec.maxEpisodeSteps, limit > 0 else { return environment }
        return Self.timeLimited(environment, limit)
    }

    private static func timeLimited<E: Environment>(_ environment: E, _ limit: Int) -> any Environment {
        TimeLimit(environment, maxEpisodeSteps: limit)
    }

    private func unknown(_ id: String) -> GymError {
        // Suggest the registered ids that share the name, so a wrong version gets a helpful hint.
        let similar = ids.filter { Self.sharesName($0, with: id) }
        return GymError.unknownEnvironment(id: id, known: similar.isEmpty ? ids : similar)
    }

    /// Whether `registered` begins with the name of `id` (its part before the first `-`, any case):
    /// `CartPole-v1` for `CartPole-v0` or `cartpole`.
    static func sharesName(_ registered: String, with id: String) -> Bool {
        let name = id.split(separator: "-").first.map(String.init) ?? id
        return registered.lowercased().hasPrefix(name.lowercased())
    }

    /// A table of ids, limits and summaries (Gymnasium's `pprint_registry`).
    public var listing: String {
        ids.map { id in
            let spec = entries[id]!.spec
            let limit = spec.maxEpisodeSteps.map { "\($0) steps" } ?? "no limit"
            let threshold = spec.rewardThreshold.map { "solved at \($0)" } ?? ""
            return "\(id.padding(toLength: 18, withPad: " ", startingAt: 0)) \(limit.padding(toLength: 12, withPad: " ", startingAt: 0)) \(threshold.padding(toLength: 16, withPad: " ", startingAt: 0)) \(spec.summary)"
        }.joined(separator: "\n")
    }
}
