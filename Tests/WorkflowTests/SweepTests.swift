import Foundation
import Gym
import PruneGymTesting
import Pruners
import TensorCore
import TestSupport
import Testing
import TokenPruning
import TPRL

@Suite("Reward-ablation sweeps")
struct SweepTests {
    func decode(_ json: String) throws -> SweepConfiguration {
        let url = try makeTemporaryDirectory("sweep-config").appendingPathComponent("sweep.json")
        try Data(json.utf8).write(to: url)
        return try SweepConfiguration.load(url)
    }

    func rejects(_ json: String, mentioning path: String) {
        #expect {
            _ = try decode(json)
        } throws: { error in
            let text = "\(error)"
            return text.contains("'\(path)'") && text.contains("sweep.json")
        }
    }

    @Test("bad configurations are rejected before anything runs, naming the key path")
    func validation() throws {
        rejects(#"{"grid": {"beta": [0.5, -1]}}"#, mentioning: "grid.beta[1]")
        rejects(#"{"grid": {"max_steps": [3, 0]}}"#, mentioning: "grid.max_steps[1]")
        rejects(#"{"agents": ["tprl", "dqn"]}"#, mentioning: "agents[1]")
        rejects(#"{"grid": {"betta": [1]}}"#, mentioning: "grid.betta")
        rejects(#"{"colour": 1}"#, mentioning: "colour")
        rejects(#"{"jobs": "two"}"#, mentioning: "jobs")
        rejects(#"{"grid": {"task_score": ["accuracy", "f1"]}}"#, mentioning: "grid.task_score[1]")
        rejects(#"{"recipe": {"environment": {"max_steps": 0}}}"#, mentioning: "recipe")
        rejects(#"{"recipe": {"ppo_updatez": 3}}"#, mentioning: "recipe.ppo_updatez")
        rejects(#"{"seeds": []}"#, mentioning: "seeds")
        rejects(#"{"evaluation": {"budget": 1.5}}"#, mentioning: "evaluation.budget")
        rejects(#"{"evaluation": {"inference": "greedy"}}"#, mentioning: "evaluation.inference")
    }

    @Test("the grid expands to agents × reward settings × seeds with readable names")
    func cells() throws {
        let configuration = try decode(#"{"seeds": [0, 1], "agents": ["tprl", "bc"], "grid": {"beta": [0, 0.5], "task_score": ["accuracy", "probability"]}}"#)
        let cells = configuration.cells()
        #expect(cells.count == 2 * 2 * 2 * 2)
        #expect(Set(cells.map(\.name)).count == cells.count)
        #expect(cells[0].name == "tprl-a1-b0-accuracy-token_ratio-T3/seed-0")
        #expect(cells.filter { $0.agent == "bc" }.allSatisfy { $0.recipe.ppoUpdates == 0 })
        #expect(cells.contains { $0.recipe.environment.beta == 0.5 && $0.recipe.environment.taskScore == .probability && $0.recipe.seed == 1 })
    }

    static let tinyRecipe = #""recipe": {"autoencoder_images": 6, "autoencoder_epochs": 1, "demonstrations": 6, "behavior_cloning_epochs": 1, "ppo_updates": 2, "ppo_environments": 2, "ppo_steps_per_rollout": 3, "width": 16, "environment": {"dataset_size": 30}}"#

    @Test("a cell trains, evaluates and records its result; reruns are identical; the report averages seeds")
    func runAndReport() throws {
        let configuration = try decode(#"{"seeds": [0, 1], "grid": {"beta": [0.5, 2]}, "evaluation": {"questions": 12}, "# + Self.tinyRecipe + "}")
        let sweep = try makeTemporaryDirectory("sweep-run")
        let cells = configuration.cells()
        var results: [SweepCellResult] = []
        for cell in cells {
            let directory = sweep.appendingPathComponent("cells").appendingPathComponent(cell.name)
            #expect(SweepRunner.state(of: cell, in: directory) == .new)
            let (simulator, model) = ScriptedVisionLanguageModel.simulator()
            _ = simulator
            results.append(try SweepRunner.run(cell, in: directory, model: model, source: ScriptedTasks(), showsProgress: false, log: { _ in }))
            #expect(SweepRunner.state(of: cell, in: directory) == .finished)
            let provenance = try RunDirectory(directory).readProvenance()
            #expect(provenance?.kind == SweepRunner.cellKind)
            #expect(provenance?.seed == cell.recipe.seed)
            #expect(!(try TensorBoard.readDirectory(directory)).isEmpty)
        }
        #expect(results.allSatisfy { $0.questions == 12 && $0.meanTokens >= 1 && $0.meanTokens <= 16 })
        // The policy's own FLOPs are counted: at least the autoencoder and one pass per step.
        #expect(results.allSatisfy { ($0.selectionFLOPs ?? 0) > 0 })

        // Top-k inference keeps exactly the budget's share (0.25 of 16 tokens = 4).
        var topK = cells[0]
        topK.evaluation.inference = "top_k"
        topK.evaluation.budget = 0.25
        let fixed = try SweepRunner.run(topK, in: sweep.appendingPathComponent("top-k"), model: ScriptedVisionLanguageModel(),
                                        source: ScriptedTasks(), showsProgress: false, log: { _ in })
        #expect(fixed.meanTokens == 4)

        // Same cell again in a fresh directory: the same result (every draw is seeded).
        let again = try SweepRunner.run(cells[0], in: sweep.appendingPathComponent("again"), model: ScriptedVisionLanguageModel(),
                                        source: ScriptedTasks(), showsProgress: false, log: { _ in })
        #expect(again.accuracy == results[0].accuracy && again.meanTokens == results[0].meanTokens && again.flops == results[0].flops)

        let (table, problems) = try SweepReport.write(sweep)
        #expect(problems.isEmpty)
        #expect(table.contains("tprl-a1-b0.5-accuracy-token_ratio-T3 | 2 |"))
        #expect(table.contains("tprl-a1-b2-accuracy-token_ratio-T3 | 2 |"))
        let csv = try String(contentsOf: sweep.appendingPathComponent("results.csv"), encoding: .utf8)
        #expect(csv.split(separator: "\n").count == 1 + 4)
        #expect(csv.hasPrefix("setting,agent,seed,accuracy,mean_tokens,flops,selection_flops,"))
        // A result file from before release 0.5 has no selection_flops: it reads as nil.
        let old = #"{"setting": "s", "agent": "tprl", "seed": 0, "accuracy": 0.5, "accuracy_per_family": {}, "mean_tokens": 4, "flops": 1e6, "questions": 4, "seconds": 1}"#
        let oldResult = try JSONDecoder().decode(SweepCellResult.self, from: Data(old.utf8))
        #expect(oldResult.selectionFLOPs == nil && oldResult.correct == nil)
        // Each cell keeps its answers, and --versus pairs the settings seed by seed on them.
        #expect(results.allSatisfy { $0.correct?.count == 12 && Double($0.correct!.filter { $0 }.count) / 12 == $0.accuracy })
        let (base, other) = ("tprl-a1-b0.5-accuracy-token_ratio-T3", "tprl-a1-b2-accuracy-token_ratio-T3")
        let expected = results.filter { $0.setting == other }.map { mine in
            PairedDifference(mine.correct!, against: results.first { $0.setting == base && $0.seed == mine.seed }!.correct!, name: base)
        }
        let (versus, _) = try SweepReport.write(sweep, versus: base)
        let mean = { (values: [Int]) in String(format: "%g", Double(values.reduce(0, +)) / 2) }
        #expect(versus.contains("| \(other) | \(PruningReport.formatPaired(expected)) | \(mean(expected.map(\.lost))) | \(mean(expected.map(\.gained))) | 2 |"), "\(versus)")
        #expect(try String(contentsOf: sweep.appendingPathComponent("report.md"), encoding: .utf8).contains("Against \(base) on the same questions"))
        #expect(throws: SweepReport.UnknownSetting.self) { try SweepReport.write(sweep, versus: "tprl-a1-b9") }
        // A cell from before release 0.7.1 kept no answers: its setting shows – and no paired seeds.
        let rows = try SweepReport.load(sweep).rows.map { row -> SweepReport.Row in
            var row = row
            if row.setting == other { row.results = row.results.map { var r = $0; r.answers = nil; return r } }
            return row
        }
        #expect(try SweepReport.pairedTable(rows, against: base).hasSuffix("| \(other) | – | – | – | 0 |"))
        for file in ["report.md", "learning-curves.svg", "accuracy-vs-tokens.svg"] {
            #expect(FileManager.default.fileExists(atPath: sweep.appendingPathComponent(file).path), "\(file)")
        }
    }

    @Test("a half-finished cell continues from its checkpoint to the same result, without duplicate metrics rows")
    func partialCellResumes() throws {
        let configuration = try decode(#"{"evaluation": {"questions": 8}, "# + Self.tinyRecipe + "}")
        let cell = configuration.cells()[0]
        let directory = try makeTemporaryDirectory("sweep-partial").appendingPathComponent("cell")
        let first = try SweepRunner.run(cell, in: directory, model: ScriptedVisionLanguageModel(), source: ScriptedTasks(), showsProgress: false, log: { _ in })
        let rows = try MetricsLog.read(directory.appendingPathComponent("metrics.csv")).rows.count
        // Interrupted after PPO's last checkpoint but before the evaluation wrote result.json.
        try FileManager.default.removeItem(at: directory.appendingPathComponent(SweepRunner.resultFile))
        #expect(SweepRunner.state(of: cell, in: directory) == .partial)
        #expect(try RunDirectory(directory).latestCheckpoint() != nil)
        let resumed = try SweepRunner.run(cell, in: directory, model: ScriptedVisionLanguageModel(), source: ScriptedTasks(), showsProgress: false, log: { _ in })
        #expect(resumed.accuracy == first.accuracy && resumed.meanTokens == first.meanTokens && resumed.finalTrainingReturn == first.finalTrainingReturn)
        #expect(try MetricsLog.read(directory.appendingPathComponent("metrics.csv")).rows.count == rows)
        #expect(SweepRunner.state(of: cell, in: directory) == .finished)
    }

    @Test("a damaged or foreign cell directory is reported as corrupt and never overwritten")
    func corruptCells() throws {
        let configuration = try decode(#"{"grid": {"beta": [0.5, 1]}, "# + Self.tinyRecipe + "}")
        let cells = configuration.cells()
        let sweep = try makeTemporaryDirectory("sweep-corrupt")
        let first = sweep.appendingPathComponent("cells").appendingPathComponent(cells[0].name)
        try FileManager.default.createDirectory(at: first, withIntermediateDirectories: true)
        try Data("{ not json".utf8).write(to: first.appendingPathComponent("config.json"))
        guard case .corrupt = SweepRunner.state(of: cells[0], in: first) else { Issue.record("unreadable config.json not reported"); return }
        // Another cell's configuration in this cell's directory.
        let second = sweep.appendingPathComponent("cells").appendingPathComponent(cells[1].name)
        try RunDirectory(second).create()
        try RunDirectory(second).writeConfig(cells[0], kind: SweepRunner.cellKind)
        guard case let .corrupt(reason) = SweepRunner.state(of: cells[1], in: second) else { Issue.record("foreign cell not reported"); return }
        #expect(reason.contains("different cell"))
        // Files but no config.json.
        let third = sweep.appendingPathComponent("stray")
        try FileManager.default.createDirectory(at: third, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: third.appendingPathComponent("notes.txt"))
        guard case .corrupt = SweepRunner.state(of: cells[0], in: third) else { Issue.record("stray directory not reported"); return }
        #expect(try String(contentsOf: first.appendingPathComponent("config.json"), encoding: .utf8) == "{ not json")
    }
}
