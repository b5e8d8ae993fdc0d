import Foundation

/// Errors a user's input can cause in an environment, a space, a wrapper or the registry. Each
/// message names the environment or space involved and says what to do next.
public enum GymError: Error, CustomStringConvertible, Equatable {
    /// The action is not an element of the action space.
    case invalidAction(environment: String, space: String, action: String)
    /// `step` was called before the first `reset`.
    case resetNeeded(environment: String)
    /// `step` was called after `terminated` or `truncated` without a `reset`.
    case episodeFinished(environment: String)
    /// `make` was asked for an id that is not registered.
    case unknownEnvironment(id: String, known: [String])
    /// An environment id was registered twice.
    case duplicateRegistration(id: String)
    /// A reset option is malformed (wrong length, unknown key, …).
    case invalidOption(environment: String, reason: String)
    /// A reward or observation is NaN or infinite.
    case nonFinite(environment: String, what: String)
    /// A sub-environment of a vector environment failed.
    case subEnvironment(index: Int, underlying: String)
    /// Actions for a vector environment do not match its environment count.
    case actionCount(expected: Int, actual: Int)
    /// An environment snapshot cannot be restored.
    case invalidSnapshot(environment: String, reason: String)

    public var description: String {
        switch self {
        case let .invalidAction(environment, space, action):
            return "\(environment): action \(action) is not in the action space \(space)"
        case let .resetNeeded(environment):
            return "\(environment): step() called before reset(); call reset(seed:options:) first"
        case let .episodeFinished(environment):
            return "\(environment): step() called after the episode ended (terminated or truncated); call reset() first"
        case let .unknownEnvironment(id, known):
            // The registry passes the ids that share the name when there are any (a wrong version).
            if !known.isEmpty, known.allSatisfy({ EnvironmentRegistry.sharesName($0, with: id) }) {
                return "no environment registered as '\(id)'; did you mean \(known.joined(separator: " or "))?"
            }
            return "no environment registered as '\(id)'; registered: \(known.joined(separator: ", "))"
        case let .duplicateRegistration(id):
            return "an environment is already registered as '\(id)'; pick another id or version"
        case let .invalidOption(environment, reason):
            return "\(environment): invalid option: \(reason)"
        case let .nonFinite(environment, what):
            return "\(environment): \(what) is not finite"
        case let .subEnvironment(index, underlying):
            return "vector environment, sub-environment \(index): \(underlying)"
        case let .actionCount(expected, actual):
            return "vector environment: got \(actual) actions for \(expected) environments"
        case let .invalidSnapshot(environment, reason):
            return "\(environment): cannot restore snapshot: \(reason)"
        }
    }
}
