import Foundation
import Gym
import NN
import TensorCore
import TokenPruning
import VLM

/// `prunegym vlm …`: the simulator backend.
enum VLMCommand {
    static let help = """
        usage: prunegym vlm <train | run | eval | export | diagnose> [options]     (prunegym vlm <command> --help)

          train     train the built-in ShapesVQA LLaVA model with PruneGym's own autodiff
          run       run a Hugging Face LLaVA checkpoint on inputs from a safetensors file
          eval      accuracy per question family of a model directory, full and with a random 11% of tokens
          export    write the model of a training run's latest checkpoint (e.g. mid-training) as a model directory
          diagnose  where an LLM layer's answer token looks, per head and question family (<bos>, the question's objects, elsewhere)

        example:
          swift run -c release prunegym vlm train --out models/shapes-llava --seed 0
        """

    static func run(_ arguments: [String]) throws {
        switch arguments.first {
        case "train": try train(Array(arguments.dropFirst()))
        case "run": try runModel(Array(arguments.dropFirst()))
        case "eval": try evaluate(Array(arguments.dropFirst()))
        case "export": try exportCheckpoint(Array(arguments.dropFirst()))
        case "diagnose": try diagnose(Array(arguments.dropFirst()))
        case nil, "--help", "-h": print(help)
        case let other?:
            let commands = ["train", "run", "eval", "export", "diagnose"]
            let guess = nearestName(to: other, among: commands).map { " (did you mean \($0)?)" } ?? ""
            throw UsageError(message: "prunegym vlm: unknown command '\(other)'\(guess); commands: \(commands.joined(separator: ", "))")
        }
    }

    static let trainHelp = """
        usage: prunegym vlm train --out DIR [--seed S] [--run-dir RUN] [--recipe FILE | --config FILE.json | --samples N]
                                  [--stop-after N] [--init MODEL] [--quiet]

        Trains the built-in LLaVA-architecture model on ShapesVQA (a dense vision objective first,
        then answers), evaluating each question family on the validation split as it goes
        (metrics.csv and training-curve.svg in RUN; metrics.csv also records the share of the
        objects' centres among the top third of the tokens by the tower's class attention, what
        the pruners before the LLM rank by; "class_weight": W trains the class token to find every
        object), checkpointing so that a rerun resumes, and finally
        writes DIR in the Hugging Face layout (config.json, model.safetensors, vocab.txt) with the
        test-split accuracy per family in DIR/results.json.

        Without --recipe, --config or --samples it reproduces the built-in model: the recipe in
        models/shapes-llava/training/recipe.json: two stages, 440k samples with the class-token
        objective (class_weight 0.3; the model is kept as 440k, models/shapes-llava-440k), then a
        48k-sample fine-tune on the subsets FastV picks inside the LLM; about 2 h 9 min on 2
        cores, 96.5% on test. A recipe of several
        stages records each finished one in RUN, so a rerun skips it and resumes the stage it
        stopped in (models/shapes-llava-nine-stage/training/recipe.json: the nine stages, 984k
        samples and about 6 hours, that made the built-in model through release 0.7.15).
        --config, --samples, --stop-after or --init trains one stage instead (by default today's
        recipe at peak 5e-4, every probe from the start: 120k samples, about 45 minutes, 68% on
        test). examples/vlm-two-hours.json is the built-in recipe without the class-token
        objective (models/shapes-llava-2h), examples/vlm-two-hours-class.json with it at weight 1
        (models/shapes-llava-2h-class).

        options:
          --out DIR          model directory to write (default models/shapes-llava)
          --seed S           seed (default 0; with a recipe, every stage's)
          --run-dir RUN      training run directory (default runs/vlm-train-<seed>)
          --recipe FILE      a staged recipe (stages of configuration files; see VLMTrainingRecipe)
          --config FILE      one stage: VLMTrainingConfiguration keys (samples, batch_size, learning_rate, …);
                             a key left out keeps today's recipe, e.g. {"learning_rate": 0.001}
          --samples N        one stage: training samples (overrides the config)
          --stop-after N     stop (with a checkpoint, without writing DIR) once N samples are done;
                             a later run continues from there, e.g. with another --config
          --init MODEL       start from the weights of a model directory (Hugging Face layout) instead
                             of fresh ones: training begins at the config's schedule_start (the
                             samples MODEL saw), with fresh objective heads and optimizer; a run
                             that has a checkpoint resumes it instead

        examples:
          swift run -c release prunegym vlm train --out models/shapes-llava --seed 0   # the built-in model, ~2 h 9 min
          swift run -c release prunegym vlm train --recipe models/shapes-llava-nine-stage/training/recipe.json --out runs/nine-stage   # ~6 h
          swift run -c release prunegym vlm train --samples 120000 --out runs/shapes-llava-1stage
          swift run -c release prunegym vlm train --config examples/vlm-two-hours.json --out runs/shapes-llava-2h   # ~2 h
          swift run -c release prunegym vlm train --config examples/vlm-fine-tune-llm-cut.json --init models/shapes-llava-440k --out runs/fine-tune   # ~13 min
        """

