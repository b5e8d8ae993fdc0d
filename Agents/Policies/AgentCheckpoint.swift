import Foundation
import Gym
import TensorCore

/// What identifies an agent's checkpoint: its kind, version and spaces, stored in the
/// safetensors metadata, so that loading a checkpoint into another kind of agent, another
/// version, or an agent for other spaces fails with a clear error instead of loading wrong weights.
public struct AgentIdentity: Sendable, Equatable {
    public var kind: String
    public var version: Int
    public var observationSpace: String
    public var actionSpace: String

    /// The identity of an agent of `kind` and `version` for these spaces (their descriptions).
    public init(kind: String, version: Int, observationSpace: String, actionSpace: String) {
        self.kind = kind
        self.version = version
        self.observationSpace = observationSpace
        self.actionSpace = actionSpace
    }

    /// The metadata entries written with a checkpoint.
    public var metadata: [String: String] {
        ["agent.kind": kind, "agent.version": String(version), "agent.observation_space": observationSpace, "agent.action_space": actionSpace]
    }

    /// Reads `url`'s metadata and throws `AgentError.checkpointMismatch` unless it matches.
    /// Returns the whole metadata.
    @discardableResult
    public func verify(_ url: URL) throws -> [String: String] {
        let stored = try SafeTensorsFile(contentsOf: url).metadata
        for (key, expected) in metadata.sorted(by: { $0.key < $1.key }) where stored[key] != expected {
            throw AgentError.checkpointMismatch(path: url.path, reason: "\(key) is '\(stored[key] ?? "missing")', this agent has '\(expected)'")
        }
        return stored
    }
}
