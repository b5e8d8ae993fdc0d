import Gym

/// The classic-control environments, Gymnasium-exact: `CartPole-v1` and `Pendulum-v1`.
public enum ClassicControl {
    /// CartPole-v1 (500 steps) and Pendulum-v1 (200 steps), as Gymnasium registers them.
    public static let specs: [EnvironmentSpec] = [
        EnvironmentSpec(id: "CartPole-v1", maxEpisodeSteps: 500, rewardThreshold: 475,
                        summary: "balance a pole on a cart; Discrete(2) actions, Box(4) observations"),
        EnvironmentSpec(id: "Pendulum-v1", maxEpisodeSteps: 200,
                        summary: "swing a pendulum up; Box(1) torque, Box(3) observations"),
    ]

    /// Registers CartPole-v1 and Pendulum-v1 (Pendulum takes the option `g`, gravity).
    public static func register(in registry: inout EnvironmentRegistry) throws {
        try registry.register(specs[0]) { options in
            guard options.isEmpty else { throw GymError.invalidOption(environment: "CartPole-v1", reason: "takes no options, got \(options.keys.sorted())") }
            return CartPole()
        }
        try registry.register(specs[1]) { options in
            for key in options.keys where key != "g" {
                throw GymError.invalidOption(environment: "Pendulum-v1", reason: "unknown option '\(key)' (known: g)")
            }
            guard let gravity = options["g"].map({ $0.number }) ?? 10.0, gravity.isFinite else {
                throw GymError.invalidOption(environment: "Pendulum-v1", reason: "g must be a finite number")
            }
            return Pendulum(gravity: gravity)
        }
    }
}
