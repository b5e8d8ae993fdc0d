import Foundation
import TensorCore

/// The terms of PPO's loss on one minibatch (Schulman et al. 2017; CleanRL `ppo.py`):
///
///     r = exp(log π_new(a|s) − log π_old(a|s))
///     policy  = mean(max(−Â·r, −Â·clip(r, 1 − ε, 1 + ε)))
///     value   = ½·mean(max((V − R)², (V_old + clip(V − V_old, −ε, ε) − R)²))   (or ½·mean((V − R)²))
///     total   = policy − c_H·mean(H) + c_V·value
///
/// with Â the advantages, normalised per minibatch as `(A − mean) / (std + 1e-8)` (std with
/// Bessel's correction, as `torch.std`; skipped for a single sample). Diagnostics, without
/// gradient: `oldApproximateKL = mean(−log r)`, `approximateKL = mean((r − 1) − log r)` (the k3
/// estimator), `clipFraction = mean(|r − 1| > ε)`.
public struct PPOLoss {
    /// policy − c_e·entropy + c_v·value: what is minimised.
    public var total: Tensor
    /// The clipped surrogate loss.
    public var policy: Tensor
    public var value: Tensor
    public var entropy: Tensor
    /// k3 estimate of KL(old ‖ new): mean((r − 1) − log r).
    public var approximateKL: Float
    /// The naive estimate mean(−log r).
    public var oldApproximateKL: Float
    /// Share of samples whose ratio left [1 − ε, 1 + ε].
    public var clipFraction: Float

    /// - Parameters are all `[B]`; `newLogProbabilities`, `newValues` and `entropy` carry gradients.
    public static func compute(
        newLogProbabilities: Tensor, oldLogProbabilities: Tensor, advantages: Tensor,
        newValues: Tensor, oldValues: Tensor, returns: Tensor, entropy: Tensor,
        clipCoefficient: Float, clipsValueLoss: Bool, normalizesAdvantages: Bool,
        entropyCoefficient: Float, valueCoefficient: Float
    ) -> PPOLoss {
        let count = advantages.count
        var advantageValues = advantages.detached().scalars
        if normalizesAdvantages && count > 1 {
            let mean = advantageValues.reduce(0, +) / Float(count)
            let variance = advantageValues.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(count - 1)
            let scale = 1 / (variance.squareRoot() + 1e-8)
            advantageValues = advantageValues.map { ($0 - mean) * scale }
        }
        let normalized = Tensor(shape: [count], scalars: advantageValues)

        let logRatio = newLogProbabilities - oldLogProbabilities.detached()
        let ratio = logRatio.exp()
        let unclipped = -normalized * ratio
        let clipped = -normalized * ratio.clamped(min: 1 - clipCoefficient, max: 1 + clipCoefficient)
        let policy = Tensor.where(greaterOrEqual(unclipped, clipped), unclipped, clipped).mean()

        let returnsConstant = returns.detached()
        let unclippedValue = (newValues - returnsConstant).squared()
        let value: Tensor
        if clipsValueLoss {
            let oldValuesConstant = oldValues.detached()
            let clippedValue = (oldValuesConstant + (newValues - oldValuesConstant).clamped(min: -clipCoefficient, max: clipCoefficient) - returnsConstant).squared()
            value = Tensor.where(greaterOrEqual(unclippedValue, clippedValue), unclippedValue, clippedValue).mean() * 0.5
        } else {
            value = unclippedValue.mean() * 0.5
        }
        let entropyMean = entropy.mean()
        let total = policy - entropyMean * entropyCoefficient + value * valueCoefficient

        let r = ratio.detached().scalars
        let lr = logRatio.detached().scalars
        let n = Float(count)
        return PPOLoss(
            total: total, policy: policy, value: value, entropy: entropyMean,
            approximateKL: zip(r, lr).map { ($0 - 1) - $1 }.reduce(0, +) / n,
            oldApproximateKL: lr.map { -$0 }.reduce(0, +) / n,
            clipFraction: Float(r.filter { abs($0 - 1) > clipCoefficient }.count) / n)
    }

    /// 1 where a ≥ b, else 0 (a constant): `max(a, b)` as `where`, gradient to `a` on ties.
    static func greaterOrEqual(_ a: Tensor, _ b: Tensor) -> Tensor {
        let x = a.detached().scalars, y = b.detached().scalars
        return Tensor(shape: a.shape, scalars: zip(x, y).map { $0 >= $1 ? 1 : 0 })
    }
}

/// Explained variance of predictions: 1 − Var(y − ŷ) / Var(y) (population variances; NaN when
/// Var(y) = 0), as CleanRL logs it.
public func explainedVariance(predictions: [Float], targets: [Float]) -> Double {
    func variance(_ values: [Double]) -> Double {
        let mean = values.reduce(0, +) / Double(values.count)
        return values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
    }
    let y = targets.map(Double.init)
    let residual = zip(targets, predictions).map { Double($0) - Double($1) }
    let varianceY = variance(y)
    return varianceY == 0 ? .nan : 1 - variance(residual) / varianceY
}
