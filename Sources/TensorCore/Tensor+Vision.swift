import Foundation

// Operations specific to vision-language models: patch extraction for a stride = kernel patch
// embedding, and rotary position embedding in the Hugging Face "rotate half" convention.

extension Tensor {
    /// Non-overlapping `patchSize × patchSize` patches of images, flattened in `(channel, row,
    /// column)` order so that `patches · weightᵀ` equals a `Conv2d(kernel = stride = patchSize)`
    /// whose weight `[out, channels, p, p]` is reshaped to `[out, channels·p·p]`.
    ///
    /// Shapes: `[batch, channels, height, width]` → `[batch, (height/p)·(width/p), channels·p·p]`,
    /// patches in row-major grid order.
    public func patchified(patchSize p: Int) -> Tensor {
        precondition(rank == 4, "patchified: input must be [batch, channels, height, width], got \(shape)")
        let (batch, channels, height, width) = (shape[0], shape[1], shape[2], shape[3])
        precondition(p > 0 && height % p == 0 && width % p == 0, "patchified: \(height)×\(width) image is not divisible into \(p)×\(p) patches")
        let (rows, columns) = (height / p, width / p)
        let patchLength = channels * p * p
        let newShape = [batch, rows * columns, patchLength]
        var result = Tensor(uninitializedShape: newShape)
        // Visit every (image offset, patch offset) pair once; `copy` moves p values of one patch row.
        func forEachRun(_ body: (_ image: Int, _ patch: Int) -> Void) {
            for b in 0..<batch {
                for r in 0..<rows {
                    for c in 0..<columns {
                        let patchBase = (b * rows * columns + r * columns + c) * patchLength
                        for channel in 0..<channels {
                            for y in 0..<p {
                                let image = ((b * channels + channel) * height + r * p + y) * width + c * p
                                body(image, patchBase + (channel * p + y) * p)
                            }
                        }
                    }
                }
            }
        }
        let source = storage.base, target = result.storage.base
        forEachRun { image, patch in (target + patch).update(from: source + image, count: p) }
        let imageShape = shape
        Tensor.record(&result, self) { g, _ in
            let grad = Tensor(uninitializedShape: imageShape)
            let source = g.storage.base, target = grad.storage.base
            forEachRun { image, patch in (target + image).update(from: source + patch, count: p) }
            return [grad]
        }
        return result
    }

    /// Rotary position embedding, "rotate half" convention of Hugging Face LLaMA:
    /// `x·cos + rotate_half(x)·sin`, with `rotate_half([x₁, x₂]) = [−x₂, x₁]`.
    ///
    /// Shapes: `x` is `[…, T, …, D]` with the tokens on `tokenAxis` (default: the axis before the
    /// last, as in `[B, H, T, D]`; use 1 for the projection layout `[B, T, H, D]`). `cos` and `sin`
    /// are `[T, D]` (shared by every sequence) or `[B, T, D]` (per-sequence positions, `x.shape[0]
    /// == B`).
    public func applyingRotaryEmbedding(cos: Tensor, sin: Tensor, tokenAxis: Int? = nil) -> Tensor {
        precondition(rank >= 2, "applyingRotaryEmbedding: x must be [..., T, D], got \(shape)")
        let axis = tokenAxis.map(normalizedAxis) ?? rank - 2
        precondition(axis < rank - 1, "applyingRotaryEmbedding: token axis \(axis) must precede the last axis of \(shape)")
        let (t, d) = (shape[axis], shape[rank - 1])
        precondition(d % 2 == 0, "applyingRotaryEmbedding: head dimension \(d) must be even")
        precondition(cos.shape == sin.shape, "applyingRotaryEmbedding: cos \(cos.shape) and sin \(sin.shape) differ")
        let shared = cos.shape == [t, d]
        precondition(
            shared || (cos.shape == [shape[0], t, d] && axis > 0),
            "applyingRotaryEmbedding: cos/sin \(cos.shape) must be [\(t), \(d)] or [\(shape[0]), \(t), \(d)] for x \(shape)")
        let rows = count / d
        let innerRows = shape[(axis + 1)..<(rank - 1)].reduce(1, *)
        let rowsPerSequence = shared ? rows : rows / shape[0]
        let half = d / 2
        // Row r of x (a run of d values) uses table row (sequence, token).
        func tableRow(_ r: Int) -> Int {
            let token = (r / innerRows) % t
            return shared ? token * d : ((r / rowsPerSequence) * t + token) * d
        }
        var result = Tensor(uninitializedShape: shape)
        let c = cos.storage.base, s = sin.storage.base
        let source = storage.base, target = result.storage.base
        for r in 0..<rows {
            let row = r * d, table = tableRow(r)
            for j in 0..<half {
                target[row + j] = source[row + j] * c[table + j] - source[row + j + half] * s[table + j]
            }
            for j in half..<d {
                target[row + j] = source[row + j] * c[table + j] + source[row + j - half] * s[table + j]
            }
        }
        guard node != nil else { return result }
        let (cosValue, sinValue) = (cos.detached(), sin.detached())
        let inputShape = shape
        Tensor.record(&result, self) { g, _ in
            let grad = Tensor(uninitializedShape: inputShape)
            let c = cosValue.storage.base, s = sinValue.storage.base
            let source = g.storage.base, target = grad.storage.base
            for r in 0..<rows {
                let row = r * d, table = tableRow(r)
                for j in 0..<half {
                    target[row + j] = source[row + j] * c[table + j] + source[row + j + half] * s[table + j + half]
                }
                for j in half..<d {
                    target[row + j] = source[row + j] * c[table + j] - source[row + j - half] * s[table + j - half]
                }
            }
            return [grad]
        }
        return result
    }

    /// The cos and sin tables of rotary embedding for `positions`: θᵢ = base^(−2i/D) for
    /// i < D/2, angles = position·θ repeated twice (`cat(freqs, freqs)`), computed in Float32 as
    /// transformers' `LlamaRotaryEmbedding` does. Returns `[T, D]` tables.
    public static func rotaryTables(positions: [Int], dimension: Int, base: Float) -> (cos: Tensor, sin: Tensor) {
        precondition(dimension % 2 == 0, "rotaryTables: dimension \(dimension) must be even")
        let half = dimension / 2
        let inverseFrequencies: [Float] = (0..<half).map { i in 1 / Foundation.pow(base, Float(2 * i) / Float(dimension)) }
        var cosValues = [Float](repeating: 0, count: positions.count * dimension)
        var sinValues = cosValues
        for (row, position) in positions.enumerated() {
            for i in 0..<half {
                let angle = Float(position) * inverseFrequencies[i]
                let (c, s) = (Foundation.cos(angle), Foundation.sin(angle))
                cosValues[row * dimension + i] = c
                cosValues[row * dimension + i + half] = c
                sinValues[row * dimension + i] = s
                sinValues[row * dimension + i + half] = s
            }
        }
        return (Tensor(shape: [positions.count, dimension], scalars: cosValues),
                Tensor(shape: [positions.count, dimension], scalars: sinValues))
    }
}
