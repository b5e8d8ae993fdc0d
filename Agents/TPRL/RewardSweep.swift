import Foundation
import Gym
import Pruners
import TensorCore
import TokenPruning
import VLM

/// A sweep configuration that cannot run, with the JSON key path of the offending value
/// (`grid.beta[1]`, `agents[0]`, `recipe.environment.max_steps`).
public struct SweepError: Error, CustomStringConvertible, Sendable {
    /// The JSON key path of the offending value, e.g. `grid.beta[1]`.
    public var path: String
    /// What is wrong with it.
    public var reason: String
    /// An error at `path`.
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
    public var description: String { "sweep configuration: '\(path)': \(reason)" }
}

/// The reward settings a sweep varies (each a list of values; omitted = the recipe's value).
public struct SweepGrid: Codable, Sendable, Equatable {
    /// Weights α of the task term.
    public var alpha: [Double]?
    /// Weights β of the efficiency term.
    public var beta: [Double]?
    /// Task terms (`accuracy`, `probability`, `log_probability`, `negative_kl`).
    public var taskScore: [TaskScore]?
    /// Efficiency terms (`token_ratio`, `flops_saved`, `budget_distance`).
    public var efficiency: [EfficiencyTerm]?
    /// Pay the reward only at the last step, or at every step.
    public var terminalOnly: [Bool]?
    /// Episode lengths T_max.
    public var maxSteps: [Int]?

    /// A grid; nil keeps the recipe's value of that setting.
    public init(alpha: [Double]? = nil, beta: [Double]? = nil, taskScore: [TaskScore]? = nil, efficiency: [EfficiencyTerm]? = nil,
                terminalOnly: [Bool]? = nil, maxSteps: [Int]? = nil) {
        self.alpha = alpha
        self.beta = beta
        self.taskScore = taskScore
        self.efficiency = efficiency
        self.terminalOnly = terminalOnly
        self.maxSteps = maxSteps
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case alpha, beta, taskScore = "task_score", efficiency, terminalOnly = "terminal_only", maxSteps = "max_steps"
    }

    public init(from decoder: Decoder) throws {
        try ConfigurationKeys.rejectUnknown(in: decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        alpha = try c.decodeIfPresent([Double].self, forKey: .alpha)
        beta = try c.decodeIfPresent([Double].self, forKey: .beta)
        taskScore = try c.decodeIfPresent([TaskScore].self, forKey: .taskScore)
        efficiency = try c.decodeIfPresent([EfficiencyTerm].self, forKey: .efficiency)
        terminalOnly = try c.decodeIfPresent([Bool].self, forKey: .terminalOnly)
        maxSteps = try c.decodeIfPresent([Int].self, forKey: .maxSteps)
    }
}

/// How each cell's final policy is measured: `questions` questions of `split`, one episode each
/// with `budget` as the target the policy is given. `inference` `threshold` (the default) keeps at
/// every step the tokens with keep probability ≥ `threshold` (the paper's threshold inference), so
/// the reward decides how many tokens the policy keeps; `top_k` keeps exactly the budget's share,
/// the k most probable at the first step (as `eval-pruning` compares methods at a budget).
public struct SweepEvaluation: Codable, Sendable, Equatable {
    /// Questions evaluated per cell.
    public var questions = 500
    /// The target budget the policy is given (its observation's `budget`).
    public var budget = 0.333
    /// `threshold` or `top_k`.
    public var inference = "threshold"
    /// Keep-probability threshold τ of the threshold inference.
    public var threshold: Float = 0.5
    /// The dataset split the questions come from.
    public var split = "test"

    /// The defaults: 500 test questions at budget 0.333, τ = 0.5.
    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable { case questions, budget, inference, threshold, split }

