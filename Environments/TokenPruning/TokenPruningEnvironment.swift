import Foundation
import Gym
import TensorCore
import VLM

/// The token-pruning MDP of TPRL (Ye et al., "Learning to prune visual tokens", the TPRL paper,
/// §3.2), with a `VisionLanguageModel` as its simulator.
///
/// An episode asks one question about one image. At step t the agent sees the tokens it still
/// keeps and answers a keep mask; the kept set can only shrink. After every step the model
/// answers from the kept tokens and the reward is (paper Eq. 4–6)
///
///     r_t = α·R_task + β·R_eff,  R_task = Score_t − Score_{t−1},  R_eff = 1 − K_t / K_{t−1}
///
/// with Score_0 and K_0 = N those of the unpruned image. The episode terminates after `maxSteps`
/// (T_max, 3 by default) steps. Both terms are pluggable (`TaskScore`, `EfficiencyTerm`); with
/// `terminalOnly` the whole reward α·(Score_T − Score_0) + β·E(K_0 → K_T) comes at the last step.
///
/// **Observation** (a `DictSpace`; N visual tokens, k = the encoder's code width, D = the model's
/// width): `tokens` `[N·k]` the codes of the kept tokens (zeros where pruned), `mask` `[N]` which
/// slots are kept, `positions` `[N·2]` each slot's (row, column) on the patch grid scaled to [0, 1],
/// `query` `[D]` the mean embedding of the question's words, `step` the step index, `budget` the
/// target budget (for budget-conditioned policies), `attention` `[N]` the class-token attention of
/// each kept slot relative to uniform (N·a_i, so 1 is average; zeros where pruned) — the signal
/// the CLS-attention and VisPruner baselines rank by, which an 8-wide code does not carry. When
/// the simulator prunes after an LLM layer (`prune_after_layer`), `tokens` and `query` are the
/// model's state there and `attention` is the last text token's attention in that layer (FastV's
/// score; see `PruningSimulator`).
/// With `queryWords` L > 0 two more keys follow: `words` `[L·D]` the embeddings of the question's
/// first L words (zeros after its last) and `word_mask` `[L]` which of them are words.
///
/// **Action**: `MultiBinary(N)`, a keep mask over all slots; entries of slots already pruned are
/// ignored. **Floor rule**: when fewer than `minimumTokens` would remain, the environment keeps
/// the previously kept tokens with the highest observed attention (`TaskEntry.rankingAttention`:
/// class-token attention, or FastV's score after an LLM layer) up to the floor.
///
/// **Info** per step: `tokens_kept`, `flops` (of answering with the kept tokens), `score`,
/// `answer` (the word given), `correct` (1 or 0), `family`.
public final class TokenPruningEnvironment: Environment {
    /// `tokens`, `mask`, `positions`, `query`, `step`, `budget`, `attention`.
    public typealias Observation = [String: SpaceValue]
    /// The keep mask over all token slots.
    public typealias Action = [Bool]

    /// The VLM and its task cache.
    public let simulator: PruningSimulator
    /// The MDP's settings.
    public let configuration: TokenPruningConfiguration
    public let observationSpace: any Space<[String: SpaceValue]>
    public let actionSpace: any Space<[Bool]>
    public var name: String { "TokenPruning" }

    var generator: SeededGenerator
    var entry: TaskEntry?
    var kept: [Int] = []
    var stepIndex = 0
    var score0 = 0.0
    var previousScore = 0.0
    var budget = 0.0
    var finished = true
    /// Tokens kept before the step being taken (between `prepare` and `finish`).
    var pendingPrevious = 0
    /// Each slot's (row, column) on the patch grid scaled to [0, 1]: the same for every step.
    let positions: [Float]