    static func train(_ arguments: [String]) throws {
        let args = try Arguments(command: "vlm train", arguments, flags: ["quiet"],
                                 options: ["out", "seed", "run-dir", "config", "samples", "stop-after", "init", "recipe"])
        if args.flag("help") { print(trainHelp); return }
        let out = URL(fileURLWithPath: args.string("out", default: "models/shapes-llava"))
        let oneStageOptions = ["config", "samples", "stop-after", "init"].filter { args.values[$0] != nil }
        if oneStageOptions.isEmpty || args.values["recipe"] != nil {
            guard oneStageOptions.isEmpty else {
                throw UsageError(message: "vlm train: --recipe runs the stages its file names; leave out \(oneStageOptions.map { "--" + $0 }.joined(separator: ", ")) (options of a one-stage run)")
            }
            let recipe = URL(fileURLWithPath: args.string("recipe", default: builtinRecipe.path))
            guard FileManager.default.fileExists(atPath: recipe.path) else {
                throw UsageError(message: "vlm train: no recipe at \(recipe.path); run from the repository root (or set PRUNEGYM_MODELS), pass --recipe FILE, or train one stage with --config FILE or --samples N")
            }
            let seed = args.values["seed"] == nil ? nil : UInt64(try args.integer("seed", default: 0, range: 0...Int.max))
            let run = URL(fileURLWithPath: args.string("run-dir", default: "runs/vlm-train-\(seed ?? 0)"))
            try trainRecipe(recipe, seed: seed, out: out, run: run, quiet: args.flag("quiet"))
            return
        }
        var configuration = args.string("config", default: "").isEmpty ? VLMTrainingConfiguration() : try readJSON(VLMTrainingConfiguration.self, from: args.string("config", default: ""))
        configuration.seed = UInt64(try args.integer("seed", default: Int(configuration.seed)))
        configuration.samples = try args.integer("samples", default: configuration.samples, range: 1...100_000_000)
        let run = RunDirectory(URL(fileURLWithPath: args.string("run-dir", default: "runs/vlm-train-\(configuration.seed)")))
        let stopAfter = args.values["stop-after"] == nil ? nil : try args.integer("stop-after", default: 0, range: 1...100_000_000)
        let initial = args.values["init"].map { URL(fileURLWithPath: $0) }
        if !args.flag("quiet") {
            let changed = changes(from: VLMTrainingConfiguration(), to: configuration)
            print("one stage of \(configuration.samples) samples, seed \(configuration.seed): today's recipe"
                  + (changed.isEmpty ? "" : " with " + changed.joined(separator: ", ")))
        }
        try trainModel(configuration, out: out, run: run, quiet: args.flag("quiet"), stopAfter: stopAfter, initial: initial)
    }

    /// The settings of `configuration` that differ from `base`'s, as `key value` in key order
    /// (samples and seed aside), so that a run says what it trains before it starts.
    static func changes(from base: VLMTrainingConfiguration, to configuration: VLMTrainingConfiguration) -> [String] {
        let (before, after) = (flatSettings(base), flatSettings(configuration))
        return after.keys.sorted().filter { $0 != "samples" && $0 != "seed" && before[$0] != after[$0] }.map { "\($0) \(after[$0]!)" }
    }

    /// The file in a recipe's run directory that lists its finished stages.
    static let recipeProgressFile = "recipe-progress.json"

    /// The file in a run directory that says why its config.json alone does not replay it (one
    /// line per reason: started from another model, continued with another configuration).
    static let stagedMarkerFile = "staged-training.txt"

    /// The recipe of the shipped model.
    static var builtinRecipe: URL {
        BuiltinSimulator.modelsDirectory.appendingPathComponent("shapes-llava/training/recipe.json")
    }

