import Foundation
import Gym
import TensorCore
import TokenPruning
import VLM

/// The eval-pruning table: evaluation of many pruners over budgets and seeds, the Markdown table
/// (mean ± std over seeds, % of unpruned, per family, tokens, FLOPs, latency), and the CSV / JSON /
/// SVG files. `prunegym eval-pruning` and the examples print the same table through it.
public enum PruningReport {
    /// Evaluates every pruner at every budget and seed (deterministic pruners once per budget;
    /// the unpruned 100% once), with a progress bar unless `quiet`; then times each evaluated cell
    /// on `latencyQuestions` questions in `latencyRounds` rounds over all of them
    /// (`PruningEvaluation.latencies`; 0 questions skips the timing and reports 0 ms).
    public static func evaluate(_ pruners: [any TokenPruner], simulator: PruningSimulator, budgets: [Double], seeds: [UInt64], questions: Int,
                         oracleQuestions: Int, quiet: Bool, split: String = "test",
                         latencyQuestions: Int = 48, latencyRounds: Int = 3, firstQuestion: Int = 0) throws -> [PruningResult] {
        var evaluation = PruningEvaluation(simulator: simulator, split: split, questions: questions, latencyQuestions: latencyQuestions)
        evaluation.latencyRounds = latencyRounds
        evaluation.firstQuestion = firstQuestion
        let total = pruners.reduce(0) { $0 + (isOracle($1) ? min(oracleQuestions, questions) : questions) } * budgets.count * seeds.count
        let progress = quiet ? nil : ProgressBar(total: total, label: "eval-pruning")
        var done = 0
        var results: [PruningResult] = []
        // The cells whose answers were computed, each with the results that share them; timed
        // together once every accuracy is in (`PruningEvaluation.latencies`).
        var cells: [(cell: PruningEvaluation.LatencyCell, results: [Int])] = []
        var unpruned: (result: PruningResult, cell: Int)?
        for pruner in pruners {
            for budget in budgets {
                var first: (result: PruningResult, cell: Int)?
                for seed in seeds {
                    let count = isOracle(pruner) ? min(oracleQuestions, questions) : questions
                    let base = done
                    var result: PruningResult
                    var cell: Int
                    if budget >= 1, !isOracle(pruner), let full = unpruned {
                        // Every method keeps every token at 100%: the same answers (FastV included).
                        (result, cell) = full
                        result.method = pruner.name
                        result.fallbackShare = pruner is FallbackPruner ? 0 : nil
                        result.fallbackThreshold = (pruner as? FallbackPruner).map { Double($0.threshold) }
                        result.seed = seed
                    } else if pruner.isDeterministic, let again = first {
                        (result, cell) = again  // a deterministic choice: the same result for every seed
                        result.seed = seed
                    } else {
                        result = try evaluation.evaluate(pruner, budget: budget, seed: seed, questions: count, timed: false) {
                            progress?.update(base + $0, status: "\(pruner.name) @ \(budget)")
                        }
                        cell = cells.count
                        cells.append((PruningEvaluation.LatencyCell(pruner: pruner, budget: budget, seed: seed, questions: count,
                                                                    rounds: isOracle(pruner) ? 1 : nil), []))
                    }
                    if budget >= 1 {
                        result.selectionFLOPs = 0  // nothing to choose: every token is kept
                        if !isOracle(pruner) && unpruned == nil { unpruned = (result, cell) }
                    }
                    first = first ?? (result, cell)
                    cells[cell].results.append(results.count)
                    results.append(result)
                    done += count
                    progress?.update(done, status: "\(pruner.name) @ \(budget)")
                }
            }
        }
        progress?.update(total, status: "done")
        let rounds = cells.reduce(0) { $0 + ($1.cell.rounds ?? evaluation.latencyRounds) }
        let timing = quiet || latencyQuestions == 0 ? nil : ProgressBar(total: rounds, label: "latency")
        let latencies = try evaluation.latencies(cells.map(\.cell)) { timing?.update($0, status: "\(evaluation.latencyQuestions) questions per cell, one at a time") }
        timing?.update(rounds, status: "done")
        for (c, item) in cells.enumerated() {
            for index in item.results { results[index].latencyMilliseconds = latencies[c] }
        }
        if let reference = unpruned?.result.correct {
            for index in results.indices where results[index].budget < 1 {
                results[index].paired = PairedDifference(results[index].correct, against: reference, name: "unpruned")
            }
        }
        return results
    }