    /// An environment; `seed` seeds the task and budget draws until a reset gives another.
    public init(simulator: PruningSimulator, configuration: TokenPruningConfiguration = TokenPruningConfiguration(), seed: UInt64 = 0) throws {
        try configuration.validate()
        guard configuration.pruneAfterLayer == simulator.pruneAfterLayer else {
            func place(_ layer: Int?) -> String { layer.map { "after language-model layer \($0)" } ?? "before the language model" }
            throw GymError.invalidOption(environment: "TokenPruning", reason: "prune_after_layer asks to prune \(place(configuration.pruneAfterLayer)) but the simulator prunes \(place(simulator.pruneAfterLayer)); make the simulator with simulator.sibling(pruningAfter:) or pruning(afterLayer:encoder:)")
        }
        try simulator.checkCut(afterLayer: configuration.pruneAfterLayer)
        self.simulator = simulator
        self.configuration = configuration
        generator = SeededGenerator(seed: seed)
        let n = simulator.tokenCount, k = simulator.encoder.codeWidth, d = simulator.model.tokenWidth
        observationSpace = DictSpace([
            ("tokens", Box(low: -.infinity, high: .infinity, shape: [n * k])),
            ("mask", MultiBinary(n)),
            ("positions", Box(low: 0, high: 1, shape: [n * 2])),
            ("query", Box(low: -.infinity, high: .infinity, shape: [d])),
            ("step", Discrete(configuration.maxSteps + 1)),
            ("budget", Box(low: 0, high: 1, shape: [1])),
            ("attention", Box(low: 0, high: .infinity, shape: [n])),
        ] + (configuration.queryWords > 0 ? [
            ("words", Box(low: -.infinity, high: .infinity, shape: [configuration.queryWords * d])),
            ("word_mask", MultiBinary(configuration.queryWords)),
        ] : []))
        actionSpace = MultiBinary(n)
        let grid = simulator.gridSize, scale = Float(max(1, grid - 1))
        positions = (0..<n).flatMap { [Float($0 / grid) / scale, Float($0 % grid) / scale] }
    }

    /// The current task (nil before the first reset).
    public var currentEntry: TaskEntry? { entry }
    /// Indices of the kept tokens, ascending.
    public var keptTokens: [Int] { kept }
    /// Steps taken in this episode.
    public var currentStep: Int { stepIndex }
    /// The episode's target budget.
    public var currentBudget: Double { budget }

    public func reset(seed: UInt64?, options: ResetOptions) throws -> Reset<Observation> {
        if let seed { generator = SeededGenerator(seed: seed) }
        let index: Int
        if let chosen = options.values["index"]?.number {
            index = Int(chosen)
        } else {
            index = generator.integer(below: configuration.datasetSize)
        }
        budget = configuration.budgetChoices.isEmpty ? configuration.targetBudget
            : configuration.budgetChoices[generator.integer(below: configuration.budgetChoices.count)]
        if let b = options.values["budget"]?.number { budget = b }
        try begin(try simulator.entries([index], split: configuration.split)[0])
        return Reset(observation: observation(), info: Info(values: info(logits: entry!.fullLogits)))
    }

    /// Starts an episode on `entry` (used by `reset` and the vector form).
    func begin(_ entry: TaskEntry) throws {
        self.entry = entry
        kept = Array(0..<simulator.tokenCount)
        stepIndex = 0
        score0 = score(entry.fullLogits)
        previousScore = score0
        finished = false
    }

    public func step(_ action: [Bool]) throws -> Step<Observation> {
        let request = try prepare(action)
        let logits = try simulator.answer([request])[0]
        return try finish(logits: logits)
    }

    /// Validates `action`, applies it to the kept set and returns the model request to answer.
    func prepare(_ action: [Bool]) throws -> (entry: TaskEntry, keep: [Int]) {
        guard let entry else { throw GymError.resetNeeded(environment: name) }
        guard !finished else { throw GymError.episodeFinished(environment: name) }
        let next = try nextKept(after: kept, action: action, entry: entry)
        pendingPrevious = kept.count
        kept = next
        return (entry, kept)
    }

