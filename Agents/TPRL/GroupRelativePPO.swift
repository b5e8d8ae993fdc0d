import Foundation
import Gym
import NN
import Policies
import PPO
import TensorCore
import TokenPruning

/// PPO with group-relative advantages (GRPO; Shao et al., "DeepSeekMath", 2024) for one-step
/// token-pruning episodes: each update draws `questions` tasks, plays each `groupSize` times with
/// kept sets drawn from the policy's exact-budget distribution (`TPRLActorCritic.exactBudget`: k
/// tokens, the Bernoulli(σ(z/T)) conditioned on k ones), and scores every episode against the
/// others of its group: Â = (r − mean of the group) / (std of the group + 10⁻⁸) (`advantageScale`
/// `.group`; `.update` and `.none` for the ablations of Dr. GRPO, Liu et al. 2025). Playing the same
/// question several times removes what the question itself contributes to the reward — most of
/// its variance here, which a value network on the observation does not predict (PPO's explained
/// variance stays near 0) — so the gradient carries only which tokens made the difference. The
/// loss is PPO's clipped surrogate with the entropy bonus and no value term.
public struct GroupRelativePPO {
    /// Tasks per update.
    public var questions = 16
    /// Episodes per task.
    public var groupSize = 8
    /// Updates.
    public var updates = 40
    /// Passes over each update's episodes.
    public var epochs = 2
    /// Minibatches per pass.
    public var minibatchCount = 4
    /// Adam's learning rate (annealed linearly to 0).
    public var learningRate: Float = 1e-4
    /// The PPO clip ε.
    public var clipCoefficient: Float = 0.2
    /// Weight of the entropy bonus.
    public var entropyCoefficient: Float = 0.001
    /// Maximum gradient norm.
    public var maxGradientNorm: Float = 0.5
    /// What divides each episode's reward minus its group's mean: the group's standard deviation
    /// (GRPO), one standard deviation over the whole update, or nothing.
    public var advantageScale = AdvantageScale.group

    /// What divides an episode's centred reward (`advantages(rewards:groupSize:scale:)`).
    public enum AdvantageScale: String, Codable, CaseIterable, Sendable {
        /// The standard deviation of the episode's group (GRPO, Shao et al. 2024): every group's
        /// advantages have standard deviation 1, however little its rewards differ.
        case group
        /// One standard deviation of all the update's centred rewards: a group whose rewards
        /// barely differ gets small advantages.
        case update
        /// None: the centred reward itself (Dr. GRPO, Liu et al. 2025, "Understanding R1-Zero-Like
        /// Training"), whose scale is the reward's.
        case none
    }

    /// Group-relative advantages of `rewards`, consecutive groups of `groupSize`: each reward
    /// minus its group's mean, divided as `scale` says (standard deviations with n − 1, plus 10⁻⁸).
    public static func advantages(rewards: [Double], groupSize: Int, scale: AdvantageScale) -> [Float] {
        precondition(groupSize >= 2 && rewards.count % groupSize == 0, "GroupRelativePPO.advantages: \(rewards.count) rewards in groups of \(groupSize)")
        var centred: [Double] = []
        var divisors: [Double] = []
        for start in stride(from: 0, to: rewards.count, by: groupSize) {
            let group = Array(rewards[start..<(start + groupSize)])
            let mean = group.reduce(0, +) / Double(groupSize)
            centred += group.map { $0 - mean }
            divisors += Array(repeating: scale == .group ? standardDeviation(group) + 1e-8 : 1, count: groupSize)
        }
        if scale == .update {
            let divisor = standardDeviation(centred) + 1e-8
            divisors = divisors.map { _ in divisor }
        }
        return zip(centred, divisors).map { Float($0 / $1) }
    }

    /// The mean over groups of each group's reward standard deviation (n − 1): how much an update's
    /// draws of one task differ.
    static func meanGroupStandardDeviation(rewards: [Double], groupSize: Int) -> Double {
        let groups = stride(from: 0, to: rewards.count, by: groupSize).map { standardDeviation(Array(rewards[$0..<($0 + groupSize)])) }
        return groups.reduce(0, +) / Double(max(1, groups.count))
    }

    /// The sample standard deviation (n − 1) of `values`.
    private static func standardDeviation(_ values: [Double]) -> Double {
        let mean = values.reduce(0, +) / Double(values.count)
        return (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(max(1, values.count - 1))).squareRoot()
    }

