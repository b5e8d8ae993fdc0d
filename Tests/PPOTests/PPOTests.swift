import ClassicControl
import Foundation
import Gym
import NN
import Policies
import PPO
import TensorCore
import TestSupport
import Testing

@Suite("PPO")
struct PPOTests {
    @Test("the loss terms equal hand-computed values on a two-sample batch")
    func lossByHand() {
        // ratio = [1.5, 0.5], Â = [1, −1] (not normalised), ε = 0.2:
        // surrogate max(−Â·r, −Â·clip(r)) = max(−1.5, −1.2), max(0.5, 0.8) → mean(−1.2, 0.8) = −0.2
        // value: V = [1, 2], V_old = [0.5, 2.5], R = [2, 2]: unclipped [1, 0], clipped V = [0.7, 2.3] → [1.69, 0.09];
        //        ½·mean(max) = ½·0.89 = 0.445
        // entropy mean 0.5; total = −0.2 − 0.01·0.5 + 0.5·0.445 = 0.0175
        let newLogProbabilities = Tensor([Float(Foundation.log(1.5)), Float(Foundation.log(0.5))])
        let loss = PPOLoss.compute(
            newLogProbabilities: newLogProbabilities, oldLogProbabilities: Tensor([0, 0]), advantages: Tensor([1, -1]),
            newValues: Tensor([1, 2]), oldValues: Tensor([0.5, 2.5]), returns: Tensor([2, 2]), entropy: Tensor([0.6, 0.4]),
            clipCoefficient: 0.2, clipsValueLoss: true, normalizesAdvantages: false, entropyCoefficient: 0.01, valueCoefficient: 0.5)
        #expect(abs(loss.policy.scalar - -0.2) < 1e-6)
        #expect(abs(loss.value.scalar - 0.445) < 1e-6)
        #expect(abs(loss.entropy.scalar - 0.5) < 1e-6)
        #expect(abs(loss.total.scalar - 0.0175) < 1e-6)
        // k3: mean((r − 1) − log r) = mean(0.5 − 0.405465, −0.5 + 0.693147); old: mean(−log r)
        #expect(abs(loss.approximateKL - 0.143841) < 1e-5)
        #expect(abs(loss.oldApproximateKL - 0.143841) < 1e-5)
        #expect(loss.clipFraction == 1)
        // Without value clipping: ½·mean([1, 0]) = 0.25.
        let unclipped = PPOLoss.compute(
            newLogProbabilities: newLogProbabilities, oldLogProbabilities: Tensor([0, 0]), advantages: Tensor([1, -1]),
            newValues: Tensor([1, 2]), oldValues: Tensor([0.5, 2.5]), returns: Tensor([2, 2]), entropy: Tensor([0.6, 0.4]),
            clipCoefficient: 0.2, clipsValueLoss: false, normalizesAdvantages: false, entropyCoefficient: 0.01, valueCoefficient: 0.5)
        #expect(abs(unclipped.value.scalar - 0.25) < 1e-6)
    }

    @Test("clipped samples carry no policy gradient; unclipped ones carry −Â·r/B")
    func lossGradients() {
        let logits = Parameter(Tensor([Float(Foundation.log(1.5)), Float(Foundation.log(1.1))]))
        let loss = PPOLoss.compute(
            newLogProbabilities: logits.tensor, oldLogProbabilities: Tensor([0, 0]), advantages: Tensor([1, 2]),
            newValues: Tensor([0, 0]), oldValues: Tensor([0, 0]), returns: Tensor([0, 0]), entropy: Tensor([0, 0]),
            clipCoefficient: 0.2, clipsValueLoss: true, normalizesAdvantages: false, entropyCoefficient: 0, valueCoefficient: 0)
        loss.total.backward()
        // Sample 0: r = 1.5 > 1.2 with Â > 0 → clipped, zero gradient. Sample 1: r = 1.1 → −Â·r/2 = −1.1.
        expectClose(logits.gradient!.scalars, [0, -1.1], absolute: 1e-5)
    }

