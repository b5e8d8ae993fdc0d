import Foundation
import TensorCore

/// Builds untrained agents of one kind for any environment whose spaces the kind supports — what
/// lets `prunegym train --agent NAME` (and `eval`, `eval-pruning --runs`) use an agent by name.
///
/// A factory for your own agent is a few lines (see `examples/custom-agent`):
///
/// ```swift
/// struct ReinforceFactory: AgentFactory {
///     let name = "reinforce"
///     let summary = "REINFORCE with a learned baseline"
///     func make<O: Sendable, A: Sendable>(_ request: AgentRequest<O, A>) throws -> any OnPolicyAgent<O, A> {
///         try ReinforceAgent(observationSpace: request.observationSpace, actionSpace: request.actionSpace,
///                            seed: request.seed, maskRange: request.maskRange)
///     }
/// }
/// var agents = AgentRegistry.standard   // from PruneGymCommands: ppo
/// try agents.register(ReinforceFactory())
/// ```
public protocol AgentFactory: Sendable {
    /// The name on the command line and in run directories (`ppo`, `reinforce`).
    var name: String { get }
    /// One line for `--help` and error messages.
    var summary: String { get }
    /// A fresh agent for the request's spaces; throws `AgentError.unsupportedSpace` for spaces the
    /// kind cannot handle and `AgentError.invalidConfiguration` for bad settings.
    func make<O: Sendable, A: Sendable>(_ request: AgentRequest<O, A>) throws -> any OnPolicyAgent<O, A>
}

/// What a factory gets: the environment's spaces and id, the seed, and the agent's settings as
/// JSON (nil = the factory's defaults for that environment).
public struct AgentRequest<O: Sendable, A: Sendable> {
    /// The environment's observation space.
    public var observationSpace: any Space<O>
    /// The environment's action space.
    public var actionSpace: any Space<A>
    /// The registered id (`CartPole-v1`, `TokenPruning-v0`), for per-environment presets.
    public var environmentID: String
    /// Seed of every draw the agent makes.
    public var seed: UInt64
    /// The agent's settings as JSON, or nil for its defaults.
    public var configuration: Data?

    /// A request for an agent of these spaces; `configuration` nil asks for the factory's defaults.
    public init(observationSpace: any Space<O>, actionSpace: any Space<A>, environmentID: String, seed: UInt64, configuration: Data? = nil) {
        self.observationSpace = observationSpace
        self.actionSpace = actionSpace
        self.environmentID = environmentID
        self.seed = seed
        self.configuration = configuration
    }

    /// For a `MultiBinary` action and a `Dict` observation with a `mask` entry of the same size
    /// (as in `TokenPruning-v0`), where that validity mask sits in the flat observation row.
    public var maskRange: Range<Int>? {
        guard case let .multiBinary(shape) = actionSpace.descriptor, let dict = observationSpace as? DictSpace else { return nil }
        var offset = 0
        for entry in dict.entries {
            if entry.key == "mask", case let .multiBinary(maskShape) = entry.space.descriptor, maskShape.reduce(1, *) == shape.reduce(1, *) {
                return offset..<(offset + entry.space.flatDimension)
            }
            offset += entry.space.flatDimension
        }
        return nil
    }

    /// Decodes the configuration as `T`, or returns `fallback` when there is none; errors name the agent.
    public func decode<T: Decodable>(_ type: T.Type, agent: String, fallback: T) throws -> T {
        guard let configuration else { return fallback }
        do { return try JSONDecoder().decode(type, from: configuration) } catch {
            throw AgentError.invalidConfiguration(agent: agent, reason: JSONSyntax.describe(error, of: configuration))
        }
    }
}

/// Agents by name. A value with no global instance: build one, register what you need, pass it on.
public struct AgentRegistry: Sendable {
    private var factories: [String: any AgentFactory] = [:]

    /// An empty registry.
    public init() {}

    /// The registered names, sorted.
    public var names: [String] { factories.keys.sorted() }

    /// Adds `factory`; registering a name twice is an error.
    public mutating func register(_ factory: any AgentFactory) throws {
        guard factories[factory.name] == nil else {
            throw AgentError.invalidConfiguration(agent: factory.name, reason: "an agent named '\(factory.name)' is already registered")
        }
        factories[factory.name] = factory
    }

    /// Whether `name` is registered.
    public func contains(_ name: String) -> Bool { factories[name] != nil }

    /// The factory of `name`; an unknown name throws, listing the registered ones.
    public func factory(_ name: String) throws -> any AgentFactory {
        guard let factory = factories[name] else {
            throw AgentError.invalidConfiguration(agent: name, reason: "no agent of this name is registered; registered: \(names.joined(separator: ", "))")
        }
        return factory
    }

    /// Builds a fresh agent `name` for `request`.
    public func make<O: Sendable, A: Sendable>(_ name: String, _ request: AgentRequest<O, A>) throws -> any OnPolicyAgent<O, A> {
        try factory(name).make(request)
    }
}
