import Foundation
import TensorCore

/// A neural-network layer or model: something with named parameters.
///
/// Layers are `final class`es called with `callAsFunction`. Each lists its own parameters and
/// children explicitly under stable dotted names (`encoder.layers.0.self_attn.q_proj.weight`), so
/// a model round-trips through safetensors and matches checkpoint key layouts.
public protocol Module: AnyObject, CustomStringConvertible {
    /// Every parameter of this module and its children, in a stable order, with dotted names.
    var namedParameters: [(name: String, parameter: Parameter)] { get }
}

extension Module {
    /// The parameters, without names.
    public var parameters: [Parameter] { namedParameters.map(\.parameter) }

    /// Total number of scalar parameters.
    public var parameterCount: Int { namedParameters.reduce(0) { $0 + $1.parameter.value.count } }

    /// A fingerprint of the parameters: 16 hex digits of FNV-1a (64-bit) over each parameter's
    /// name, shape and values' bit patterns (one 32-bit word per value), in `namedParameters`
    /// order. Equal weights under equal names give the same digest on every machine, however
    /// they were loaded (one file or shards); one changed bit changes it. Records which model
    /// something was trained on (`tprl.json`'s `model_digest`).
    public var parameterDigest: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ word: UInt64) { hash = (hash ^ word) &* 0x100_0000_01b3 }
        for (name, parameter) in namedParameters {
            for byte in name.utf8 { mix(UInt64(byte)) }
            mix(0xff)
            for dimension in parameter.value.shape { mix(UInt64(dimension)) }
            mix(0xfe)
            parameter.value.withUnsafeBufferPointer { values in
                for value in values { mix(UInt64(value.bitPattern)) }
            }
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// Clears every parameter's accumulated gradient.
    public func zeroGradients() { for (_, parameter) in namedParameters { parameter.zeroGradient() } }

    /// The parameter values by name.
    public func stateDictionary() -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: namedParameters.map { ($0.name, $0.parameter.value) })
    }

    /// Loads parameter values by name. Strict: a missing key, an unexpected key or a wrong shape
    /// throws an error naming the key (and `source`, typically the file).
    public func load(_ state: [String: Tensor], source: String = "state dictionary", strict: Bool = true) throws {
        let named = namedParameters
        let known = Set(named.map(\.name))
        if strict, let unexpected = state.keys.filter({ !known.contains($0) }).sorted().first {
            throw ModuleError.unexpectedKey(source: source, key: unexpected)
        }
        for (name, parameter) in named {
            guard let value = state[name] else {
                if strict { throw ModuleError.missingKey(source: source, key: name) }
                continue
            }
            guard value.shape == parameter.shape else {
                throw ModuleError.shapeMismatch(source: source, key: name, expected: parameter.shape, actual: value.shape)
            }
            parameter.value = value
        }
    }

    /// Saves the parameters as a safetensors file (atomically).
    public func save(to url: URL, metadata: [String: String] = [:]) throws {
        var writer = SafeTensorsWriter(metadata: metadata)
        for (name, parameter) in namedParameters { writer.add(name, parameter.value) }
        try writer.write(to: url)
    }

    /// Loads parameters from a safetensors file (strict by default).
    public func load(from url: URL, strict: Bool = true) throws {
        let file = try SafeTensorsFile(contentsOf: url)
        var state: [String: Tensor] = [:]
        for name in file.tensorNames { state[name] = try file.tensor(name) }
        try load(state, source: url.path, strict: strict)
    }
}

/// Prefixes child parameter names: `prefix + "." + name`.
public func scoped(_ prefix: String, _ module: Module) -> [(name: String, parameter: Parameter)] {
    module.namedParameters.map { (prefix + "." + $0.name, $0.parameter) }
}

/// Loading parameters failed: which tensor, and why.
public enum ModuleError: Error, CustomStringConvertible, Equatable {
    case missingKey(source: String, key: String)
    case unexpectedKey(source: String, key: String)
    case shapeMismatch(source: String, key: String, expected: [Int], actual: [Int])

    public var description: String {
        switch self {
        case let .missingKey(source, key): "\(source): missing parameter '\(key)'"
        case let .unexpectedKey(source, key): "\(source): unexpected parameter '\(key)' (not in the model; wrong architecture or configuration?)"
        case let .shapeMismatch(source, key, expected, actual): "\(source): parameter '\(key)' has shape \(actual), the model expects \(expected)"
        }
    }
}

/// Parameters of a training step: whether dropout is active and the generator it draws from.
/// Passing `nil` where a context is expected means evaluation mode.
public final class TrainingContext {
    /// The generator dropout draws from.
    public var generator: SeededGenerator
    /// A training context with its own generator.
    public init(generator: SeededGenerator) { self.generator = generator }
    public convenience init(seed: UInt64) { self.init(generator: SeededGenerator(seed: seed)) }
}
