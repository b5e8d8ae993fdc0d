import Gym
import TensorCore

/// A 4×4 grid: the agent starts on a random cell of the top row and walks to the goal in the
/// bottom-right corner. Actions 0–3 move up, right, down, left (walls stop it). Reward −0.1 per
/// step and +1 on reaching the goal (terminated). Observation: `[column / 3, row / 3]`.
public final class GridWorld: Environment {
    public typealias Observation = [Float]
    public typealias Action = Int

    public let observationSpace: any Space<[Float]> = Box(low: [0, 0], high: [1, 1])
    public let actionSpace: any Space<Int> = Discrete(4)
    public var name: String { "GridWorld" }

    public private(set) var column = 0
    public private(set) var row = 0
    private var generator = SeededGenerator(seed: 0)
    private var episode = EpisodeGuard()

    public init() {}

    private var observation: [Float] { [Float(column) / 3, Float(row) / 3] }

    public func reset(seed: UInt64?, options: ResetOptions) throws -> Reset<[Float]> {
        if let seed { generator = SeededGenerator(seed: seed) }
        column = generator.integer(below: 4)
        row = 0
        episode.begin()
        return Reset(observation: observation)
    }

    public func step(_ action: Int) throws -> Step<[Float]> {
        try episode.checkCanStep(name)  // before a reset or after the end: a GymError
        try validate(action)            // outside Discrete(4): a GymError naming the space
        switch action {
        case 0: row = max(0, row - 1)
        case 1: column = min(3, column + 1)
        case 2: row = min(3, row + 1)
        default: column = max(0, column - 1)
        }
        let terminated = column == 3 && row == 3
        episode.end(if: terminated)
        return Step(observation: observation, reward: terminated ? 1 : -0.1, terminated: terminated, truncated: false)
    }

    public func snapshot() throws -> EnvironmentSnapshot {
        var snapshot = EnvironmentSnapshot()
        snapshot.set("cell", integers: [column, row])
        snapshot.set("generator", generator: generator)
        episode.save(into: &snapshot)
        return snapshot
    }

    public func restore(_ snapshot: EnvironmentSnapshot) throws {
        let cell = try snapshot.integers("cell", in: name)
        (column, row) = (cell[0], cell[1])
        generator = try snapshot.generator("generator", in: name)
        try episode.restore(from: snapshot, environment: name)
    }
}