    @Test("advantages are normalised per minibatch with Bessel's correction")
    func advantageNormalisation() {
        // Â = [1, −1] → mean 0, std √2 → [0.7071, −0.7071]; r = 1, so policy = mean(−Â) = 0.
        let loss = PPOLoss.compute(
            newLogProbabilities: Tensor([0, 0]), oldLogProbabilities: Tensor([0, 0]), advantages: Tensor([3, 1]),
            newValues: Tensor([0, 0]), oldValues: Tensor([0, 0]), returns: Tensor([0, 0]), entropy: Tensor([0, 0]),
            clipCoefficient: 0.2, clipsValueLoss: false, normalizesAdvantages: true, entropyCoefficient: 0, valueCoefficient: 0)
        #expect(abs(loss.policy.scalar) < 1e-6)
        let parameter = Parameter(Tensor([0, 0]))
        let graded = PPOLoss.compute(
            newLogProbabilities: parameter.tensor, oldLogProbabilities: Tensor([0, 0]), advantages: Tensor([3, 1]),
            newValues: Tensor([0, 0]), oldValues: Tensor([0, 0]), returns: Tensor([0, 0]), entropy: Tensor([0, 0]),
            clipCoefficient: 0.2, clipsValueLoss: false, normalizesAdvantages: true, entropyCoefficient: 0, valueCoefficient: 0)
        graded.total.backward()
        expectClose(parameter.gradient!.scalars, [-0.5 / Float(2).squareRoot(), 0.5 / Float(2).squareRoot()], absolute: 1e-5)
    }

