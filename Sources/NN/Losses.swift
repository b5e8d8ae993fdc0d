import Foundation
import TensorCore

/// How a per-element loss is reduced to a scalar.
public enum LossReduction: Sendable {
    /// Mean over elements (PyTorch's `reduction="mean"`).
    case mean
    case sum
    /// Σ wᵢ·ℓᵢ / Σ wᵢ: the mean over the elements a mask or weight selects.
    case weightedMean
}

/// Losses that reduce to a scalar tensor.
public enum Loss {
    /// Mean squared error mean((p − t)²).
    public static func meanSquaredError(_ prediction: Tensor, _ target: Tensor) -> Tensor {
        precondition(prediction.shape == target.shape, "meanSquaredError: prediction \(prediction.shape) and target \(target.shape) differ")
        return (prediction - target).squared().mean()
    }

    /// Huber loss (PyTorch's `huber_loss`): ½d² where |d| < δ, else δ·(|d| − ½δ); mean.
    public static func huber(_ prediction: Tensor, _ target: Tensor, delta: Float = 1) -> Tensor {
        precondition(prediction.shape == target.shape, "huber: prediction \(prediction.shape) and target \(target.shape) differ")
        precondition(delta > 0, "huber: delta \(delta) must be positive")
        let difference = prediction - target
        let magnitude = difference.abs()
        let inside = Tensor(shape: magnitude.shape, scalars: magnitude.scalars.map { $0 < delta ? 1 : 0 })
        let quadratic = difference.squared() * 0.5
        let linear = (magnitude - 0.5 * delta) * delta
        return Tensor.where(inside, quadratic, linear).mean()
    }

    /// Cross-entropy from logits (PyTorch's `cross_entropy`).
    ///
    /// ℓᵢ = (1 − ε)·(−log pᵢ[yᵢ]) + ε·mean_c(−log pᵢ[c]), averaged over the rows whose target is not
    /// `ignoreIndex` (0 when every row is ignored). Shapes: logits `[N, C]` (or `[…, C]`, flattened),
    /// targets `N` class indices.
    public static func crossEntropy(_ logits: Tensor, targets: [Int], ignoreIndex: Int? = nil, labelSmoothing: Float = 0) -> Tensor {
        precondition(logits.rank >= 1, "crossEntropy: logits must be [N, C]")
        let classes = logits.shape[logits.rank - 1]
        let flat = logits.reshaped(to: [-1, classes])
        let rows = flat.shape[0]
        precondition(targets.count == rows, "crossEntropy: \(targets.count) targets for \(rows) rows of logits \(logits.shape)")
        precondition(labelSmoothing >= 0 && labelSmoothing <= 1, "crossEntropy: label smoothing \(labelSmoothing) outside [0, 1]")
        var weights = [Float](repeating: 1, count: rows)
        var indices = [Int](repeating: 0, count: rows)
        for (i, target) in targets.enumerated() {
            if let ignoreIndex, target == ignoreIndex {
                weights[i] = 0
            } else {
                precondition(target >= 0 && target < classes, "crossEntropy: target \(target) outside 0..<\(classes) at row \(i)")
                indices[i] = target
            }
        }
        let active = weights.reduce(0, +)
        let logProbabilities = flat.logSoftmax(alongAxis: -1)
        var perRow = -logProbabilities.gathered(alongAxis: 1, indices: indices, indexShape: [rows, 1]).reshaped(to: [rows])
        if labelSmoothing > 0 {
            let uniform = -logProbabilities.mean(alongAxis: 1)
            perRow = perRow * (1 - labelSmoothing) + uniform * labelSmoothing
        }
        guard active > 0 else { return (perRow * Tensor.zeros([rows])).sum() }
        return (perRow * Tensor(weights)).sum() * (1 / active)
    }

    /// Binary cross-entropy from logits with optional per-element weights (e.g. a validity mask).
    /// Shapes: logits, targets and weights all equal.
    public static func binaryCrossEntropy(
        logits: Tensor, targets: Tensor, weights: Tensor? = nil, reduction: LossReduction = .mean
    ) -> Tensor {
        let elementwise = Tensor.binaryCrossEntropyWithLogits(logits, targets: targets)
        return reduce(elementwise, weights: weights, reduction: reduction, name: "binaryCrossEntropy")
    }

    static func reduce(_ values: Tensor, weights: Tensor?, reduction: LossReduction, name: String) -> Tensor {
        if let weights { precondition(weights.shape == values.shape, "\(name): weights \(weights.shape) differ from \(values.shape)") }
        let weighted = weights.map { values * $0 } ?? values
        switch reduction {
        case .mean: return weighted.mean()
        case .sum: return weighted.sum()
        case .weightedMean:
            let total = weights.map { $0.scalars.reduce(0, +) } ?? Float(values.count)
            return weighted.sum() * (total > 0 ? 1 / total : 0)
        }
    }
}
