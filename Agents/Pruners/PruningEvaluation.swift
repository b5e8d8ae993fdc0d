import Foundation
import Gym
import TensorCore
import TokenPruning
import VLM

/// One method at one budget on one seed.
public struct PruningResult: Sendable, Codable {
    /// The pruner's name.
    public var method: String
    /// Share of visual tokens allowed.
    public var budget: Double
    /// The evaluation's seed.
    public var seed: UInt64
    /// Questions evaluated.
    public var questions: Int
    /// The split's first question evaluated, when not its first (`--first-question`): the
    /// questions were `firstQuestion ..< firstQuestion + questions`. Nil: from question 0.
    public var firstQuestion: Int? = nil
    /// Share answered right.
    public var accuracy: Double
    /// Accuracy per question family.
    public var accuracyPerFamily: [String: Double]
    /// Mean visual tokens the language model read (both passes of a `FallbackPruner`'s answers
    /// given again).
    public var meanTokens: Double
    /// Mean FLOPs per answer (vision tower, projector, LLM prefill, head; a fallback's second
    /// answer included).
    public var flops: Double
    /// Mean FLOPs the pruner spent choosing (`TokenPruner.selectionFLOPs`); nil when it does not
    /// count them.
    public var selectionFLOPs: Double? = nil
    /// Measured wall time per answer at batch 1 (selection + language model), milliseconds.
    public var latencyMilliseconds: Double
    /// Evaluated on a smaller subset (the oracle).
    public var subset: Bool
    /// A `FallbackPruner`'s share of answers given again from every token (nil for other pruners).
    public var fallbackShare: Double? = nil
    /// A `FallbackPruner`'s threshold: the answer probability below which it answers again.
    public var fallbackThreshold: Double? = nil
    /// An `AdaptiveBudgetPruner`'s cut at this budget: the score a token needs to stay, set on
    /// `adaptiveCalibration` validation questions (nil for other pruners and at 100%).
    public var adaptiveThreshold: Double? = nil
    /// The validation questions an `AdaptiveBudgetPruner`'s cut was set on.
    public var adaptiveCalibration: Int? = nil
    /// Whether each question was answered right, in question order: what paired comparisons read
    /// (`PairedDifference`). Kept in memory; results.json and results.csv carry `paired` instead.
    public var correct: [Bool] = []
    /// This result against the unpruned model's answers to the same questions (nil at 100% and
    /// when the evaluation had no 100% budget); `PruningReport.evaluate` fills it in.
    public var paired: PairedDifference? = nil

    enum CodingKeys: String, CodingKey {
        case method, budget, seed, questions, firstQuestion, accuracy, accuracyPerFamily, meanTokens, flops, selectionFLOPs, latencyMilliseconds, subset
        case fallbackShare, fallbackThreshold, adaptiveThreshold, adaptiveCalibration, paired
    }
}

/// Two methods' answers to the same questions compared question by question — the comparison
/// whose noise is that of the questions on which they disagree, not of each accuracy apart. Two
/// accuracies on 2000 questions each carry a standard error of about 0.5 points; their difference
/// on the same questions usually far less, since most questions are right (or wrong) for both.
public struct PairedDifference: Sendable, Codable, Equatable {
    /// What the result is compared against (a method's name, or "unpruned").
    public var against: String
    /// Questions compared (the common prefix of the two evaluations).
    public var questions: Int
    /// Questions the reference answers right and this result wrong, and the other way round.
    public var lost: Int, gained: Int
    /// Accuracy minus the reference's on the same questions: (gained − lost) / questions.
    public var difference: Double { Double(gained - lost) / Double(max(1, questions)) }
    /// Standard error of `difference`: the sample standard deviation of the per-question
    /// differences (each −1, 0 or +1) over √questions.
    public var standardError: Double {
        let n = Double(questions)
        guard questions > 1 else { return 0 }
        let mean = difference
        let variance = (Double(lost + gained) - n * mean * mean) / (n - 1)
        return (max(0, variance) / n).squareRoot()
    }

