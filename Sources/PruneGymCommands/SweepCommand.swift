import Foundation
import Gym
import TensorCore
import TokenPruning
import TPRL
import VLM

/// `prunegym sweep`, `prunegym report`: reward-ablation grids on the built-in model.
enum SweepCommand {
    static let help = """
        usage: prunegym sweep --config SWEEP.json [--jobs N] [--out DIR] [--quiet]

        Runs a grid over reward settings (alpha, beta, task_score, efficiency, terminal_only, max_steps)
        × agents (tprl, bc, ppo) × seeds on the built-in model. Each cell is a run directory
        OUT/cells/<setting>/seed-<s>/ (config.json, metrics.csv, TensorBoard events, checkpoints/,
        result.json). Rerunning the same command resumes: finished cells are skipped, a half-finished
        one continues from its checkpoint, a damaged one is reported and left alone; OUT records the
        model's weight digest (model-digest.txt), and a sweep begun on another model is refused, not
        resumed. Cells run in parallel up to N child processes. At the end it writes the report (see
        prunegym report).

        The whole configuration is checked before anything runs; an unknown key, a wrong type or an
        impossible value is an error naming its key path (grid.beta[1]).

        SWEEP.json keys (every flag is also a key):
          out, jobs, quiet          as the flags
          seeds                     [0, 1, 2]
          agents                    of tprl (behaviour cloning + PPO), bc, ppo (no demonstrations)
          grid                      {"alpha": [...], "beta": [...], "task_score": ["accuracy", "probability",
                                     "log_probability", "negative_kl"], "efficiency": ["token_ratio",
                                     "flops_saved", "budget_distance"], "terminal_only": [...], "max_steps": [...]}
          recipe                    the base TPRL recipe (prunegym tprl --help), e.g. {"ppo_updates": 10}
          evaluation                {"questions": 500, "budget": 0.333, "split": "test", "inference": "threshold"
                                     (keep p ≥ "threshold" at every step) or "top_k" (exactly the budget)}

        options:
          --config FILE   the sweep (required)
          --jobs N        cells run at once (default: the config's jobs, else 1)
          --out DIR       sweep directory (default: the config's out, else runs/sweep)
          --quiet         no progress bar

        example:
          swift run -c release prunegym sweep --config examples/reward-ablation.json --jobs 2
        """

    static let reportHelp = """
        usage: prunegym report SWEEP_DIR [--versus SETTING]

        Reads the finished cells of a sweep and writes SWEEP_DIR/report.md (accuracy, retained tokens,
        the model's GFLOPs, the policy's own (+ choosing; – for cells from before release 0.5) and
        final training return per setting, mean ± std over seeds; and the weight digest of the model the
        cells learned, which the sweep records), results.csv (one row per cell),
        learning-curves.svg and accuracy-vs-tokens.svg; prints the table. Unfinished or unreadable
        cells are listed, not counted.

        options:
          --versus SETTING  also compare every other setting with SETTING on the same questions, seed
                            by seed: the accuracy difference ± its standard error and the questions
                            lost and gained (far less noisy than comparing the two accuracies; cells
                            from before release 0.7.1 kept no answers and show –)

        example:
          swift run -c release prunegym report runs/sweep-reward
          swift run -c release prunegym report runs/sweep-reward --versus tprl-a1-b0.5-accuracy-token_ratio-T3
        """

    static func run(_ arguments: [String]) throws {
        let args = try Arguments(command: "sweep", arguments, flags: ["quiet"], options: ["config", "jobs", "out", "cell"])
        if args.flag("help") { print(help); return }
        if let cell = args.values["cell"] { return try runCell(URL(fileURLWithPath: cell), quiet: args.flag("quiet")) }
        guard let path = args.values["config"] else { throw UsageError(message: "prunegym sweep: --config SWEEP.json is required (see prunegym sweep --help)") }
        var configuration = try SweepConfiguration.load(URL(fileURLWithPath: path))
        configuration.jobs = try args.integer("jobs", default: configuration.jobs, range: 1...64)
        configuration.out = args.string("out", default: configuration.out)
        if args.flag("quiet") { configuration.quiet = true }
        try configuration.validate()
        // The model must exist before any cell starts.
        try sweep(configuration, model: try BuiltinSimulator.model())
    }

    static func sweep(_ configuration: SweepConfiguration, model: LlavaModel) throws {
        let out = URL(fileURLWithPath: configuration.out)
        try AtomicFile.prepareDirectory(out.appendingPathComponent("cells"))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(configuration), to: out.appendingPathComponent("sweep.json"))

        let cells = configuration.cells()
        var pending: [(SweepCell, URL)] = []
        var skipped: [String] = []
        var finished = 0
        var started = false
        for cell in cells {
            let directory = out.appendingPathComponent("cells").appendingPathComponent(cell.name)
            let state = SweepRunner.state(of: cell, in: directory)
            switch state {
            case .finished: finished += 1
            case .new, .partial: pending.append((cell, directory))
            case let .corrupt(reason): skipped.append("\(cell.name): \(reason)")
            }
            if state != .new { started = true }
        }
        try checkModel(of: out, digest: model.weightDigest, cellsStarted: started)
        print("sweep \(out.path): \(cells.count) cells — \(finished) finished, \(pending.count) to run, \(skipped.count) damaged (skipped)")
        for line in skipped { print("  skipped \(line)") }