    /// The transition of the kept set, without the model: the slots of `kept` that `action` keeps
    /// (entries of already-pruned slots ignored), topped up by the floor rule from the
    /// previously kept tokens with the highest observed attention. `step` applies it, and so
    /// does `walk`. Throws `GymError.invalidAction` for a mask of the wrong length.
    public func nextKept(after kept: [Int], action: [Bool], entry: TaskEntry) throws -> [Int] {
        guard action.count == simulator.tokenCount else {
            throw GymError.invalidAction(environment: name, space: actionSpace.description,
                                         action: "a keep mask of \(action.count) entries (expected \(simulator.tokenCount))")
        }
        var next = kept.filter { action[$0] }
        if next.count < configuration.minimumTokens {
            let chosen = Set(next)
            let attention = entry.rankingAttention
            let fill = kept.filter { !chosen.contains($0) }.sorted { attention[$0] > attention[$1] }
            next = (next + fill.prefix(configuration.minimumTokens - next.count)).sorted()
        }
        return next
    }

    /// Completes the step with the model's answer logits for the kept tokens.
    func finish(logits: [Float]) throws -> Step<Observation> {
        guard let entry else { throw GymError.resetNeeded(environment: name) }
        stepIndex += 1
        let current = score(logits)
        let c = configuration
        let reward: Double
        if c.terminalOnly {
            reward = stepIndex == c.maxSteps ? c.alpha * (current - score0) + c.beta * efficiency(from: simulator.tokenCount, to: kept.count, entry: entry) : 0
        } else {
            reward = c.alpha * (current - previousScore) + c.beta * efficiency(from: pendingPrevious, to: kept.count, entry: entry)
        }
        guard reward.isFinite else { throw GymError.nonFinite(environment: name, what: "reward (score \(current), kept \(kept.count))") }
        previousScore = current
        let terminated = stepIndex >= c.maxSteps
        finished = terminated
        return Step(observation: observation(), reward: reward, terminated: terminated, truncated: false, info: Info(values: info(logits: logits)))
    }

    /// The task score of a logit row (see `TaskScore`).
    func score(_ logits: [Float]) -> Double {
        guard let entry else { return 0 }
        let answer = entry.task.answer
        switch configuration.taskScore {
        case .accuracy: return argmax(logits) == answer ? 1 : 0
        case .probability: return exp(logProbabilities(logits)[answer])
        case .logProbability: return logProbabilities(logits)[answer]
        case .negativeKL:
            let p = logProbabilities(entry.fullLogits), q = logProbabilities(logits)
            var kl = 0.0
            for i in p.indices where p[i] > -60 { kl += exp(p[i]) * (p[i] - q[i]) }
            return -kl
        }
    }

    /// The efficiency term for going from `previous` to `current` kept tokens.
    func efficiency(from previous: Int, to current: Int, entry: TaskEntry) -> Double {
        switch configuration.efficiency {
        case .tokenRatio: return 1 - Double(current) / Double(max(1, previous))
        case .flopsSaved: return 1 - simulator.flops(entry, visualTokens: current) / simulator.flops(entry, visualTokens: previous)
        case .budgetDistance:
            let n = Double(simulator.tokenCount)
            return abs(Double(previous) / n - budget) - abs(Double(current) / n - budget)
        }
    }

    /// Plays one episode of `entry` targeting `budget` without its rewards: at each of the T_max
    /// steps `policy` sees the observation `step` would return and the kept tokens, and its keep
    /// mask goes through `nextKept`. The model is never called, and the environment's own episode
    /// is untouched. Returns the tokens kept at the end. Evaluations use it to play a policy
    /// (TPRL's threshold inference, any agent as a pruner) at the cost of the policy alone.
    public func walk(_ entry: TaskEntry, budget: Double, policy: (_ observation: Observation, _ kept: [Int]) throws -> [Bool]) throws -> [Int] {
        var kept = Array(0..<simulator.tokenCount)
        for t in 0..<configuration.maxSteps {
            kept = try nextKept(after: kept, action: try policy(observation(entry, kept: kept, step: t, budget: budget), kept), entry: entry)
        }
        return kept
    }

    func observation() -> Observation {
        guard let entry else { return [:] }
        return observation(entry, kept: kept, step: stepIndex, budget: budget)
    }

