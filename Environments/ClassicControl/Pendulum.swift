import Foundation
import Gym
import TensorCore

/// Pendulum-v1: swing a frictionless pendulum up and keep it upright with a limited torque —
/// Gymnasium 1.4's `PendulumEnv`, step for step.
///
/// ## Observation
/// `Box([-1, -1, -8], [1, 1, 8], (3,), float32)`: `[cos θ, sin θ, θ̇]`, θ in rad (0 = upright),
/// θ̇ in rad/s.
///
/// ## Action
/// `Box(-2, 2, (1,), float32)`: the torque on the free end, in N·m. As in Gymnasium, a finite
/// torque outside [−2, 2] is clipped, not rejected (agents commonly emit unbounded Gaussian
/// samples); an action of the wrong length or with NaN/infinite entries throws.
///
/// ## Dynamics
/// θ̈ = 3g/(2l)·sin θ + 3/(m l²)·u with g = 10, m = l = 1, dt = 0.05 s; θ̇ is clipped to ±8, then
/// θ ← θ + θ̇·dt (semi-implicit Euler).
///
/// ## Reward
/// −(normalize(θ)² + 0.1·θ̇² + 0.001·u²), normalize(θ) ∈ [−π, π); between −16.27 and 0.
///
/// Arithmetic follows NumPy 2's dtype rules, which Gymnasium inherits: the state is float64 but the
/// action is float32, so the clipped torque `u`, `3/(m l²)·u` and `0.001·u²` are computed in
/// float32 and the rest in float64. Done all in float64 the result differs by about 3e-5.
///
/// ## Start
/// θ uniform on [−π, π], θ̇ uniform on [−1, 1] (`ResetOptions.values["x_init"]`/`["y_init"]`
/// change the bounds as Gymnasium's options do; `initialState` sets `[θ, θ̇]` exactly).
///
/// ## Termination and truncation
/// Never terminates; `make("Pendulum-v1")` adds a 200-step `TimeLimit`.
public final class Pendulum: Environment {
    /// [cos θ, sin θ, θ̇].
    public typealias Observation = [Float]
    /// [torque] in [−2, 2].
    public typealias Action = [Float]

    /// Gymnasium's constants.
    public static let maxSpeed = 8.0
    /// Torque bound.
    public static let maxTorque: Float = 2.0
    /// Seconds per step.
    public static let dt = 0.05
    /// Mass (kg).
    public static let mass = 1.0
    /// Length (m).
    public static let length = 1.0

    /// Gravity g (Gymnasium's `g` option).
    public let gravity: Double
    public let observationSpace: any Space<[Float]> = Box(low: [-1, -1, -8], high: [1, 1, 8])
    public let actionSpace: any Space<[Float]> = Box(low: -maxTorque, high: maxTorque, shape: [1])

    /// The internal state `[θ, θ̇]` in double precision.
    public private(set) var state: [Double] = [0, 0]
    private var generator = SeededGenerator(seed: 0)
    private var episode = EpisodeGuard()

    /// A pendulum with gravity `gravity`.
    public init(gravity: Double = 10.0) { self.gravity = gravity }

    public var name: String { "Pendulum" }

    public func reset(seed: UInt64?, options: ResetOptions) throws -> Reset<[Float]> {
        if let seed { generator = SeededGenerator(seed: seed) }
        if let initial = options.initialState {
            guard initial.count == 2, initial.allSatisfy(\.isFinite) else {
                throw GymError.invalidOption(environment: name, reason: "initialState must be 2 finite numbers [theta, theta_dot], got \(initial)")
            }
            state = initial
        } else {
            var high = [Double.pi, 1.0]
            for (index, key) in ["x_init", "y_init"].enumerated() {
                guard let value = options.values[key] else { continue }
                guard let number = value.number, number.isFinite else {
                    throw GymError.invalidOption(environment: name, reason: "\(key) must be a finite number, got \(value)")
                }
                high[index] = number
            }
            state = high.map { -$0 + 2 * $0 * generator.nextDouble() }
        }
        episode.begin()
        return Reset(observation: observation)
    }

    public func step(_ action: [Float]) throws -> Step<[Float]> {
        try episode.checkCanStep(name)
        guard action.count == 1, action[0].isFinite else {
            throw GymError.invalidAction(environment: name, space: actionSpace.description, action: actionSpace.describe(action))
        }
        let (theta, thetaDot) = (state[0], state[1])
        let u: Float = min(max(action[0], -Self.maxTorque), Self.maxTorque)  // float32, as np.clip on a float32 array
        let torqueCost = Float(0.001) * (u * u)  // float32: python float × np.float32 stays float32
        let costs = angleNormalize(theta) * angleNormalize(theta) + 0.1 * (thetaDot * thetaDot) + Double(torqueCost)
        let torqueTerm = Float(3.0 / (Self.mass * Self.length * Self.length)) * u  // float32
        var newThetaDot = thetaDot + (3 * gravity / (2 * Self.length) * sin(theta) + Double(torqueTerm)) * Self.dt
        newThetaDot = min(max(newThetaDot, -Self.maxSpeed), Self.maxSpeed)
        let newTheta = theta + newThetaDot * Self.dt
        state = [newTheta, newThetaDot]
        return Step(observation: observation, reward: -costs, terminated: false, truncated: false)
    }

    private var observation: [Float] { [Float(cos(state[0])), Float(sin(state[0])), Float(state[1])] }

    /// `((x + π) mod 2π) − π` with NumPy's floored modulo.
    private func angleNormalize(_ x: Double) -> Double {
        let divisor = 2 * Double.pi
        var remainder = fmod(x + Double.pi, divisor)
        if remainder != 0 && (remainder < 0) != (divisor < 0) { remainder += divisor }
        return remainder - Double.pi
    }

    public func snapshot() throws -> EnvironmentSnapshot {
        var snapshot = EnvironmentSnapshot()
        snapshot.set("state", doubles: state)
        snapshot.set("generator", generator: generator)
        episode.save(into: &snapshot)
        return snapshot
    }

    public func restore(_ snapshot: EnvironmentSnapshot) throws {
        let state = try snapshot.doubles("state", in: name)
        guard state.count == 2 else { throw GymError.invalidSnapshot(environment: name, reason: "state has \(state.count) entries, expected 2") }
        generator = try snapshot.generator("generator", in: name)
        try episode.restore(from: snapshot, environment: name)
        self.state = state
    }
}
