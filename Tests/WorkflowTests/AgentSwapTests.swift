import Foundation
import Gym
import PPO
import PruneGymTesting
import Pruners
import PruneGymCommands
import TensorCore
import TestSupport
import Testing
import TokenPruning

/// The custom-agent example (examples/custom-agent/…/ReinforceAgent.swift, compiled into this
/// target through a symbolic link) registers, trains, evaluates and checkpoints like a built-in agent.
@Suite("Swapping agents")
struct AgentSwapTests {
    func registry() throws -> AgentRegistry {
        var agents = AgentRegistry()
        try agents.register(PPOAgentFactory())
        try agents.register(ReinforceAgentFactory())
        return agents
    }

    @Test("agents are made by name; duplicates and unknown names are clear errors")
    func byName() throws {
        var agents = try registry()
        #expect(agents.names == ["ppo", "reinforce"])
        #expect(throws: AgentError.self) { try agents.register(ReinforceAgentFactory()) }
        let environment = LineWalk()
        let request = AgentRequest(observationSpace: environment.observationSpace, actionSpace: environment.actionSpace, environmentID: "LineWalk", seed: 0)
        #expect {
            _ = try agents.make("dqn", request)
        } throws: { error in
            "\(error)".contains("dqn") && "\(error)".contains("ppo, reinforce")
        }
        let bad = AgentRequest(observationSpace: environment.observationSpace, actionSpace: environment.actionSpace, environmentID: "LineWalk", seed: 0,
                               configuration: Data(#"{"learning_rat": 0.1}"#.utf8))
        #expect {
            _ = try agents.make("reinforce", bad)
        } throws: { error in
            "\(error)".contains("learning_rat")
        }
        // Through `prunegym train`: the registered agent refuses its file before the run directory exists.
        let directory = try makeTemporaryDirectory("agent-swap-config")
        let file = directory.appendingPathComponent("reinforce.json"), run = directory.appendingPathComponent("run")
        try Data(#"{"learning_rat": 0.1}"#.utf8).write(to: file)
        #expect {
            try PruneGymCommandLine.run(["train", "--env", "CartPole-v1", "--agent", "reinforce", "--steps", "100", "--config", file.path,
                                         "--run-dir", run.path, "--quiet"], agents: agents)
        } throws: { error in
            "\(error)".contains("learning_rat")
        }
        #expect(!FileManager.default.fileExists(atPath: run.path), "a run directory that would block the corrected configuration")
    }

    @Test("REINFORCE from the example learns LineWalk through the generic trainer")
    func reinforceLearns() throws {
        let agents = try registry()
        let environments = (0..<4).map { _ in LineWalk() }
        let request = AgentRequest(observationSpace: environments[0].observationSpace, actionSpace: environments[0].actionSpace,
                                   environmentID: "LineWalk", seed: 3, configuration: Data(#"{"environment_count": 4, "steps_per_rollout": 32, "learning_rate": 0.01}"#.utf8))
        let agent = try agents.make("reinforce", request)
        func train<A: OnPolicyAgent>(_ agent: A) throws -> [[(String, Double)]] where A.Observation == [Float], A.Action == Int {
            let trainer = try OnPolicyTrainer(agent: agent, environment: VectorEnvironment(environments),
                                              configuration: TrainerConfiguration(totalSteps: 4 * 32 * 40, seed: 3, showsProgress: false))
            return try trainer.train()
        }
        let rows = try train(agent)
        let returns = rows.compactMap { row in row.first { $0.0 == "return_mean" }?.1 }.filter(\.isFinite)
        // Random walking from a random cell scores well below 0; walking right scores about 0.5.
        #expect(returns.last! > returns.first! + 0.3, "returns \(returns.first!) → \(returns.last!)")
    }

    @Test("REINFORCE and PPO trained on TokenPruning land in the same eval-pruning table")
    func sameTable() throws {
        let (simulator, _) = ScriptedVisionLanguageModel.simulator()
        let agents = try registry()
        var pruners: [any TokenPruner] = [ClassAttentionPruner()]
        for name in ["reinforce", "ppo"] {
            let environments = try (0..<2).map { i in try TokenPruningEnvironment(simulator: simulator, seed: UInt64(i)) }
            let configuration = name == "ppo" ? #"{"environment_count": 2, "steps_per_rollout": 6, "minibatch_count": 2, "epochs": 2}"# : #"{"environment_count": 2, "steps_per_rollout": 6}"#
            let request = AgentRequest(observationSpace: environments[0].observationSpace, actionSpace: environments[0].actionSpace,
                                       environmentID: "TokenPruning-v0", seed: 1, configuration: Data(configuration.utf8))
            let agent = try agents.make(name, request)
            func train<A: OnPolicyAgent>(_ agent: A) throws where A.Observation == [String: SpaceValue], A.Action == [Bool] {
                let trainer = try OnPolicyTrainer(agent: agent, environment: VectorEnvironment(environments),
                                                  configuration: TrainerConfiguration(totalSteps: 2 * 6 * 3, seed: 1, showsProgress: false))
                try trainer.train()
            }
            try train(agent)
            pruners.append(AgentPruner(name: name, agent: agent, configuration: environments[0].configuration))
        }
        let results = try PruningReport.evaluate(pruners, simulator: simulator, budgets: [0.25], seeds: [0], questions: 16, oracleQuestions: 4, quiet: true)
        let table = PruningReport.table(results)
        for name in ["cls", "reinforce", "ppo"] { #expect(table.contains("| \(name) | 25.0% |"), "\(name) row in\n\(table)") }
        #expect(results.allSatisfy { $0.questions == 16 && $0.meanTokens >= 1 && $0.meanTokens <= 16 })
    }

    @Test("a checkpoint loads only into the agent and spaces that wrote it")
    func checkpoints() throws {
        let walk = LineWalk()
        let directory = try makeTemporaryDirectory("agent-swap")
        let url = directory.appendingPathComponent("agent.safetensors")
        let reinforce = try ReinforceAgent(observationSpace: walk.observationSpace, actionSpace: walk.actionSpace, seed: 0)
        try reinforce.save(to: url)
        let again = try ReinforceAgent(observationSpace: walk.observationSpace, actionSpace: walk.actionSpace, seed: 5)
        try again.load(from: url)
        #expect(try again.act([[0.5, 0]], deterministic: true) == reinforce.act([[0.5, 0]], deterministic: true))
        let ppo = try PPOAgent(observationSpace: walk.observationSpace, actionSpace: walk.actionSpace, seed: 0)
        #expect {
            try ppo.load(from: url)
        } throws: { error in
            "\(error)".contains("reinforce") && "\(error)".contains("ppo")
        }
        let wider = try ReinforceAgent(observationSpace: Box(low: [0, -1, 0], high: [1, 1, 1]), actionSpace: walk.actionSpace, seed: 0)
        #expect {
            try wider.load(from: url)
        } throws: { error in
            "\(error)".contains("observation")
        }
    }
}
