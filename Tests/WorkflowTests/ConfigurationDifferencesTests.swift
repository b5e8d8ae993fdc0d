import Foundation
import Testing
import TPRL
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
}