    /// Runs the stages of the recipe in `file` in order (see `VLMTrainingRecipe`): each in RUN or
    /// its own RUN-NAME, the kept models in RUN/models, the last one written to `out`. Finished
    /// stages are listed in RUN/recipe-progress.json and skipped on a rerun.
    static func trainRecipe(_ file: URL, seed: UInt64?, out: URL, run: URL, quiet: Bool) throws {
        var (recipe, configurations) = try VLMTrainingRecipe.load(file)
        if let seed { for index in configurations.indices { configurations[index].seed = seed } }
        let progressURL = run.appendingPathComponent(recipeProgressFile)
        struct Progress: Codable { var stages: [VLMTrainingRecipe.Stage]; var seeds: [UInt64]; var finished: [Int]; var model: String? }
        var progress = Progress(stages: recipe.stages, seeds: configurations.map(\.seed), finished: [], model: nil)
        if FileManager.default.fileExists(atPath: progressURL.path) {
            let recorded = try readJSON(Progress.self, from: progressURL.path)
            guard recorded.stages == progress.stages && recorded.seeds == progress.seeds else {
                throw UsageError(message: "vlm train: \(run.path) holds a run of another recipe or seed (\(progressURL.path)); pass another --run-dir, or remove it to start over")
            }
            progress = recorded
        }
        func modelDirectory(_ name: String) -> URL { run.appendingPathComponent("models").appendingPathComponent(name) }
        let count = recipe.stages.count
        print("recipe \(file.path): \(count) stage\(count == 1 ? "" : "s") to \(recipe.stages.last!.samples) samples in \(run.path)"
              + (progress.finished.isEmpty ? "" : "; stages \(progress.finished.map { String($0 + 1) }.joined(separator: ", ")) done"))
        for (index, stage) in recipe.stages.enumerated() where !progress.finished.contains(index) {
            let last = index == count - 1
            let stageRun = stage.run.map { URL(fileURLWithPath: run.path + "-" + $0) } ?? run
            let stageOut = last ? out : modelDirectory(stage.model ?? "stage-\(index + 1)")
            // Where the recipe stands: the samples its earlier stages reached, of the last stage's end.
            let reached = recipe.stages[..<index].map { $0.stopAfter ?? $0.samples }.max() ?? 0
            print("stage \(index + 1) of \(count): \(stage.config) to \(stage.samples) samples"
                  + (stage.stopAfter.map { ", stopping after \($0)" } ?? "") + (stage.initialModel.map { ", from model \($0)" } ?? "")
                  + String(format: " (the recipe %.0f%% done)", 100 * Double(reached) / Double(recipe.stages.last!.samples)))
            try trainModel(configurations[index], out: stageOut, run: RunDirectory(stageRun), quiet: quiet, stopAfter: stage.stopAfter,
                           initial: stage.initialModel.map(modelDirectory))
            progress.finished.append(index)
            if last { progress.model = out.path }
            try AtomicFile.prepareDirectory(run)
            try AtomicFile.write(try JSONEncoder().encode(progress), to: progressURL)
        }
        print("all \(count) stages done; the last one wrote \(progress.model ?? out.path)")
    }