        var failures: [String] = []
        if configuration.jobs == 1 {
            for (index, (cell, directory)) in pending.enumerated() {
                print("[\(index + 1)/\(pending.count)] \(cell.name)")
                do {
                    let result = try SweepRunner.run(cell, in: directory, model: model, source: ShapesVQATasks(), showsProgress: !configuration.quiet) { print("    " + $0) }
                    print(String(format: "    accuracy %.1f%%, %.1f tokens, %.0f s", 100 * result.accuracy, result.meanTokens, result.seconds))
                } catch {
                    failures.append("\(cell.name): \(error)")
                    print("    failed: \(error)")
                }
            }
        } else {
            failures = try runInParallel(pending, jobs: configuration.jobs, quiet: configuration.quiet)
        }

        try printReport(out)
        if !failures.isEmpty {
            throw UsageError(message: "\(failures.count) cell(s) failed:\n  " + failures.joined(separator: "\n  ") + "\nfix the cause and rerun the same command: finished cells are kept")
        }
    }

    /// A sweep's cells learn the tokens of one model: the sweep directory records its weight
    /// digest (`model-digest.txt`, as a `tprl train` run does), and a sweep whose cells have begun
    /// on another model is refused rather than resumed with a mix of two models. A directory from
    /// before the record, whose cells have begun, is left without one (its model is unknown).
    static func checkModel(of out: URL, digest: String?, cellsStarted: Bool) throws {
        if cellsStarted, let other = ModelDigestFile.otherModel(in: out, than: digest) {
            throw UsageError(message: "sweep \(out.path) holds cells trained on another model (weight digest \(other); the model they would run on now is \(digest ?? "unknown")): their agents learned that model's tokens; pick another --out, delete the directory, or set PRUNEGYM_MODELS to the directory holding that model")
        }
        if !cellsStarted || ModelDigestFile.recorded(in: out) != nil { try ModelDigestFile.record(digest, in: out) }
    }

    /// Runs cells as child processes (`prunegym sweep --cell DIR`), at most `jobs` at once, each
    /// with an equal share of the cores; a child's output goes to DIR/log.txt.
    static func runInParallel(_ pending: [(SweepCell, URL)], jobs: Int, quiet: Bool) throws -> [String] {
        let executable = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        let threads = max(1, ProcessInfo.processInfo.activeProcessorCount / jobs)
        var environment = ProcessInfo.processInfo.environment
        environment["PRUNEGYM_THREADS"] = String(threads)
        environment["OPENBLAS_NUM_THREADS"] = String(threads)
        let progress = quiet ? nil : ProgressBar(total: pending.count, label: "sweep")
        var queue = pending[...]
        var running: [(cell: SweepCell, directory: URL, process: Process)] = []
        var failures: [String] = []
        var done = 0
        while !queue.isEmpty || !running.isEmpty {
            while running.count < jobs, let (cell, directory) = queue.popFirst() {
                let run = RunDirectory(directory)
                try run.create()
                if !FileManager.default.fileExists(atPath: run.configURL.path) {
                    try run.writeConfig(cell, kind: SweepRunner.cellKind, seed: cell.recipe.seed, command: ["sweep", "--cell", directory.path])
                }
                let log = directory.appendingPathComponent("log.txt")
                guard FileManager.default.createFile(atPath: log.path, contents: nil), let handle = try? FileHandle(forWritingTo: log) else {
                    throw FileError(path: log.path, reason: "cannot create the cell's log file")
                }
                let process = Process()
                process.executableURL = executable
                process.arguments = ["sweep", "--cell", directory.path, "--quiet"]
                process.environment = environment
                process.standardOutput = handle
                process.standardError = handle
                try process.run()
                running.append((cell, directory, process))
                if quiet { print("started \(cell.name)") }
            }
            Thread.sleep(forTimeInterval: 0.5)
            for item in running where !item.process.isRunning {
                done += 1
                if item.process.terminationStatus != 0 {
                    failures.append("\(item.cell.name) exited with status \(item.process.terminationStatus); see \(item.directory.appendingPathComponent("log.txt").path)")
                } else if quiet {
                    print("finished \(item.cell.name)")
                }
            }
            running.removeAll { !$0.process.isRunning }
            progress?.update(done, status: "\(running.count) running, \(failures.count) failed")
        }
        return failures
    }

    /// The child side: runs the cell whose config.json is in `directory`.
    static func runCell(_ directory: URL, quiet: Bool) throws {
        let cell = try RunDirectory(directory).readConfig(SweepCell.self)
        let result = try SweepRunner.run(cell, in: directory, model: try BuiltinSimulator.model(), source: ShapesVQATasks(), showsProgress: !quiet)
        print(String(format: "%@: accuracy %.1f%%, %.1f tokens, %.0f s", cell.name, 100 * result.accuracy, result.meanTokens, result.seconds))
    }

    static func report(_ arguments: [String]) throws {
        let args = try Arguments(command: "report", arguments, flags: [], options: ["versus"])
        if args.flag("help") { print(reportHelp); return }
        guard let path = args.positional.first else { throw UsageError(message: "prunegym report: give the sweep directory, e.g. prunegym report runs/sweep") }
        try printReport(URL(fileURLWithPath: path), versus: args.values["versus"])
    }

    /// Writes the sweep's report files and prints the table and the cells left out of it.
    static func printReport(_ sweep: URL, versus: String? = nil) throws {
        let (table, problems) = try SweepReport.write(sweep, versus: versus, modelDigest: ModelDigestFile.recorded(in: sweep))
        print(table)
        for problem in problems { print("  not in the table: \(problem)") }
        print("wrote \(sweep.appendingPathComponent("report.md").path), results.csv, learning-curves.svg and accuracy-vs-tokens.svg")
    }
}