    /// Every result paired with `reference`'s at the same budget and seed (a deterministic
    /// reference's one result serves every seed), question by question: one entry per result of
    /// another method, in `results`' order. Throws when no result is named `reference`.
    public static func paired(_ results: [PruningResult], against reference: String) throws -> [(result: PruningResult, paired: PairedDifference)] {
        let theirs = results.filter { $0.method == reference }
        guard !theirs.isEmpty else {
            throw PrunerError.notEvaluated(name: reference, evaluated: Set(results.map(\.method)).sorted())
        }
        return results.filter { $0.method != reference }.compactMap { result in
            let same = theirs.filter { $0.budget == result.budget }
            guard let other = same.first(where: { $0.seed == result.seed }) ?? same.first else { return nil }
            return (result, PairedDifference(result.correct, against: other.correct, name: reference))
        }
    }

    /// The paired comparison as a Markdown table, one row per method and budget below 100%: the
    /// accuracy difference against `reference` on the same questions ± its standard error, and the
    /// questions lost and gained, each the mean over seeds.
    public static func pairedTable(_ results: [PruningResult], against reference: String) throws -> String {
        let pairs = try paired(results, against: reference).filter { $0.result.budget < 1 }
        var lines = ["| method | budget | − \(reference), same questions (points) | lost | gained | questions |", "|---|---|---|---|---|---|"]
        var keys: [String] = []
        for pair in pairs where !keys.contains("\(pair.result.method)@\(pair.result.budget)") { keys.append("\(pair.result.method)@\(pair.result.budget)") }
        for key in keys {
            let cell = pairs.filter { "\($0.result.method)@\($0.result.budget)" == key }
            let first = cell[0].result
            lines.append("| \(first.method)\(first.subset ? "*" : "") | \(String(format: "%.1f%%", 100 * first.budget)) | \(pairedCells(cell.map(\.paired))) | \(cell[0].paired.questions) |")
        }
        return lines.joined(separator: "\n")
    }

    /// Three table cells: `formatPaired(pairs)`, then the questions lost and gained, each the mean over the pairs.
    public static func pairedCells(_ pairs: [PairedDifference]) -> String {
        func mean(_ values: [Int]) -> String { String(format: "%g", Double(values.reduce(0, +)) / Double(max(1, values.count))) }
        return "\(formatPaired(pairs)) | \(mean(pairs.map(\.lost))) | \(mean(pairs.map(\.gained)))"
    }

    /// "−0.65 ± 0.27": the mean difference over the pairs and the mean of their standard errors, in points.
    public static func formatPaired(_ pairs: [PairedDifference]) -> String {
        guard !pairs.isEmpty else { return "–" }
        let difference = 100 * pairs.map(\.difference).reduce(0, +) / Double(pairs.count)
        let error = 100 * pairs.map(\.standardError).reduce(0, +) / Double(pairs.count)
        return String(format: "%+.2f ± %.2f", difference, error).replacingOccurrences(of: "-", with: "−")
    }

    /// The oracle, alone or as a fallback's base: hundreds of model calls per choice, so it runs
    /// on `oracleQuestions` and is timed once.
    static func isOracle(_ pruner: any TokenPruner) -> Bool {
        pruner.name == "oracle" || (pruner as? FallbackPruner).map { isOracle($0.base) } ?? false
    }