    /// `result` against `reference` on the questions both answered (their common prefix: every
    /// evaluation takes the split's questions in order, the oracle fewer of them).
    public init(_ result: [Bool], against reference: [Bool], name: String) {
        let n = min(result.count, reference.count)
        against = name
        questions = n
        lost = 0
        gained = 0
        for q in 0..<n where result[q] != reference[q] {
            if result[q] { gained += 1 } else { lost += 1 }
        }
    }

    enum CodingKeys: String, CodingKey { case against, questions, lost, gained, difference, standardError }

    /// Decodes the counts (the difference and its error follow from them).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        against = try container.decode(String.self, forKey: .against)
        questions = try container.decode(Int.self, forKey: .questions)
        lost = try container.decode(Int.self, forKey: .lost)
        gained = try container.decode(Int.self, forKey: .gained)
    }

    /// Encodes the counts and, for readers of results.json, the difference and its error.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(against, forKey: .against)
        try container.encode(questions, forKey: .questions)
        try container.encode(lost, forKey: .lost)
        try container.encode(gained, forKey: .gained)
        try container.encode(difference, forKey: .difference)
        try container.encode(standardError, forKey: .standardError)
    }
}

/// Evaluates pruners on a split of the simulator's tasks: accuracy (overall and per family),
/// retained tokens, FLOPs and measured latency per answer, per budget and seed.
public struct PruningEvaluation {
    /// The model and tasks evaluated on.
    public let simulator: PruningSimulator
    /// The dataset split.
    public var split = "test"
    /// Questions per evaluation.
    public var questions = 2000
    /// The split's first question evaluated: each evaluation takes questions `firstQuestion ..<
    /// firstQuestion + questions`, so that a sample disjoint from an earlier run's can be drawn
    /// (0, the default: from the split's start).
    public var firstQuestion = 0
    /// Questions timed one at a time for the latency figure.
    public var latencyQuestions = 48
    /// Rounds over the timed questions. Each question's time is the fastest of its rounds — the
    /// one least disturbed by other work on the machine, as `timeit` advises — and the figure is
    /// the mean of those times over the questions.
    public var latencyRounds = 3

    /// One latency measurement: `pruner` at `budget` with `seed`'s draws, on the first
    /// `questions` questions (at most `latencyQuestions` of them are timed).
    public struct LatencyCell {
        /// The method timed.
        public var pruner: any TokenPruner
        /// The share of visual tokens it keeps, its seed, and the questions it was evaluated on.
        public var budget: Double, seed: UInt64, questions: Int
        /// Rounds for this cell (`latencyRounds` when nil): the oracle's choice costs hundreds of
        /// model calls, so the report times it once.
        public var rounds: Int?
        /// A cell to time.
        public init(pruner: any TokenPruner, budget: Double, seed: UInt64, questions: Int, rounds: Int? = nil) {
            self.pruner = pruner
            self.budget = budget
            self.seed = seed
            self.questions = questions
            self.rounds = rounds
        }
    }

    /// An evaluation of `questions` questions of `split`, timing `latencyQuestions` of them one at a time.
    public init(simulator: PruningSimulator, split: String = "test", questions: Int = 2000, latencyQuestions: Int = 48) {
        self.simulator = simulator
        self.split = split
        self.questions = questions
        self.latencyQuestions = latencyQuestions
    }

    /// The split's indices of the evaluation's questions `range` (counted from `firstQuestion`).
    func questionIndices(_ range: Range<Int>) -> [Int] { range.map { firstQuestion + $0 } }

    /// Tokens kept for a budget fraction (at least 1).
    public func tokens(for budget: Double) -> Int { TokenPruningConfiguration.tokenCount(budget: budget, of: simulator.tokenCount) }