    public init(from decoder: Decoder) throws {
        try ConfigurationKeys.rejectUnknown(in: decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = SweepEvaluation()
        questions = try c.decodeIfPresent(Int.self, forKey: .questions) ?? d.questions
        budget = try c.decodeIfPresent(Double.self, forKey: .budget) ?? d.budget
        inference = try c.decodeIfPresent(String.self, forKey: .inference) ?? d.inference
        threshold = try c.decodeIfPresent(Float.self, forKey: .threshold) ?? d.threshold
        split = try c.decodeIfPresent(String.self, forKey: .split) ?? d.split
    }
}

/// `prunegym sweep --config sweep.json`: a grid over reward settings × agents × seeds on the
/// built-in model. Every command-line flag of `sweep` is also a key here (`out`, `jobs`, `quiet`).
///
/// ```json
/// {"out": "runs/sweep-reward", "jobs": 2, "seeds": [0, 1], "agents": ["tprl"],
///  "grid": {"alpha": [1], "beta": [0, 0.5, 2]},
///  "recipe": {"demonstrations": 200, "ppo_updates": 10},
///  "evaluation": {"questions": 300, "budget": 0.333}}
/// ```
public struct SweepConfiguration: Codable, Sendable, Equatable {
    /// The agents a cell can train: the TPRL recipe (behaviour cloning then PPO), behaviour cloning
    /// alone, or PPO from a random initialisation — all with the TPRL actor-critic.
    public static let agentNames = ["tprl", "bc", "ppo"]

    /// The sweep directory (`--out`).
    public var out = "runs/sweep"
    /// Cells run at once, each in its own process (`--jobs`).
    public var jobs = 1
    /// No progress bars (`--quiet`).
    public var quiet = false
    /// Seeds of every setting.
    public var seeds: [UInt64] = [0]
    /// Agents of `agentNames`.
    public var agents = ["tprl"]
    /// The reward settings to cross.
    public var grid = SweepGrid()
    /// The base recipe (`TPRLConfiguration` keys); the grid overrides its environment's reward.
    public var recipe = TPRLConfiguration()
    /// How each cell is evaluated.
    public var evaluation = SweepEvaluation()

    /// The defaults.
    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable { case out, jobs, quiet, seeds, agents, grid, recipe, evaluation }

    public init(from decoder: Decoder) throws {
        try ConfigurationKeys.rejectUnknown(in: decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = SweepConfiguration()
        out = try c.decodeIfPresent(String.self, forKey: .out) ?? d.out
        jobs = try c.decodeIfPresent(Int.self, forKey: .jobs) ?? d.jobs
        quiet = try c.decodeIfPresent(Bool.self, forKey: .quiet) ?? d.quiet
        seeds = try c.decodeIfPresent([UInt64].self, forKey: .seeds) ?? d.seeds
        agents = try c.decodeIfPresent([String].self, forKey: .agents) ?? d.agents
        grid = try c.decodeIfPresent(SweepGrid.self, forKey: .grid) ?? d.grid
        recipe = try c.decodeIfPresent(TPRLConfiguration.self, forKey: .recipe) ?? d.recipe
        evaluation = try c.decodeIfPresent(SweepEvaluation.self, forKey: .evaluation) ?? d.evaluation
    }

    /// Reads a sweep file; a JSON error names the key path (`grid.beta[1]`) and the file.
    public static func load(_ url: URL) throws -> SweepConfiguration {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw FileError(path: url.path, reason: "cannot read the sweep configuration") }
        do {
            let configuration = try JSONDecoder().decode(SweepConfiguration.self, from: data)
            try configuration.validate()
            return configuration
        } catch let error as DecodingError {
            throw FileError(path: url.path, reason: JSONSyntax.describe(error, of: data))
        } catch let error as SweepError {
            throw FileError(path: url.path, reason: error.description)
        }
    }