    /// A configuration with the defaults above.
    public init() {}

    /// Trains `network` (its `exactBudget` is on during the call) on episodes of `make`'s
    /// environments: `make(0..<questions·groupSize)` play an update's episodes, and
    /// `make(questions·groupSize + q)` plays task q's top-k set for the `greedy_score` metric (the
    /// mean reward of the top-k sets of the update's tasks, before it). Returns one row of metrics
    /// per update; throws on a non-finite reward or loss.
    ///
    /// With a `checkpoint` file the phase saves the network, Adam's moments, its generator and the
    /// metrics after every update (atomically), and a call that finds the file resumes after its
    /// last update — the same weights as an uninterrupted run; `onUpdate` is replayed for the
    /// restored updates. `stopAfter` ends the call after that many updates (an interruption, for
    /// tests and staged runs).
    public func train(network: TPRLActorCritic, seed: UInt64, make: (Int) throws -> TokenPruningEnvironment,
                      checkpoint: URL? = nil, stopAfter: Int? = nil,
                      onUpdate: (Int, [(String, Double)]) -> Void = { _, _ in }) throws -> [[(String, Double)]] {
        let count = questions * groupSize
        let environments = try (0..<count).map(make)
        let greedy = try (0..<questions).map { try make(count + $0) }
        let space = environments[0].observationSpace
        let optimizer = Adam(network.namedParameters, learningRate: learningRate, epsilon: 1e-5)
        var generator = SeededGenerator(seed: seed)
        let previous = network.exactBudget
        network.exactBudget = true
        defer { network.exactBudget = previous }
        var rows: [[(String, Double)]] = []
        if let checkpoint, FileManager.default.fileExists(atPath: checkpoint.path) {
            (generator, rows) = try resume(from: checkpoint, network: network, optimizer: optimizer)
            for (update, row) in rows.enumerated() { onUpdate(update, row) }
        }
        for update in rows.count..<updates {
            if let stopAfter, update >= stopAfter { break }
            optimizer.learningRate = learningRate * (1 - Float(update) / Float(updates))
            // The same task (and budget) for every episode of a group.
            var observations: [Float] = []
            for q in 0..<questions {
                let taskSeed = generator.next()
                for g in 0..<groupSize {
                    observations += space.flattened(try environments[q * groupSize + g].reset(seed: taskSeed).observation)
                }
                _ = try greedy[q].reset(seed: taskSeed)
            }
            let width = observations.count / count
            let input = Tensor(shape: [count, width], scalars: observations)
            let (actions, oldLogProbabilities, modes) = withInferenceMode { () -> (Tensor, Tensor, Tensor) in
                let distribution = network.distribution(input)
                let sampled = distribution.sample(using: &generator)
                let firsts = (0..<questions).map { $0 * groupSize }
                return (sampled, distribution.logProbability(of: sampled), distribution.mode().indexSelect(firsts, alongAxis: 0))
            }
            let n = actions.shape[1]
            func masks(_ rows: Tensor) -> [[Bool]] {
                let values = rows.scalars
                return (0..<rows.shape[0]).map { b in (0..<n).map { values[b * n + $0] != 0 } }
            }
            let steps = try TokenPruningEnvironment.step(batch: environments, actions: masks(actions))
            let greedySteps = try TokenPruningEnvironment.step(batch: greedy, actions: masks(modes))
            let rewards = steps.map(\.reward)
            guard rewards.allSatisfy(\.isFinite) else { throw AgentError.nonFinite(agent: "grpo", what: "a reward") }
            let advantages = Self.advantages(rewards: rewards, groupSize: groupSize, scale: advantageScale)
            var losses: [PPOLoss] = []
            for _ in 0..<epochs {
                var order = Array(0..<count)
                generator.shuffle(&order)
                let size = max(1, count / minibatchCount)
                for start in stride(from: 0, to: count, by: size) {
                    let indices = Array(order[start..<min(count, start + size)])
                    let batch = input.indexSelect(indices, alongAxis: 0)
                    let distribution = network.distribution(batch)
                    let zeros = Tensor.zeros([indices.count])
                    let loss = PPOLoss.compute(
                        newLogProbabilities: distribution.logProbability(of: actions.indexSelect(indices, alongAxis: 0)),
                        oldLogProbabilities: oldLogProbabilities.indexSelect(indices, alongAxis: 0),
                        advantages: Tensor(shape: [indices.count], scalars: indices.map { advantages[$0] }),
                        newValues: zeros, oldValues: zeros, returns: zeros, entropy: distribution.entropy(),
                        clipCoefficient: clipCoefficient, clipsValueLoss: false, normalizesAdvantages: false,
                        entropyCoefficient: entropyCoefficient, valueCoefficient: 0)
                    guard loss.total.scalar.isFinite else { throw AgentError.nonFinite(agent: "grpo", what: "the loss") }
                    optimizer.zeroGradients()
                    loss.total.backward()
                    clipGradientNorm(network.parameters, maxNorm: maxGradientNorm)
                    optimizer.step()
                    losses.append(loss)
                }
            }
            let row: [(String, Double)] = [
                ("update", Double(update + 1)),
                ("episodes", Double((update + 1) * count)),
                ("reward_mean", rewards.reduce(0, +) / Double(count)),
                ("greedy_score", greedySteps.map(\.reward).reduce(0, +) / Double(questions)),
                ("group_reward_std", Self.meanGroupStandardDeviation(rewards: rewards, groupSize: groupSize)),
                ("learning_rate", Double(optimizer.learningRate)),
                ("entropy", Double(losses.last!.entropy.scalar)),
                ("approx_kl", Double(losses.map(\.approximateKL).reduce(0, +)) / Double(losses.count)),
                ("clip_fraction", Double(losses.map(\.clipFraction).reduce(0, +)) / Double(losses.count)),
            ]
            rows.append(row)
            if let checkpoint { try save(to: checkpoint, network: network, optimizer: optimizer, generator: generator, rows: rows) }
            onUpdate(update, row)
        }
        return rows
    }

