import BehaviorCloning
import ClassicControl
import Foundation
import Gym
import Policies
import TensorCore
import TestSupport
import Testing

@Suite("Behaviour cloning")
struct BehaviorCloningTests {
    func demonstrations(_ episodes: Int) throws -> [Trajectory<[Float], Int>] {
        let expert = ScriptedAgent<[Float], Int>(CartPole.expertAction)
        return try rolloutEpisodes(expert, in: TimeLimit(CartPole(), maxEpisodeSteps: 200), episodes: episodes, seed: 0)
    }

    @Test("the loss decreases and the clone agrees with the expert on held-out states far more than before")
    func learnsTheExpert() throws {
        var configuration = BehaviorCloningConfiguration()
        configuration.maximumEpochs = 12
        let agent = try BehaviorCloningAgent(observationSpace: CartPole().observationSpace, actionSpace: CartPole().actionSpace,
                                             configuration: configuration, seed: 0)
        let held = try demonstrations(10).suffix(2)
        let observations = held.flatMap { $0.observations.dropLast() }
        let expert = observations.map(CartPole.expertAction)
        func agreement() throws -> Double {
            let clone = try agent.act(observations, deterministic: true)
            return Double(zip(expert, clone).filter { $0 == $1 }.count) / Double(expert.count)
        }
        let before = try agreement()
        var reports: [(done: Int, total: Int)] = []
        agent.onBatch = { done, total, _ in reports.append((done, total)) }
        let rows = try agent.learn(from: try demonstrations(8))
        // Progress: every batch reported once, in order, against the batches of all 12 epochs.
        #expect(reports.map(\.done) == Array(1...reports.count))
        #expect(reports.allSatisfy { $0.total == reports[0].total } && reports[0].total % 12 == 0)
        #expect(reports.count == reports[0].total / 12 * rows.count)
        let losses = rows.map { $0.first { $0.0 == "validation_loss" }!.1 }
        #expect(losses.min()! < losses[0] * 0.8, "validation losses \(losses)")
        // The expert keeps the state near its decision boundary, so agreement cannot reach 1.
        let after = try agreement()
        #expect(after > before + 0.15 && after > 0.7, "agreement before \(before), after \(after)")
    }

    @Test("the cross-entropy loss equals −log π(a|s) − w·H by hand")
    func lossByHand() throws {
        var configuration = BehaviorCloningConfiguration()
        configuration.entropyWeight = 0.1
        let agent = try BehaviorCloningAgent(observationSpace: Box(low: -1, high: 1, shape: [1]), actionSpace: Discrete(2), configuration: configuration, seed: 0)
        let observations = Tensor(shape: [2, 1], scalars: [0.3, -0.7])
        let actions = Tensor(shape: [2, 1], scalars: [1, 0])
        let terms = agent.loss(observations: observations, actions: actions)
        let distribution = agent.network.distribution(observations) as! Categorical
        let logits = distribution.logits.scalars
        var nll = 0.0, entropy = 0.0
        for row in 0..<2 {
            let a = Double(logits[2 * row]), b = Double(logits[2 * row + 1])
            let logZ = Foundation.log(Foundation.exp(a) + Foundation.exp(b))
            let logP = [a - logZ, b - logZ]
            nll -= logP[row == 0 ? 1 : 0] / 2
            entropy -= logP.map { Foundation.exp($0) * $0 }.reduce(0, +) / 2
        }
        #expect(abs(Double(terms.total.scalar) - (nll - 0.1 * entropy)) < 1e-5)
    }

    @Test("malformed demonstrations are rejected with the trajectory and step")
    func rejectsMalformed() throws {
        let agent = try BehaviorCloningAgent(observationSpace: CartPole().observationSpace, actionSpace: CartPole().actionSpace, seed: 0)
        #expect(throws: AgentError.invalidDemonstrations(reason: "no trajectories")) { try agent.learn(from: []) }
        let bad = Trajectory<[Float], Int>(observations: [[0, 0, 0, 0], [0, 0, 0, 0]], actions: [3], terminal: true)
        #expect(throws: AgentError.invalidDemonstrations(reason: "trajectory 0, step 0: action 3 is not in Discrete(2)")) { try agent.learn(from: [bad]) }
        let short = Trajectory<[Float], Int>(observations: [[0, 0, 0, 0]], actions: [1], terminal: true)
        #expect(throws: AgentError.self) { try agent.learn(from: [short]) }
    }
}
