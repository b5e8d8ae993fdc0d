import Foundation
import TensorCore

/// A training recipe in stages, as the built-in model was trained
/// (`models/shapes-llava/training/recipe.json`): each stage trains with a configuration of its own,
/// most of them continuing the same run from its last checkpoint as the recipe grew, and a stage
/// may start a run of its own from an earlier stage's model instead (`init`).
///
/// `prunegym vlm train --recipe FILE` runs the stages in order, records each finished one in the
/// run directory (`recipe-progress.json`), and on a rerun skips what is done and resumes the stage
/// that was interrupted. JSON keys: `stages`, and for each stage `config` (a training
/// configuration file, relative to the recipe's), `samples` (where the stage's schedule ends;
/// it overrides the configuration's), `stop_after` (stop there with a checkpoint for the next
/// stage to continue), `model` (a name: the stage's model directory is kept as RUN/models/NAME),
/// `init` (the name of an earlier stage's model this stage starts from) and `run` (this stage's
/// run directory is RUN-NAME instead of RUN; required with `init`).
public struct VLMTrainingRecipe: Codable, Sendable, Equatable {
    /// One stage of a recipe.
    public struct Stage: Codable, Sendable, Equatable {
        /// The stage's training configuration file, relative to the recipe file.
        public var config: String
        /// Where the stage's learning-rate schedule ends, in samples (replaces the file's `samples`).
        public var samples: Int
        /// `stop_after`: stop once this many samples are done, leaving a checkpoint.
        public var stopAfter: Int?
        /// `model`: keep the stage's model directory under this name (RUN/models/NAME).
        public var model: String?
        /// `init`: start from the model an earlier stage kept under this name, in a run of its own.
        public var initialModel: String?
        /// `run`: the stage trains in RUN-NAME instead of RUN.
        public var run: String?

        /// A stage; see the type's documentation for each field.
        public init(config: String, samples: Int, stopAfter: Int? = nil, model: String? = nil, initialModel: String? = nil, run: String? = nil) {
            self.config = config
            self.samples = samples
            self.stopAfter = stopAfter
            self.model = model
            self.initialModel = initialModel
            self.run = run
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case config, samples, stopAfter = "stop_after", model, initialModel = "init", run
        }

        /// Decodes a stage, refusing an unknown key by name.
        public init(from decoder: Decoder) throws {
            try UnknownKeys.reject(in: decoder, CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            config = try c.decode(String.self, forKey: .config)
            samples = try c.decode(Int.self, forKey: .samples)
            stopAfter = try c.decodeIfPresent(Int.self, forKey: .stopAfter)
            model = try c.decodeIfPresent(String.self, forKey: .model)
            initialModel = try c.decodeIfPresent(String.self, forKey: .initialModel)
            run = try c.decodeIfPresent(String.self, forKey: .run)
        }
    }

    /// The stages, in the order they run.
    public var stages: [Stage]

    /// A recipe of these stages.
    public init(stages: [Stage]) { self.stages = stages }

    enum CodingKeys: String, CodingKey, CaseIterable { case stages }

    /// Decodes a recipe, refusing an unknown key by name.
    public init(from decoder: Decoder) throws {
        try UnknownKeys.reject(in: decoder, CodingKeys.self)
        stages = try decoder.container(keyedBy: CodingKeys.self).decode([Stage].self, forKey: .stages)
    }

    /// Reads and checks a recipe file and every configuration it names. Throws `VLMError.config`
    /// naming the file (the recipe's or a stage's) and what is wrong with it.
    public static func load(_ url: URL) throws -> (recipe: VLMTrainingRecipe, configurations: [VLMTrainingConfiguration]) {
        let recipe = try VLMError.decodeJSON(VLMTrainingRecipe.self, from: url, unreadable: "cannot read the recipe", prefix: "not a training recipe: ")
        try recipe.validate(path: url.path)
        let directory = url.deletingLastPathComponent()
        let configurations = try recipe.stages.enumerated().map { index, stage -> VLMTrainingConfiguration in
            let file = directory.appendingPathComponent(stage.config)
            var configuration = try VLMError.decodeJSON(VLMTrainingConfiguration.self, from: file,
                                                        unreadable: "cannot read stage configuration '\(stage.config)' of \(url.path)",
                                                        prefix: "not a training configuration: ")
            configuration.samples = stage.samples
            // Checked now, with the recipe's samples, so that a bad last stage fails before the first trains.
            do { try configuration.validate() } catch let VLMError.invalidInput(reason) {
                throw VLMError.config(path: file.path, reason: "\(reason), as stage \(index + 1) of \(url.path)")
            }
            return configuration
        }
        return (recipe, configurations)
    }

    /// Checks the stages' order and references (`path` names the recipe in the error).
    public func validate(path: String) throws {
        func fail(_ reason: String) -> VLMError { .config(path: path, reason: reason) }
        guard !stages.isEmpty else { throw fail("a recipe needs at least one stage") }
        var models: Set<String> = []
        for (index, stage) in stages.enumerated() {
            let name = "stage \(index + 1)"
            guard stage.samples > 0 else { throw fail("\(name): samples is \(stage.samples); it must be positive") }
            if let stop = stage.stopAfter {
                guard stop > 0 && stop < stage.samples else { throw fail("\(name): stop_after \(stop) must lie between 1 and samples (\(stage.samples))") }
                guard index < stages.count - 1 else { throw fail("\(name): the last stage cannot stop early (stop_after); it writes the model") }
            }
            if let initial = stage.initialModel {
                guard models.contains(initial) else {
                    throw fail("\(name): init '\(initial)' names no model an earlier stage keeps (earlier models: \(models.sorted().joined(separator: ", ")))")
                }
                guard stage.run != nil else { throw fail("\(name): a stage that starts from a model (init) needs a run directory of its own (run)") }
            }
            if let model = stage.model {
                guard !model.isEmpty, !model.contains("/"), !models.contains(model) else {
                    throw fail("\(name): model '\(model)' must be a non-empty name without '/', used by one stage only")
                }
                models.insert(model)
            }
        }
    }
}