    /// Accuracy (overall and per family), mean tokens, FLOPs and latency of `pruner` at `budget`.
    /// `timed: false` leaves the latency at 0 for `latencies(_:)` to fill in.
    public func evaluate(_ pruner: any TokenPruner, budget: Double, seed: UInt64, questions count: Int? = nil, timed: Bool = true,
                         progress: ((Int) -> Void)? = nil) throws -> PruningResult {
        let n = count ?? questions
        let k = tokens(for: budget)
        var generator = SeededGenerator(seed: seed &+ 0x5EED)
        var correct = 0, tokenSum = 0, flopSum = 0.0, fallbackCount = 0
        var selectionSum: Double? = 0
        var familyCorrect: [String: Int] = [:], familyTotal: [String: Int] = [:]
        var answeredRight: [Bool] = []
        answeredRight.reserveCapacity(n)
        let model = simulator.model
        for start in stride(from: 0, to: n, by: 64) {
            let entries = try simulator.entries(questionIndices(start..<min(n, start + 64)), split: split)
            let costed = try entries.map { try pruner.costedPlan($0, budget: k, simulator: simulator, generator: &generator) }
            let plans = costed.map(\.plan)
            for item in costed { selectionSum = selectionSum.flatMap { sum in item.selectionFLOPs.map { sum + $0 } } }
            let (logits, again) = try answers(pruner, entries, plans, budget: k)
            fallbackCount += again.count
            for item in again {
                // A fallback's second answer reads every visual token (the tower's output is reused).
                tokenSum += simulator.tokenCount
                flopSum += item.flops
            }
            for (b, entry) in entries.enumerated() {
                let right = argmax(logits[b]) == entry.task.answer
                correct += right ? 1 : 0
                answeredRight.append(right)
                familyCorrect[entry.task.family, default: 0] += right ? 1 : 0
                familyTotal[entry.task.family, default: 0] += 1
                let text = entry.task.prefix.count + entry.task.suffix.count
                switch plans[b] {
                case let .tokens(keep):
                    tokenSum += keep.count
                    flopSum += simulator.flops(entry, visualTokens: keep.count)
                case let .insideLLM(layer, keep):
                    tokenSum += min(keep, simulator.tokenCount)
                    flopSum += model.fastVFLOPs(visualTokens: simulator.tokenCount, textTokens: text, layer: layer, keptAfter: keep)
                case let .tokensAfterLayer(layer, tokens):
                    tokenSum += tokens.count
                    flopSum += model.fastVFLOPs(visualTokens: simulator.tokenCount, textTokens: text, layer: layer, keptAfter: tokens.count)
                case let .mergedTokens(keep):
                    // The kept tokens and the merged one.
                    tokenSum += keep.count + 1
                    flopSum += simulator.flops(entry, visualTokens: keep.count + 1)
                case let .mergedAfterLayer(layer, tokens):
                    tokenSum += tokens.count + 1
                    flopSum += model.fastVFLOPs(visualTokens: simulator.tokenCount, textTokens: text, layer: layer, keptAfter: tokens.count + 1)
                case let .mergedInsideLLM(layer, keep):
                    tokenSum += min(keep, simulator.tokenCount) + 1
                    flopSum += model.fastVFLOPs(visualTokens: simulator.tokenCount, textTokens: text, layer: layer, keptAfter: min(keep, simulator.tokenCount) + 1)
                }
            }
            progress?(min(n, start + 64))
        }
        let elapsed = timed ? try latencies([LatencyCell(pruner: pruner, budget: budget, seed: seed, questions: n)])[0] : 0
        // A budget met on average, alone or inside a cascade; at 100% it keeps every token.
        let adaptive = k < simulator.tokenCount ? AdaptiveBudgetPruner.within(pruner) : nil
        var perFamily: [String: Double] = [:]
        for (family, total) in familyTotal { perFamily[family] = Double(familyCorrect[family] ?? 0) / Double(total) }
        return PruningResult(method: pruner.name, budget: budget, seed: seed, questions: n, firstQuestion: firstQuestion > 0 ? firstQuestion : nil,
                             accuracy: Double(correct) / Double(max(1, n)),
                             accuracyPerFamily: perFamily, meanTokens: Double(tokenSum) / Double(max(1, n)), flops: flopSum / Double(max(1, n)),
                             selectionFLOPs: selectionSum.map { $0 / Double(max(1, n)) },
                             latencyMilliseconds: elapsed, subset: count != nil && count! < questions,
                             fallbackShare: pruner is FallbackPruner ? Double(fallbackCount) / Double(max(1, n)) : nil,
                             fallbackThreshold: (pruner as? FallbackPruner).map { Double($0.threshold) },
                             adaptiveThreshold: try adaptive.map { Double(try $0.level(budget: k, simulator: simulator).threshold) },
                             adaptiveCalibration: adaptive?.calibrationQuestions, correct: answeredRight)
    }

