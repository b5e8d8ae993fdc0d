import Foundation
import TensorCore

/// Settings of the on-policy training loop (the agent brings its own rollout settings).
public struct TrainerConfiguration: Sendable, Codable, Equatable {
    /// Environment steps to train for (summed over the vector environment's copies); the loop
    /// runs `totalSteps / (environmentCount · stepsPerRollout)` updates, at least one.
    public var totalSteps: Int
    /// Seed of the vector environment's first reset (sub-environment i gets `seed + i`).
    public var seed: UInt64
    /// Save a checkpoint every this many updates (and always after the last); 0 = only at the end.
    public var checkpointInterval: Int
    /// Finished episodes averaged for the `return_mean` column and the progress bar.
    public var returnWindow: Int
    /// Show a progress bar (plain lines when not on a terminal).
    public var showsProgress: Bool

    /// Trainer settings.
    public init(totalSteps: Int, seed: UInt64, checkpointInterval: Int = 10, returnWindow: Int = 20, showsProgress: Bool = true) {
        self.totalSteps = totalSteps
        self.seed = seed
        self.checkpointInterval = checkpointInterval
        self.returnWindow = returnWindow
        self.showsProgress = showsProgress
    }
}

/// What the trainer saves beside the agent in each checkpoint (`trainer.json`).
struct TrainerState: Codable {
    var update: Int
    var globalStep: Int
    var episodes: Int
    var environments: [EnvironmentSnapshot]
    /// Current observations, flat, as bit patterns (exact).
    var observations: [[UInt32]]
    var runningReturns: [Double]
    var runningLengths: [Int]
    var recentReturns: [Double]
    var recentLengths: [Int]
}

/// The on-policy training loop: collect `stepsPerRollout` steps from every environment into a
/// `RolloutBuffer`, bootstrap truncated episodes from their final observations, compute GAE,
/// let the agent learn, log a `metrics.csv` row, and checkpoint — resumable exactly.
///
/// Resuming restores the agent (weights, optimizer, generators), every environment's internal
/// state, the current observations and the episode counters, so a run interrupted after a
/// checkpoint and resumed continues identically to an uninterrupted one (`metrics.csv` rows past
/// the checkpoint are dropped first).
public final class OnPolicyTrainer<Env: Environment, A: OnPolicyAgent> where A.Observation == Env.Observation, A.Action == Env.Action {
    /// The agent being trained.
    public let agent: A
    /// The environments it collects from.
    public let environment: VectorEnvironment<Env>
    /// The loop's settings.
    public let configuration: TrainerConfiguration
    /// Where config, metrics and checkpoints go (nil: nothing is written).
    public let runDirectory: RunDirectory?
    /// Called after each update with its metrics row.
    public var onUpdate: (([(String, Double)]) -> Void)?

    /// Updates done so far.
    public private(set) var update = 0
    /// Environment steps so far, summed over the vector environment's copies.
    public private(set) var globalStep = 0
    /// Episodes finished so far.
    public private(set) var episodes = 0
    /// Returns of the last `returnWindow` episodes.
    public private(set) var recentReturns: [Double] = []
    /// Lengths of the last `returnWindow` episodes.
    public private(set) var recentLengths: [Int] = []
    private var observations: [Env.Observation] = []
    private var runningReturns: [Double] = []
    private var runningLengths: [Int] = []

    /// A trainer; the environment count must equal the agent's rollout settings.
    public init(agent: A, environment: VectorEnvironment<Env>, configuration: TrainerConfiguration, runDirectory: RunDirectory? = nil) throws {
        let settings = agent.rolloutSettings
        guard environment.count == settings.environmentCount else {
            throw AgentError.invalidConfiguration(agent: A.kind, reason: "it asks for \(settings.environmentCount) environments, the vector environment has \(environment.count)")
        }
        self.agent = agent
        self.environment = environment
        self.configuration = configuration
        self.runDirectory = runDirectory
    }

