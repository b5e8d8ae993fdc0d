import Foundation

/// Replays recorded episodes: for each JSON line with `env`, `initial_state` and `actions` (and
/// optionally `seed`), makes the environment, resets it to the initial state, applies the
/// actions, and records PruneGym's own `steps` (`obs`, `reward`, `terminated`, `truncated`).
/// The schema is the one of `Tests/Fixtures/gymnasium/reference-episodes.jsonl`.
public enum EpisodeReplay {
    /// One replayed step.
    public struct Step: Sendable, Equatable {
        /// The observation after the step.
        public var observation: SpaceValue
        /// The reward of the step.
        public var reward: Double
        /// Whether the step ended the episode in a terminal state.
        public var terminated: Bool
        /// Whether the step ended the episode by truncation.
        public var truncated: Bool
    }

    /// One input line, parsed.
    public struct Episode: Sendable {
        /// The registered id the episode was recorded on.
        public var environment: String
        /// The reset seed, if the recorder used one.
        public var seed: UInt64?
        /// The environment's internal state after reset (replayed through `ResetOptions.initialState`).
        public var initialState: [Double]
        /// Actions as written in the file.
        public var actions: [ActionValue]
        /// The JSONL line the episode came from (for error messages).
        public var lineNumber: Int
        /// The steps recorded in the file, when it has them.
        public var recordedSteps: [Step]?

    }

    /// An action as JSON has it: an integer, a number, or an array of numbers.
    public enum ActionValue: Sendable, Equatable, CustomStringConvertible, Decodable {
        case integer(Int)
        case number(Double)
        case array([Double])

        public var description: String {
            switch self {
            case let .integer(value): return "\(value)"
            case let .number(value): return "\(value)"
            case let .array(values): return "[" + values.map { "\($0)" }.joined(separator: ", ") + "]"
            }
        }