    /// Trains (or resumes) the model of `configuration` in `run` and writes it to `out`; with
    /// `stopAfter`, stops at the first checkpointed step with at least that many samples, without writing `out`.
    /// With `initial`, a run without a checkpoint starts from that model directory's weights.
    static func trainModel(_ configuration: VLMTrainingConfiguration, out: URL, run: RunDirectory, quiet: Bool, stopAfter: Int? = nil,
                           initial: URL? = nil) throws {
        try configuration.validate()
        let trainer = VLMTrainer(configuration: configuration)
        let checkpoint = run.checkpointsURL.appendingPathComponent("trainer.safetensors")
        let resuming = FileManager.default.fileExists(atPath: checkpoint.path)
        if let initial, !resuming {
            guard configuration.scheduleStart > 0 && configuration.scheduleStart < configuration.samples else {
                throw UsageError(message: "vlm train --init starts at the config's schedule_start (the samples \(initial.path) was trained on), which is \(configuration.scheduleStart); set it between 1 and samples (\(configuration.samples))")
            }
            try trainer.initialize(from: try LlavaCheckpoint.load(initial), source: initial.path)
        }
        // The model directory is written at the end: refuse an unwritable one now, not then.
        if stopAfter == nil { try AtomicFile.prepareDirectory(out) }
        try run.create()
        // A run its config.json alone cannot replay: started from another model, or continued
        // from its checkpoint with another configuration (a later stage). `rerun` reads this.
        let previous = resuming ? try? run.readConfig(VLMTrainingConfiguration.self) : nil
        let staged = initial != nil && !resuming ? "started from the model \(initial!.path)"
            : previous.flatMap { $0 == configuration ? nil : "continued from its checkpoint with another configuration" }
        if let staged {
            let marker = run.url.appendingPathComponent(stagedMarkerFile)
            let earlier = (try? String(contentsOf: marker, encoding: .utf8)) ?? ""
            try AtomicFile.write(Data((earlier + staged + "\n").utf8), to: marker)
        }
        try run.writeConfig(configuration, kind: "vlm-train")
        if resuming {
            try trainer.load(from: checkpoint)
            try MetricsLog(url: run.metricsURL).truncate(keepingRowsWhere: "step", atMost: Double(trainer.step))
            print("resuming from step \(trainer.step) of \(trainer.totalSteps)")
        } else if let initial {
            print("starting from \(initial.path) at sample \(trainer.step * configuration.batchSize) of \(configuration.samples)")
        }
        let metrics = try MetricsLog(url: run.metricsURL)
        let progress = quiet ? nil : ProgressBar(total: trainer.totalSteps * configuration.batchSize, label: "vlm", start: trainer.step * configuration.batchSize)
        var recent: [Float] = []
        var answering = false
        var lastAccuracy = "–"
        let lastStep = min(trainer.totalSteps, stopAfter.map { ($0 + configuration.batchSize - 1) / configuration.batchSize } ?? .max)
        while trainer.step < lastStep {
            let losses = try trainer.trainStep()
            let visionOnly = losses.answer.isNaN   // the vision tower trains alone: no answer yet
            if answering == visionOnly { recent.removeAll(); answering = !visionOnly }   // answers begin: the bar's mean starts again
            recent.append(visionOnly ? losses.dense : losses.answer)
            if recent.count > 20 { recent.removeFirst() }
            let step = trainer.step
            if step % configuration.evaluationInterval == 0 || step == trainer.totalSteps {
                let accuracy = try trainer.evaluate(split: .validation, count: configuration.evaluationSamples)
                // No answer has been taught yet while the vision tower trains alone: the row is logged, the bar shows none.
                if !visionOnly { lastAccuracy = String(format: "%.1f%%", 100 * (accuracy["overall"] ?? 0)) }
                var row: [(String, Double)] = [("step", Double(step)), ("samples", Double(step * configuration.batchSize)),
                                               ("loss", Double(losses.total)), ("answer_loss", Double(losses.answer)), ("dense_loss", Double(losses.dense)),
                                               ("relevance_loss", Double(trainer.lastRouting.relevance)), ("attention_loss", Double(trainer.lastRouting.attention)), ("readout_loss", Double(trainer.lastReadout)),
                                               ("relation_loss", Double(trainer.lastRelation)), ("asked_loss", Double(trainer.lastAsked)),
                                               ("anchor_recall", Double(trainer.lastRouting.recall)), ("target_mass_first", Double(trainer.lastRouting.massFirst)),
                                               ("target_mass_second", Double(trainer.lastRouting.massSecond))]
                if configuration.classWeight > 0 { row.append(("class_loss", Double(trainer.lastClassLoss))) }
                for family in ["overall"] + ShapesVQA.Family.allCases.map(\.rawValue) { row.append(("accuracy_\(family)", accuracy[family] ?? .nan)) }
                // What the pruners before the LLM will see: the anchors among the top third by class attention.
                let tower = VLMEvaluation.classAttention(model: trainer.model, dataset: trainer.dataset, count: configuration.evaluationSamples, keeps: [1.0 / 3])
                row.append(("class_attention_anchors_33", tower.anchorRecall[0].recall))
                try metrics.append(row)
                try writeCurve(run)
            }
            if step % configuration.checkpointInterval == 0 || step == trainer.totalSteps || step == lastStep { try trainer.save(to: checkpoint) }
            let mean = recent.reduce(0, +) / Float(max(1, recent.count))
            let r = trainer.lastRouting
            let status = visionOnly
                ? String(format: "dense loss %.3f (the vision tower alone until sample %d)", mean, configuration.visionOnlySamples)
                : String(format: "loss %.3f, recall %.2f, mass %.2f/%.2f, val %@", mean, r.recall, r.massFirst, r.massSecond, lastAccuracy)
            progress?.update(step * configuration.batchSize, status: status)
        }
        if trainer.step < trainer.totalSteps {
            if progress != nil { print("") }
            print("stopped after \(trainer.step * configuration.batchSize) samples (step \(trainer.step) of \(trainer.totalSteps)); the checkpoint is in \(run.checkpointsURL.path), and a run in the same directory continues from it")
            return
        }
        try export(trainer, to: out)
    }

