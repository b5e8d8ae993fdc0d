import Foundation

/// Independent Bernoullis with logits z conditioned on exactly k successes (the conditional
/// Poisson design of survey sampling; Chen, Dempster & Liu, Biometrika 1994): a k-subset S has
/// probability Π_{i∈S} e^{z_i} / e_k(e^z), where e_k is the k-th elementary symmetric polynomial.
///
/// Both quantities are computed by the recurrence over the entries i = 1…n,
/// L_i(j) = log e_j(e^{z_1}, …, e^{z_i}) = logaddexp(L_{i−1}(j), z_i + L_{i−1}(j − 1)), in O(n·k)
/// per row, and differentiated by hand through the same recurrence (reverse sweep, O(n·k)).
extension Tensor {
    /// log e_k(e^z) per row of `logits` `[B, n]`: the log-normaliser of the k-subsets, k = `counts[b]`,
    /// over the entries whose `mask` is 1 (all when nil). Its gradient is each entry's inclusion
    /// probability P(i ∈ S). `[B]`.
    public static func conditionalBernoulliLogNormalizer(_ logits: Tensor, mask: Tensor?, counts: [Int]) -> Tensor {
        conditionalBernoulliLogNormalizer(logits, rows: ConditionalBernoulliRows(logits: logits, mask: mask, counts: counts))
    }

    /// `conditionalBernoulliLogNormalizer` from `rows` already computed for `logits`.
    public static func conditionalBernoulliLogNormalizer(_ logits: Tensor, rows: ConditionalBernoulliRows) -> Tensor {
        conditionalBernoulli(logits, rows: rows, entropy: false)
    }

    /// The entropy −Σ_S P(S) log P(S) of the k-subset distribution of each row (see
    /// `conditionalBernoulliLogNormalizer`), `[B]`, differentiable in the logits:
    /// H = log e_k − E[Σ_{i∈S} z_i], the expectation by the recurrence
    /// R_i(j) = (1 − q)·R_{i−1}(j) + q·(R_{i−1}(j − 1) + z_i), q = e^{z_i + L_{i−1}(j−1) − L_i(j)}.
    public static func conditionalBernoulliEntropy(_ logits: Tensor, mask: Tensor?, counts: [Int]) -> Tensor {
        conditionalBernoulliEntropy(logits, rows: ConditionalBernoulliRows(logits: logits, mask: mask, counts: counts))
    }

    /// `conditionalBernoulliEntropy` from `rows` already computed for `logits`.
    public static func conditionalBernoulliEntropy(_ logits: Tensor, rows: ConditionalBernoulliRows) -> Tensor {
        conditionalBernoulli(logits, rows: rows, entropy: true)
    }

    /// log e_k, or the entropy log e_k − E[Σ_S z], per row, with its pullback.
    private static func conditionalBernoulli(_ logits: Tensor, rows: ConditionalBernoulliRows, entropy: Bool) -> Tensor {
        precondition(logits.shape == [rows.batch, rows.n], "conditional Bernoulli: logits \(logits.shape) for rows of [\(rows.batch), \(rows.n)]")
        var result = Tensor(shape: [rows.batch], scalars: rows.tables.map { Float(entropy ? $0.logNormalizer - $0.expectedScore : $0.logNormalizer) })
        Tensor.record(&result, logits) { g, _ in
            let gradient = g.scalars
            var dz = [Float](repeating: 0, count: rows.batch * rows.n)
            for b in 0..<rows.batch {
                let adjoint = Double(gradient[b])
                let row = rows.backward(b, normalizerAdjoint: adjoint, entropyAdjoint: entropy ? adjoint : 0)
                for i in 0..<rows.n { dz[b * rows.n + i] = Float(row[i]) }
            }
            return [Tensor(shape: logits.shape, scalars: dz)]
        }
        return result
    }
}

/// The rows of a conditional-Bernoulli computation: the valid entries' logits and each row's k.
public struct ConditionalBernoulliRows: Sendable {
    /// Rows B and entries n.
    public let batch: Int, n: Int
    let z: [Double]
    let valid: [[Int]]
    /// Each row's k, clamped to 0…(its valid entries).
    public let counts: [Int]
    /// A log-probability that stands for −∞ (an impossible count) and stays finite in sums.
    static let impossible = -1e30

    /// The rows of `logits` `[B, n]`, the entries where `mask` is 1 (all when nil), k = `counts`.
    public init(logits: Tensor, mask: Tensor?, counts: [Int]) {
        precondition(logits.rank == 2, "conditional Bernoulli: logits must be [B, n], got \(logits.shape)")
        precondition(counts.count == logits.shape[0], "conditional Bernoulli: \(counts.count) counts for \(logits.shape[0]) rows")
        precondition(mask == nil || mask!.shape == logits.shape, "conditional Bernoulli: mask \(mask!.shape) differs from logits \(logits.shape)")
        batch = logits.shape[0]
        n = logits.shape[1]
        z = logits.detached().scalars.map(Double.init)
        let m = mask?.detached().scalars
        let n = self.n
        valid = (0..<batch).map { b in (0..<n).filter { m == nil || m![b * n + $0] != 0 } }
        self.counts = zip(counts, valid).map { Swift.max(0, Swift.min($0, $1.count)) }
        let (z, valid, k) = (self.z, self.valid, self.counts)
        tables = (0..<batch).map { b in Self.forward(z: z[(b * n)..<((b + 1) * n)], entries: valid[b], k: k[b]) }
    }

