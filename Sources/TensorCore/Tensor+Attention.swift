import Foundation

extension Tensor {
    /// Fused multi-head scaled dot-product attention with its own backward:
    /// softmax(scale·Q·Kᵀ + mask)·V for every (batch, head), with grouped-query heads.
    ///
    /// Heads are read in place from the projection layout, with no permute copies: head `h` of
    /// `query` is the column block `h·D..<(h+1)·D` (leading dimension `heads·D`), and query head
    /// `h` uses key/value head `h / (heads / keyValueHeads)` (transformers' `repeat_kv`). The scale
    /// is GEMM's α. Rows whose keys are all masked give zero output.
    ///
    /// Shapes: `query` `[B, T, heads·D]`, `key` and `value` `[B, S, keyValueHeads·D]`, optional
    /// `additiveMask` `[B or 1, heads or 1, T or 1, S]` (0 keeps, −∞ drops; a constant) →
    /// output `[B, T, heads·D]` and the attention probabilities `[B, heads, T, S]`.
    ///
    /// - Complexity: 4·B·heads·T·S·D multiply-adds forward, twice that backward; parallel over
    ///   (batch, key/value head).
    public static func scaledDotProductAttention(
        query: Tensor, key: Tensor, value: Tensor, heads: Int, keyValueHeads: Int,
        scale: Float? = nil, additiveMask: Tensor? = nil, causal: Bool = false
    ) -> (output: Tensor, weights: Tensor) {
        let (batch, t, s, width, d, kvWidth, group, alpha, maskStrides) = attentionGeometry(
            query: query, key: key, value: value, heads: heads, keyValueHeads: keyValueHeads, scale: scale, additiveMask: additiveMask)
        var output = Tensor(uninitializedShape: [batch, t, width])
        let weights = Tensor(uninitializedShape: [batch, heads, t, s])
        let q = query.storage.base, k = key.storage.base, v = value.storage.base
        let o = output.storage.base, p = weights.storage.base
        let m = additiveMask?.storage.base
        let flopsPerTask = 4 * group * t * s * d
        Parallel.forRanges(batch * keyValueHeads, cost: Swift.max(1, flopsPerTask / 64)) { range in
            for task in range {
                let (b, kvh) = (task / keyValueHeads, task % keyValueHeads)
                let kb = k + b * s * kvWidth + kvh * d, vb = v + b * s * kvWidth + kvh * d
                for h in (kvh * group)..<((kvh + 1) * group) {
                    let pb = p + (b * heads + h) * t * s
                    BLAS.gemm(transposeA: false, transposeB: true, m: t, n: s, k: d, alpha: alpha,
                              a: q + b * t * width + h * d, lda: width, b: kb, ldb: kvWidth, c: pb, ldc: s)
                    for i in 0..<t {
                        applyMask(pb + i * s, count: s, row: i, mask: m.map { $0 + b * maskStrides.b + h * maskStrides.h + i * maskStrides.t }, causal: causal)
                    }
                    FastMath.softmaxRowsInPlace(pb, rows: t, stride: s, count: s)
                    BLAS.gemm(transposeA: false, transposeB: false, m: t, n: d, k: s,
                              a: pb, lda: s, b: vb, ldb: kvWidth, c: o + b * t * width + h * d, ldc: width)
                }
            }
        }
        guard query.node != nil || key.node != nil || value.node != nil else { return (output, weights) }
        let (queryValue, keyValue, valueValue, probabilities) = (query.detached(), key.detached(), value.detached(), weights)
        record(&output, query, key, value) { g, needs in
            let dq = Tensor(uninitializedShape: queryValue.shape)
            let dk = Tensor(repeating: 0, shape: keyValue.shape)
            let dv = Tensor(repeating: 0, shape: valueValue.shape)
            let q = queryValue.storage.base, k = keyValue.storage.base, v = valueValue.storage.base
            let p = probabilities.storage.base, dO = g.storage.base
            let dqBase = dq.storage.base, dkBase = dk.storage.base, dvBase = dv.storage.base
            Parallel.forRanges(batch * keyValueHeads, cost: Swift.max(1, 2 * flopsPerTask / 64)) { range in
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: t * s)
                defer { scratch.deallocate() }
                for task in range {
                    let (b, kvh) = (task / keyValueHeads, task % keyValueHeads)
                    let kvOffset = b * s * kvWidth + kvh * d
                    for h in (kvh * group)..<((kvh + 1) * group) {
                        let pb = p + (b * heads + h) * t * s
                        let qOffset = b * t * width + h * d
                        // dV += Pᵀ·dO
                        BLAS.gemm(transposeA: true, transposeB: false, m: s, n: d, k: t,
                                  a: pb, lda: s, b: dO + qOffset, ldb: width, beta: 1, c: dvBase + kvOffset, ldc: kvWidth)
                        // dP = dO·Vᵀ, then dS = P ⊙ (dP − rowsum(dP ⊙ P))
                        BLAS.gemm(transposeA: false, transposeB: true, m: t, n: s, k: d,
                                  a: dO + qOffset, lda: width, b: v + kvOffset, ldb: kvWidth, c: scratch, ldc: s)
                        // Rows four at a time: each row's Σ dP ⊙ P in `FastMath4.dot`'s order (the
                        // same bits as one row at a time), the four dependency chains overlapping.
                        for first in stride(from: 0, to: t, by: 4) {
                            let group = Swift.min(4, t - first)
                            let dots = FastMath4.dots(FastMath4.fourRows(scratch, from: first, count: group, stride: s),
                                                      FastMath4.fourRows(pb, from: first, count: group, stride: s), s)
                            for g in 0..<group {
                                let dp = scratch + (first + g) * s, prob = pb + (first + g) * s, dot = dots[g]
                                for j in 0..<s { dp[j] = prob[j] * (dp[j] - dot) }
                            }
                        }
                        // dQ = α·dS·K ;  dK += α·dSᵀ·Q
                        BLAS.gemm(transposeA: false, transposeB: false, m: t, n: d, k: s, alpha: alpha,
                                  a: scratch, lda: s, b: k + kvOffset, ldb: kvWidth, c: dqBase + qOffset, ldc: width)
                        BLAS.gemm(transposeA: true, transposeB: false, m: s, n: d, k: t, alpha: alpha,
                                  a: scratch, lda: s, b: q + qOffset, ldb: width, beta: 1, c: dkBase + kvOffset, ldc: kvWidth)
                    }
                }
            }
            return [needs[0] ? dq : nil, needs[1] ? dk : nil, needs[2] ? dv : nil]
        }
        return (output, weights)
    }

    /// Query rows per block of `scaledDotProductAttentionOutput`: a causal block of rows
    /// i…i+31 scores keys 0…i+31 only (what `LlavaConfiguration.executedFLOPs` counts).
    public static let attentionQueryBlock = 32

    /// The output of `scaledDotProductAttention` alone, without the `[B, heads, T, S]`
    /// probabilities: for inference, where nothing reads them. Query rows go through in blocks of
    /// 32, whose scores stay in a per-thread scratch buffer (a cache-sized slice instead of the
    /// whole probability tensor written to memory and read back). Same arguments, same result;
    /// inputs that take part in autograd use `scaledDotProductAttention`, whose backward needs the
    /// probabilities. On CPUs with AVX2, heads 16 wide without a mask or causality (the vision
    /// tower's) take one fused kernel per head (`BLAS.attentionHead16`), which sums each product in
    /// index order, and heads 4 or 8 wide without causality, masked or not (the TPRL policy's),
    /// another (`BLAS.attentionNarrowHead`) in the order OpenBLAS sums their shapes: OpenBLAS's
    /// bits where it runs its AVX-512 kernels.
    public static func scaledDotProductAttentionOutput(
        query: Tensor, key: Tensor, value: Tensor, heads: Int, keyValueHeads: Int,
        scale: Float? = nil, additiveMask: Tensor? = nil, causal: Bool = false
    ) -> Tensor {
        if query.node != nil || key.node != nil || value.node != nil {
            return scaledDotProductAttention(query: query, key: key, value: value, heads: heads, keyValueHeads: keyValueHeads,
                                             scale: scale, additiveMask: additiveMask, causal: causal).output
        }
        let (batch, t, s, width, d, kvWidth, group, alpha, maskStrides) = attentionGeometry(
            query: query, key: key, value: value, heads: heads, keyValueHeads: keyValueHeads, scale: scale, additiveMask: additiveMask)
        let output = Tensor(uninitializedShape: [batch, t, width])
        let q = query.storage.base, k = key.storage.base, v = value.storage.base
        let o = output.storage.base
        let m = additiveMask?.storage.base
        let block = attentionQueryBlock
        let flopsPerTask = 4 * group * t * s * d
        // The vision tower's heads (16 wide, no mask) on AVX2 or AVX-512: one fused kernel per
        // head in place of two GEMM calls per block of rows around the softmax (on AVX-512
        // kernels, to OpenBLAS's bits).
        let fusedHeads = !causal && m == nil && d == 16 && block >= 16 && BLAS.fusedHeadAttention  // its scratch: 16 rows
        // Heads 4 or 8 wide (the TPRL policy's), with or without a mask: the narrow kernel, to
        // the bits of OpenBLAS's AVX-512 kernels.
        let narrowHeads = !causal && (d == 4 || d == 8) && block >= 4 && BLAS.fusedHeadAttention  // its scratch: 4 rows
        let keyStride = fusedHeads || narrowHeads ? (s + 15) / 16 * 16 : s
        Parallel.forRanges(batch * keyValueHeads, cost: Swift.max(1, flopsPerTask / 64)) { range in
            // Rows of the transposed keys and of the fused kernel's scratch start on cache lines.
            let scratch = Self.alignedFloats(block * keyStride)
            let keysTransposed = Self.alignedFloats(causal ? 0 : d * keyStride)
            let valuesTransposed = Self.alignedFloats(narrowHeads ? d * keyStride : 0)
            defer {
                UnsafeMutableRawPointer(scratch).deallocate(); UnsafeMutableRawPointer(keysTransposed).deallocate()
                UnsafeMutableRawPointer(valuesTransposed).deallocate()
            }
            // The fused kernel's rows past a block's end sum zeros rather than stale memory.
            if fusedHeads { scratch.initialize(repeating: 0, count: 16 * keyStride) }
            for task in range {
                let (b, kvh) = (task / keyValueHeads, task % keyValueHeads)
                let kb = k + b * s * kvWidth + kvh * d, vb = v + b * s * kvWidth + kvh * d
                // Without a causal mask every block reads all s keys: the head's keys go into a
                // [d, s] matrix once for all its blocks (the fused kernel's input too), and the
                // scores are a product without transposes, which OpenBLAS runs through its
                // small-matrix kernels instead of packing both operands for every block (16-wide
                // heads at batch 16, before the fused kernel: about 5 → 4 ms a layer on a Xeon; the
                // same bits as the transposed product for 16- and 4-wide heads on every kernel tried).
                // Causal blocks keep the transposed product: their first ones are small enough for
                // OpenBLAS's AVX-512 small-matrix kernel for transposed operands (heads 32 wide or
                // more), which sums in another order, and the LLM keeps its bits.
                // The head's s rows of d (stride kvWidth) into a [d, s] matrix (stride keyStride).
                func transpose(_ rows: UnsafeMutablePointer<Float>, into columns: UnsafeMutablePointer<Float>) {
                    for j in 0..<s {
                        for c in 0..<d { columns[c * keyStride + j] = rows[j * kvWidth + c] }
                    }
                }
                if !causal { transpose(kb, into: keysTransposed) }
                if narrowHeads { transpose(vb, into: valuesTransposed) }
                for h in (kvh * group)..<((kvh + 1) * group) {
                    if narrowHeads {
                        BLAS.attentionNarrowHead(q: q + b * t * width + h * d, ldq: width, keysTransposed: keysTransposed,
                                                 valuesTransposed: valuesTransposed, ldt: keyStride,
                                                 mask: m.map { UnsafePointer($0 + b * maskStrides.b + h * maskStrides.h) }, ldm: maskStrides.t,
                                                 o: o + b * t * width + h * d, ldo: width, rows: t, keys: s, width: d,
                                                 scale: alpha, scratch: scratch, lds: keyStride)
                        continue
                    }
                    if fusedHeads {
                        BLAS.attentionHead16(q: q + b * t * width + h * d, ldq: width, keysTransposed: keysTransposed, ldk: keyStride,
                                             v: vb, ldv: kvWidth, o: o + b * t * width + h * d, ldo: width, rows: t, keys: s,
                                             scale: alpha, scratch: scratch, lds: keyStride)
                        continue
                    }
                    for first in stride(from: 0, to: t, by: block) {
                        let rows = Swift.min(block, t - first)
                        // Causal rows first..<first + rows read keys 0..<first + rows only: the
                        // rest would be masked to zero weight, so neither product computes them.
                        let keys = causal ? Swift.min(s, first + rows) : s
                        BLAS.gemm(transposeA: false, transposeB: causal, m: rows, n: keys, k: d, alpha: alpha,
                                  a: q + (b * t + first) * width + h * d, lda: width,
                                  b: causal ? kb : keysTransposed, ldb: causal ? kvWidth : keyStride, c: scratch, ldc: s)
                        for r in 0..<rows {
                            let i = first + r
                            applyMask(scratch + r * s, count: keys, row: i, mask: m.map { $0 + b * maskStrides.b + h * maskStrides.h + i * maskStrides.t },
                                      causal: causal)
                        }
                        FastMath.softmaxRowsInPlace(scratch, rows: rows, stride: s, count: keys)
                        BLAS.gemm(transposeA: false, transposeB: false, m: rows, n: d, k: keys,
                                  a: scratch, lda: s, b: vb, ldb: kvWidth, c: o + (b * t + first) * width + h * d, ldc: width)
                    }
                }
            }
        }
        return output
    }

    /// Uninitialised room for `count` floats starting on a 64-byte boundary (free it with
    /// `UnsafeMutableRawPointer.deallocate`).
    private static func alignedFloats(_ count: Int) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer.allocate(byteCount: Swift.max(1, count) * MemoryLayout<Float>.stride, alignment: 64)
            .bindMemory(to: Float.self, capacity: Swift.max(1, count))
    }

    /// Checks the shapes of an attention call and returns its sizes: batch, query and key lengths,
    /// query width, head size, key/value width, query heads per key/value head, the scale, and
    /// the mask's (broadcast) strides over batch, head and query row.
    private static func attentionGeometry(
        query: Tensor, key: Tensor, value: Tensor, heads: Int, keyValueHeads: Int, scale: Float?, additiveMask: Tensor?
    ) -> (batch: Int, t: Int, s: Int, width: Int, d: Int, kvWidth: Int, group: Int, alpha: Float, maskStrides: (b: Int, h: Int, t: Int)) {
        precondition(query.rank == 3 && key.rank == 3 && value.rank == 3, "attention: query/key/value must be [B, T, heads·D], got \(query.shape), \(key.shape), \(value.shape)")
        precondition(heads > 0 && keyValueHeads > 0 && heads % keyValueHeads == 0, "attention: \(heads) heads not divisible into \(keyValueHeads) key/value heads")
        let (batch, t, width) = (query.shape[0], query.shape[1], query.shape[2])
        let s = key.shape[1]
        precondition(width % heads == 0, "attention: query width \(width) not divisible by \(heads) heads")
        let d = width / heads
        let kvWidth = keyValueHeads * d
        precondition(key.shape == [batch, s, kvWidth] && value.shape == [batch, s, kvWidth],
                     "attention: key \(key.shape) and value \(value.shape) must be [\(batch), \(s), \(kvWidth)]")
        let group = heads / keyValueHeads
        let alpha = scale ?? 1 / Float(d).squareRoot()
        var maskStrides = (b: 0, h: 0, t: 0)
        if let mask = additiveMask {
            precondition(
                mask.rank == 4 && mask.shape[3] == s && [1, batch].contains(mask.shape[0]) && [1, heads].contains(mask.shape[1]) && [1, t].contains(mask.shape[2]),
                "attention: mask \(mask.shape) must be [\(batch) or 1, \(heads) or 1, \(t) or 1, \(s)]")
            let strides = Broadcast.contiguousStrides(mask.shape)
            maskStrides = (mask.shape[0] == 1 ? 0 : strides[0], mask.shape[1] == 1 ? 0 : strides[1], mask.shape[2] == 1 ? 0 : strides[2])
        }
        return (batch, t, s, width, d, kvWidth, group, alpha, maskStrides)
    }

    /// One row of scores before its softmax: adds the mask row and drops keys after query row
    /// `row` when causal.
    @inline(__always)
    private static func applyMask(_ scores: UnsafeMutablePointer<Float>, count s: Int, row i: Int, mask: UnsafeMutablePointer<Float>?, causal: Bool) {
        if let mask { for j in 0..<s { scores[j] += mask[j] } }
        if causal && i + 1 < s { for j in (i + 1)..<s { scores[j] = -.infinity } }
    }
}
