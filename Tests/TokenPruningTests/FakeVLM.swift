import PruneGymTesting
import TokenPruning

// The token-pruning tests use PruneGymTesting's scripted model, as users' own tests do.
typealias FakeVLM = ScriptedVisionLanguageModel
typealias FakeTasks = ScriptedTasks

func fakeSimulator() -> (PruningSimulator, FakeVLM) {
    let (simulator, model) = ScriptedVisionLanguageModel.simulator()
    return (simulator, model)
}