        public init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let value = try? container.decode(Int.self) { self = .integer(value); return }
            if let value = try? container.decode(Double.self) { self = .number(value); return }
            if let values = try? container.decode([Double].self) { self = .array(values); return }
            throw DecodingError.typeMismatch(ActionValue.self, .init(codingPath: decoder.codingPath, debugDescription: "an action must be a number or an array of numbers"))
        }
    }

    /// A malformed JSONL line: its number and what was wrong.
    public struct LineError: Error, CustomStringConvertible {
        /// 1-based line number.
        public var lineNumber: Int
        /// What was wrong with it.
        public var reason: String
        public var description: String { "line \(lineNumber): \(reason)" }
    }

    /// Parses one line; throws `LineError` naming the line and what is wrong.
    ///
    /// Uses `JSONDecoder`, which parses numbers correctly rounded; Foundation's
    /// `JSONSerialization` on Linux can be off by a few ULPs, enough to make a chaotic 500-step
    /// CartPole episode diverge.
    public static func parse(_ line: String, lineNumber: Int) throws -> Episode {
        struct RecordedStep: Decodable {
            var obs: [Double]
            var reward: Double
            var terminated: Bool
            var truncated: Bool
        }
        struct Line: Decodable {
            var env: String
            var seed: UInt64?
            var initial_state: [Double]
            var actions: [ActionValue]
            var steps: [RecordedStep]?
        }
        let decoded: Line
        do { decoded = try JSONDecoder().decode(Line.self, from: Data(line.utf8)) } catch let error as DecodingError {
            let reason: String
            switch error {
            case let .keyNotFound(key, _): reason = "missing field '\(key.stringValue)'"
            case let .typeMismatch(_, context), let .valueNotFound(_, context):
                reason = "field '\(context.codingPath.map(\.stringValue).joined(separator: "."))': \(context.debugDescription)"
            case let .dataCorrupted(context):
                reason = context.codingPath.isEmpty ? "not valid JSON" : "field '\(context.codingPath.map(\.stringValue).joined(separator: "."))': \(context.debugDescription)"
            @unknown default: reason = "\(error)"
            }
            throw LineError(lineNumber: lineNumber, reason: reason)
        }
        return Episode(
            environment: decoded.env, seed: decoded.seed, initialState: decoded.initial_state, actions: decoded.actions,
            lineNumber: lineNumber,
            recordedSteps: decoded.steps?.map { Step(observation: .real($0.obs.map { Float($0) }), reward: $0.reward, terminated: $0.terminated, truncated: $0.truncated) })
    }

    /// Replays `episode` in a fresh environment from `registry`.
    public static func replay(_ episode: Episode, registry: EnvironmentRegistry) throws -> [Step] {
        let environment: any Environment
        do { environment = try registry.make(episode.environment) } catch {
            throw LineError(lineNumber: episode.lineNumber, reason: "\(error)")
        }
        return try replay(episode, in: environment)
    }

    static func replay<E: Environment>(_ episode: Episode, in environment: E) throws -> [Step] {
        func fail(_ reason: String) -> LineError { LineError(lineNumber: episode.lineNumber, reason: reason) }
        do {
            _ = try environment.reset(seed: episode.seed, options: ResetOptions(initialState: episode.initialState))
        } catch { throw fail("\(error)") }
        var steps: [Step] = []
        for (index, json) in episode.actions.enumerated() {
            guard let value = spaceValue(json, for: environment.actionSpace.descriptor),
                  let action = environment.actionSpace.element(from: value) else {
                throw fail("action \(index) (\(json)) does not fit the action space \(environment.actionSpace)")
            }
            let step: Gym.Step<E.Observation>
            do { step = try environment.step(action) } catch { throw fail("step \(index): \(error)") }
            steps.append(Step(observation: environment.observationSpace.erase(step.observation), reward: step.reward,
                              terminated: step.terminated, truncated: step.truncated))
            if step.isDone && index != episode.actions.count - 1 {
                throw fail("the episode ended at step \(index) but \(episode.actions.count - index - 1) actions remain")
            }
        }
        return steps
    }

    /// A JSON action as a value of a space of this kind (`nil` if it does not fit).
    static func spaceValue(_ json: ActionValue, for descriptor: SpaceDescriptor) -> SpaceValue? {
        switch (descriptor, json) {
        case let (.discrete, .integer(value)): return .integer(value)
        case let (.box, .integer(value)): return .real([Float(value)])
        case let (.box, .number(value)): return .real([Float(value)])
        case let (.box, .array(values)): return .real(values.map { Float($0) })
        case let (.multiBinary, .array(values)) where values.allSatisfy({ $0 == 0 || $0 == 1 }): return .binary(values.map { $0 == 1 })
        case let (.multiDiscrete, .array(values)) where values.allSatisfy({ $0 == $0.rounded() }): return .integers(values.map { Int($0) })
        default: return nil
        }
    }

    /// The output line: the input's fields with PruneGym's `steps`.
    public static func encode(_ episode: Episode, steps: [Step]) -> String {
        func number(_ value: Double) -> String { value.isFinite ? "\(value)" : "null" }
        func observation(_ value: SpaceValue) -> String {
            switch value {
            case let .real(values): return "[" + values.map { number(Double($0)) }.joined(separator: ", ") + "]"
            case let .integer(value): return "\(value)"
            case let .binary(values): return "[" + values.map { $0 ? "1" : "0" }.joined(separator: ", ") + "]"
            case let .integers(values): return "[" + values.map(String.init).joined(separator: ", ") + "]"
            default: return "null"
            }
        }
        let actions = "[" + episode.actions.map(\.description).joined(separator: ", ") + "]"
        var fields = ["\"env\": \"\(episode.environment)\""]
        if let seed = episode.seed { fields.append("\"seed\": \(seed)") }
        fields.append("\"initial_state\": [" + episode.initialState.map(number).joined(separator: ", ") + "]")
        fields.append("\"actions\": " + actions)
        let stepText = steps.map { step in
            "{\"obs\": \(observation(step.observation)), \"reward\": \(number(step.reward)), \"terminated\": \(step.terminated), \"truncated\": \(step.truncated)}"
        }
        fields.append("\"steps\": [" + stepText.joined(separator: ", ") + "]")
        return "{" + fields.joined(separator: ", ") + "}"
    }
}