    static func exportCheckpoint(_ arguments: [String]) throws {
        let args = try Arguments(command: "vlm export", arguments, flags: [], options: ["run-dir", "out"])
        if args.flag("help") || args.values["run-dir"] == nil || args.values["out"] == nil {
            print("""
                usage: prunegym vlm export --run-dir RUN --out DIR

                Writes the model in RUN's latest checkpoint (checkpoints/trainer.safetensors) to DIR in the Hugging
                Face layout (config.json, model.safetensors, vocab.txt), e.g. to try a model while it still trains.

                example:
                  swift run -c release prunegym vlm export --run-dir runs/vlm-train-0 --out /tmp/shapes-llava-partial
                """)
            if !args.flag("help") { throw UsageError(message: "vlm export needs --run-dir and --out") }
            return
        }
        let run = RunDirectory(URL(fileURLWithPath: args.string("run-dir", default: "")))
        let configuration = try run.readConfig(VLMTrainingConfiguration.self)
        let trainer = VLMTrainer(configuration: configuration)
        try trainer.load(from: run.checkpointsURL.appendingPathComponent("trainer.safetensors"))
        let out = URL(fileURLWithPath: args.string("out", default: ""))
        try LlavaCheckpoint.save(trainer.model, to: out)
        try trainer.tokenizer.write(to: out.appendingPathComponent("vocab.txt"))
        print("wrote the model of step \(trainer.step) of \(trainer.totalSteps) to \(out.path)")
    }

    static func writeCurve(_ run: RunDirectory) throws {
        let (columns, rows) = try MetricsLog.read(run.metricsURL)
        guard let x = columns.firstIndex(of: "samples") else { return }
        let series = columns.enumerated().filter { $0.element.hasPrefix("accuracy_") }.map { index, name in
            SVGPlot.Series(name: String(name.dropFirst("accuracy_".count)), points: rows.map { (x: $0[x], y: $0[index] * 100) })
        }
        let svg = SVGPlot.lineChart(title: "Built-in VLM: validation accuracy per question family", xLabel: "training samples",
                                    yLabel: "accuracy (%)", series: series)
        try AtomicFile.write(Data(svg.utf8), to: run.url.appendingPathComponent("training-curve.svg"))
        if let loss = columns.firstIndex(of: "loss") {
            let lossSVG = SVGPlot.lineChart(title: "Built-in VLM: training loss", xLabel: "training samples", yLabel: "loss",
                                            series: [.init(name: "loss", points: rows.map { (x: $0[x], y: $0[loss]) })])
            try AtomicFile.write(Data(lossSVG.utf8), to: run.url.appendingPathComponent("loss-curve.svg"))
        }
    }