    /// The forward tables of one row: L (the log elementary symmetric sums of the first i valid
    /// entries, (m + 1) × (k + 1), row-major) and R (the expected score sums), and their last cells.
    public struct Tables: Sendable {
        /// L_i(j), row-major over i = 0…m and j = 0…k.
        public let l: [Double]
        /// R_i(j), the expected Σ z of a j-subset of the first i entries.
        public let r: [Double]
        /// log e_k of the row.
        public var logNormalizer: Double { l[l.count - 1] }
        /// E[Σ_{i∈S} z_i] of the row.
        public var expectedScore: Double { r[r.count - 1] }
    }
    /// Each row's tables, computed once when the rows are made (values, gradients and samples read them).
    public let tables: [Tables]

    /// The tables of one row: logits `z` (the row's n), its valid `entries` and k.
    static func forward(z: ArraySlice<Double>, entries: [Int], k: Int) -> Tables {
        let m = entries.count, width = k + 1, base = z.startIndex
        var l = [Double](repeating: Self.impossible, count: (m + 1) * width)
        var r = [Double](repeating: 0, count: (m + 1) * width)
        l[0] = 0
        for i in stride(from: 1, through: m, by: 1) {
            let zi = z[base + entries[i - 1]]
            let previous = (i - 1) * width, current = i * width
            l[current] = l[previous]  // j = 0: the empty set, log 1
            for j in 1..<width {
                let a = l[previous + j], c = zi + l[previous + j - 1]
                let top = Swift.max(a, c)
                if top <= Self.impossible / 2 { continue }
                let total = top + Foundation.log(Foundation.exp(a - top) + Foundation.exp(c - top))
                l[current + j] = total
                let q = Foundation.exp(c - total)
                r[current + j] = (1 - q) * r[previous + j] + q * (r[previous + j - 1] + zi)
            }
        }
        return Tables(l: l, r: r)
    }

    /// d/dz of `normalizerAdjoint`·log e_k − `entropyAdjoint`·E[Σ_{i∈S} z_i] for row `b` (the
    /// entropy's gradient with both adjoints equal), `[n]`, by a reverse sweep of `forward`.
    public func backward(_ b: Int, normalizerAdjoint: Double, entropyAdjoint: Double) -> [Double] {
        let entries = valid[b], k = counts[b], m = entries.count, width = k + 1
        var dz = [Double](repeating: 0, count: n)
        guard m > 0 else { return dz }
        let (l, r) = (tables[b].l, tables[b].r)
        var gl = [Double](repeating: 0, count: width), gr = [Double](repeating: 0, count: width)
        var nextL = gl, nextR = gr  // the adjoints of row i − 1, reused across rows
        gl[k] = normalizerAdjoint
        gr[k] = -entropyAdjoint
        for i in stride(from: m, through: 1, by: -1) {
            let zi = z[b * n + entries[i - 1]]
            let previous = (i - 1) * width, current = i * width
            for j in 1..<width {
                nextL[j] = 0
                nextR[j] = 0
            }
            nextL[0] = gl[0]
            nextR[0] = gr[0]
            var gz = 0.0
            for j in 1..<width where l[current + j] > ConditionalBernoulliRows.impossible / 2 {
                let a = l[previous + j], c = zi + l[previous + j - 1]
                let q = Foundation.exp(c - l[current + j])
                // R = (1 − q)·R'(j) + q·(R'(j − 1) + z_i)
                let difference = r[previous + j - 1] + zi - r[previous + j]
                nextR[j] += gr[j] * (1 - q)
                nextR[j - 1] += gr[j] * q
                gz += gr[j] * q
                let gq = gr[j] * difference
                // q = σ(c − a); L = logaddexp(a, c)
                let slope = q * (1 - q)
                let ga = gl[j] * (1 - q) - gq * slope
                let gc = gl[j] * q + gq * slope
                if a > ConditionalBernoulliRows.impossible / 2 { nextL[j] += ga }
                nextL[j - 1] += gc
                gz += gc
            }
            dz[entries[i - 1]] = gz
            swap(&gl, &nextL)
            swap(&gr, &nextR)
        }
        return dz
    }

    /// A k-subset of row `b` drawn exactly from the distribution (backward sequential sampling:
    /// entry i joins with probability e^{z_i} e_{r−1}(first i − 1) / e_r(first i), r the places left).
    public func sample(_ b: Int, using generator: inout SeededGenerator) -> [Int] {
        let entries = valid[b], k = counts[b], width = k + 1
        let l = tables[b].l
        var chosen: [Int] = []
        var left = k
        var i = entries.count
        while left > 0 && i > 0 {
            if left == i {
                chosen += entries[0..<i]
                break
            }
            let probability = Foundation.exp(z[b * n + entries[i - 1]] + l[(i - 1) * width + left - 1] - l[i * width + left])
            if Double(generator.nextFloat()) < probability {
                chosen.append(entries[i - 1])
                left -= 1
            }
            i -= 1
        }
        return chosen.sorted()
    }
}