    /// Time per answer (ms) of each cell, batch 1: the vision tower on the image (what the FLOPs
    /// count too), the pruner's choice, and the language model on what it keeps. The rounds run
    /// over all the cells in turn — round 1 of every cell, then round 2 … — so that a stretch of
    /// other work on the machine falls on one round of many cells rather than on every round of
    /// one; each question's time is its fastest round, and a cell's figure the mean over its
    /// questions. `progress` is told of each cell-round done.
    public func latencies(_ cells: [LatencyCell], progress: ((Int) -> Void)? = nil) throws -> [Double] {
        let model = simulator.model
        let timed = try cells.map { try simulator.entries(questionIndices(0..<min($0.questions, latencyQuestions)), split: split) }
        var timers = cells.map { SeededGenerator(seed: $0.seed) }
        var fastest = timed.map { [Double](repeating: .infinity, count: $0.count) }
        let rounds = cells.map { max(1, $0.rounds ?? latencyRounds) }
        var done = 0
        for round in 0..<(rounds.max() ?? 0) {
            for (c, cell) in cells.enumerated() where round < rounds[c] {
                let k = tokens(for: cell.budget)
                for (q, entry) in timed[c].enumerated() {
                    let started = DispatchTime.now().uptimeNanoseconds
                    let size = entry.task.imageSize
                    _ = withInferenceMode { model.encode(Tensor(shape: [1, 3, size, size], scalars: entry.task.pixels)) }
                    let plan = try cell.pruner.plan(entry, budget: k, simulator: simulator, generator: &timers[c])
                    _ = try answers(cell.pruner, [entry], [plan], budget: k)
                    fastest[c][q] = min(fastest[c][q], Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6)
                }
                done += 1
                progress?(done)
            }
        }
        return fastest.map { $0.isEmpty ? 0 : $0.reduce(0, +) / Double($0.count) }
    }

    /// The answers to `plans`. For a `FallbackPruner`, when the budget of k tokens leaves some
    /// out, the entries whose answer it does not accept are answered again from every visual
    /// token: plans that prune after an LLM layer continue the same pass from that layer's states
    /// (`PruningSimulator.answer(_:prunedAfter:standing:)`; FastV's through
    /// `fastVAnswerLogits(_:layer:keptAfter:standing:)`), the others are answered again from
    /// scratch. Returns the logits and, for each entry answered again, its index and what the
    /// second answer cost.
    func answers(_ pruner: any TokenPruner, _ entries: [TaskEntry], _ plans: [PruningPlan], budget k: Int) throws
        -> (logits: [[Float]], again: [(index: Int, flops: Double)]) {
        guard let cascade = pruner as? FallbackPruner, k < simulator.tokenCount else { return (try answer(entries, plans), []) }
        guard !plans.contains(where: \.merges) else {
            throw AgentError.invalidConfiguration(agent: pruner.name, reason: "a cascade (+fallback) does not continue a pass whose pruned tokens were merged (+merge); evaluate NAME+merge alone")
        }
        var logits = [[Float]](repeating: [], count: entries.count)
        var again: [(index: Int, flops: Double)] = []
        let groups = PlanGroups(plans)
        /// The continuation after `layer` for each of `unsure` (indices into `entries`).
        func continued(_ unsure: [Int], after layer: Int) {
            for b in unsure {
                let task = entries[b].task
                again.append((b, simulator.model.continuationFLOPs(visualTokens: simulator.tokenCount,
                                                                   textTokens: task.prefix.count + task.suffix.count, afterLayer: layer)))
            }
        }
        for (layer, items) in groups.afterLayer.sorted(by: { $0.key < $1.key }) {
            let (rows, unsure) = try simulator.answer(items.map { (entries[$0.index], $0.tokens) }, prunedAfter: layer, standing: cascade.accepts)
            for (item, row) in zip(items, rows) { logits[item.index] = row }
            continued(unsure.map { items[$0].index }, after: layer)
        }
        for (cut, indices) in groups.fastV.sorted(by: { ($0.key.layer, $0.key.keep) < ($1.key.layer, $1.key.keep) }) {
            // FastV's cascade continues its own pass from the cut layer's states.
            let (rows, unsure) = try withInferenceMode {
                try simulator.model.fastVAnswerLogits(indices.map { fullRequest(entries[$0]) }, layer: cut.layer, keptAfter: cut.keep, standing: cascade.accepts)
            }
            for (b, row) in zip(indices, rows) { logits[b] = row }
            continued(unsure.map { indices[$0] }, after: cut.layer)
        }
        let rest = groups.tokens.map(\.index)
        if !rest.isEmpty {
            for (b, row) in zip(rest, try answer(rest.map { entries[$0] }, rest.map { plans[$0] })) { logits[b] = row }
            let unsure = rest.filter { !cascade.accepts(logits[$0]) }
            if !unsure.isEmpty {
                let all = Array(0..<simulator.tokenCount)
                for (b, row) in zip(unsure, try answer(unsure.map { entries[$0] }, unsure.map { _ in .tokens(all) })) {
                    logits[b] = row
                    again.append((b, SelectionCost.fullPass(entries[b], simulator: simulator)))
                }
            }
        }
        return (logits, again)
    }