    /// One table row: a method at a budget, over its seeds.
    public struct Row {
        /// Method and budget of the row.
        public var method: String, budget: Double
        /// Accuracy per seed; mean tokens, FLOPs and latency; whether it ran on a subset.
        public var accuracy: [Double], tokens: Double, flops: Double, latency: Double, subset: Bool
        /// Mean FLOPs the pruner spent choosing; nil when it does not count them.
        public var selectionFLOPs: Double? = nil
        /// The model's FLOPs and the pruner's own: what the compute-matched table and plot compare.
        public var totalFLOPs: Double { flops + (selectionFLOPs ?? 0) }
        /// Mean accuracy per family over seeds.
        public var families: [String: Double]
        /// Each seed's comparison with the unpruned answers to the same questions (empty at 100%).
        public var paired: [PairedDifference] = []
    }

    /// Groups results by method and budget, in first-seen order.
    public static func rows(_ results: [PruningResult]) -> [Row] {
        var rows: [Row] = []
        var seen: [String] = []
        for r in results where !seen.contains("\(r.method)@\(r.budget)") { seen.append("\(r.method)@\(r.budget)") }
        for key in seen {
            let cell = results.filter { "\($0.method)@\($0.budget)" == key }
            var families: [String: Double] = [:]
            for family in Set(cell.flatMap { $0.accuracyPerFamily.keys }) {
                families[family] = cell.map { $0.accuracyPerFamily[family] ?? 0 }.reduce(0, +) / Double(cell.count)
            }
            rows.append(Row(method: cell[0].method, budget: cell[0].budget, accuracy: cell.map(\.accuracy),
                            tokens: cell.map(\.meanTokens).reduce(0, +) / Double(cell.count), flops: cell.map(\.flops).reduce(0, +) / Double(cell.count),
                            latency: cell.map(\.latencyMilliseconds).reduce(0, +) / Double(cell.count), subset: cell[0].subset,
                            selectionFLOPs: cell.contains { $0.selectionFLOPs == nil } ? nil : cell.map { $0.selectionFLOPs! }.reduce(0, +) / Double(cell.count),
                            families: families, paired: cell.compactMap(\.paired)))
        }
        return rows
    }