    /// Updates the whole run makes: totalSteps / (environments × stepsPerRollout), at least one.
    public var updateCount: Int {
        let settings = agent.rolloutSettings
        return max(1, configuration.totalSteps / (settings.environmentCount * settings.stepsPerRollout))
    }

    /// Mean of the last `returnWindow` finished episodes' returns (nil before the first).
    public var recentReturnMean: Double? { recentReturns.isEmpty ? nil : recentReturns.reduce(0, +) / Double(recentReturns.count) }

    /// Trains to `totalSteps`, resuming from the run directory's latest checkpoint if it has one.
    /// `maximumUpdates` stops this call after that many updates (the run can be continued by
    /// calling `train` again, or resumed from its checkpoint by a new trainer). Returns the
    /// metrics rows of the updates run by this call.
    @discardableResult
    public func train(maximumUpdates: Int? = nil) throws -> [[(String, Double)]] {
        let settings = agent.rolloutSettings
        let count = environment.count
        if let runDirectory {
            try runDirectory.create()
        }
        let metrics = try runDirectory.map { try MetricsLog(url: $0.metricsURL) }
        if !observations.isEmpty {
            // Continuing in the same process: the state is already here.
        } else if let runDirectory, let checkpoint = try runDirectory.latestCheckpoint() {
            try restore(from: checkpoint)
            try metrics?.truncate(keepingRowsWhere: "update", atMost: Double(update))
        } else {
            observations = try environment.reset(seed: configuration.seed).map(\.observation)
            runningReturns = Array(repeating: 0, count: count)
            runningLengths = Array(repeating: 0, count: count)
        }

        let buffer = RolloutBuffer(stepCount: settings.stepsPerRollout, environmentCount: count,
                                   observationWidth: agent.observationWidth, actionWidth: agent.actionWidth)
        let totalUpdates = updateCount
        let stepsPerUpdate = count * settings.stepsPerRollout
        let progress = configuration.showsProgress ? ProgressBar(total: totalUpdates * stepsPerUpdate, label: A.kind, start: globalStep) : nil
        var rows: [[(String, Double)]] = []
        let stopAt = min(totalUpdates, update + (maximumUpdates ?? totalUpdates))
        while update < stopAt {
            let started = Date()
            buffer.reset()
            for _ in 0..<settings.stepsPerRollout {
                let decision = try agent.decide(observations)
                let step = try environment.step(decision.actions)
                var finalValues = [Float](repeating: 0, count: count)
                let truncatedIndices = (0..<count).filter { step.truncated[$0] && !step.terminated[$0] }
                if settings.bootstrapsTruncation && !truncatedIndices.isEmpty {
                    let values = try agent.values(truncatedIndices.map { step.finalObservations[$0]! })
                    for (k, index) in truncatedIndices.enumerated() { finalValues[index] = values[k] }
                }
                for index in 0..<count where !step.rewards[index].isFinite {
                    throw GymError.nonFinite(environment: environment.environments[index].name, what: "the reward (\(step.rewards[index]))")
                }
                buffer.add(observations: decision.flatObservations, actions: decision.flatActions,
                           logProbabilities: decision.logProbabilities, values: decision.values,
                           rewards: settings.rewardScale == 1 ? step.rewards : step.rewards.map { $0 * settings.rewardScale }, terminated: step.terminated, truncated: step.truncated, finalValues: finalValues)
                for index in 0..<count {
                    runningReturns[index] += step.rewards[index]
                    runningLengths[index] += 1
                    if step.terminated[index] || step.truncated[index] {
                        // Prefer RecordEpisodeStatistics' figures: they are the raw returns even
                        // when a reward wrapper sits outside it.
                        let statistics = step.finalInfos[index]?.episode
                        recordEpisode(statistics?.episodeReturn ?? runningReturns[index], statistics?.length ?? runningLengths[index])
                        runningReturns[index] = 0
                        runningLengths[index] = 0
                    }
                }
                observations = step.observations
                globalStep += count
                progress?.update(globalStep, status: status)
            }
            let lastValues = try agent.values(observations)
            buffer.computeAdvantages(lastValues: lastValues, gamma: settings.gamma, lambda: settings.gaeLambda,
                                     bootstrapsTruncation: settings.bootstrapsTruncation)
            let learned = try agent.learn(from: buffer, update: update, updateCount: totalUpdates)
            update += 1
            var row: [(String, Double)] = [
                ("update", Double(update)), ("step", Double(globalStep)), ("episodes", Double(episodes)),
                ("return_mean", recentReturnMean ?? .nan),
                ("length_mean", recentLengths.isEmpty ? .nan : Double(recentLengths.reduce(0, +)) / Double(recentLengths.count)),
            ]
            row += learned
            row.append(("steps_per_second", Double(stepsPerUpdate) / max(Date().timeIntervalSince(started), 1e-9)))
            try metrics?.append(row)
            rows.append(row)
            onUpdate?(row)
            let interval = configuration.checkpointInterval
            if let runDirectory, update == stopAt || (interval > 0 && update % interval == 0) {
                try saveCheckpoint(in: runDirectory)
            }
        }
        return rows
    }