    /// Writes the model directory and its test accuracy (full and with a random 11% of tokens).
    static func export(_ trainer: VLMTrainer, to out: URL) throws {
        try LlavaCheckpoint.save(trainer.model, to: out)
        try trainer.tokenizer.write(to: out.appendingPathComponent("vocab.txt"))
        let count = trainer.configuration.testSamples
        let full = try trainer.evaluate(split: .test, count: count)
        let pruned = try trainer.evaluate(split: .test, count: count, keepFraction: 1.0 / 9, seed: 1)
        let majority = trainer.dataset.majorityBaseline(split: .test, count: count)
        var results: [String: Any] = ["test_samples": count, "accuracy": full, "accuracy_random_11_percent": pruned]
        results["majority_baseline"] = Dictionary(uniqueKeysWithValues: majority.map { ($0.key.rawValue, $0.value) })
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: results, options: [.prettyPrinted, .sortedKeys]), to: out.appendingPathComponent("results.json"))
        var rows: [[String]] = [["family", "test accuracy", "random 11% of tokens", "majority guess"]]
        for family in ShapesVQA.Family.allCases.map(\.rawValue) + ["overall"] {
            rows.append([family, String(format: "%.1f%%", 100 * (full[family] ?? 0)), String(format: "%.1f%%", 100 * (pruned[family] ?? 0)),
                         ShapesVQA.Family(rawValue: family).flatMap { majority[$0] }.map { String(format: "%.1f%%", 100 * $0) } ?? "–"])
        }
        for row in rows { print(row.map { $0.padding(toLength: 22, withPad: " ", startingAt: 0) }.joined()) }
        print("wrote \(out.path)")
    }

    static func runModel(_ arguments: [String]) throws {
        let args = try Arguments(command: "vlm run", arguments, flags: [], options: ["model", "inputs", "out", "generate"])
        if args.flag("help") {
            print("""
                usage: prunegym vlm run --model DIR --inputs IN.safetensors --out OUT.safetensors [--generate N]

                Reads pixel_values [B,3,H,W], input_ids [B,L] (image placeholder tokens inside) and keep_indices [K]
                from IN and writes image_features, logits, pruned_logits (the language model on prefix, the kept
                image features and suffix, positions 0..n−1) and generated_ids (N greedy tokens, default 5) to OUT.

                example:
                  swift run -c release prunegym vlm run --model Tests/Fixtures/hf-llava-tiny --inputs Tests/Fixtures/hf-llava-tiny/golden.safetensors --out /tmp/out.safetensors
                """)
            return
        }
        let modelPath = args.string("model", default: ""), inputPath = args.string("inputs", default: ""), outPath = args.string("out", default: "")
        guard !modelPath.isEmpty, !inputPath.isEmpty, !outPath.isEmpty else { throw UsageError(message: "prunegym vlm run: --model, --inputs and --out are required (prunegym vlm run --help)") }
        let generateCount = try args.integer("generate", default: 5, range: 1...1000)
        let model = try LlavaCheckpoint.load(URL(fileURLWithPath: modelPath))
        let inputs = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: inputPath))
        let pixels = try inputs.tensor("pixel_values")
        let ids = try inputs.integers("input_ids")
        guard ids.shape.count == 2 else { throw UsageError(message: "\(inputPath): input_ids must be [B, L], got \(ids.shape)") }
        let rows = (0..<ids.shape[0]).map { Array(ids.values[($0 * ids.shape[1])..<(($0 + 1) * ids.shape[1])]) }
        let keep = try inputs.integers("keep_indices").values
        let image = model.configuration.imageTokenIndex
        var writer = SafeTensorsWriter(metadata: ["producer": "prunegym \(PruneGymVersion.current)"])
        do {
            try model.checkPixels(pixels)
            guard pixels.shape[0] == rows.count else {
                throw VLMError.invalidInput(reason: "pixel_values hold \(pixels.shape[0]) images and input_ids \(rows.count) sequences; give one image per sequence")
            }
            try withInferenceMode {
                let features = model.imageFeatures(pixels)
                writer.add("image_features", features)
                writer.add("logits", try model(inputIDs: rows, pixels: pixels))
                let prefix = rows.map { Array($0.prefix { $0 != image }) }
                let suffix = rows.map { row in Array(row.reversed().prefix { $0 != image }.reversed()) }
                writer.add("pruned_logits", try model.prunedLogits(prefix: prefix, imageFeatures: features, keep: keep, suffix: suffix))
                let generated = try model.generate(inputIDs: rows, pixels: pixels, count: generateCount)
                writer.add("generated_ids", integers: generated.flatMap { $0 }, shape: [generated.count, generated.first?.count ?? 0])
            }
        } catch let VLMError.invalidInput(reason) {
            // The inputs file's tensors do not fit the model: name the file.
            throw FileError(path: inputPath, reason: "\(reason) (model \(modelPath))")
        }
        try writer.write(to: URL(fileURLWithPath: outPath))
        print("wrote image_features, logits, pruned_logits, generated_ids to \(outPath)")
    }

    static func evaluate(_ arguments: [String]) throws {
        let args = try Arguments(command: "vlm eval", arguments, flags: [], options: ["model", "samples", "split", "confusion", "answers"])
        if args.flag("help") {
            print("""
                usage: prunegym vlm eval [--model DIR] [--samples N] [--split test|validation] [--confusion FAMILY]
                                         [--answers FILE.csv]

                Accuracy per ShapesVQA question family with all visual tokens and with a random 11% of them.
                --confusion FAMILY (attribute, existence, count, spatial, compare) also prints that family's
                confusion table with all tokens: rows the right answer, columns the model's.
                --answers FILE.csv writes every question with its right answer and the model's (all tokens),
                for error analysis. The first line gives the model's weight digest, which the TPRL policies
                trained on it record (tprl.json's model_digest).

                example:
                  swift run -c release prunegym vlm eval --model models/shapes-llava --samples 1000
                """)
            return
        }
        let directory = URL(fileURLWithPath: args.string("model", default: "models/shapes-llava"))
        let model = try LlavaCheckpoint.load(directory)
        let tokenizer = try WordTokenizer.read(directory.appendingPathComponent("vocab.txt"))
        try tokenizer.check(fits: model.configuration, source: directory.appendingPathComponent("vocab.txt").path)
        let c = model.configuration.vision
        let dataset = ShapesVQA(imageSize: c.imageSize, patchSize: c.patchSize)
        guard let split = ShapesVQA.Split(rawValue: args.string("split", default: "test")) else { throw UsageError(message: "prunegym vlm eval: --split must be train, validation or test") }
        let count = try args.integer("samples", default: 1000, range: 1...1_000_000)
        var confused: ShapesVQA.Family?
        if let name = args.values["confusion"] {
            guard let family = ShapesVQA.Family(rawValue: name) else {
                throw UsageError(message: "prunegym vlm eval: --confusion must be one of \(ShapesVQA.Family.allCases.map(\.rawValue).joined(separator: ", ")), not '\(name)'")
            }
            confused = family
        }
        print("\(args.string("model", default: "models/shapes-llava")): weight digest \(model.parameterDigest) (what a TPRL policy trained on it records as model_digest), \(count) \(split.rawValue) questions")
        var table: [String: [String: Int]] = [:]
        let answersPath = args.values["answers"]
        var rows = ["index,family,question,answer,model_answer,objects"]
        let full = try VLMEvaluation.accuracy(model: model, dataset: dataset, tokenizer: tokenizer, split: split, count: count) { sample, answer in
            if sample.family == confused { table[sample.answer, default: [:]][answer, default: 0] += 1 }
            if answersPath != nil { rows.append("\(rows.count - 1),\(sample.family.rawValue),\"\(sample.question)\",\(sample.answer),\(answer),\(sample.objects.count)") }
        }
        if let path = answersPath {
            try AtomicFile.write(Data((rows.joined(separator: "\n") + "\n").utf8), to: URL(fileURLWithPath: path))
            print("wrote \(rows.count - 1) answers to \(path)")
        }
        let pruned = try VLMEvaluation.accuracy(model: model, dataset: dataset, tokenizer: tokenizer, split: split, count: count, keepFraction: 1.0 / 9, seed: 1)
        for family in ShapesVQA.Family.allCases.map(\.rawValue) + ["overall"] {
            print(family.padding(toLength: 12, withPad: " ", startingAt: 0) + String(format: "%6.1f%%   random 11%%: %6.1f%%", 100 * (full[family] ?? 0), 100 * (pruned[family] ?? 0)))
        }
        if let family = confused {
            print("\n\(family.rawValue): rows the right answer, columns the model's answer (all tokens)")
            let answers = Set(table.keys).union(table.values.flatMap(\.keys)).sorted { a, b in
                switch (Int(a), Int(b)) { case let (x?, y?): return x < y; default: return a < b }
            }
            let width = max(6, (answers.map(\.count).max() ?? 0) + 1)
            func cell(_ text: String) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
            print(cell("") + answers.map(cell).joined())
            for right in answers where table[right] != nil {
                print(cell(right) + answers.map { cell(String(table[right]?[$0] ?? 0)) }.joined())
            }
        }
    }
}