    @Test("distributions: log-probabilities and entropies equal closed forms; masks remove entries")
    func distributions() {
        let categorical = Categorical(logits: Tensor(shape: [1, 3], scalars: [0, Float(Foundation.log(2.0)), Float(Foundation.log(3.0))]))
        #expect(abs(categorical.logProbability(of: Tensor(shape: [1, 1], scalars: [2])).scalar - Float(Foundation.log(0.5))) < 1e-6)
        let p: [Double] = [1.0 / 6, 2.0 / 6, 3.0 / 6]
        #expect(abs(Double(categorical.entropy().scalar) - -p.map { $0 * Foundation.log($0) }.reduce(0, +)) < 1e-6)
        #expect(categorical.mode().scalars == [2])

        let z: Float = 0.7, sigma = 1 / (1 + Foundation.exp(-z))
        let bernoulli = Bernoulli(logits: Tensor(shape: [1, 3], scalars: [z, -z, 5]), mask: Tensor(shape: [1, 3], scalars: [1, 1, 0]))
        let logP = bernoulli.logProbability(of: Tensor(shape: [1, 3], scalars: [1, 1, 1])).scalar
        #expect(abs(logP - (Foundation.log(sigma) + Foundation.log(1 - sigma))) < 1e-6)  // the masked entry does not count
        let h = -(sigma * Foundation.log(sigma) + (1 - sigma) * Foundation.log(1 - sigma))
        #expect(abs(bernoulli.entropy().scalar - 2 * h) < 1e-6)
        var generator = testGenerator(0)
        for _ in 0..<20 { #expect(bernoulli.sample(using: &generator).scalars[2] == 0) }
        #expect(bernoulli.mode().scalars == [1, 0, 0])

        let gaussian = DiagonalGaussian(mean: Tensor(shape: [1, 2], scalars: [0, 1]), logStandardDeviation: Tensor(shape: [1, 2], scalars: [0, Float(Foundation.log(2.0))]))
        let x: [Float] = [0.5, 2]
        let expected = (-0.5 * 0.25 - 0.5 * Foundation.log(2 * Float.pi)) + (-0.5 * 0.25 - Foundation.log(Float(2)) - 0.5 * Foundation.log(2 * Float.pi))
        #expect(abs(gaussian.logProbability(of: Tensor(shape: [1, 2], scalars: x)).scalar - expected) < 1e-5)
        let entropy = 2 * (0.5 + 0.5 * Foundation.log(2 * Float.pi)) + Foundation.log(Float(2))
        #expect(abs(gaussian.entropy().scalar - entropy) < 1e-5)
    }

    /// Every k-subset of `n` entries, as index lists.
    static func subsets(_ n: Int, _ k: Int) -> [[Int]] {
        (0..<(1 << n)).map { bits in (0..<n).filter { bits & (1 << $0) != 0 } }.filter { $0.count == k }
    }

    @Test("the conditional Bernoulli equals its enumeration: probabilities, entropy, gradients, samples")
    func conditionalBernoulliByEnumeration() {
        // Row 0: 6 valid entries, k = 3. Row 1: entries 1 and 4 masked out, k = 2 of the other four.
        let n = 6
        let z: [Float] = [0.3, -1.2, 2.0, 0.5, -0.4, 1.1, 1.5, 9.0, -0.3, 0.8, -9.0, 0.0]
        let mask: [Float] = [1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 1]
        let counts = [3, 2]
        let valid = [[0, 1, 2, 3, 4, 5], [0, 2, 3, 5]]
        // Enumerated: P(S) = exp(Σ z_S) / Σ_S' exp(Σ z_S'), H, and the inclusion probabilities.
        var probabilities: [[([Int], Double)]] = []
        for b in 0..<2 {
            let sets = Self.subsets(valid[b].count, counts[b]).map { $0.map { valid[b][$0] } }
            let weights = sets.map { set in Foundation.exp(set.map { Double(z[b * n + $0]) }.reduce(0, +)) }
            let total = weights.reduce(0, +)
            probabilities.append(zip(sets, weights).map { ($0, $1 / total) })
        }
        let logits = Parameter(Tensor(shape: [2, n], scalars: z))
        let distribution = ConditionalBernoulli(logits: logits.tensor, mask: Tensor(shape: [2, n], scalars: mask), counts: counts)
        for b in 0..<2 {
            for (set, p) in probabilities[b] {
                var row = [Float](repeating: 0, count: 2 * n)
                for i in set { row[b * n + i] = 1 }
                // The other row gets its own most probable set so that both rows are in the support.
                let other = probabilities[1 - b].max { $0.1 < $1.1 }!.0
                for i in other { row[(1 - b) * n + i] = 1 }
                let logP = distribution.logProbability(of: Tensor(shape: [2, n], scalars: row)).scalars[b]
                #expect(abs(Double(logP) - Foundation.log(p)) < 1e-4)
            }
            let entropy = -probabilities[b].map { $0.1 * Foundation.log($0.1) }.reduce(0, +)
            #expect(abs(Double(distribution.entropy().scalars[b]) - entropy) < 1e-4)
        }
        // d log e_k / dz_i is P(i ∈ S).
        Tensor.conditionalBernoulliLogNormalizer(logits.tensor, mask: Tensor(shape: [2, n], scalars: mask), counts: counts).sum().backward()
        let inclusion = logits.gradient!.scalars
        for b in 0..<2 {
            for i in 0..<n {
                let expected = probabilities[b].filter { $0.0.contains(i) }.map(\.1).reduce(0, +)
                #expect(abs(Double(inclusion[b * n + i]) - expected) < 1e-5)
            }
        }
        // The entropy's gradient against central differences of the enumerated entropy.
        logits.zeroGradient()
        ConditionalBernoulli(logits: logits.tensor, mask: Tensor(shape: [2, n], scalars: mask), counts: counts).entropy().sum().backward()
        let gradient = logits.gradient!.scalars
        func enumeratedEntropy(_ values: [Float], _ b: Int) -> Double {
            let sets = Self.subsets(valid[b].count, counts[b]).map { $0.map { valid[b][$0] } }
            let weights = sets.map { set in Foundation.exp(set.map { Double(values[b * n + $0]) }.reduce(0, +)) }
            let total = weights.reduce(0, +)
            return -weights.map { $0 / total * Foundation.log($0 / total) }.reduce(0, +)
        }
        for b in 0..<2 {
            for i in 0..<n {
                var up = z, down = z
                up[b * n + i] += 1e-3
                down[b * n + i] -= 1e-3
                let expected = (enumeratedEntropy(up, b) - enumeratedEntropy(down, b)) / 2e-3
                #expect(abs(Double(gradient[b * n + i]) - expected) < 1e-3, "entropy gradient row \(b) entry \(i)")
            }
        }
        // Samples: exactly k valid entries, with the enumerated frequencies.
        var generator = testGenerator(4)
        var frequencies: [[Int]: Int] = [:]
        let draws = 20000
        for _ in 0..<draws {
            let sample = distribution.sample(using: &generator).scalars
            #expect(sample[7] == 0 && sample[10] == 0)
            #expect(sample[0..<n].reduce(0, +) == 3 && sample[n...].reduce(0, +) == 2)
            frequencies[(0..<n).filter { sample[$0] == 1 }, default: 0] += 1
        }
        for (set, p) in probabilities[0] {
            let observed = Double(frequencies[set] ?? 0) / Double(draws)
            #expect(abs(observed - p) < 4 * (p * (1 - p) / Double(draws)).squareRoot() + 1e-3, "P(\(set))")
        }
        #expect(distribution.mode().scalars == [0, 0, 1, 1, 0, 1, 1, 0, 0, 1, 0, 0])
    }

    @Test("the conditional Bernoulli ignores a shift of every logit")
    func conditionalBernoulliShift() {
        let z: [Float] = [0.3, -1.2, 2.0, 0.5, -0.4]
        let action = Tensor(shape: [1, 5], scalars: [1, 0, 1, 0, 0])
        let base = ConditionalBernoulli(logits: Tensor(shape: [1, 5], scalars: z), counts: [2])
        let shifted = ConditionalBernoulli(logits: Tensor(shape: [1, 5], scalars: z.map { $0 + 7 }), counts: [2])
        #expect(abs(base.logProbability(of: action).scalar - shifted.logProbability(of: action).scalar) < 1e-4)
        #expect(abs(base.entropy().scalar - shifted.entropy().scalar) < 1e-4)
        // k larger than the valid entries keeps them all: one subset, probability 1.
        let all = ConditionalBernoulli(logits: Tensor(shape: [1, 3], scalars: [1, 2, 3]), counts: [5])
        #expect(all.counts == [3])
        #expect(abs(all.logProbability(of: Tensor(shape: [1, 3], scalars: [1, 1, 1])).scalar) < 1e-6)
        #expect(abs(all.entropy().scalar) < 1e-6)
    }

    @Test("the MLP actor-critic uses CleanRL's orthogonal initialisation")
    func initialisation() {
        var generator = testGenerator(3)
        let network = MLPActorCritic(observationWidth: 4, action: .discrete(count: 2, start: 0), generator: &generator)
        let head = network.actor.layers[2].weight.value  // [2, 64], gain 0.01: rows orthonormal × 0.01
        let rows = head.scalars
        let norm = (0..<64).map { rows[$0] * rows[$0] }.reduce(0, +).squareRoot()
        #expect(abs(norm - 0.01) < 1e-5)
        #expect(network.actor.layers.allSatisfy { $0.bias!.value.scalars.allSatisfy { $0 == 0 } })
    }

    @Test("unsupported action spaces and bad configurations are rejected with a clear error")
    func rejectsBadInput() {
        #expect(throws: AgentError.self) {
            try PPOAgent(observationSpace: Box(low: 0, high: 1, shape: [2]), actionSpace: MultiDiscrete([2, 3]), seed: 0)
        }
        var configuration = PPOConfiguration()
        configuration.minibatchCount = 0
        #expect(throws: AgentError.invalidConfiguration(agent: "ppo", reason: "minibatch_count must be in 1...512, got 0")) {
            try PPOAgent(observationSpace: Box(low: 0, high: 1, shape: [2]), actionSpace: Discrete(2), configuration: configuration, seed: 0)
        }
    }

    @Test("a configuration file fills omitted fields with defaults and rejects unknown keys")
    func configurationDecoding() throws {
        let decoded = try JSONDecoder().decode(PPOConfiguration.self, from: Data(#"{"learning_rate": 0.001, "target_kl": 0.02}"#.utf8))
        var expected = PPOConfiguration()
        expected.learningRate = 0.001
        expected.targetKL = 0.02
        #expect(decoded == expected)
        #expect(try JSONDecoder().decode(PPOConfiguration.self, from: JSONEncoder().encode(PPOConfiguration.pendulum)) == .pendulum)
        do {
            _ = try JSONDecoder().decode(PPOConfiguration.self, from: Data(#"{"learnin_rate": 0.001}"#.utf8))
            Issue.record("an unknown key was accepted")
        } catch let DecodingError.dataCorrupted(context) {
            #expect(context.debugDescription.hasPrefix("unknown key 'learnin_rate'"))
        }
    }

    static var tinyConfiguration: PPOConfiguration {
        var c = PPOConfiguration.cartPole
        c.environmentCount = 2
        c.stepsPerRollout = 16
        c.epochs = 2
        c.minibatchCount = 2
        c.hiddenSizes = [16]
        c.normalizesObservations = true
        return c
    }

    func trainer(_ directory: URL?, seed: UInt64 = 0) throws -> OnPolicyTrainer<TimeLimit<CartPole>, PPOAgent<[Float], Int>> {
        let vector = VectorEnvironment(count: 2) { _ in TimeLimit(CartPole(), maxEpisodeSteps: 500) }
        let agent = try PPOAgent(observationSpace: vector.singleObservationSpace, actionSpace: vector.singleActionSpace,
                                 configuration: Self.tinyConfiguration, seed: seed)
        return try OnPolicyTrainer(agent: agent, environment: vector,
                                   configuration: TrainerConfiguration(totalSteps: 4 * 32, seed: seed, checkpointInterval: 0, showsProgress: false),
                                   runDirectory: directory.map(RunDirectory.init))
    }

    @Test("an interrupted run resumed from its checkpoint continues exactly like an uninterrupted one")
    func resumeIsExact() throws {
        let straight = try trainer(try makeTemporaryDirectory())
        let straightRows = try straight.train()

        let directory = try makeTemporaryDirectory()
        let first = try trainer(directory)
        _ = try first.train(maximumUpdates: 2)
        let resumed = try trainer(directory)  // a fresh process: new agent, new environments
        let resumedRows = try resumed.train()

        #expect(resumedRows.count == 2)
        for (a, b) in zip(straight.agent.network.namedParameters, resumed.agent.network.namedParameters) {
            #expect(a.parameter.value.scalars == b.parameter.value.scalars, "\(a.name)")
        }
        func deterministic(_ row: [(String, Double)]) -> [Double] { row.filter { $0.0 != "steps_per_second" }.map(\.1) }
        #expect(deterministic(straightRows[2]).elementsEqual(deterministic(resumedRows[0])) { $0 == $1 || ($0.isNaN && $1.isNaN) })
        let metrics = try MetricsLog.read(RunDirectory(directory).metricsURL)
        #expect(metrics.rows.count == 4 && metrics.rows.map { $0[0] } == [1, 2, 3, 4])
    }

    @Test("the same seed gives the same training run; another seed does not")
    func reproducible() throws {
        let a = try trainer(nil, seed: 1), b = try trainer(nil, seed: 1), c = try trainer(nil, seed: 2)
        _ = try a.train(); _ = try b.train(); _ = try c.train()
        let weights = { (t: OnPolicyTrainer<TimeLimit<CartPole>, PPOAgent<[Float], Int>>) in t.agent.network.parameters.flatMap(\.value.scalars) }
        #expect(weights(a) == weights(b))
        #expect(weights(a) != weights(c))
    }

    @Test("save and load round-trip; loading into another agent or other spaces fails clearly")
    func saveAndLoad() throws {
        let directory = try makeTemporaryDirectory()
        let url = directory.appendingPathComponent("agent.safetensors")
        let agent = try PPOAgent(observationSpace: Box(low: -1, high: 1, shape: [4]), actionSpace: Discrete(2), configuration: Self.tinyConfiguration, seed: 4)
        _ = try agent.decide([[0.1, 0.2, 0.3, 0.4]])  // moves the normaliser and the generator
        try agent.save(to: url)
        let copy = try PPOAgent(observationSpace: Box(low: -1, high: 1, shape: [4]), actionSpace: Discrete(2), configuration: Self.tinyConfiguration, seed: 99)
        try copy.load(from: url)
        let observation: [[Float]] = [[0.5, -0.5, 0.1, 0]]
        #expect(try agent.act(observation, deterministic: false) == copy.act(observation, deterministic: false))
        #expect(agent.normalizer == copy.normalizer)
        let other = try PPOAgent(observationSpace: Box(low: -1, high: 1, shape: [3]), actionSpace: Discrete(2), configuration: Self.tinyConfiguration, seed: 0)
        #expect(throws: AgentError.self) { try other.load(from: url) }
    }

    @Test("PPO improves CartPole within a few thousand steps")
    func learnsSomething() throws {
        let vector = VectorEnvironment(count: 8) { _ in TimeLimit(CartPole(), maxEpisodeSteps: 500) }
        var configuration = PPOConfiguration.cartPole
        configuration.hiddenSizes = [32, 32]
        let agent = try PPOAgent(observationSpace: vector.singleObservationSpace, actionSpace: vector.singleActionSpace, configuration: configuration, seed: 0)
        let before = try evaluate(agent, in: TimeLimit(CartPole(), maxEpisodeSteps: 500), episodes: 5, seed: 100)
        let trainer = try OnPolicyTrainer(agent: agent, environment: vector,
                                          configuration: TrainerConfiguration(totalSteps: 12_288, seed: 0, showsProgress: false))
        try trainer.train()
        let after = try evaluate(agent, in: TimeLimit(CartPole(), maxEpisodeSteps: 500), episodes: 5, seed: 100)
        #expect(after.mean > max(100, 2 * before.mean), "before \(before), after \(after)")
    }
}

/// A one-step bandit with a MultiBinary(6) action whose last two entries are padding: the
/// observation carries a validity mask [1, 1, 1, 1, 0, 0]; the reward is the number of valid
/// entries set to match the target pattern 1, 0, 1, 0.
final class MaskedBandit: Environment {
    let observationSpace: any Space<[Float]> = Box(low: 0, high: 1, shape: [6])
    let actionSpace: any Space<[Bool]> = MultiBinary(6)
    var episode = EpisodeGuard()
    static let target = [true, false, true, false]

    func reset(seed: UInt64?, options: ResetOptions) throws -> Reset<[Float]> {
        episode.begin()
        return Reset(observation: [1, 1, 1, 1, 0, 0])
    }

    func step(_ action: [Bool]) throws -> Step<[Float]> {
        try episode.checkCanStep("MaskedBandit")
        try validate(action)
        episode.end(if: true)
        let reward = Double(zip(action.prefix(4), Self.target).filter { $0 == $1 }.count)
        return Step(observation: [1, 1, 1, 1, 0, 0], reward: reward, terminated: true, truncated: false)
    }
}

@Suite("PPO with a masked MultiBinary action")
struct MaskedPPOTests {
    @Test("learns the valid entries and never sets a masked one")
    func learnsMaskedBandit() throws {
        var configuration = PPOConfiguration()
        configuration.environmentCount = 4
        configuration.stepsPerRollout = 16
        configuration.minibatchCount = 2
        configuration.learningRate = 3e-3
        configuration.entropyCoefficient = 0
        configuration.hiddenSizes = [16]
        let vector = VectorEnvironment(count: 4) { _ in MaskedBandit() }
        let agent = try PPOAgent(observationSpace: vector.singleObservationSpace, actionSpace: vector.singleActionSpace,
                                 configuration: configuration, seed: 0, maskRange: 0..<6)
        let trainer = try OnPolicyTrainer(agent: agent, environment: vector,
                                          configuration: TrainerConfiguration(totalSteps: 64 * 40, seed: 0, showsProgress: false))
        try trainer.train()
        let action = try agent.act([[1, 1, 1, 1, 0, 0]], deterministic: true)[0]
        #expect(Array(action.prefix(4)) == MaskedBandit.target)
        #expect(action[4] == false && action[5] == false)
        for sample in try agent.act(Array(repeating: [1, 1, 1, 1, 0, 0], count: 50), deterministic: false) {
            #expect(!sample[4] && !sample[5])
        }
    }
}