    /// Mean and sample standard deviation (0 for a single value).
    public static func meanStd(_ values: [Double]) -> (Double, Double) {
        let mean = values.reduce(0, +) / Double(max(1, values.count))
        let variance = values.count > 1 ? values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count - 1) : 0
        return (mean, variance.squareRoot())
    }

    /// The Markdown table: one row per method and budget.
    public static func table(_ results: [PruningResult]) -> String {
        let all = rows(results)
        let families = ShapesVQA.Family.allCases.map(\.rawValue)
        // Unpruned accuracy: the best 100% row (every method keeps everything there).
        let unpruned = all.filter { $0.budget >= 1 }.map { meanStd($0.accuracy).0 }.max()
        var lines = ["| method | budget | accuracy (%) | % of unpruned | − unpruned, paired | " + families.joined(separator: " | ") + " | tokens | GFLOPs | + choosing | ms/answer |",
                     "|---|---|---|---|---|" + families.map { _ in "---|" }.joined() + "---|---|---|---|"]
        let order = all.map(\.method).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        for row in all.sorted(by: { ($0.budget, order.firstIndex(of: $1.method)!) > ($1.budget, order.firstIndex(of: $0.method)!) }) {
            let (mean, std) = meanStd(row.accuracy)
            let share = unpruned.map { String(format: "%.1f", 100 * mean / $0) } ?? "–"
            let familyCells = families.map { row.families[$0].map { String(format: "%.1f", 100 * $0) } ?? "–" }
            lines.append("| \(row.method)\(row.subset ? "*" : "") | \(String(format: "%.1f%%", 100 * row.budget)) | \(String(format: "%.1f ± %.1f", 100 * mean, 100 * std)) | \(share) | \(formatPaired(row.paired)) | "
                         + familyCells.joined(separator: " | ") + " | \(String(format: "%.1f", row.tokens)) | \(String(format: "%.3f", row.flops / 1e9)) | \(row.selectionFLOPs.map { String(format: "%.3f", $0 / 1e9) } ?? "–") | \(row.latency > 0 ? String(format: "%.2f", row.latency) : "–") |")
        }
        if all.contains(where: \.subset) { lines.append("\n\\* evaluated on a smaller subset of the test split.") }
        lines.append("\nGFLOPs: the model's (vision tower, projector, prefill, answer); + choosing: the pruner's own (– when it does not count them).")
        if all.contains(where: { !$0.paired.isEmpty }) {
            lines.append("− unpruned, paired: accuracy minus the unpruned model's on the same questions, in points, ± its standard error (question by question; mean over seeds).")
        } else if all.contains(where: { $0.budget < 1 }) {
            lines.append("− unpruned, paired: add 1.0 to the budgets to compare each method with the unpruned model on the same questions.")
        }
        let fallbacks = results.filter { $0.budget < 1 && $0.fallbackShare != nil }
        if !fallbacks.isEmpty {
            let shares = Dictionary(grouping: fallbacks, by: { "\($0.method) (threshold \($0.fallbackThreshold.map { "\(Float($0))" } ?? "?")) at \(String(format: "%.1f%%", 100 * $0.budget))" })
                .map { ($0.key, $0.value.map { $0.fallbackShare! }.reduce(0, +) / Double($0.value.count)) }.sorted { $0.0 < $1.0 }
            lines.append("NAME+fallback: the model answers from NAME's tokens, and again from all of them when its answer's probability is below the threshold; "
                         + "tokens and GFLOPs count both passes. Answers given again: " + shares.map { "\($0.0) \(String(format: "%.1f%%", 100 * $0.1))" }.joined(separator: ", ") + ".")
        }
        return lines.joined(separator: "\n")
    }

    /// The compute-matched view: for each compute level (every distinct FLOPs figure of the
    /// results, rounded to MFLOPs), each method's best mean accuracy among its budgets that cost
    /// no more; "–" where every budget of the method costs more. Methods that prune inside the
    /// language model (FastV) keep every token through their first layers, and a learned pruner
    /// runs a network of its own, so equal token counts are not equal compute; this table compares
    /// them at equal FLOPs — the model's plus the pruner's own (`Row.totalFLOPs`).
    public static func computeMatchedTable(_ results: [PruningResult]) -> String {
        let all = rows(results).filter { !$0.subset }
        let order = all.map(\.method).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let levels = Array(Set(all.map { ($0.totalFLOPs / 1e6).rounded() })).sorted()
        var lines = ["| GFLOPs at most | " + order.joined(separator: " | ") + " |", "|---|" + order.map { _ in "---|" }.joined()]
        for level in levels {
            let cells = order.map { method -> String in
                let fitting = all.filter { $0.method == method && ($0.totalFLOPs / 1e6).rounded() <= level }
                guard let best = fitting.max(by: { meanStd($0.accuracy).0 < meanStd($1.accuracy).0 }) else { return "–" }
                return String(format: "%.1f (%.0f%%)", 100 * meanStd(best.accuracy).0, 100 * best.budget)
            }
            lines.append("| \(String(format: "%.3f", level / 1e3)) | " + cells.joined(separator: " | ") + " |")
        }
        let uncounted = order.filter { method in all.contains { $0.method == method && $0.selectionFLOPs == nil } }
        if !uncounted.isEmpty { lines.append("\nNot counting what choosing costs: " + uncounted.joined(separator: ", ") + ".") }
        return lines.joined(separator: "\n")
    }

    /// Writes results.csv, results.json, accuracy-vs-tokens.svg and accuracy-vs-flops.svg to `out`
    /// (the plots titled with the dataset `split`).
    public static func write(_ results: [PruningResult], to out: URL, split: String = "test") throws {
        try AtomicFile.prepareDirectory(out)
        let families = ShapesVQA.Family.allCases.map(\.rawValue)
        var csv = "method,budget,seed,questions,accuracy," + families.map { "accuracy_\($0)" }.joined(separator: ",") + ",mean_tokens,flops,selection_flops,latency_ms,subset,fallback_share,fallback_threshold,paired_difference,paired_se,lost,gained,first_question,adaptive_threshold,adaptive_calibration\n"
        for r in results {
            csv += "\(r.method),\(r.budget),\(r.seed),\(r.questions),\(r.accuracy)," + families.map { "\(r.accuracyPerFamily[$0] ?? .nan)" }.joined(separator: ",")
                + ",\(r.meanTokens),\(r.flops),\(r.selectionFLOPs.map { "\($0)" } ?? ""),\(r.latencyMilliseconds),\(r.subset),\(r.fallbackShare.map { "\($0)" } ?? ""),\(r.fallbackThreshold.map { "\(Float($0))" } ?? ""),"
                + (r.paired.map { "\($0.difference),\($0.standardError),\($0.lost),\($0.gained)" } ?? ",,,") + ",\(r.firstQuestion ?? 0)"
                + ",\(r.adaptiveThreshold.map { "\(Float($0))" } ?? ""),\(r.adaptiveCalibration.map { "\($0)" } ?? "")\n"
        }
        try AtomicFile.write(Data(csv.utf8), to: out.appendingPathComponent("results.csv"))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(results), to: out.appendingPathComponent("results.json"))
        let series = Dictionary(grouping: rows(results), by: \.method).sorted { $0.key < $1.key }.map { method, rows in
            SVGPlot.Series(name: method, points: rows.sorted { $0.tokens < $1.tokens }.map { (x: $0.tokens, y: 100 * meanStd($0.accuracy).0) })
        }
        let svg = SVGPlot.lineChart(title: "ShapesVQA \(split) accuracy vs retained visual tokens", xLabel: "visual tokens kept (of 256)",
                                    yLabel: "accuracy (%)", series: series)
        try AtomicFile.write(Data(svg.utf8), to: out.appendingPathComponent("accuracy-vs-tokens.svg"))
        let flopsSeries = Dictionary(grouping: rows(results), by: \.method).sorted { $0.key < $1.key }.map { method, rows -> SVGPlot.Series in
            let sorted = rows.sorted { $0.totalFLOPs < $1.totalFLOPs }
            let points: [(x: Double, y: Double)] = sorted.map { row in (x: row.totalFLOPs / 1e9, y: 100 * meanStd(row.accuracy).0) }
            return SVGPlot.Series(name: method, points: points)
        }
        let flopsSVG = SVGPlot.lineChart(title: "ShapesVQA \(split) accuracy vs compute per answer", xLabel: "GFLOPs per answer (vision + projector + prefill + answer + choosing)",
                                         yLabel: "accuracy (%)", series: flopsSeries)
        try AtomicFile.write(Data(flopsSVG.utf8), to: out.appendingPathComponent("accuracy-vs-flops.svg"))
    }

    /// Writes the paired comparison against `reference` to `paired.csv` in `out`, one row per
    /// result of another method: method, budget, seed, questions, lost, gained, difference, standard error.
    public static func writePaired(_ results: [PruningResult], against reference: String, to out: URL) throws {
        var csv = "method,budget,seed,against,questions,lost,gained,difference,standard_error\n"
        for (result, pair) in try paired(results, against: reference) {
            csv += "\(result.method),\(result.budget),\(result.seed),\(pair.against),\(pair.questions),\(pair.lost),\(pair.gained),\(pair.difference),\(pair.standardError)\n"
        }
        try AtomicFile.prepareDirectory(out)
        try AtomicFile.write(Data(csv.utf8), to: out.appendingPathComponent("paired.csv"))
    }
}
