#if canImport(GridWorld)
import GridWorld
#endif
import Gym
import PruneGymTesting
import Testing

@Suite("GridWorld")
struct GridWorldTests {
    @Test("follows the environment API (PruneGym's checker)")
    func checker() throws {
        try EnvironmentAssertions.passesChecker(GridWorld(), make: { GridWorld() })
    }

    @Test("the same seed and actions give the same episode")
    func determinism() throws {
        try EnvironmentAssertions.isDeterministic(seed: 7, steps: 500) { GridWorld() }
    }

    @Test("a scripted walk to the goal pays −0.1 per step and +1 at the goal")
    func scriptedWalk() throws {
        let world = GridWorld()
        _ = try world.reset(seed: 0, options: ResetOptions())
        let rightMoves = 3 - world.column
        let script: [EnvironmentAssertions.ScriptedStep<Int>] =
            Array(repeating: .init(action: 1, reward: -0.1, terminated: false), count: rightMoves)
            + [.init(action: 2, reward: -0.1), .init(action: 2, reward: -0.1),
               .init(action: 2, reward: 1, terminated: true, observation: [1, 1])]
        try EnvironmentAssertions.replays(world, seed: 0, script)
    }
}
