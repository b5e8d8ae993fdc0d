import Foundation
import Gym
import PPO
@testable import PruneGymCommands
import TensorCore
import TestSupport
import Testing

/// `prunegym train --config`: the file's settings over the environment's preset; and the nearest
/// name offered for a mistyped option or command.
@Suite("train --config, and guesses at mistyped names")
struct TrainCommandTests {
    @Test("a key the file leaves out keeps the environment's preset; one it does not know is refused, naming the file and the key")
    func configOverThePreset() throws {
        let directory = try makeTemporaryDirectory("train-config")
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("ppo.json")
        try Data(#"{"learning_rate": 0.002}"#.utf8).write(to: file)
        let run = directory.appendingPathComponent("run")
        try PruneGymCommandLine.run(["train", "--env", "CartPole-v1", "--agent", "ppo", "--steps", "256", "--config", file.path,
                                     "--run-dir", run.path, "--quiet"])
        let recorded = try RunDirectory(run).readConfig(RunConfiguration.self)
        var expected = PPOConfiguration.cartPole
        expected.learningRate = 0.002
        #expect(recorded.ppo == expected)
        #expect(recorded.ppo?.gamma == 0.98 && PPOConfiguration().gamma != 0.98, "CartPole's preset γ, not the plain default")

        // The helper on its own: a run's config.json with provenance reads as its settings.
        try Data(#"{"gamma": 0.9, "prunegym": {"kind": "train"}}"#.utf8).write(to: file)
        #expect(try readJSON(PPOConfiguration.self, from: file.path, over: .pendulum) == .pendulum)
        try Data(#"{"learnin_rate": 0.002}"#.utf8).write(to: file)
        let typo = #expect(throws: FileError.self) { try readJSON(PPOConfiguration.self, from: file.path, over: .cartPole) }
        #expect(String(describing: typo!).contains("ppo.json") && String(describing: typo!).contains("unknown key 'learnin_rate'"), "\(typo!)")
        try Data("[1, 2]".utf8).write(to: file)
        #expect(throws: FileError.self) { try readJSON(PPOConfiguration.self, from: file.path, over: .cartPole) }
    }

    @Test("a mistyped option or command is answered with the nearest one")
    func didYouMean() {
        #expect(nearestName(to: "agent", among: ["agents", "budgets", "seeds"]) == "agents")
        #expect(nearestName(to: "trian", among: ["train", "tprl", "eval"]) == "train")
        #expect(nearestName(to: "xyz", among: ["train", "tprl", "eval"]) == nil)
        #expect(nearestName(to: "", among: ["a"]) == nil)
        #expect(nearestName(to: "ab", among: ["cd"]) == nil, "two edits of a two-letter word is no guess")
        let option = #expect(throws: (any Error).self) { try PruneGymCommandLine.run(["eval-pruning", "--agent", "cls"]) }
        #expect("\(option!)" == "prunegym eval-pruning: unknown option --agent; did you mean --agents? (see prunegym eval-pruning --help)")
        let pruner = #expect(throws: (any Error).self) { try PruneGymCommandLine.run(["eval-pruning", "--agents", "vispruned", "--questions", "1"]) }
        #expect("\(pruner!)".hasPrefix("unknown pruner 'vispruned' (did you mean vispruner?); known: random"), "\(pruner!)")
        let command = #expect(throws: (any Error).self) { try PruneGymCommandLine.run(["trian"]) }
        #expect("\(command!)".hasPrefix("prunegym: unknown command 'trian'. Did you mean 'train'? Commands: quickstart"), "\(command!)")
    }
}
