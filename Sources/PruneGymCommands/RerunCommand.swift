import Foundation
import Gym
import TensorCore
import TokenPruning
import TPRL
import VLM

/// `prunegym rerun RUN_DIR`: reproduces a run from its directory alone.
enum RerunCommand {
    static let help = """
        usage: prunegym rerun RUN_DIR [--out NEW_RUN_DIR] [--quiet]

        Reads RUN_DIR/config.json — the full configuration, with the PruneGym version, git commit,
        seed and command line under "prunegym" — and runs it again into NEW_RUN_DIR (default
        RUN_DIR-rerun), then compares the final metrics.csv row (and result.json for sweep cells)
        with the original, column by column. Timing columns (steps_per_second, seconds) are shown
        but not compared. Works for runs of train, tprl train, vlm train and sweep cells.

        example:
          swift run -c release prunegym train --env CartPole-v1 --agent ppo --steps 20000 --run-dir runs/cp
          swift run -c release prunegym rerun runs/cp
        """

    static func run(_ arguments: [String]) throws {
        let args = try Arguments(command: "rerun", arguments, flags: ["quiet"], options: ["out"])
        if args.flag("help") { print(help); return }
        guard let path = args.positional.first else { throw UsageError(message: "prunegym rerun: give a run directory, e.g. prunegym rerun runs/cp") }
        let original = RunDirectory(URL(fileURLWithPath: path))
        guard let provenance = try original.readProvenance() else {
            throw UsageError(message: "\(original.configURL.path) has no \"prunegym\" provenance (written before PruneGym 0.5); rerun it with its original command")
        }
        let target = RunDirectory(URL(fileURLWithPath: args.string("out", default: original.url.path + "-rerun")))
        if FileManager.default.fileExists(atPath: target.configURL.path) {
            throw UsageError(message: "\(target.url.path) already holds a run; pick another --out or delete it")
        }
        if provenance.version != PruneGymVersion.current || provenance.gitCommit != GitCommit.current {
            print("note: the run was made by PruneGym \(provenance.version) at \(provenance.gitCommit); this is \(PruneGymVersion.current) at \(GitCommit.current)")
        }
        for note in provenance.bitDifferences(from: RunProvenance(kind: provenance.kind, seed: provenance.seed, command: [])) {
            print("note: " + note)
        }
        if ["train", "tprl"].contains(provenance.kind), let recorded = ModelDigestFile.recorded(in: original.url),
           let current = (try? BuiltinSimulator.model())?.weightDigest, current != recorded {
            print("note: the run learned the model with weight digest \(recorded); the built-in model (\(BuiltinSimulator.modelsDirectory.path)) is \(current), so the rerun will not reproduce it; set PRUNEGYM_MODELS to the models directory it was trained with")
        }
        print("rerunning \(provenance.kind) run \(original.url.path) (seed \(provenance.seed.map(String.init) ?? "–")) into \(target.url.path)")
        let quiet = args.flag("quiet")
        switch provenance.kind {
        case "train":
            let config = try original.readConfig(RunConfiguration.self)
            try TrainCommand.start(config, runDirectory: target, registry: try builtInRegistry(), showsProgress: !quiet)
        case "tprl":
            let configuration = try original.readConfig(TPRLConfiguration.self)
            try PruningCommand.trainPolicy(configuration, out: target.url.appendingPathComponent("policy"), runDirectory: target.url.path, quiet: quiet)
        case "vlm-train":
            let configuration = try original.readConfig(VLMTrainingConfiguration.self)
            let staged = [VLMCommand.recipeProgressFile, VLMCommand.stagedMarkerFile].contains {
                FileManager.default.fileExists(atPath: original.url.appendingPathComponent($0).path)
            }
            if staged {
                throw UsageError(message: "\(original.url.path) holds stages of a staged training (a recipe's, one started from another model, or one continued with another configuration), which its config.json alone does not replay; run the recipe again into a new run directory: prunegym vlm train --recipe FILE --run-dir NEW --out DIR")
            }
            try VLMCommand.trainModel(configuration, out: target.url.appendingPathComponent("model"), run: target, quiet: quiet)
        case SweepRunner.cellKind:
            let cell = try original.readConfig(SweepCell.self)
            _ = try SweepRunner.run(cell, in: target.url, model: try BuiltinSimulator.model(), source: ShapesVQATasks(), showsProgress: !quiet)
        default:
            throw UsageError(message: "\(original.configURL.path): unknown run kind '\(provenance.kind)'")
        }
        let differences = try compare(original.url, target.url)
        if differences == 0 {
            print("reproduced: the final metrics of \(target.url.path) equal the original's")
        } else {
            throw UsageError(message: "\(differences) final metric(s) differ from the original (table above); check the version and commit notes")
        }
    }

    static let timingColumns: Set<String> = ["steps_per_second", "seconds"]

    /// Prints the final metrics row of both runs side by side; returns how many compared values differ.
    static func compare(_ original: URL, _ rerun: URL) throws -> Int {
        var rows: [(String, String, String)] = []
        var differences = 0
        let a = try? MetricsLog.read(original.appendingPathComponent("metrics.csv"))
        let b = try? MetricsLog.read(rerun.appendingPathComponent("metrics.csv"))
        if let a, let b, let lastA = a.rows.last, let lastB = b.rows.last {
            for (index, column) in a.columns.enumerated() {
                let x = index < lastA.count ? lastA[index] : .nan
                let j = b.columns.firstIndex(of: column)
                let y = j.flatMap { $0 < lastB.count ? lastB[$0] : nil } ?? .nan
                let same = x == y || (x.isNaN && y.isNaN)
                if !same && !timingColumns.contains(column) { differences += 1 }
                rows.append((column, "\(x)", "\(y)" + (same || timingColumns.contains(column) ? "" : "  ≠")))
            }
        }
        let resultA = original.appendingPathComponent(SweepRunner.resultFile), resultB = rerun.appendingPathComponent(SweepRunner.resultFile)
        if let x = try? JSONDecoder().decode(SweepCellResult.self, from: Data(contentsOf: resultA)),
           let y = try? JSONDecoder().decode(SweepCellResult.self, from: Data(contentsOf: resultB)) {
            var compared = [("result accuracy", x.accuracy, y.accuracy), ("result mean_tokens", x.meanTokens, y.meanTokens), ("result flops", x.flops, y.flops)]
            if let p = x.selectionFLOPs, let q = y.selectionFLOPs { compared.append(("result selection_flops", p, q)) }
            for (name, p, q) in compared {
                if p != q { differences += 1 }
                rows.append((name, "\(p)", "\(q)" + (p == q ? "" : "  ≠")))
            }
        }
        guard !rows.isEmpty else {
            print("nothing to compare: neither run has metrics.csv rows or result.json")
            return 0
        }
        printTable([["metric (final row)", "original", "rerun"]] + rows.map { [$0.0, $0.1, $0.2] })
        return differences
    }
}