    /// Rejects impossible values before anything runs, naming the key path.
    public func validate() throws {
        if jobs < 1 { throw SweepError(path: "jobs", reason: "must be ≥ 1, got \(jobs)") }
        if out.isEmpty { throw SweepError(path: "out", reason: "must name a directory") }
        if seeds.isEmpty { throw SweepError(path: "seeds", reason: "must list at least one seed") }
        if agents.isEmpty { throw SweepError(path: "agents", reason: "must list at least one agent") }
        for (i, agent) in agents.enumerated() where !Self.agentNames.contains(agent) {
            throw SweepError(path: "agents[\(i)]", reason: "unknown agent '\(agent)'; sweep agents: \(Self.agentNames.joined(separator: ", "))")
        }
        func check<T>(_ name: String, _ values: [T]?, _ ok: (T) -> Bool, _ rule: String) throws {
            guard let values else { return }
            if values.isEmpty { throw SweepError(path: "grid.\(name)", reason: "must list at least one value (or be omitted)") }
            for (i, value) in values.enumerated() where !ok(value) {
                throw SweepError(path: "grid.\(name)[\(i)]", reason: "\(rule), got \(value)")
            }
        }
        try check("alpha", grid.alpha, { $0.isFinite && $0 >= 0 }, "must be finite and ≥ 0")
        try check("beta", grid.beta, { $0.isFinite && $0 >= 0 }, "must be finite and ≥ 0")
        try check("max_steps", grid.maxSteps, { $0 >= 1 }, "must be ≥ 1")
        try check("task_score", grid.taskScore, { _ in true }, "")
        try check("efficiency", grid.efficiency, { _ in true }, "")
        try check("terminal_only", grid.terminalOnly, { _ in true }, "")
        if evaluation.questions < 1 { throw SweepError(path: "evaluation.questions", reason: "must be ≥ 1, got \(evaluation.questions)") }
        if !(evaluation.budget > 0 && evaluation.budget <= 1) { throw SweepError(path: "evaluation.budget", reason: "must be in (0, 1], got \(evaluation.budget)") }
        if !["threshold", "top_k"].contains(evaluation.inference) {
            throw SweepError(path: "evaluation.inference", reason: "must be threshold or top_k, got '\(evaluation.inference)'")
        }
        if !(evaluation.threshold > 0 && evaluation.threshold < 1) {
            throw SweepError(path: "evaluation.threshold", reason: "must be in (0, 1), got \(evaluation.threshold)")
        }
        if !["train", "validation", "test"].contains(evaluation.split) {
            throw SweepError(path: "evaluation.split", reason: "must be train, validation or test, got '\(evaluation.split)'")
        }
        do { try recipe.validate() } catch { throw SweepError(path: "recipe", reason: "\(error)") }
        for cell in cells() {
            do { try cell.recipe.validate() } catch { throw SweepError(path: "grid", reason: "cell \(cell.name): \(error)") }
        }
    }