extension VLMCommand {
    /// `prunegym vlm diagnose --model DIR [--count N]`: where the answer token looks, per family.
    static func diagnose(_ arguments: [String]) throws {
        let args = try Arguments(command: "vlm diagnose", arguments, flags: [], options: ["model", "count", "layer"])
        if args.flag("help") {
            print("usage: prunegym vlm diagnose --model DIR [--count N] [--layer L]\n\nPer question family: LLM layer L's attention from the answer token, per head, on <bos>, on the\nanchors (centre patches) of the objects the question is about, on those objects' other patches, and elsewhere.\nThen the vision tower's class attention, the score of the pruners that act before the LLM (cls, vispruner):\nits mass on every object's anchor, on their other patches and on background, and the share of anchors among\nthe top 33%, 22% and 11% of the tokens by it.\n\nexample:\n  swift run -c release prunegym vlm diagnose --model models/shapes-llava --count 200")
            return
        }
        let model = try LlavaCheckpoint.load(URL(fileURLWithPath: args.string("model", default: "models/shapes-llava")))
        let vision = model.configuration.vision
        let dataset = ShapesVQA(imageSize: vision.imageSize, patchSize: vision.patchSize)
        let tokenizer = WordTokenizer.shapesVQA
        let prompt = ShapesPrompt(tokenizer: tokenizer, imageTokens: model.visualTokenCount)
        let count = try args.integer("count", default: 200, range: 1...100_000)
        let layer = try args.integer("layer", default: model.languageModel.layers.count - 1, range: 0...(model.languageModel.layers.count - 1))
        var sums: [String: [Double]] = [:], counts: [String: Int] = [:]
        let heads = model.configuration.text.headCount
        for start in stride(from: 0, to: count, by: 16) {
            let samples = (start..<min(count, start + 16)).map { dataset.sample($0, split: .validation) }
            try withInferenceMode {
                let features = model.imageFeatures(Tensor(shape: [samples.count, 3, vision.imageSize, vision.imageSize], scalars: samples.flatMap(\.pixels)))
                let n = features.shape[1]
                let requests = samples.enumerated().map { b, s in
                    AnswerRequest(features: features.sliced(alongAxis: 0, b..<(b + 1)).reshaped(to: [n, -1]), keep: Array(0..<n),
                                  prefix: prompt.prefix(question: s.question), suffix: prompt.suffix(question: s.question))
                }
                let (embedded, last, starts) = try model.requestBatch(requests)
                var cache: KeyValueCache? = nil
                let weights = model.languageModel.forward(embedded, positions: [Array(0..<embedded.shape[1])], cache: &cache, attentionLayer: layer).attention!
                let (t, sLen) = (weights.shape[2], weights.shape[3])
                let w = weights.scalars
                for (b, sample) in samples.enumerated() {
                    let referents = Set(sample.referents[0] + sample.referents[1])
                    let anchors = Set(referents.map { sample.anchors[$0] })
                    var row = [Double](repeating: 0, count: 4 * heads)
                    for h in 0..<heads {
                        for j in 0...last[b] {
                            let p = Double(w[((b * heads + h) * t + last[b]) * sLen + j])
                            let patch = j - starts[b]
                            let kind: Int
                            if j == 0 { kind = 0 }
                            else if patch >= 0 && patch < n && anchors.contains(patch) { kind = 1 }
                            else if patch >= 0 && patch < n, let o = sample.patchObjects[patch], referents.contains(o) { kind = 2 }
                            else { kind = 3 }
                            row[h * 4 + kind] += p
                        }
                    }
                    let key = sample.family.rawValue
                    sums[key] = zip(sums[key] ?? Array(repeating: 0, count: 4 * heads), row).map { $0 + $1 }
                    counts[key, default: 0] += 1
                }
            }
        }
        print("family      head: <bos> / anchors / other referent patches / elsewhere")
        for (family, sum) in sums.sorted(by: { $0.key < $1.key }) {
            let c = Double(counts[family]!)
            let cells = (0..<heads).map { h in (0..<4).map { String(format: "%.2f", sum[h * 4 + $0] / c) }.joined(separator: "/") }
            print(family.padding(toLength: 12, withPad: " ", startingAt: 0) + cells.joined(separator: "   "))
        }
        let tower = VLMEvaluation.classAttention(model: model, dataset: dataset, count: count)
        print("\nthe vision tower's class attention (layer \(model.classAttentionLayer), what cls and vispruner rank by), mean of \(count) images:")
        print(String(format: "  mass on anchors %.2f, on the objects' other patches %.2f, on background %.2f (objects cover %.0f%% of the patches)",
                     tower.anchorMass, tower.objectMass, 1 - tower.anchorMass - tower.objectMass, 100 * tower.objectArea))
        print("  anchors among the top tokens by it: " + tower.anchorRecall.map { String(format: "%.0f%% at %.0f%%", 100 * $0.recall, 100 * $0.keep) }.joined(separator: ", "))
    }
}