    /// The observation of `entry` with `kept` tokens (ascending) at step `step` of an episode
    /// targeting `budget` — what `reset` and `step` return, computed without asking the model
    /// (top-k inference walks the episode's steps this way).
    public func observation(_ entry: TaskEntry, kept: [Int], step stepIndex: Int, budget: Double) -> Observation {
        let n = simulator.tokenCount, k = simulator.encoder.codeWidth
        var tokens = [Float](repeating: 0, count: n * k)
        var mask = [Bool](repeating: false, count: n)
        var attention = [Float](repeating: 0, count: n)
        let ranking = entry.rankingAttention
        for i in kept {
            mask[i] = true
            attention[i] = Float(n) * ranking[i]
            for j in 0..<k { tokens[i * k + j] = entry.codes[i * k + j] }
        }
        var result: Observation = ["tokens": .real(tokens), "mask": .binary(mask), "positions": .real(positions), "query": .real(entry.query),
                                   "step": .integer(stepIndex), "budget": .real([Float(budget)]), "attention": .real(attention)]
        let words = configuration.queryWords
        if words > 0 {
            let d = simulator.model.tokenWidth, given = min(words, entry.wordEmbeddings.count / d)
            var embeddings = [Float](repeating: 0, count: words * d)
            embeddings.replaceSubrange(0..<(given * d), with: entry.wordEmbeddings[0..<(given * d)])
            result["words"] = .real(embeddings)
            result["word_mask"] = .binary((0..<words).map { $0 < given })
        }
        return result
    }

    func info(logits: [Float]) -> [String: InfoValue] {
        guard let entry else { return [:] }
        let given = argmax(logits)
        return ["tokens_kept": .number(Double(kept.count)), "flops": .number(simulator.flops(entry, visualTokens: kept.count)),
                "score": .number(score(logits)), "answer": .text(simulator.source.word(given)),
                "correct": .number(given == entry.task.answer ? 1 : 0), "family": .text(entry.task.family),
                "index": .number(Double(entry.index))]
    }

    public func snapshot() throws -> EnvironmentSnapshot {
        var s = EnvironmentSnapshot()
        s.set("generator", generator: generator)
        s.set("kept", integers: kept)
        s.set("scalars", doubles: [Double(stepIndex), score0, previousScore, budget, finished ? 1 : 0, Double(entry?.index ?? -1)])
        return s
    }

    public func restore(_ snapshot: EnvironmentSnapshot) throws {
        let x = try snapshot.doubles("scalars", in: name)
        guard x.count == 6 else { throw GymError.invalidSnapshot(environment: name, reason: "'scalars' has \(x.count) values, expected 6") }
        generator = try snapshot.generator("generator", in: name)
        kept = try snapshot.integers("kept", in: name)
        stepIndex = Int(x[0]); score0 = x[1]; previousScore = x[2]; budget = x[3]; finished = x[4] != 0
        entry = x[5] >= 0 ? try simulator.entries([Int(x[5])], split: configuration.split)[0] : nil
    }
}

func logProbabilities(_ logits: [Float]) -> [Double] {
    let m = Double(logits.max() ?? 0)
    let total = logits.reduce(0.0) { $0 + exp(Double($1) - m) }
    let shift = m + log(total)
    return logits.map { Double($0) - shift }
}

extension TokenPruningEnvironment: BatchSteppingEnvironment {
    /// Steps every environment with one batched model call (same results as stepping each alone).
    /// Errors name the sub-environment.
    public static func step(batch environments: [TokenPruningEnvironment], actions: [[Bool]]) throws -> [Step<Observation>] {
        var requests: [(entry: TaskEntry, keep: [Int])] = []
        for (index, (environment, action)) in zip(environments, actions).enumerated() {
            do { requests.append(try environment.prepare(action)) }
            catch { throw GymError.subEnvironment(index: index, underlying: "\(error)") }
        }
        var byModel: [ObjectIdentifier: [Int]] = [:]
        for (index, environment) in environments.enumerated() { byModel[ObjectIdentifier(environment.simulator), default: []].append(index) }
        var logits = [[Float]](repeating: [], count: environments.count)
        for indices in byModel.values {
            let rows = try environments[indices[0]].simulator.answer(indices.map { requests[$0] })
            for (index, row) in zip(indices, rows) { logits[index] = row }
        }
        return try environments.indices.map { index in
            do { return try environments[index].finish(logits: logits[index]) }
            catch { throw GymError.subEnvironment(index: index, underlying: "\(error)") }
        }
    }
}
