import Foundation
import TensorCore

/// A training checkpoint in one safetensors file, written atomically: the model's parameters
/// (`model.<name>`), the optimizer's state (`optimizer.<name>.<slot>`), and in the metadata the
/// optimizer kind, step count and learning rate, named generator states and user metadata.
/// Loading it into a fresh model and optimizer continues training exactly.
public enum Checkpoint {
    static let reservedPrefix = "prunegym."

    public static func save(
        model: Module, optimizer: Optimizer? = nil, generators: [String: SeededGenerator] = [:],
        metadata: [String: String] = [:], to url: URL
    ) throws {
        var info = metadata
        for key in info.keys where key.hasPrefix(reservedPrefix) { info.removeValue(forKey: key) }
        var writer = SafeTensorsWriter()
        for (name, parameter) in model.namedParameters { writer.add("model." + name, parameter.value) }
        if let optimizer {
            info[reservedPrefix + "optimizer.kind"] = optimizer.kind
            info[reservedPrefix + "optimizer.step"] = String(optimizer.stepCount)
            info[reservedPrefix + "optimizer.learning_rate"] = String(optimizer.learningRate.bitPattern)
            for (key, tensor) in optimizer.stateTensors().sorted(by: { $0.key < $1.key }) { writer.add("optimizer." + key, tensor) }
        }
        for (name, generator) in generators {
            info[reservedPrefix + "generator." + name] = generator.stateWords.map(String.init).joined(separator: ",")
        }
        writer.metadata = info
        try writer.write(to: url)
    }

    /// Restores the model (strictly) and the optimizer; returns the generators and user metadata.
    /// Parameters named in `optionalParameters` may be absent from the file (a training head added
    /// after the checkpoint was written): they keep their current values and start with no
    /// optimizer state.
    @discardableResult
    public static func load(
        from url: URL, model: Module, optimizer: Optimizer? = nil, optionalParameters: Set<String> = []
    ) throws -> (generators: [String: SeededGenerator], metadata: [String: String]) {
        let file = try SafeTensorsFile(contentsOf: url)
        var modelState: [String: Tensor] = [:]
        var optimizerState: [String: Tensor] = [:]
        for name in file.tensorNames {
            if name.hasPrefix("model.") { modelState[String(name.dropFirst(6))] = try file.tensor(name) }
            if name.hasPrefix("optimizer.") { optimizerState[String(name.dropFirst(10))] = try file.tensor(name) }
        }
        for (name, parameter) in model.namedParameters where optionalParameters.contains(name) && modelState[name] == nil {
            modelState[name] = parameter.value
        }
        try model.load(modelState, source: url.path)
        if let optimizer {
            let kind = file.metadata[reservedPrefix + "optimizer.kind"] ?? "none"
            guard kind == optimizer.kind else {
                throw OptimizerError.kindMismatch(source: url.path, expected: optimizer.kind, actual: kind)
            }
            let step = Int(file.metadata[reservedPrefix + "optimizer.step"] ?? "0") ?? 0
            try optimizer.loadState(optimizerState, stepCount: step, source: url.path)
            if let bits = file.metadata[reservedPrefix + "optimizer.learning_rate"].flatMap(UInt32.init) {
                optimizer.learningRate = Float(bitPattern: bits)
            }
        }
        var generators: [String: SeededGenerator] = [:]
        var metadata: [String: String] = [:]
        for (key, value) in file.metadata {
            if key.hasPrefix(reservedPrefix + "generator.") {
                let words = value.split(separator: ",").compactMap { UInt64($0) }
                guard words.count == 4, words.contains(where: { $0 != 0 }) else {
                    throw FileError(path: url.path, reason: "generator state '\(key)' is malformed: \(value)")
                }
                generators[String(key.dropFirst((reservedPrefix + "generator.").count))] = SeededGenerator(state: words)
            } else if !key.hasPrefix(reservedPrefix) {
                metadata[key] = value
            }
        }
        return (generators, metadata)
    }
}
