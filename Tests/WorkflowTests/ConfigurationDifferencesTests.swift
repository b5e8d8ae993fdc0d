import Foundation
import Testing
import TPRL
import VLM
@testable import PruneGymCommands

/// What `tprl train` says when its run directory holds another recipe's run: the settings that
/// differ, nested ones dotted, so an upgrade's changed default is named.
@Suite struct ConfigurationDifferencesTests {
    @Test func namesEachDifferingSetting() {
        var old = TPRLConfiguration()
        old.width = 64
        old.environment.budgetChoices = [0.5]
        let new = TPRLConfiguration()
        let lines = configurationDifferences(old, new)
        #expect(lines == ["environment.budget_choices: [0.5] there, [0.333,0.222,0.111] now", "width: 64 there, \(new.width) now"])
        #expect(configurationDifferences(new, new).isEmpty)
        // More than the limit: the rest are counted.
        var many = TPRLConfiguration()
        many.width = 8; many.demonstrations = 1; many.ppoUpdates = 1
        #expect(configurationDifferences(many, new, limit: 2).last == "and 1 more")
    }

    @Test("vlm train names what a one-stage run changes from today's recipe")
    func vlmTrainChanges() throws {
        var c = VLMTrainingConfiguration()
        #expect(VLMCommand.changes(from: VLMTrainingConfiguration(), to: c).isEmpty)
        (c.samples, c.seed, c.learningRate, c.familyWeights) = (250_000, 3, 0.001, ["count": 3])
        #expect(VLMCommand.changes(from: VLMTrainingConfiguration(), to: c) == ["family_weights.count 3", "learning_rate 0.001"])
    }
}
