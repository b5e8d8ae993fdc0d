import Foundation

/// A learning rate as a function of the optimizer step (0-based).
public protocol LearningRateSchedule: Sendable {
    func learningRate(atStep step: Int) -> Float
}

/// The same rate at every step.
public struct ConstantSchedule: LearningRateSchedule {
    /// The rate.
    public let rate: Float
    /// A constant rate.
    public init(_ rate: Float) { self.rate = rate }
    /// `rate` at every step.
    public func learningRate(atStep step: Int) -> Float { rate }
}

/// Linear warm-up from 0 to `peak` over `warmupSteps`, then linear decay to `final` at
/// `totalSteps` (transformers' `get_linear_schedule_with_warmup` when `final` is 0; CleanRL's PPO
/// annealing with no warm-up).
public struct LinearSchedule: LearningRateSchedule {
    /// Rate after warm-up.
    public let peak: Float
    /// Rate at the last step.
    public let final: Float
    /// Steps of the schedule.
    public let totalSteps: Int
    /// Steps of linear warm-up from 0.
    public let warmupSteps: Int

    /// Linear warm-up, then linear decay to `final`.
    public init(peak: Float, final: Float = 0, totalSteps: Int, warmupSteps: Int = 0) {
        precondition(totalSteps > 0 && warmupSteps >= 0 && warmupSteps <= totalSteps, "LinearSchedule: warm-up \(warmupSteps) of \(totalSteps) steps")
        self.peak = peak
        self.final = final
        self.totalSteps = totalSteps
        self.warmupSteps = warmupSteps
    }

    /// The rate at `step`.
    public func learningRate(atStep step: Int) -> Float {
        if step < warmupSteps { return peak * Float(step) / Float(max(1, warmupSteps)) }
        let progress = min(1, Float(step - warmupSteps) / Float(max(1, totalSteps - warmupSteps)))
        return peak + (final - peak) * progress
    }
}

/// Linear warm-up to `peak`, then half-cosine decay to `minimum` at `totalSteps`
/// (transformers' `get_cosine_schedule_with_warmup` when `minimum` is 0).
public struct CosineSchedule: LearningRateSchedule {
    /// Rate after warm-up.
    public let peak: Float
    /// Rate at the end of the cosine.
    public let minimum: Float
    /// Steps of the schedule.
    public let totalSteps: Int
    /// Steps of linear warm-up from 0.
    public let warmupSteps: Int

    /// Linear warm-up, then cosine decay to `minimum`.
    public init(peak: Float, minimum: Float = 0, totalSteps: Int, warmupSteps: Int = 0) {
        precondition(totalSteps > 0 && warmupSteps >= 0 && warmupSteps <= totalSteps, "CosineSchedule: warm-up \(warmupSteps) of \(totalSteps) steps")
        self.peak = peak
        self.minimum = minimum
        self.totalSteps = totalSteps
        self.warmupSteps = warmupSteps
    }

    /// The rate at `step`.
    public func learningRate(atStep step: Int) -> Float {
        if step < warmupSteps { return peak * Float(step) / Float(max(1, warmupSteps)) }
        let progress = min(1, Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps)))
        return minimum + (peak - minimum) * Float(0.5 * (1 + cos(Double.pi * progress)))
    }
}
