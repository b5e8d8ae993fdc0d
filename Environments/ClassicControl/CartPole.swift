import Foundation
import Gym
import TensorCore

/// CartPole-v1: balance a pole on a cart by pushing the cart left or right — Gymnasium 1.4's
/// `CartPoleEnv`, step for step (Barto, Sutton & Anderson, 1983).
///
/// ## Observation
/// `Box([-4.8, -inf, -0.41887903, -inf], [4.8, inf, 0.41887903, inf], (4,), float32)`:
///
/// | index | meaning | unit |
/// |---|---|---|
/// | 0 | cart position x | m |
/// | 1 | cart velocity ẋ | m/s |
/// | 2 | pole angle θ (0 = upright) | rad |
/// | 3 | pole angular velocity θ̇ | rad/s |
///
/// The angle bound is twice the termination threshold, so the observation of a failing step is
/// still inside the space. The internal state is `Double` (NumPy float64); only the returned
/// observation is rounded to `Float`, as Gymnasium does.
///
/// ## Action
/// `Discrete(2)`: 0 pushes the cart to the left with 10 N, 1 to the right.
///
/// ## Dynamics
/// Explicit Euler with τ = 0.02 s, positions updated with the *old* velocities (Gymnasium's
/// default `"euler"` integrator); gravity 9.8, cart mass 1.0, pole mass 0.1, half-length 0.5.
///
/// ## Reward
/// +1 for every step, including the step that terminates.
///
/// ## Start
/// Each of x, ẋ, θ, θ̇ uniform on [−0.05, 0.05] (`ResetOptions.low`/`high` override the bounds;
/// `ResetOptions.initialState` sets `[x, ẋ, θ, θ̇]` exactly). The draw comes from the
/// environment's `SeededGenerator`, not NumPy's PCG64, so a given seed starts from a different
/// state than in Gymnasium; from the same state the trajectories are identical.
///
/// ## Termination and truncation
/// Terminates when |x| > 2.4 or |θ| > 12° (0.2094… rad). The environment never truncates;
/// `make("CartPole-v1")` adds a 500-step `TimeLimit` (reward threshold 475).
///
/// Unlike Gymnasium (which warns and returns reward 0), stepping after termination throws.
public final class CartPole: Environment {
    /// [x, ẋ, θ, θ̇].
    public typealias Observation = [Float]
    /// 0 pushes left, 1 right.
    public typealias Action = Int

    /// Gymnasium's constants, in SI units.
    public static let gravity = 9.8
    /// Cart mass (kg).
    public static let cartMass = 1.0
    /// Pole mass (kg).
    public static let poleMass = 0.1
    /// Cart plus pole.
    public static let totalMass = poleMass + cartMass
    /// Half the pole's length (m).
    public static let length = 0.5
    /// Pole mass × half length.
    public static let poleMassLength = poleMass * length
    /// Push force (N).
    public static let forceMagnitude = 10.0
    /// Seconds per step (explicit Euler).
    public static let tau = 0.02
    /// The episode ends beyond ±12° of tilt.
    public static let thetaThreshold = 12 * 2 * Double.pi / 360
    /// The episode ends beyond ±2.4 m.
    public static let xThreshold = 2.4

    public let observationSpace: any Space<[Float]>
    public let actionSpace: any Space<Int> = Discrete(2)

    /// The internal state `[x, ẋ, θ, θ̇]` in double precision.
    public private(set) var state: [Double] = [0, 0, 0, 0]
    private var generator = SeededGenerator(seed: 0)
    private var episode = EpisodeGuard()

    /// A cart-pole with Gymnasium's constants.
    public init() {
        let high: [Float] = [Float(Self.xThreshold * 2), .infinity, Float(Self.thetaThreshold * 2), .infinity]
        observationSpace = Box(low: high.map { -$0 }, high: high)
    }

    public var name: String { "CartPole" }

    public func reset(seed: UInt64?, options: ResetOptions) throws -> Reset<[Float]> {
        if let seed { generator = SeededGenerator(seed: seed) }
        if let initial = options.initialState {
            guard initial.count == 4, initial.allSatisfy(\.isFinite) else {
                throw GymError.invalidOption(environment: name, reason: "initialState must be 4 finite numbers [x, x_dot, theta, theta_dot], got \(initial)")
            }
            state = initial
        } else {
            let low = options.low ?? -0.05
            let high = options.high ?? 0.05
            guard low.isFinite, high.isFinite, low <= high else {
                throw GymError.invalidOption(environment: name, reason: "low (\(low)) and high (\(high)) must be finite with low ≤ high")
            }
            state = (0..<4).map { _ in low + (high - low) * generator.nextDouble() }
        }
        episode.begin()
        return Reset(observation: observation)
    }

    public func step(_ action: Int) throws -> Step<[Float]> {
        try episode.checkCanStep(name)
        try validate(action)
        var (x, xDot, theta, thetaDot) = (state[0], state[1], state[2], state[3])
        let force = action == 1 ? Self.forceMagnitude : -Self.forceMagnitude
        let cosTheta = cos(theta)
        let sinTheta = sin(theta)
        // The same expressions, in the same order, as Gymnasium's cartpole.py.
        let temp = (force + Self.poleMassLength * (thetaDot * thetaDot) * sinTheta) / Self.totalMass
        let thetaAcc = (Self.gravity * sinTheta - cosTheta * temp)
            / (Self.length * (4.0 / 3.0 - Self.poleMass * (cosTheta * cosTheta) / Self.totalMass))
        let xAcc = temp - Self.poleMassLength * thetaAcc * cosTheta / Self.totalMass
        x = x + Self.tau * xDot
        xDot = xDot + Self.tau * xAcc
        theta = theta + Self.tau * thetaDot
        thetaDot = thetaDot + Self.tau * thetaAcc
        state = [x, xDot, theta, thetaDot]
        let terminated = x < -Self.xThreshold || x > Self.xThreshold || theta < -Self.thetaThreshold || theta > Self.thetaThreshold
        episode.end(if: terminated)
        return Step(observation: observation, reward: 1, terminated: terminated, truncated: false)
    }

    private var observation: [Float] { state.map { Float($0) } }

    public func snapshot() throws -> EnvironmentSnapshot {
        var snapshot = EnvironmentSnapshot()
        snapshot.set("state", doubles: state)
        snapshot.set("generator", generator: generator)
        episode.save(into: &snapshot)
        return snapshot
    }

    public func restore(_ snapshot: EnvironmentSnapshot) throws {
        let state = try snapshot.doubles("state", in: name)
        guard state.count == 4 else { throw GymError.invalidSnapshot(environment: name, reason: "state has \(state.count) entries, expected 4") }
        generator = try snapshot.generator("generator", in: name)
        try episode.restore(from: snapshot, environment: name)
        self.state = state
    }
}

extension CartPole {
    /// A scripted expert that balances the pole for the full 500 steps from Gymnasium's start
    /// distribution: push right when 0.1·x + 0.5·ẋ + 10·θ + 2·θ̇ > 0 (a hand-tuned linear
    /// state feedback). The demonstrator for behaviour cloning.
    public static func expertAction(_ observation: [Float]) -> Int {
        let score = 0.1 * observation[0] + 0.5 * observation[1] + 10 * observation[2] + 2 * observation[3]
        return score > 0 ? 1 : 0
    }
}
