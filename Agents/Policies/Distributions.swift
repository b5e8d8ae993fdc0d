import Foundation
import TensorCore

/// A batch of action distributions, one per observation row, over flat action rows.
///
/// `logProbability` and `entropy` are differentiable (they feed policy losses); `sample` and
/// `mode` return constants. Actions are `[B, width]` rows as stored in the rollout buffer.
public protocol ActionDistribution {
    /// log π(a|s) for each row: `[B, width] → [B]`.
    func logProbability(of actions: Tensor) -> Tensor
    /// H(π(·|s)) for each row: `[B]`.
    func entropy() -> Tensor
    /// A draw per row from `generator`: `[B, width]`.
    func sample(using generator: inout SeededGenerator) -> Tensor
    /// The most probable action per row: `[B, width]`.
    func mode() -> Tensor
}

/// Categorical over `n` classes from logits `[B, n]`; an action row is the class index `[B, 1]`.
public struct Categorical: ActionDistribution {
    /// Unnormalised log-probabilities `[B, K]`.
    public let logits: Tensor
    private let logProbabilities: Tensor

    /// A categorical distribution per row of `logits`.
    public init(logits: Tensor) {
        precondition(logits.rank == 2, "Categorical: logits must be [B, n], got \(logits.shape)")
        self.logits = logits
        logProbabilities = logits.logSoftmax(alongAxis: 1)
    }

    public func logProbability(of actions: Tensor) -> Tensor {
        let batch = logits.shape[0]
        let indices = actions.scalars.map { Int($0) }
        precondition(actions.count == batch, "Categorical.logProbability: \(actions.count) actions for a batch of \(batch)")
        return logProbabilities.gathered(alongAxis: 1, indices: indices, indexShape: [batch, 1]).reshaped(to: [batch])
    }

    public func entropy() -> Tensor { -(logProbabilities.exp() * logProbabilities).sum(alongAxis: 1) }

    public func sample(using generator: inout SeededGenerator) -> Tensor {
        let (batch, classes) = (logits.shape[0], logits.shape[1])
        let p = logProbabilities.detached().scalars
        var actions = [Float](repeating: 0, count: batch)
        for row in 0..<batch {
            // Inverse CDF on exp(log-softmax), as torch.multinomial does on probabilities.
            let u = generator.nextFloat()
            var cumulative: Float = 0
            var choice = classes - 1
            for k in 0..<classes {
                cumulative += Foundation.exp(p[row * classes + k])
                if u < cumulative { choice = k; break }
            }
            actions[row] = Float(choice)
        }
        return Tensor(shape: [batch, 1], scalars: actions)
    }

    public func mode() -> Tensor {
        let (batch, classes) = (logits.shape[0], logits.shape[1])
        let values = logits.detached().scalars
        return Tensor(shape: [batch, 1], scalars: (0..<batch).map { row in
            var best = 0
            for k in 1..<classes where values[row * classes + k] > values[row * classes + best] { best = k }
            return Float(best)
        })
    }
}

/// Independent Bernoulli per entry from logits `[B, n]` (a `MultiBinary` action), optionally with
/// a validity mask `[B, n]` (1 = the entry exists): masked-out entries are never sampled (always
/// 0) and contribute nothing to the log-probability or the entropy — the token-pruning action,
/// where padded token slots must not count.
///
/// log π(a) = Σᵢ mᵢ·(aᵢ log σ(zᵢ) + (1 − aᵢ) log(1 − σ(zᵢ))) = −Σᵢ mᵢ·BCE(zᵢ, aᵢ);
/// H = Σᵢ mᵢ·(softplus(zᵢ) − zᵢ σ(zᵢ)).
public struct Bernoulli: ActionDistribution {
    /// Logits `[B, K]` of each entry being 1.
    public let logits: Tensor
    /// 1 where an entry is valid, 0 where it is ignored (no probability, no entropy), `[B, K]`.
    public let mask: Tensor?

    /// Independent Bernoullis per entry, optionally masked.
    public init(logits: Tensor, mask: Tensor? = nil) {
        precondition(logits.rank == 2, "Bernoulli: logits must be [B, n], got \(logits.shape)")
        precondition(mask == nil || mask!.shape == logits.shape, "Bernoulli: mask \(mask!.shape) differs from logits \(logits.shape)")
        self.logits = logits
        self.mask = mask
    }

    public func logProbability(of actions: Tensor) -> Tensor {
        precondition(actions.shape == logits.shape, "Bernoulli.logProbability: actions \(actions.shape) for logits \(logits.shape)")
        var terms = -Tensor.binaryCrossEntropyWithLogits(logits, targets: actions)
        if let mask { terms = terms * mask }
        return terms.sum(alongAxis: 1)
    }

    public func entropy() -> Tensor {
        var terms = logits.softplus() - logits * logits.sigmoid()
        if let mask { terms = terms * mask }
        return terms.sum(alongAxis: 1)
    }

    public func sample(using generator: inout SeededGenerator) -> Tensor {
        let z = logits.detached().scalars
        let m = mask?.detached().scalars
        return Tensor(shape: logits.shape, scalars: z.indices.map { index in
            if let m, m[index] == 0 { return 0 }
            let p = 1 / (1 + Foundation.exp(-z[index]))
            return generator.nextFloat() < p ? 1 : 0
        })
    }

    public func mode() -> Tensor {
        let z = logits.detached().scalars
        let m = mask?.detached().scalars
        return Tensor(shape: logits.shape, scalars: z.indices.map { index in
            if let m, m[index] == 0 { return 0 }
            return z[index] > 0 ? 1 : 0
        })
    }
}