    /// The settings a checkpoint must share with the phase that resumes it.
    var settings: String {
        "questions \(questions), group \(groupSize), updates \(updates), epochs \(epochs), minibatches \(minibatchCount), "
            + "learning rate \(learningRate), clip \(clipCoefficient), entropy \(entropyCoefficient), gradient norm \(maxGradientNorm)"
            + (advantageScale == .group ? "" : ", advantages scaled by \(advantageScale.rawValue)")
    }

    /// The metrics of the updates so far, as a checkpoint records them.
    struct Metrics: Codable {
        var columns: [String]
        var values: [[Double]]
    }

    func save(to url: URL, network: TPRLActorCritic, optimizer: Adam, generator: SeededGenerator, rows: [[(String, Double)]]) throws {
        let metrics = Metrics(columns: rows.first?.map(\.0) ?? [], values: rows.map { $0.map(\.1) })
        try Checkpoint.save(model: network, optimizer: optimizer, generators: ["grpo": generator],
                            metadata: ["kind": "grpo", "grpo.settings": settings,
                                       "grpo.metrics": String(decoding: try JSONEncoder().encode(metrics), as: UTF8.self)], to: url)
    }

    func resume(from url: URL, network: TPRLActorCritic, optimizer: Adam) throws -> (SeededGenerator, [[(String, Double)]]) {
        let (generators, metadata) = try Checkpoint.load(from: url, model: network, optimizer: optimizer)
        guard metadata["kind"] == "grpo", let generator = generators["grpo"], let text = metadata["grpo.metrics"],
              let metrics = try? JSONDecoder().decode(Metrics.self, from: Data(text.utf8)) else {
            throw FileError(path: url.path, reason: "not a checkpoint of a group-relative PPO phase; delete it to start the phase afresh")
        }
        guard metadata["grpo.settings"] == settings else {
            throw FileError(path: url.path, reason: "a checkpoint of another group-relative PPO phase (\(metadata["grpo.settings"] ?? "no settings")); this one has \(settings); delete it to start afresh")
        }
        let rows = metrics.values.map { values in zip(metrics.columns, values).map { ($0, $1) } }
        guard rows.count <= updates, metrics.values.allSatisfy({ $0.count == metrics.columns.count }) else {
            throw FileError(path: url.path, reason: "its metrics are malformed or longer than the phase's \(updates) updates; delete it to start afresh")
        }
        return (generator, rows)
    }
}