    private var status: String {
        recentReturnMean.map { String(format: "return %.1f", $0) } ?? "return –"
    }

    private func recordEpisode(_ episodeReturn: Double, _ length: Int) {
        episodes += 1
        recentReturns.append(episodeReturn)
        recentLengths.append(length)
        if recentReturns.count > configuration.returnWindow {
            recentReturns.removeFirst()
            recentLengths.removeFirst()
        }
    }

    private func saveCheckpoint(in runDirectory: RunDirectory) throws {
        let space = environment.singleObservationSpace
        let state = TrainerState(
            update: update, globalStep: globalStep, episodes: episodes, environments: try environment.snapshot(),
            observations: observations.map { space.flattened($0).map(\.bitPattern) },
            runningReturns: runningReturns, runningLengths: runningLengths,
            recentReturns: recentReturns, recentLengths: recentLengths)
        try runDirectory.saveCheckpoint(named: String(format: "update-%06d", update)) { directory in
            try agent.save(to: directory.appendingPathComponent("agent.safetensors"))
            try AtomicFile.write(try JSONEncoder().encode(state), to: directory.appendingPathComponent("trainer.json"))
        }
    }

    private func restore(from directory: URL) throws {
        let stateURL = directory.appendingPathComponent("trainer.json")
        let state: TrainerState
        let data: Data
        do { data = try Data(contentsOf: stateURL) } catch {
            throw FileError(path: stateURL.path, reason: "cannot read the trainer state (\(FileError.systemReason(error))); the checkpoint is incomplete")
        }
        do { state = try JSONDecoder().decode(TrainerState.self, from: data) } catch {
            throw FileError(path: stateURL.path, reason: "malformed trainer state: \(JSONSyntax.describe(error, of: data))")
        }
        guard state.observations.count == environment.count else {
            throw FileError(path: stateURL.path, reason: "checkpoint has \(state.observations.count) environments, this run has \(environment.count)")
        }
        try agent.load(from: directory.appendingPathComponent("agent.safetensors"))
        try environment.restore(state.environments)
        let space = environment.singleObservationSpace
        observations = try state.observations.map { bits in
            guard bits.count == space.flatDimension else {
                throw FileError(path: stateURL.path, reason: "observation of \(bits.count) values, the space \(space) has \(space.flatDimension)")
            }
            return space.unflatten(ArraySlice(bits.map(Float.init(bitPattern:))))
        }
        update = state.update
        globalStep = state.globalStep
        episodes = state.episodes
        runningReturns = state.runningReturns
        runningLengths = state.runningLengths
        recentReturns = state.recentReturns
        recentLengths = state.recentLengths
    }
}