    /// The grid's cells: agents × α × β × task × efficiency × terminal-only × T_max × seeds.
    public func cells() -> [SweepCell] {
        let base = recipe.environment
        var cells: [SweepCell] = []
        for agent in agents {
            for alpha in grid.alpha ?? [base.alpha] {
                for beta in grid.beta ?? [base.beta] {
                    for task in grid.taskScore ?? [base.taskScore] {
                        for efficiency in grid.efficiency ?? [base.efficiency] {
                            for terminal in grid.terminalOnly ?? [base.terminalOnly] {
                                for steps in grid.maxSteps ?? [base.maxSteps] {
                                    for seed in seeds {
                                        var r = recipe
                                        r.seed = seed
                                        r.environment.alpha = alpha
                                        r.environment.beta = beta
                                        r.environment.taskScore = task
                                        r.environment.efficiency = efficiency
                                        r.environment.terminalOnly = terminal
                                        r.environment.maxSteps = steps
                                        switch agent {
                                        case "bc": r.ppoUpdates = 0
                                        case "ppo": r.demonstrations = 0
                                        default: break
                                        }
                                        cells.append(SweepCell(agent: agent, recipe: r, evaluation: evaluation))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return cells
    }
}

/// One run of a sweep: an agent, its full recipe (reward settings and seed included) and how it
/// is evaluated. Its directory is `<sweep>/cells/<setting>/seed-<seed>`.
public struct SweepCell: Codable, Sendable, Equatable {
    /// `tprl`, `bc` or `ppo`.
    public var agent: String
    /// The full recipe, seed and reward settings included.
    public var recipe: TPRLConfiguration
    /// How the trained policy is measured.
    public var evaluation: SweepEvaluation

    /// A cell.
    public init(agent: String, recipe: TPRLConfiguration, evaluation: SweepEvaluation) {
        self.agent = agent
        self.recipe = recipe
        self.evaluation = evaluation
    }

    /// The setting without the seed: what the report averages over seeds.
    public var setting: String {
        let e = recipe.environment
        return "\(agent)-a\(Self.format(e.alpha))-b\(Self.format(e.beta))-\(e.taskScore.rawValue)-\(e.efficiency.rawValue)"
            + (e.terminalOnly ? "-terminal" : "") + "-T\(e.maxSteps)"
    }

    public var name: String { "\(setting)/seed-\(recipe.seed)" }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e9 ? String(Int(value)) : String(value)
    }
}

/// What a finished cell measured (`result.json` in its directory; its presence marks the cell done).
public struct SweepCellResult: Codable, Sendable, Equatable {
    /// The cell's setting (its name without the seed).
    public var setting: String
    /// `tprl`, `bc` or `ppo`.
    public var agent: String
    /// The cell's seed.
    public var seed: UInt64
    /// Share of the evaluated questions answered right.
    public var accuracy: Double
    /// Accuracy per question family.
    public var accuracyPerFamily: [String: Double]
    /// Mean visual tokens kept at the end of the episode.
    public var meanTokens: Double
    /// Mean FLOPs per answer of the model (vision tower, projector, prefill, answer).
    public var flops: Double
    /// Mean FLOPs the policy spent choosing (`TokenPruner.selectionFLOPs`); nil in result files
    /// written before release 0.5.
    public var selectionFLOPs: Double? = nil
    /// Mean return of the last training rollouts (PPO), or nil without PPO.
    public var finalTrainingReturn: Double?
    /// Questions evaluated.
    public var questions: Int
    /// Wall clock of the cell (training and evaluation).
    public var seconds: Double
    /// Each evaluated question's outcome in order, "1" right and "0" wrong: what `report --versus`
    /// pairs between settings. Nil in result files written before release 0.7.1.
    public var answers: String? = nil

    /// `answers` as booleans (nil when the file kept none).
    public var correct: [Bool]? { answers.map { $0.map { $0 == "1" } } }

    /// `correct` as the `answers` string.
    public static func answers(_ correct: [Bool]) -> String { String(correct.map { $0 ? "1" : "0" }) }

    enum CodingKeys: String, CodingKey {
        case setting, agent, seed, accuracy, accuracyPerFamily = "accuracy_per_family", meanTokens = "mean_tokens", flops
        case selectionFLOPs = "selection_flops", finalTrainingReturn = "final_training_return", questions, seconds, answers
    }
}

/// Running and reading sweep cells.
public enum SweepRunner {
    /// The file whose presence marks a finished cell.
    public static let resultFile = "result.json"
    /// The run kind recorded in a cell's config.json (`prunegym rerun` dispatches on it).
    public static let cellKind = "sweep-cell"

    /// The state of a cell directory before a sweep runs it.
    public enum CellState: Equatable, Sendable {
        case new, partial, finished
        /// Unreadable or holding another cell: reported and skipped, never overwritten.
        case corrupt(String)
    }

    /// What `directory` holds for `cell`: nothing yet, a half-finished run, a finished one, or
    /// something damaged or foreign (never overwritten).
    public static func state(of cell: SweepCell, in directory: URL) -> CellState {
        let run = RunDirectory(directory)
        guard FileManager.default.fileExists(atPath: directory.path) else { return .new }
        guard FileManager.default.fileExists(atPath: run.configURL.path) else {
            let contents = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            return contents.isEmpty ? .new : .corrupt("\(directory.path) has files but no config.json")
        }
        let recorded: SweepCell
        do { recorded = try run.readConfig(SweepCell.self) } catch { return .corrupt("\(error)") }
        guard recorded == cell else { return .corrupt("\(run.configURL.path) holds a different cell (\(recorded.name))") }
        let result = directory.appendingPathComponent(resultFile)
        guard FileManager.default.fileExists(atPath: result.path) else { return .partial }
        do {
            _ = try JSONDecoder().decode(SweepCellResult.self, from: try Data(contentsOf: result))
            return .finished
        } catch {
            return .corrupt("\(result.path) is unreadable: \(error)")
        }
    }

    /// Trains and evaluates one cell in `directory` (resuming PPO from its checkpoint when one
    /// exists) and writes `result.json` last.
    public static func run(_ cell: SweepCell, in directory: URL, model: any VisionLanguageModel, source: any PruningTaskSource,
                           showsProgress: Bool, log: (String) -> Void = { print($0) }) throws -> SweepCellResult {
        let started = Date()
        let run = RunDirectory(directory)
        try run.create()
        if !FileManager.default.fileExists(atPath: run.configURL.path) {
            try run.writeConfig(cell, kind: cellKind, seed: cell.recipe.seed)
        }
        var recipe = cell.recipe
        // The choice between top-k inferences is moot when the cell evaluates by threshold.
        if cell.evaluation.inference == "threshold" { recipe.inferenceSelectionQuestions = 0 }
        let artifacts = try TPRLRecipe.run(model: model, source: source, configuration: recipe, runDirectory: run,
                                           showsProgress: showsProgress, log: log)
        // The cell's environment as the recipe trained in it; the evaluation fixes the budget.
        var environment = cell.recipe.environment
        environment.budgetChoices = []
        environment.targetBudget = cell.evaluation.budget
        let pruner = TPRLPruner(network: artifacts.network, configuration: environment, name: cell.setting)
        if cell.evaluation.inference == "threshold" { pruner.threshold = cell.evaluation.threshold }
        pruner.stepped = artifacts.inference.isStepped
        var evaluation = PruningEvaluation(simulator: artifacts.simulator, split: cell.evaluation.split, questions: cell.evaluation.questions)
        evaluation.latencyQuestions = 0
        let measured = try evaluation.evaluate(pruner, budget: cell.evaluation.budget, seed: cell.recipe.seed)
        // From metrics.csv, not this call's rows: a resumed cell may have had nothing left to train.
        var finalReturn: Double?
        if let (columns, rows) = try? MetricsLog.read(run.metricsURL), let column = columns.firstIndex(of: "return_mean"),
           let last = rows.last, column < last.count {
            finalReturn = last[column]
        }
        let result = SweepCellResult(setting: cell.setting, agent: cell.agent, seed: cell.recipe.seed, accuracy: measured.accuracy,
                                     accuracyPerFamily: measured.accuracyPerFamily, meanTokens: measured.meanTokens, flops: measured.flops,
                                     selectionFLOPs: measured.selectionFLOPs, finalTrainingReturn: finalReturn.flatMap { $0.isFinite ? $0 : nil }, questions: measured.questions,
                                     seconds: Date().timeIntervalSince(started), answers: SweepCellResult.answers(measured.correct))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(result), to: directory.appendingPathComponent(resultFile))
        return result
    }
}

/// `prunegym report SWEEP_DIR`: the reward-ablation table (mean ± std over seeds per setting) as
/// Markdown and CSV, learning curves per setting and accuracy vs retained tokens across settings.
public enum SweepReport {
    /// A paired comparison against a setting the sweep has no finished cell of.
    public struct UnknownSetting: Error, CustomStringConvertible, Sendable {
        /// The setting asked for, and the finished ones.
        public var name: String, settings: [String]
        public var description: String {
            "report --versus: no finished setting named '\(name)'; the settings are \(settings.joined(separator: ", ")) (a setting is a cell's directory name under cells/)"
        }
    }

    /// One setting of the table: its cells' results over seeds.
    public struct Row: Sendable {
        /// The setting's name.
        public var setting: String
        /// One result per finished seed.
        public var results: [SweepCellResult]
    }

    /// Reads every finished cell under `sweep/cells`; unreadable ones are returned as problems.
    public static func load(_ sweep: URL) throws -> (rows: [Row], problems: [String]) {
        let cells = sweep.appendingPathComponent("cells")
        guard let settings = try? FileManager.default.contentsOfDirectory(atPath: cells.path) else {
            throw FileError(path: cells.path, reason: "no cells here; is this a sweep directory (made by `prunegym sweep`)?")
        }
        var rows: [Row] = []
        var problems: [String] = []
        for setting in settings.sorted() {
            let seeds = (try? FileManager.default.contentsOfDirectory(atPath: cells.appendingPathComponent(setting).path)) ?? []
            var results: [SweepCellResult] = []
            for seed in seeds.sorted() {
                let url = cells.appendingPathComponent(setting).appendingPathComponent(seed).appendingPathComponent(SweepRunner.resultFile)
                guard FileManager.default.fileExists(atPath: url.path) else { problems.append("\(setting)/\(seed): not finished"); continue }
                do { results.append(try JSONDecoder().decode(SweepCellResult.self, from: try Data(contentsOf: url))) } catch {
                    problems.append("\(url.path): unreadable (\(error))")
                }
            }
            if !results.isEmpty { rows.append(Row(setting: setting, results: results)) }
        }
        return (rows, problems)
    }

    static func cell(_ values: [Double], scale: Double = 1, digits: Int = 1) -> String {
        let (mean, std) = PruningReport.meanStd(values.map { $0 * scale })
        return String(format: "%.\(digits)f ± %.\(digits)f", mean, std)
    }

    /// The Markdown table: mean ± std over seeds per setting.
    public static func markdown(_ rows: [Row]) -> String {
        var lines = ["| setting | seeds | accuracy (%) | tokens kept | GFLOPs | + choosing | final training return |", "|---|---|---|---|---|---|---|"]
        for row in rows {
            let returns = row.results.compactMap(\.finalTrainingReturn)
            let choosing = row.results.compactMap(\.selectionFLOPs)
            lines.append("| \(row.setting) | \(row.results.count) | \(cell(row.results.map(\.accuracy), scale: 100)) | \(cell(row.results.map(\.meanTokens))) | "
                         + "\(cell(row.results.map(\.flops), scale: 1e-9, digits: 3)) | \(choosing.count < row.results.count ? "–" : cell(choosing, scale: 1e-9, digits: 3)) | "
                         + "\(returns.isEmpty ? "–" : cell(returns, digits: 3)) |")
        }
        return lines.joined(separator: "\n")
    }

    /// Every other setting against `reference`, seed by seed, on the same questions (a sweep
    /// evaluates every cell on the same questions of the same split): the accuracy difference ±
    /// its standard error and the questions lost and gained, each the mean over the seeds both
    /// settings finished; "–" where no seed pairs (cells from before release 0.7.1 kept no
    /// answers). Throws when no setting is named `reference`.
    public static func pairedTable(_ rows: [Row], against reference: String) throws -> String {
        guard let base = rows.first(where: { $0.setting == reference }) else {
            throw UnknownSetting(name: reference, settings: rows.map(\.setting))
        }
        var lines = ["| setting | − \(reference), same questions (points) | lost | gained | seeds paired |", "|---|---|---|---|---|"]
        for row in rows where row.setting != reference {
            let pairs: [PairedDifference] = row.results.compactMap { result in
                guard let mine = result.correct, let theirs = base.results.first(where: { $0.seed == result.seed })?.correct,
                      mine.count == theirs.count else { return nil }
                return PairedDifference(mine, against: theirs, name: reference)
            }
            guard !pairs.isEmpty else {
                lines.append("| \(row.setting) | – | – | – | 0 |")
                continue
            }
            lines.append("| \(row.setting) | \(PruningReport.pairedCells(pairs)) | \(pairs.count) |")
        }
        return lines.joined(separator: "\n")
    }

    /// One CSV row per cell.
    public static func csv(_ rows: [Row]) -> String {
        var text = "setting,agent,seed,accuracy,mean_tokens,flops,selection_flops,final_training_return,questions,seconds\n"
        for row in rows {
            for r in row.results {
                text += "\(r.setting),\(r.agent),\(r.seed),\(r.accuracy),\(r.meanTokens),\(r.flops),\(r.selectionFLOPs.map { "\($0)" } ?? ""),\(r.finalTrainingReturn.map { "\($0)" } ?? ""),\(r.questions),\(r.seconds)\n"
            }
        }
        return text
    }

    /// Writes report.md, results.csv, learning-curves.svg and accuracy-vs-tokens.svg to `sweep`
    /// and returns the Markdown table; with `versus`, the table is followed by every other setting
    /// paired against that one (`pairedTable`); with `modelDigest` (the weight digest the sweep
    /// recorded), it ends by naming the model the cells learned.
    @discardableResult
    public static func write(_ sweep: URL, versus: String? = nil, modelDigest: String? = nil) throws -> (table: String, problems: [String]) {
        let (rows, problems) = try load(sweep)
        var table = markdown(rows)
        if let versus {
            table += "\n\nAgainst \(versus) on the same questions, seed by seed: the difference in points ± its standard error and the questions lost and gained (means over the paired seeds)\n\n"
                + (try pairedTable(rows, against: versus))
        }
        if let modelDigest {
            table += "\n\nThe cells learned the model with weight digest \(modelDigest) (the sweep's model-digest.txt)."
        }
        try AtomicFile.write(Data((table + "\n").utf8), to: sweep.appendingPathComponent("report.md"))
        try AtomicFile.write(Data(csv(rows).utf8), to: sweep.appendingPathComponent("results.csv"))
        // Learning curves: the training return of every cell (setting and seed) per environment step.
        var curves: [SVGPlot.Series] = []
        for row in rows {
            for result in row.results {
                let metrics = sweep.appendingPathComponent("cells/\(row.setting)/seed-\(result.seed)/metrics.csv")
                guard let (columns, values) = try? MetricsLog.read(metrics),
                      let x = columns.firstIndex(of: "step"), let y = columns.firstIndex(of: "return_mean") else { continue }
                let points = values.filter { $0.count > max(x, y) && $0[y].isFinite }.map { (x: $0[x], y: $0[y]) }
                if !points.isEmpty { curves.append(.init(name: "\(row.setting) seed \(result.seed)", points: points)) }
            }
        }
        if !curves.isEmpty {
            let svg = SVGPlot.lineChart(title: "Training return per cell", xLabel: "environment steps", yLabel: "mean episode return", series: curves)
            try AtomicFile.write(Data(svg.utf8), to: sweep.appendingPathComponent("learning-curves.svg"))
        }
        let points = rows.map { row in
            SVGPlot.Series(name: row.setting, points: [(x: PruningReport.meanStd(row.results.map(\.meanTokens)).0,
                                                       y: 100 * PruningReport.meanStd(row.results.map(\.accuracy)).0)])
        }
        if !points.isEmpty {
            let svg = SVGPlot.lineChart(title: "Accuracy vs retained tokens per setting", xLabel: "visual tokens kept", yLabel: "accuracy (%)", series: points)
            try AtomicFile.write(Data(svg.utf8), to: sweep.appendingPathComponent("accuracy-vs-tokens.svg"))
        }
        return (table, problems)
    }
}