    /// A batch's plans by how the model answers them (indices into the batch).
    struct PlanGroups {
        /// A FastV cut: after LLM layer `layer`, keep the `keep` best-scored tokens, and merge the
        /// rest into one when `merged`.
        struct Cut: Hashable { var layer: Int, keep: Int, merged = false }
        var tokens: [(index: Int, keep: [Int])] = []
        var afterLayer: [Int: [(index: Int, tokens: [Int])]] = [:]
        /// Plans that merge what they leave out, by where: after an LLM layer, or before the LLM (nil).
        var merged: [Int?: [(index: Int, tokens: [Int])]] = [:]
        var fastV: [Cut: [Int]] = [:]

        init(_ plans: [PruningPlan]) {
            for (b, plan) in plans.enumerated() {
                switch plan {
                case let .tokens(keep): tokens.append((b, keep))
                case let .insideLLM(layer, keep): fastV[Cut(layer: layer, keep: keep), default: []].append(b)
                case let .tokensAfterLayer(layer, kept): afterLayer[layer, default: []].append((b, kept))
                case let .mergedAfterLayer(layer, kept): merged[layer, default: []].append((b, kept))
                case let .mergedTokens(keep): merged[nil, default: []].append((b, keep))
                case let .mergedInsideLLM(layer, keep): fastV[Cut(layer: layer, keep: keep, merged: true), default: []].append(b)
                }
            }
        }
    }

    /// `entry`'s question over all of its visual tokens (what a FastV plan reads up to its cut).
    func fullRequest(_ entry: TaskEntry) -> AnswerRequest {
        simulator.request(entry, keeping: Array(0..<simulator.tokenCount))
    }

    /// Answer logits for each entry under its plan, FastV plans batched through the model's FastV
    /// path and token plans through the simulator.
    func answer(_ entries: [TaskEntry], _ plans: [PruningPlan]) throws -> [[Float]] {
        var rows = [[Float]](repeating: [], count: entries.count)
        let groups = PlanGroups(plans)
        for (layer, items) in groups.afterLayer {
            for (item, row) in zip(items, try simulator.answer(items.map { (entries[$0.index], $0.tokens) }, prunedAfter: layer)) { rows[item.index] = row }
        }
        if !groups.tokens.isEmpty {
            for (item, row) in zip(groups.tokens, try simulator.answer(groups.tokens.map { (entries[$0.index], $0.keep) })) { rows[item.index] = row }
        }
        for (layer, items) in groups.merged {
            let answered = try simulator.answer(items.map { (entries[$0.index], $0.tokens) }, prunedAfter: layer, mergingRest: true)
            for (item, row) in zip(items, answered) { rows[item.index] = row }
        }
        for (cut, indices) in groups.fastV {
            let logits = try withInferenceMode {
                try simulator.model.fastVAnswerLogits(indices.map { fullRequest(entries[$0]) }, layer: cut.layer, keptAfter: cut.keep, mergingRest: cut.merged)
            }
            for (b, row) in zip(indices, logits.scalarRows()) { rows[b] = row }
        }
        return rows
    }
}
