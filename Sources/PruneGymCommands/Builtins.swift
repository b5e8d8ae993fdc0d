import BehaviorCloning
import ClassicControl
import Foundation
import Gym
import PPO
import Policies
import TensorCore
import TokenPruning

/// The environments the CLI knows by name.
func builtInRegistry() throws -> EnvironmentRegistry {
    var registry = EnvironmentRegistry()
    try ClassicControl.register(in: &registry)
    try TokenPruningEnvironment.register(in: &registry)
    return registry
}

/// Agents the CLI trains by name: the registry's on-policy learners, behaviour cloning, random.
var agentNames: [String] { agentRegistry.names + ["bc", "random"] }

/// A run's `config.json`: everything needed to rebuild the run.
struct RunConfiguration: Codable, Equatable {
    var prunegymVersion: String
    var environment: String
    var agent: String
    var steps: Int
    var seed: UInt64
    var vector: String
    var checkpointInterval: Int
    var ppo: PPOConfiguration?
    var bc: BehaviorCloningConfiguration?
    var expertEpisodes: Int?
    /// The settings (JSON text) of a registered agent other than ppo, as given with --config.
    var agentConfiguration: String?

    enum CodingKeys: String, CodingKey {
        case prunegymVersion = "prunegym_version", environment = "env", agent, steps, seed, vector
        case checkpointInterval = "checkpoint_interval", ppo, bc, expertEpisodes = "expert_episodes", agentConfiguration = "agent_config"
    }

    /// The JSON settings handed to the agent's factory.
    func factoryConfiguration() throws -> Data? {
        if agent == "ppo", let ppo { return try JSONEncoder().encode(ppo) }
        return agentConfiguration.map { Data($0.utf8) }
    }

    /// The same run, ignoring what may change on resume (version, total steps).
    func isSameRun(as other: RunConfiguration) -> Bool {
        var a = self, b = other
        a.prunegymVersion = ""; b.prunegymVersion = ""
        a.steps = 0; b.steps = 0
        return a == b
    }
}

/// Reads a JSON file of type `T`, with errors that name the file. A run's `config.json` may be
/// passed as it is: its `prunegym` provenance object is ignored.
func readJSON<T: Decodable>(_ type: T.Type, from path: String) throws -> T {
    try decodeJSON(type, from: try settingsData(path, over: nil), path: path)
}

/// Reads a JSON object of settings over `base`: a key the file leaves out keeps `base`'s value
/// (an environment's preset, say), one it names replaces it, and one `T` does not know is refused
/// as `readJSON` refuses it.
func readJSON<T: Codable>(_ type: T.Type, from path: String, over base: T) throws -> T {
    let encoded = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(base)) as? [String: Any]
    return try decodeJSON(type, from: try settingsData(path, over: encoded), path: path)
}

/// The file's bytes, without a `prunegym` provenance object, and laid over `base` when it is a
/// JSON object and `base` is given.
private func settingsData(_ path: String, over base: [String: Any]?) throws -> Data {
    var data: Data
    do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
        throw FileError(path: path, reason: "cannot read the file (\(FileError.systemReason(error)))")
    }
    if var object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], object[RunProvenance.key] != nil || base != nil {
        object.removeValue(forKey: RunProvenance.key)
        if let base { object = base.merging(object) { _, file in file } }
        data = try JSONSerialization.data(withJSONObject: object)
    }
    return data
}

private func decodeJSON<T: Decodable>(_ type: T.Type, from data: Data, path: String) throws -> T {
    do { return try JSONDecoder().decode(type, from: data) } catch {
        throw FileError(path: path, reason: JSONSyntax.describe(error, of: data))
    }
}

/// Builds the agent named in `config` for an environment's spaces.
func makeAgent<O: Sendable, A: Sendable>(
    _ config: RunConfiguration, observationSpace: any Space<O>, actionSpace: any Space<A>
) throws -> any Agent<O, A> {
    let request = AgentRequest(observationSpace: observationSpace, actionSpace: actionSpace, environmentID: config.environment,
                               seed: config.seed, configuration: try config.factoryConfiguration())
    switch config.agent {
    case "bc": return try BehaviorCloningAgent(observationSpace: observationSpace, actionSpace: actionSpace, configuration: config.bc ?? .init(), seed: config.seed, maskRange: request.maskRange)
    case "random": return RandomAgent(actionSpace: actionSpace, seed: config.seed)
    default:
        guard agentRegistry.contains(config.agent) else { throw UsageError(message: "unknown agent '\(config.agent)'; agents: \(agentNames.joined(separator: ", "))") }
        return try agentRegistry.make(config.agent, request)
    }
}

/// A fresh copy of an environment of type `E` from the registry.
func makeEnvironment<E: Environment>(_ id: String, as type: E.Type, registry: EnvironmentRegistry) throws -> E {
    let environment = try registry.make(id)
    guard let typed = environment as? E else { throw UsageError(message: "environment '\(id)' built a \(environment.name), expected \(E.self)") }
    return typed
}


/// `model-digest.txt` in a run directory: the weight digest (`VisionLanguageModel.weightDigest`)
/// of the model whose visual tokens the run's agent learned. A run of `prunegym train` on
/// `TokenPruning-v0` or of `tprl train` writes it; resuming, evaluating or rerunning such a run on
/// another model is refused or noted instead of quietly using weights the agent never saw.
enum ModelDigestFile {
    static let name = "model-digest.txt"

    /// The digest `run` records, if any.
    static func recorded(in run: URL) -> String? {
        (try? String(contentsOf: run.appendingPathComponent(name), encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Records `digest` in `run` (nothing for a model that cannot say).
    static func record(_ digest: String?, in run: URL) throws {
        if let digest { try AtomicFile.write(Data((digest + "\n").utf8), to: run.appendingPathComponent(name)) }
    }

    /// The digest `run` records when it is not `digest`; nil when they agree or either cannot say.
    static func otherModel(in run: URL, than digest: String?) -> String? {
        guard let digest, let recorded = recorded(in: run), recorded != digest else { return nil }
        return recorded
    }

    /// The weight digest of the model behind `environment`, when it is a token-pruning environment.
    static func digest(of environment: any Environment) -> String? {
        (environment as? TokenPruningEnvironment)?.simulator.model.weightDigest
    }
}