/// A diagonal Gaussian with mean `[B, n]` and a log standard deviation `[1, n]` shared by the
/// batch (state-independent, as CleanRL's `ppo_continuous_action.py`); log-probabilities and
/// entropies are summed over the n independent components.
public struct DiagonalGaussian: ActionDistribution {
    /// Means `[B, K]`.
    public let mean: Tensor
    /// log σ, broadcast to the means.
    public let logStandardDeviation: Tensor
    static let halfLogTwoPi = Float(0.5 * Foundation.log(2 * Double.pi))

    /// A diagonal Gaussian.
    public init(mean: Tensor, logStandardDeviation: Tensor) {
        precondition(mean.rank == 2 && logStandardDeviation.shape == [1, mean.shape[1]],
                     "DiagonalGaussian: mean must be [B, n] and log-std [1, n], got \(mean.shape) and \(logStandardDeviation.shape)")
        self.mean = mean
        self.logStandardDeviation = logStandardDeviation
    }

    public func logProbability(of actions: Tensor) -> Tensor {
        precondition(actions.shape == mean.shape, "DiagonalGaussian.logProbability: actions \(actions.shape) for mean \(mean.shape)")
        let standardized = (actions - mean) / logStandardDeviation.exp()
        return (standardized.squared() * -0.5 - logStandardDeviation - Self.halfLogTwoPi).sum(alongAxis: 1)
    }

    public func entropy() -> Tensor {
        let perComponent = logStandardDeviation + (0.5 + Self.halfLogTwoPi)  // [1, n]
        return perComponent.sum(alongAxis: 1).expanded(to: [mean.shape[0]])
    }

    public func sample(using generator: inout SeededGenerator) -> Tensor {
        let mu = mean.detached().scalars
        let sigma = logStandardDeviation.detached().scalars.map { Foundation.exp($0) }
        let n = mean.shape[1]
        return Tensor(shape: mean.shape, scalars: mu.indices.map { mu[$0] + sigma[$0 % n] * generator.normal() })
    }

    public func mode() -> Tensor { mean.detached() }
}

/// The Bernoulli(σ(z)) of each valid entry conditioned on exactly `counts[b]` ones in row b (a
/// `MultiBinary` action of a fixed size — keep exactly the budget's k tokens): a k-subset S has
/// probability Π_{i∈S} e^{z_i} / e_k(e^z) (conditional Poisson sampling; Chen, Dempster & Liu,
/// Biometrika 1994). Adding a constant to every logit leaves it unchanged, so a policy gradient
/// through it moves the *ranking* of the entries — what a top-k choice reads — where an
/// unconditioned Bernoulli also learns how many to keep.
///
/// log π(a) = Σᵢ mᵢ aᵢ zᵢ − log e_k(e^z); H = log e_k − E[Σ_{i∈S} z_i]; both by an O(n·k)
/// recurrence with exact gradients (`Tensor.conditionalBernoulliLogNormalizer`). Sampling is
/// exact; the mode is the top k.
public struct ConditionalBernoulli: ActionDistribution {
    /// Logits `[B, n]`.
    public let logits: Tensor
    /// 1 where an entry is valid, `[B, n]` (nil: all).
    public let mask: Tensor?
    /// The number of ones of each row, clamped to its valid entries.
    public let counts: [Int]
    let rows: ConditionalBernoulliRows

    /// Exactly `counts[b]` of the valid entries of row b.
    public init(logits: Tensor, mask: Tensor? = nil, counts: [Int]) {
        rows = ConditionalBernoulliRows(logits: logits, mask: mask, counts: counts)
        self.logits = logits
        self.mask = mask
        self.counts = rows.counts
    }

    /// log π(a) `[B]`; every row of `actions` must have exactly its count of valid ones (the
    /// distribution's support; `sample` and `mode` give such rows).
    public func logProbability(of actions: Tensor) -> Tensor {
        precondition(actions.shape == logits.shape, "ConditionalBernoulli.logProbability: actions \(actions.shape) for logits \(logits.shape)")
        var chosen = actions
        if let mask { chosen = chosen * mask }
        let sizes = chosen.detached().sum(alongAxis: 1).scalars
        for (b, size) in sizes.enumerated() {
            precondition(Int(size.rounded()) == counts[b], "ConditionalBernoulli.logProbability: row \(b) keeps \(Int(size.rounded())) entries, the distribution keeps exactly \(counts[b])")
        }
        return (logits * chosen).sum(alongAxis: 1) - Tensor.conditionalBernoulliLogNormalizer(logits, rows: rows)
    }

    public func entropy() -> Tensor { Tensor.conditionalBernoulliEntropy(logits, rows: rows) }

    public func sample(using generator: inout SeededGenerator) -> Tensor {
        let (batch, n) = (logits.shape[0], logits.shape[1])
        var values = [Float](repeating: 0, count: batch * n)
        for b in 0..<batch {
            for i in rows.sample(b, using: &generator) { values[b * n + i] = 1 }
        }
        return Tensor(shape: logits.shape, scalars: values)
    }

    /// The most probable subset: the k valid entries of highest logit (ties to the lower index).
    public func mode() -> Tensor {
        let (batch, n) = (logits.shape[0], logits.shape[1])
        let z = logits.detached().scalars, m = mask?.detached().scalars
        var values = [Float](repeating: 0, count: batch * n)
        for b in 0..<batch {
            let entries = (0..<n).filter { m == nil || m![b * n + $0] != 0 }
            let ranked = entries.sorted { z[b * n + $0] > z[b * n + $1] || (z[b * n + $0] == z[b * n + $1] && $0 < $1) }
            for i in ranked.prefix(counts[b]) { values[b * n + i] = 1 }
        }
        return Tensor(shape: logits.shape, scalars: values)
    }
}
