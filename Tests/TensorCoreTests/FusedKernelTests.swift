import Foundation
import Testing
@testable import TensorCore
import TestSupport

@Suite("Fused kernels agree with their definitions")
struct FusedKernelTests {
    @Test("fast exp is within 2e-7 relative of libm on [−87, 88], 0 below and ∞ above")
    func fastExp() {
        var worst: Float = 0
        for i in 0...200_000 {
            let x = -87 + Float(i) * (175 / 200_000)
            let expected = Foundation.exp(Double(x))
            worst = max(worst, Float(abs(Double(FastMath.exp(x)) - expected) / expected))
        }
        #expect(worst < 2e-7, "worst relative error \(worst)")
        #expect(FastMath.exp(-100) == 0 && FastMath.exp(-.infinity) == 0)
        #expect(FastMath.exp(100) == .infinity && FastMath.exp(.nan).isNaN)
    }

    @Test("softmax rows (AVX-512 or AVX2 kernel where the CPU has it) match double precision and the portable kernel; −∞ rows become zeros")
    func softmaxRows() {
        var generator = SeededGenerator(seed: 11)
        for count in [1, 3, 7, 8, 9, 16, 31, 257, 1000] {
            var row = (0..<count).map { _ in Float(generator.nextDouble() * 40 - 20) }
            if count > 2 { row[1] = -.infinity }  // a masked key
            var fast = row, portable = row
            fast.withUnsafeMutableBufferPointer { FastMath.softmaxInPlace($0.baseAddress!, count: count) }
            portable.withUnsafeMutableBufferPointer { FastMath.softmaxInPlacePortable($0.baseAddress!, count: count) }
            let m = Double(row.max()!)
            let total = row.reduce(0.0) { $0 + Foundation.exp(Double($1) - m) }
            for j in 0..<count {
                let exact = Foundation.exp(Double(row[j]) - m) / total
                #expect(abs(Double(fast[j]) - exact) <= 1e-6 * exact + 1e-12, "count \(count), element \(j): \(fast[j]) vs \(exact)")
                #expect(abs(fast[j] - portable[j]) <= 1e-6 * portable[j] + 1e-12, "count \(count), element \(j)")
            }
        }
        var masked = [Float](repeating: -.infinity, count: 13)
        masked.withUnsafeMutableBufferPointer { FastMath.softmaxInPlace($0.baseAddress!, count: 13) }
        #expect(masked == [Float](repeating: 0, count: 13))
    }

    @Test("the softmax's exponential gives the general one's bits on every argument a softmax passes (x ≤ 0, −∞, NaN)")
    func softmaxExponential() throws {
        try #require(BLAS.avx2, "no AVX2 + FMA here: the portable kernels have one exponential")
        var x = (0...300_000).map { -95 + Float($0) * (95 / 300_000) }
        x += [0, -0.0, -87.33654, -87.33653, -87.33655, -.infinity, .nan, -Float.leastNonzeroMagnitude, -Float.greatestFiniteMagnitude]
        var general = [Float](repeating: 1, count: x.count), softmax = general
        BLAS.exp(x, &general, count: x.count, nonpositive: false)
        BLAS.exp(x, &softmax, count: x.count, nonpositive: true)
        for (j, value) in x.enumerated() where !value.isNaN {
            #expect(general[j].bitPattern == softmax[j].bitPattern, "e^\(value): \(general[j]) against \(softmax[j])")
        }
        #expect(softmax[x.count - 4] == 0 && softmax[x.count - 3].isNaN && softmax[x.count - 1] == 0)
    }

    @Test("the sixteen-lane (AVX-512) softmax, exponentials, x·σ(a·x) and GELU give the eight-lane kernels' bits, tails, −∞, NaN and overflow included")
    func sixteenLanes() throws {
        try #require(BLAS.vectorLevel >= 3 && BLAS.avx2, "no AVX-512 here: the eight-lane kernels run")
        var generator = SeededGenerator(seed: 12)
        var arguments = (0...100_000).map { -100 + Float($0) * (200 / 100_000) }
        arguments += [0, -0.0, -87.33654, -87.33655, 88.72283, 88.72284, .infinity, -.infinity, .nan, -Float.leastNonzeroMagnitude]
        for count in [1, 5, 8, 9, 15, 16, 17, 23, 24, 31, 33, 257, 1000, arguments.count] {
            var x = count == arguments.count ? arguments : (0..<count).map { _ in Float(generator.nextDouble() * 60 - 30) }
            if count > 3 { x[2] = -.infinity }
            if count == 1000 { x[999] = .nan }
            for nonpositive in [false, true] {
                let input = nonpositive ? x.map { Swift.min($0, 0) } : x
                var eight = [Float](repeating: 7, count: count), sixteen = eight
                BLAS.exp(input, &eight, count: count, nonpositive: nonpositive, lanes: 8)
                BLAS.exp(input, &sixteen, count: count, nonpositive: nonpositive, lanes: 16)
                #expect(Self.differingBits(eight, sixteen) == 0, "e^x over \(count), nonpositive \(nonpositive)")
            }
            for a: Float in [1, 1.702] {
                var eight = [Float](repeating: 7, count: count), sixteen = eight
                BLAS.sigmoidGated(x, &eight, count: count, scale: a, lanes: 8)
                BLAS.sigmoidGated(x, &sixteen, count: count, scale: a, lanes: 16)
                #expect(Self.differingBits(eight, sixteen) == 0, "x·σ(\(a)x) over \(count)")
            }
            var gelu8 = [Float](repeating: 7, count: count), gelu16 = gelu8, cdf8 = gelu8, cdf16 = gelu8
            BLAS.geluErf(x, &gelu8, cdf: &cdf8, count: count, lanes: 8)
            BLAS.geluErf(x, &gelu16, cdf: &cdf16, count: count, lanes: 16)
            #expect(Self.differingBits(gelu8, gelu16) + Self.differingBits(cdf8, cdf16) == 0, "GELU over \(count)")
            // Softmax rows: attention scores spread over ±3, where the order of the sum shows in
            // the last bit of about one row in six, 40 of them; the same over ±30 (a masked key);
            // and a row of all −∞.
            var rows = (0..<(count > 10_000 ? 0 : 40)).map { _ in (0..<count).map { _ in Float(generator.nextDouble() * 6 - 3) } }
            rows.append(count == arguments.count ? arguments.filter { $0.isFinite } : x.map { $0.isNaN ? 3 : $0 })
            rows.append([Float](repeating: -.infinity, count: count))
            for row in rows {
                var eight = row, sixteen = row
                eight.withUnsafeMutableBufferPointer { BLAS.softmaxRow($0.baseAddress!, count: row.count, lanes: 8) }
                sixteen.withUnsafeMutableBufferPointer { BLAS.softmaxRow($0.baseAddress!, count: row.count, lanes: 16) }
                #expect(Self.differingBits(eight, sixteen) == 0, "softmax over \(row.count)")
            }
        }
        #expect(BLAS.exponentialLanes == (BLAS.avx512 ? 16 : 8))
    }

    @Test("the sixteen-lane exponentials (2^n by vscalefps) give the eight-lane ones' bits on every 4096th float")
    func sixteenLaneExponentialSweep() throws {
        try #require(BLAS.vectorLevel >= 3 && BLAS.avx2, "no AVX-512 here: the eight-lane kernels run")
        // Every exponent and sign, 2048 mantissas each; the change was checked on all 2^32 inputs
        // with a C harness, this keeps a sample of them in the tests.
        let x = stride(from: UInt64(0), to: 1 << 32, by: 4096).map { Float(bitPattern: UInt32($0 + 1365)) }
        let nonpositive = x.filter { $0 <= 0 || $0.isNaN }
        for (input, isNonpositive) in [(x, false), (nonpositive, true)] {
            var eight = [Float](repeating: 7, count: input.count), sixteen = eight
            BLAS.exp(input, &eight, count: input.count, nonpositive: isNonpositive, lanes: 8)
            BLAS.exp(input, &sixteen, count: input.count, nonpositive: isNonpositive, lanes: 16)
            #expect(Self.differingBits(eight, sixteen) == 0, "e^x over \(input.count) floats, nonpositive \(isNonpositive)")
        }
    }

    @Test("the four-row softmax gives each row the one-row kernel's bits (both lane counts; causal −∞ tails, a row of −∞)")
    func softmaxFourRows() throws {
        try #require(BLAS.avx2, "no AVX2 + FMA here: the portable kernel runs one row at a time")
        var generator = SeededGenerator(seed: 13)
        for lanes in BLAS.avx512 ? [8, 16] : [8] {
            for count in [1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 257] {
                let stride = count + 3
                for pattern in 0..<3 {
                    var rows = (0..<(4 * stride)).map { _ in Float(generator.nextDouble() * 12 - 6) }
                    if pattern == 1 {  // causal: row r reads keys 0...count − 4 + r
                        for r in 0..<4 { for j in Swift.max(0, count - 3 + r)..<count { rows[r * stride + j] = -.infinity } }
                    }
                    if pattern == 2 { for j in 0..<count { rows[2 * stride + j] = -.infinity } }
                    var one = rows, four = rows
                    one.withUnsafeMutableBufferPointer { p in
                        for r in 0..<4 { BLAS.softmaxRow(p.baseAddress! + r * stride, count: count, lanes: lanes) }
                    }
                    four.withUnsafeMutableBufferPointer { BLAS.softmaxFourRows($0.baseAddress!, stride: stride, count: count, lanes: lanes) }
                    #expect(Self.differingBits(one, four) == 0, "\(lanes) lanes, \(count) keys, pattern \(pattern)")
                }
            }
        }
        // Any number of rows: groups of four, then one at a time.
        for rowCount in 1...9 {
            let (stride, count) = (260, 257)
            let rows = (0..<(rowCount * stride)).map { _ in Float(generator.nextDouble() * 12 - 6) }
            var one = rows, many = rows
            one.withUnsafeMutableBufferPointer { p in
                for r in 0..<rowCount { FastMath.softmaxInPlace(p.baseAddress! + r * stride, count: count) }
            }
            many.withUnsafeMutableBufferPointer { FastMath.softmaxRowsInPlace($0.baseAddress!, rows: rowCount, stride: stride, count: count) }
            #expect(Self.differingBits(one, many) == 0, "\(rowCount) rows")
        }
    }

    /// How many elements of two arrays differ in their bits.
    static func differingBits(_ a: [Float], _ b: [Float]) -> Int { zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count + abs(a.count - b.count) }

    @Test("a GEMM is split by its shape alone: the workers give the bits of its parts computed one after another on one thread", arguments: [
        (96, 128, 128), (96, 64, 128), (257, 64, 64), (256, 64, 48), (70, 344, 128), (48, 344, 128), (16, 1376, 128), (40, 1000, 100), (33, 7, 300),
        (4096, 512, 512),
    ])
    func splitByShape(mnk: (Int, Int, Int)) {
        // OpenBLAS's parts of a product need not give the whole product's bits (on Zen kernels
        // most of these shapes do not), so the parts must be the same whatever the thread count.
        let (m, n, k) = mnk
        let (parts, byRows) = BLAS.partition(m: m, n: n, k: k)
        #expect(parts >= 1 && parts <= BLAS.maximumParts)
        if 2 * m * n * k >= 2 * BLAS.parallelThreshold { #expect(parts == BLAS.maximumParts, "a large product uses every part") }
        let a = Self.random([m, k], seed: 31), b = Self.random([n, k], seed: 32)
        var split = [Float](repeating: 0, count: m * n), serial = split
        a.scalars.withUnsafeBufferPointer { a in
            b.scalars.withUnsafeBufferPointer { b in
                let (a, b) = (a.baseAddress!, b.baseAddress!)
                BLAS.parallelGEMM(transposeA: false, transposeB: true, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: k, c: &split, ldc: n)
                serial.withUnsafeMutableBufferPointer { c in
                    let c = c.baseAddress!
                    let length = byRows ? m : n, chunk = (length + parts - 1) / parts
                    for start in stride(from: 0, to: length, by: chunk) {
                        let size = Swift.min(chunk, length - start)
                        if byRows {
                            BLAS.gemm(transposeA: false, transposeB: true, m: size, n: n, k: k, a: a + start * k, lda: k, b: b, ldb: k, c: c + start * n, ldc: n)
                        } else {
                            BLAS.gemm(transposeA: false, transposeB: true, m: m, n: size, k: k, a: a, lda: k, b: b + start * k, ldb: k, c: c + start, ldc: n)
                        }
                    }
                }
            }
        }
        #expect(split.map(\.bitPattern) == serial.map(\.bitPattern))
    }

    @Test("a GEMM between 0.5 and 4 MFLOP with 64 rows or more is computed as its two halves of rows, whatever the thread count",
          arguments: [(128, 16, 128, false, true), (64, 32, 128, false, true), (96, 344, 48, false, false), (64, 64, 344, true, false), (96, 128, 128, false, true)])
    func rowHalves(shape: (Int, Int, Int, Bool, Bool)) {
        // OpenBLAS rounds some of these halves differently from the whole product (the first
        // four here), so the split must not depend on how many threads there are.
        let (m, n, k, ta, tb) = shape
        let a = Self.random([m * k], seed: 33).scalars, b = Self.random([n * k], seed: 34).scalars
        let (lda, ldb, half) = (ta ? m : k, tb ? k : n, (m + 1) / 2)
        var split = [Float](repeating: 0, count: m * n), halves = split
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                let (a, b) = (a.baseAddress!, b.baseAddress!)
                BLAS.parallelGEMM(transposeA: ta, transposeB: tb, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: &split, ldc: n)
                halves.withUnsafeMutableBufferPointer { c in
                    BLAS.gemm(transposeA: ta, transposeB: tb, m: half, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: c.baseAddress!, ldc: n)
                    BLAS.gemm(transposeA: ta, transposeB: tb, m: m - half, n: n, k: k, a: a + (ta ? half : half * lda), lda: lda, b: b, ldb: ldb,
                              c: c.baseAddress! + half * n, ldc: n)
                }
            }
        }
        #expect(split.map(\.bitPattern) == halves.map(\.bitPattern))
    }

    @Test("layer norm and RMS norm give the same bits in inference mode (no x̂ kept) as on the tape", arguments: [1, 3, 4, 7, 9, 130])
    func normalizationModes(rows: Int) {
        for d in [5, 64, 128] {
            let x = Self.random([rows, d], seed: UInt64(rows * 100 + d))
            let w = Parameter(Self.random([d], seed: 41)), bias = Parameter(Self.random([d], seed: 42))
            let taped = [Tensor.rmsNorm(x, weight: w.tensor, epsilon: 1e-6), Tensor.rmsNorm(x, weight: nil, epsilon: 1e-6),
                         Tensor.layerNorm(x, weight: w.tensor, bias: bias.tensor, epsilon: 1e-5)]
            #expect(taped[0].node != nil && taped[2].node != nil)
            let inference = withInferenceMode {
                [Tensor.rmsNorm(x, weight: w.tensor, epsilon: 1e-6), Tensor.rmsNorm(x, weight: nil, epsilon: 1e-6),
                 Tensor.layerNorm(x, weight: w.tensor, bias: bias.tensor, epsilon: 1e-5)]
            }
            for (one, other) in zip(taped, inference) {
                #expect(one.scalars.map(\.bitPattern) == other.scalars.map(\.bitPattern), "rows \(rows), d \(d)")
            }
            // One row at a time in index order, as before rows were grouped by four.
            let values = x.scalars, weights = w.tensor.scalars, out = inference[0].scalars
            for r in 0..<rows {
                var squares: Float = 0
                for j in 0..<d { squares += values[r * d + j] * values[r * d + j] }
                let inverse = 1 / (squares / Float(d) + 1e-6).squareRoot()
                for j in 0..<d { #expect(out[r * d + j].bitPattern == ((values[r * d + j] * inverse) * weights[j]).bitPattern) }
            }
            // Layer norm likewise: one row at a time with `FastMath4`'s sum and dot.
            let biases = bias.tensor.scalars, layerNormed = inference[2].scalars
            values.withUnsafeBufferPointer { v in
                var hat = [Float](repeating: 0, count: d)
                for r in 0..<rows {
                    let input = v.baseAddress! + r * d
                    let mean = FastMath4.sum(input, d) / Float(d)
                    for j in 0..<d { hat[j] = input[j] - mean }
                    let inverse = 1 / (FastMath4.dot(hat, hat, d) / Float(d) + 1e-5).squareRoot()
                    let expected = (0..<d).map { j in (hat[j] * inverse) * weights[j] + biases[j] }
                    #expect(Array(layerNormed[(r * d)..<((r + 1) * d)]).map(\.bitPattern) == expected.map(\.bitPattern), "layer norm, row \(r) of \(rows), d \(d)")
                }
            }
            // Its gradient with respect to x likewise, one row at a time.
            let input = Parameter(x), upstream = Self.random([rows, d], seed: UInt64(rows * 100 + d + 7))
            (Tensor.layerNorm(input.tensor, weight: w.tensor, bias: bias.tensor, epsilon: 1e-5) * upstream).sum().backward()
            let gradient = input.gradient?.scalars ?? []
            values.withUnsafeBufferPointer { v in
                let g = upstream.scalars
                var hat = [Float](repeating: 0, count: d), scaled = [Float](repeating: 0, count: d)
                for r in 0..<rows {
                    let row = v.baseAddress! + r * d
                    let mean = FastMath4.sum(row, d) / Float(d)
                    for j in 0..<d { hat[j] = row[j] - mean }
                    let inverse = 1 / (FastMath4.dot(hat, hat, d) / Float(d) + 1e-5).squareRoot()
                    for j in 0..<d { hat[j] *= inverse; scaled[j] = g[r * d + j] * weights[j] }
                    let meanSum = FastMath4.sum(scaled, d) / Float(d), meanDot = FastMath4.dot(scaled, hat, d) / Float(d)
                    let expected = (0..<d).map { j in inverse * (scaled[j] - meanSum - hat[j] * meanDot) }
                    #expect(gradient.count == rows * d && Array(gradient[(r * d)..<((r + 1) * d)]).map(\.bitPattern) == expected.map(\.bitPattern),
                            "layer norm's gradient, row \(r) of \(rows), d \(d)")
                }
            }
        }
    }

    @Test("x·σ(a·x) (AVX-512 or AVX2 kernel over the workers where the CPU has it) is within 1e-6·(1+|x|) of double precision")
    func sigmoidGated() {
        // 100 003 values: split over the workers, with a tail that is not a multiple of 8.
        let values = (0..<100_003).map { -30 + Float($0) * (60 / 100_003) }
        for a: Float in [1, 1.702] {
            let y = Tensor(values).sigmoidGated(scale: a).scalars
            var worst = 0.0
            for (x, g) in zip(values, y) {
                let exact = Double(x) / (1 + Foundation.exp(-Double(a) * Double(x)))
                worst = max(worst, abs(Double(g) - exact) / (1 + abs(Double(x))))
            }
            #expect(worst < 1e-6, "a = \(a): worst error \(worst)")
        }
    }

    @Test("the backward of x·σ(a·x): the shim's kernels, eight and sixteen lanes, give the four-lane Swift path's bits")
    func sigmoidGatedBackwardBits() {
        var generator = SeededGenerator(seed: 41)
        // A sweep through every regime of e^(−a·x) (0 below −87.3, ∞ above 88), the edges, and
        // special values; counts that end each kernel's loop on every tail length.
        var x = (0...40_000).map { -120 + Float($0) * (240 / 40_000) }
        x += [0, -0.0, 51.3, -51.3, 51.7, -51.7, 87.33654, -87.33654, 88, -88, 88.00001, .infinity, -.infinity, .nan, Float.leastNonzeroMagnitude]
        x += (0..<3).map { _ in 0 }
        let dy = x.indices.map { _ in Float(generator.nextDouble() * 4 - 2) }
        for count in [4, 8, 12, 16, 20, 28, 32, 36, 44, 1000, x.count / 4 * 4] {
            for a: Float in [1, 1.702] {
                var swift = [Float](repeating: 7, count: count)
                for k in stride(from: 0, to: count, by: 4) {
                    let v = FastMath4.load(x, k)
                    let s = 1 / (1 + FastMath4.exp(-a * v))
                    FastMath4.store(FastMath4.load(dy, k) * (s + a * v * s * (1 - s)), &swift, k)
                }
                for lanes in BLAS.avx512 ? [8, 16] : BLAS.avx2 ? [8] : [] {
                    var kernel = [Float](repeating: 7, count: count)
                    BLAS.sigmoidGatedBackward(x, dy, &kernel, count: count, scale: a, lanes: lanes)
                    #expect(Self.differingBits(swift, kernel) == 0, "\(lanes) lanes, a = \(a), \(count) elements")
                }
            }
        }
    }

    @Test("GELU (SIMD lanes and scalar tail) is within 2e-7·(1+|x|) of x·Φ(x) in double precision")
    func gelu() {
        // 100 003 values: not a multiple of 4, so the scalar tail runs too.
        let values = (0..<100_003).map { -8 + Float($0) * (16 / 100_003) }
        let y = Tensor(values).gelu().scalars
        var worst = 0.0
        for (x, g) in zip(values, y) {
            let exact = 0.5 * Double(x) * (1 + Foundation.erf(Double(x) / 2.0.squareRoot()))
            worst = max(worst, abs(Double(g) - exact) / (1 + abs(Double(x))))
        }
        #expect(worst < 2e-7, "worst scaled error \(worst)")
    }

    @Test("tanh is within 4e-7 relative of tanh in double precision, odd, saturating, NaN-preserving")
    func tanh() {
        let values = (0..<200_001).map { -12 + Float($0) * (24 / 200_000) } + [1e-30, -1e-20, 0.4999999, 0.5, 0.5000001, 100, -100]
        let y = Tensor(values).tanh().scalars
        var worst = 0.0
        for (x, t) in zip(values, y) {
            let exact = Foundation.tanh(Double(x))
            worst = max(worst, abs(Double(t) - exact) / max(abs(exact), 1e-30))
        }
        #expect(worst < 4e-7, "worst relative error \(worst)")
        #expect(Tensor([0]).tanh().scalar == 0 && Tensor([.nan]).tanh().scalar.isNaN)
        #expect(Tensor([.infinity, -.infinity]).tanh().scalars == [1, -1])
    }

    static func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var g = testGenerator(seed)
        return Tensor.normal(shape, using: &g)
    }

    @Test("fused attention equals the composed one, with GQA, masks and causality", arguments: [
        (4, 4, false, false), (4, 2, true, false), (6, 2, false, true), (2, 1, true, true),
    ])
    func attention(configuration: (Int, Int, Bool, Bool)) {
        let (heads, kvHeads, causal, masked) = configuration
        let (batch, t, d) = (2, 5, 3)
        let q = Self.random([batch, t, heads * d], seed: 1)
        let k = Self.random([batch, t, kvHeads * d], seed: 2)
        let v = Self.random([batch, t, kvHeads * d], seed: 3)
        let mask: Tensor? = masked ? Tensor(shape: [batch, 1, 1, t], scalars: [0, 0, 0, 0, 0, 0, 0, 0, -.infinity, -.infinity]) : nil
        func fused(_ x: [Tensor]) -> Tensor {
            Tensor.scaledDotProductAttention(query: x[0], key: x[1], value: x[2], heads: heads, keyValueHeads: kvHeads, additiveMask: mask, causal: causal).output
        }
        func composed(_ x: [Tensor]) -> Tensor {
            // The reference: permutes, repeat of key/value heads, matmul, softmax.
            let (b, n, w) = (x[0].shape[0], x[0].shape[1], x[0].shape[2])
            let size = w / heads
            func split(_ y: Tensor, _ count: Int) -> Tensor { y.reshaped(to: [b, n, count, size]).permuted([0, 2, 1, 3]) }
            let mapping = (0..<heads).map { $0 / (heads / kvHeads) }
            let kh = split(x[1], kvHeads).indexSelect(mapping, alongAxis: 1)
            let vh = split(x[2], kvHeads).indexSelect(mapping, alongAxis: 1)
            var scores = Tensor.matmul(split(x[0], heads), kh, transposeB: true) * (1 / Float(size).squareRoot())
            if let mask { scores = scores + mask }
            if causal {
                var values = [Float](repeating: 0, count: n * n)
                for i in 0..<n { for j in 0..<n where j > i { values[i * n + j] = -.infinity } }
                scores = scores + Tensor(shape: [n, n], scalars: values)
            }
            return Tensor.matmul(scores.softmax(), vh).permuted([0, 2, 1, 3]).reshaped(to: [b, n, w])
        }
        expectClose(fused([q, k, v]), composed([q, k, v]), absolute: 1e-5)
        GradientCheck.check([q, k, v], fused)
    }

    @Test("the output-only kernel (query rows in blocks of 32) equals the full one", arguments: [(false, false), (true, false), (false, true), (true, true)])
    func outputOnly(masked: Bool, causal: Bool) {
        // 70 query rows: two full blocks and a partial one; 4 heads over 2 key/value heads.
        let (batch, t, heads, kvHeads, d) = (2, 70, 4, 2, 8)
        let q = Self.random([batch, t, heads * d], seed: 11), k = Self.random([batch, t, kvHeads * d], seed: 12)
        let v = Self.random([batch, t, kvHeads * d], seed: 13)
        var maskValues = [Float](repeating: 0, count: batch * heads * t * t)
        for index in maskValues.indices where index % 7 == 3 { maskValues[index] = index % 2 == 0 ? -.infinity : -0.5 }
        let mask: Tensor? = masked ? Tensor(shape: [batch, heads, t, t], scalars: maskValues) : nil
        let full = Tensor.scaledDotProductAttention(query: q, key: k, value: v, heads: heads, keyValueHeads: kvHeads, scale: 0.3,
                                                    additiveMask: mask, causal: causal).output
        let blocked = Tensor.scaledDotProductAttentionOutput(query: q, key: k, value: v, heads: heads, keyValueHeads: kvHeads, scale: 0.3,
                                                             additiveMask: mask, causal: causal)
        expectClose(blocked, full, absolute: 1e-6)
        // With autograd inputs it defers to the full kernel, so gradients still flow.
        let (qs, ks, vs) = (Self.random([1, 5, 4], seed: 14), Self.random([1, 5, 2], seed: 15), Self.random([1, 5, 2], seed: 16))
        GradientCheck.check([qs, ks, vs]) { x in
            Tensor.scaledDotProductAttentionOutput(query: x[0], key: x[1], value: x[2], heads: 2, keyValueHeads: 1, causal: causal)
        }
    }

    @Test("the fused kernels for 16-wide heads without a mask (AVX2, AVX-512) give the bits of products summed in index order, and of OpenBLAS's AVX-512 kernels' two products around the softmax",
          arguments: [1, 15, 16, 17, 63, 64, 65, 257])
    func attentionHead16(keys s: Int) {
        guard BLAS.avx2 else { return }  // only AVX2 and AVX-512 CPUs run the kernels
        var g = testGenerator(UInt64(40 + s))
        let (ldq, ldv, ldo, scale) = (48, 32, 64, Float(0.25))
        let (ldk, lds) = (s + 3, s + 16 - s % 16)
        for rows in [1, 3, 4, 5, 15, 16, 17, 35] {
            let q = (0..<(rows * ldq)).map { _ in Float.random(in: -3...3, using: &g) }
            let keysTransposed = (0..<(16 * ldk)).map { _ in Float.random(in: -3...3, using: &g) }
            let v = (0..<(s * ldv)).map { _ in Float.random(in: -3...3, using: &g) }
            var fused = [Float](repeating: .nan, count: rows * ldo), eightLanes = fused, scratch = [Float](repeating: .nan, count: 16 * lds)
            BLAS.attentionHead16(q: q, ldq: ldq, keysTransposed: keysTransposed, ldk: ldk, v: v, ldv: ldv, o: &eightLanes, ldo: ldo,
                                 rows: rows, keys: s, scale: scale, scratch: &scratch, lds: lds, lanes: 8)
            if BLAS.avx512 {
                BLAS.attentionHead16(q: q, ldq: ldq, keysTransposed: keysTransposed, ldk: ldk, v: v, ldv: ldv, o: &fused, ldo: ldo,
                                     rows: rows, keys: s, scale: scale, scratch: &scratch, lds: lds, lanes: 16)
                #expect(Self.differingBits(fused, eightLanes) == 0, "\(rows) rows, \(s) keys: sixteen lanes against eight")
            } else {
                fused = eightLanes
            }
            // OpenBLAS: the scores' product, the softmax row by row, the mix's product.
            var scores = [Float](repeating: 0, count: rows * s), blas = [Float](repeating: .nan, count: rows * ldo)
            BLAS.gemm(transposeA: false, transposeB: false, m: rows, n: s, k: 16, alpha: scale, a: q, lda: ldq, b: keysTransposed, ldb: ldk, c: &scores, ldc: s)
            scores.withUnsafeMutableBufferPointer { p in for r in 0..<rows { BLAS.softmaxRow(p.baseAddress! + r * s, count: s) } }
            BLAS.gemm(transposeA: false, transposeB: false, m: rows, n: 16, k: s, a: scores, lda: s, b: v, ldb: ldv, c: &blas, ldc: ldo)
            // In index order, one fused multiply-add after another from zero.
            var ordered = [Float](repeating: .nan, count: rows * ldo), row = [Float](repeating: 0, count: s)
            for r in 0..<rows {
                for j in 0..<s {
                    var sum: Float = 0
                    for c in 0..<16 { sum = sum.addingProduct(q[r * ldq + c], keysTransposed[c * ldk + j]) }
                    row[j] = scale * sum
                }
                row.withUnsafeMutableBufferPointer { BLAS.softmaxRow($0.baseAddress!, count: s) }
                for c in 0..<16 {
                    var sum: Float = 0
                    for j in 0..<s { sum = sum.addingProduct(row[j], v[j * ldv + c]) }
                    ordered[r * ldo + c] = sum
                }
            }
            let columns = { (x: [Float]) in (0..<rows).flatMap { r in x[(r * ldo)..<(r * ldo + 16)] } }
            #expect(Self.differingBits(columns(fused), columns(ordered)) == 0, "\(rows) rows, \(s) keys: index order")
            if Self.openBLASSumsInOrder { #expect(Self.differingBits(columns(fused), columns(blas)) == 0, "\(rows) rows, \(s) keys: OpenBLAS") }
            let untouched = (0..<rows).allSatisfy { r in fused[(r * ldo + 16)..<((r + 1) * ldo)].allSatisfy { $0.isNaN } }
            #expect(untouched, "the kernel writes 16 columns of each output row only")
        }
    }

    @Test("the fused kernels for 4- and 8-wide heads with or without a mask (AVX2, AVX-512) give the bits of their documented order, and of OpenBLAS's AVX-512 kernels' two products around the softmax",
          arguments: [1, 5, 16, 31, 32, 33, 47, 85, 257, 300])
    func attentionNarrowHeads(keys s: Int) {
        guard BLAS.avx2 else { return }  // only AVX2 and AVX-512 CPUs run the kernels
        var g = testGenerator(UInt64(90 + s))
        let (ldq, ldo, scale) = (40, 24, Float(0.5))
        let lds = (s + 15) / 16 * 16 + 3, ldt = lds + 5
        for d in [4, 8] {
            for rows in [1, 3, 4, 7, 33] {
                let q = (0..<(rows * ldq)).map { _ in Float.random(in: -3...3, using: &g) }
                let keysTransposed = (0..<(d * ldt)).map { _ in Float.random(in: -3...3, using: &g) }
                let valuesTransposed = (0..<(d * ldt)).map { _ in Float.random(in: -3...3, using: &g) }
                // No mask; one row for all (a padding mask: −∞ at some keys); one row per query row, one of them all −∞.
                var perRow = (0..<(rows * s)).map { _ in Float.random(in: -2...2, using: &g) }
                for j in 0..<s { perRow[(rows / 2) * s + j] = -.infinity }
                let padding = (0..<s).map { j in j % 3 == 1 && j > 0 ? -Float.infinity : Float(0) }
                for (name, mask, ldm) in [("no mask", nil, 0), ("a padding row", padding, 0), ("a row each", perRow, s)] as [(String, [Float]?, Int)] {
                    var outputs: [[Float]] = []
                    for lanes in BLAS.avx512 ? [8, 16] : [8] {
                        var o = [Float](repeating: .nan, count: rows * ldo), scratch = [Float](repeating: .nan, count: 4 * lds)
                        let maskBuffer = mask ?? [0]
                        maskBuffer.withUnsafeBufferPointer { m in
                            BLAS.attentionNarrowHead(q: q, ldq: ldq, keysTransposed: keysTransposed, valuesTransposed: valuesTransposed, ldt: ldt,
                                                     mask: mask == nil ? nil : m.baseAddress!, ldm: ldm, o: &o, ldo: ldo, rows: rows, keys: s,
                                                     width: d, scale: scale, scratch: &scratch, lds: lds, lanes: lanes)
                        }
                        outputs.append(o)
                    }
                    let label = "d \(d), \(rows) rows, \(s) keys, \(name)"
                    if outputs.count == 2 { #expect(Self.differingBits(outputs[0], outputs[1]) == 0, "\(label): sixteen lanes against eight") }
                    // The documented order: scores one fused multiply-add after another from zero,
                    // scaled, the mask added; the mix likewise below 32 keys, else sixteen partial
                    // sums (key j in sum j mod 16) added in adjacent pairs, pairs of pairs, ….
                    var ordered = [Float](repeating: .nan, count: rows * ldo), row = [Float](repeating: 0, count: s)
                    var scores = [Float](repeating: 0, count: rows * s)
                    for r in 0..<rows {
                        for j in 0..<s {
                            var sum: Float = 0
                            for c in 0..<d { sum = sum.addingProduct(q[r * ldq + c], keysTransposed[c * ldt + j]) }
                            row[j] = scale * sum
                            if let mask { row[j] += mask[r * ldm + j] }
                        }
                        scores.replaceSubrange((r * s)..<((r + 1) * s), with: row)
                        row.withUnsafeMutableBufferPointer { BLAS.softmaxRow($0.baseAddress!, count: s) }
                        for c in 0..<d {
                            var partial = [Float](repeating: 0, count: s < 32 ? 1 : 16)
                            for j in 0..<s { partial[j % partial.count] = partial[j % partial.count].addingProduct(row[j], valuesTransposed[c * ldt + j]) }
                            while partial.count > 1 { partial = stride(from: 0, to: partial.count, by: 2).map { partial[$0] + partial[$0 + 1] } }
                            ordered[r * ldo + c] = partial[0]
                        }
                    }
                    let columns = { (x: [Float]) in (0..<rows).flatMap { r in x[(r * ldo)..<(r * ldo + d)] } }
                    #expect(Self.differingBits(columns(outputs[0]), columns(ordered)) == 0, "\(label): the documented order")
                    let untouched = (0..<rows).allSatisfy { r in outputs[0][(r * ldo + d)..<((r + 1) * ldo)].allSatisfy { $0.isNaN } }
                    #expect(untouched, "\(label): the kernel writes d columns of each output row only")
                    guard Self.openBLASSumsInOrder else { continue }
                    // OpenBLAS: the scores' product, the mask, the softmax row by row, the mix's
                    // product (values as s rows of d, the layout the attention reads them in).
                    var blasScores = [Float](repeating: 0, count: rows * s), blas = [Float](repeating: .nan, count: rows * ldo)
                    BLAS.gemm(transposeA: false, transposeB: false, m: rows, n: s, k: d, alpha: scale, a: q, lda: ldq, b: keysTransposed, ldb: ldt,
                              c: &blasScores, ldc: s)
                    let values = (0..<(s * 32)).map { i in i % 32 < d ? valuesTransposed[(i % 32) * ldt + i / 32] : 0 }
                    blasScores.withUnsafeMutableBufferPointer { p in
                        for r in 0..<rows {
                            if let mask { for j in 0..<s { p[r * s + j] += mask[r * ldm + j] } }
                            BLAS.softmaxRow(p.baseAddress! + r * s, count: s)
                        }
                    }
                    BLAS.gemm(transposeA: false, transposeB: false, m: rows, n: d, k: s, a: blasScores, lda: s, b: values, ldb: 32, c: &blas, ldc: ldo)
                    #expect(Self.differingBits(columns(outputs[0]), columns(blas)) == 0, "\(label): OpenBLAS")
                }
            }
        }
    }

    @Test("attention's backward pass gives the bits of its products and softmax backward taken one row at a time", arguments: [1, 3, 4, 6, 9])
    func attentionBackwardRows(tokens t: Int) {
        let (heads, d) = (2, 4), width = 2 * 4
        let (query, key, value) = (Parameter(Self.random([1, t, width], seed: 51)), Parameter(Self.random([1, t, width], seed: 52)),
                                   Parameter(Self.random([1, t, width], seed: 53)))
        let upstream = Self.random([1, t, width], seed: 54)
        let (output, weights) = Tensor.scaledDotProductAttention(query: query.tensor, key: key.tensor, value: value.tensor, heads: heads, keyValueHeads: heads)
        (output * upstream).sum().backward()
        // The same products, and dS = P ⊙ (dP − Σ_j dP ⊙ P) one row at a time with `FastMath4.dot`.
        let alpha = 1 / Float(d).squareRoot()
        var dq = [Float](repeating: 0, count: t * width), dk = dq, dv = dq
        let (q, k, v, dO, p) = (query.tensor.scalars, key.tensor.scalars, value.tensor.scalars, upstream.scalars, weights.scalars)
        for h in 0..<heads {
            let probabilities = Array(p[(h * t * t)..<((h + 1) * t * t)])
            var scratch = [Float](repeating: 0, count: t * t)
            dv.withUnsafeMutableBufferPointer { c in
                BLAS.gemm(transposeA: true, transposeB: false, m: t, n: d, k: t, a: probabilities, lda: t, b: Array(dO[(h * d)...]), ldb: width,
                          beta: 1, c: c.baseAddress! + h * d, ldc: width)
            }
            BLAS.gemm(transposeA: false, transposeB: true, m: t, n: t, k: d, a: Array(dO[(h * d)...]), lda: width, b: Array(v[(h * d)...]), ldb: width,
                      c: &scratch, ldc: t)
            scratch.withUnsafeMutableBufferPointer { dp in
                probabilities.withUnsafeBufferPointer { prob in
                    for i in 0..<t {
                        let dot = FastMath4.dot(dp.baseAddress! + i * t, prob.baseAddress! + i * t, t)
                        for j in 0..<t { dp[i * t + j] = prob[i * t + j] * (dp[i * t + j] - dot) }
                    }
                }
            }
            dq.withUnsafeMutableBufferPointer { c in
                BLAS.gemm(transposeA: false, transposeB: false, m: t, n: d, k: t, alpha: alpha, a: scratch, lda: t, b: Array(k[(h * d)...]), ldb: width,
                          c: c.baseAddress! + h * d, ldc: width)
            }
            dk.withUnsafeMutableBufferPointer { c in
                BLAS.gemm(transposeA: true, transposeB: false, m: t, n: d, k: t, alpha: alpha, a: scratch, lda: t, b: Array(q[(h * d)...]), ldb: width,
                          beta: 1, c: c.baseAddress! + h * d, ldc: width)
            }
        }
        #expect(Self.differingBits(query.gradient?.scalars ?? [], dq) == 0, "\(t) tokens: the query's gradient")
        #expect(Self.differingBits(key.gradient?.scalars ?? [], dk) == 0, "\(t) tokens: the key's gradient")
        #expect(Self.differingBits(value.gradient?.scalars ?? [], dv) == 0, "\(t) tokens: the value's gradient")
    }

    @Test("the TPRL policy's attention (8 heads 4 wide, a padding mask) gives the same bits through the output-only path and the full one",
          .enabled(if: !BLAS.avx2 || openBLASSumsInOrder, "the narrow kernel sums in OpenBLAS's AVX-512 order; OpenBLAS's \(BLAS.kernels) kernels need not"))
    func narrowAttentionBits() {
        let (batch, t, heads) = (2, 258, 8)
        let q = Self.random([batch, t, heads * 4], seed: 31), k = Self.random([batch, t, heads * 4], seed: 32)
        let v = Self.random([batch, t, heads * 4], seed: 33)
        let mask = Tensor(shape: [batch, 1, 1, t], scalars: (0..<(batch * t)).map { $0 % 7 == 3 ? -.infinity : 0 })
        let outputOnly = Tensor.scaledDotProductAttentionOutput(query: q, key: k, value: v, heads: heads, keyValueHeads: heads, additiveMask: mask)
        let full = Tensor.scaledDotProductAttention(query: q, key: k, value: v, heads: heads, keyValueHeads: heads, additiveMask: mask).output
        #expect(Self.differingBits(outputOnly.scalars, full.scalars) == 0)
    }

    /// Whether OpenBLAS runs its AVX-512 kernels (SkylakeX, Cooperlake), whose small-matrix
    /// products sum a 16-wide head's shapes one fused multiply-add after another in index order.
    /// `swift test` runs OpenBLAS's own choice, which on a CPU it does not recognise is older
    /// (`OPENBLAS_CORETYPE=Cooperlake swift test` runs these comparisons there too).
    static var openBLASSumsInOrder: Bool { ["skylakex", "cooperlake"].contains(BLAS.kernels.lowercased()) }

    @Test("the vision tower's attention (16-wide heads, no mask) gives the same bits through the output-only path and the full one",
          .enabled(if: !BLAS.avx2 || openBLASSumsInOrder, "the fused kernel sums in index order; OpenBLAS's \(BLAS.kernels) kernels need not"))
    func towerAttentionBits() {
        let (batch, t, heads) = (2, 257, 4)
        let q = Self.random([batch, t, heads * 16], seed: 21), k = Self.random([batch, t, heads * 16], seed: 22)
        let v = Self.random([batch, t, heads * 16], seed: 23)
        let outputOnly = Tensor.scaledDotProductAttentionOutput(query: q, key: k, value: v, heads: heads, keyValueHeads: heads)
        let full = Tensor.scaledDotProductAttention(query: q, key: k, value: v, heads: heads, keyValueHeads: heads).output
        #expect(Self.differingBits(outputOnly.scalars, full.scalars) == 0)
    }

    @Test("attention weights are the softmax probabilities; fully masked rows give zeros")
    func weights() {
        let q = Self.random([1, 3, 4], seed: 4), k = Self.random([1, 3, 2], seed: 5), v = Self.random([1, 3, 2], seed: 6)
        let mask = Tensor(shape: [1, 1, 3, 3], scalars: [0, 0, 0, -.infinity, -.infinity, -.infinity, 0, -.infinity, 0])
        let (output, weights) = Tensor.scaledDotProductAttention(query: q, key: k, value: v, heads: 2, keyValueHeads: 1, additiveMask: mask)
        #expect(weights.shape == [1, 2, 3, 3])
        expectClose(weights.sum(alongAxis: -1).scalars, [1, 0, 1, 1, 0, 1])
        #expect(output.sliced(alongAxis: 1, 1..<2).scalars.allSatisfy { $0 == 0 })
    }

    @Test("rotary embedding in the [B, T, H, D] layout equals the [B, H, T, D] one")
    func rotaryLayouts() {
        let x = Self.random([2, 5, 3, 4], seed: 7)
        let (cos, sin) = Tensor.rotaryTables(positions: [3, 1, 4, 1, 5], dimension: 4, base: 100)
        let direct = x.applyingRotaryEmbedding(cos: cos, sin: sin, tokenAxis: 1)
        let viaPermute = x.permuted([0, 2, 1, 3]).applyingRotaryEmbedding(cos: cos, sin: sin).permuted([0, 2, 1, 3])
        expectClose(direct, viaPermute, absolute: 1e-6)
        let perSequence = (Tensor.stacked([cos, cos * 0.5]), Tensor.stacked([sin, sin * 2]))
        GradientCheck.check([x]) { $0[0].applyingRotaryEmbedding(cos: perSequence.0, sin: perSequence.1, tokenAxis: 1) }
    }
}

@Suite("OpenBLAS's kernels for the CPU")
struct OpenBLASKernelsTests {
    @Test("kernels below the CPU's vector instructions are replaced by the matching ones; a match, a better choice or an unknown name stands")
    func matchingKernels() {
        // OpenBLAS 0.3.21 on a Xeon it does not recognise (AVX-512 with BF16) falls back to Prescott.
        #expect(BLAS.matchingKernels(chosen: "Prescott", vectorLevel: 4) == "Cooperlake")
        #expect(BLAS.matchingKernels(chosen: "Nehalem", vectorLevel: 3) == "SkylakeX")
        #expect(BLAS.matchingKernels(chosen: "Sandybridge", vectorLevel: 2) == "Haswell")
        #expect(BLAS.matchingKernels(chosen: "Core2", vectorLevel: 1) == "Sandybridge")
        #expect(BLAS.matchingKernels(chosen: "Haswell", vectorLevel: 4) == "Cooperlake")
        // Matching choices, whatever their vendor's name, stand.
        for (chosen, level) in [("Zen", 2), ("Haswell", 2), ("SkylakeX", 3), ("Cooperlake", 4), ("SapphireRapids", 4), ("Prescott", 0)] {
            #expect(BLAS.matchingKernels(chosen: chosen, vectorLevel: level) == nil, "\(chosen) at level \(level)")
        }
        // Kernels beyond what the CPU reports are OpenBLAS's business, and so are names it may add.
        #expect(BLAS.matchingKernels(chosen: "Cooperlake", vectorLevel: 2) == nil)
        #expect(BLAS.matchingKernels(chosen: "NeoverseN1", vectorLevel: 4) == nil)
        #expect(BLAS.matchingKernels(chosen: "Prescott", vectorLevel: 9) == nil)
    }

    @Test("the running kernels have a name, and the CPU's level is one OpenBLAS has kernels for and at least that of the kernels OpenBLAS chose")
    func runningKernels() {
        #expect(!BLAS.kernels.isEmpty)
        #expect((0...4).contains(BLAS.vectorLevel))
        // OpenBLAS's own detection never picks kernels the CPU cannot run: `cpuid` as read by the
        // shim must report at least their level (unless OPENBLAS_CORETYPE forced them).
        if ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil, let chosen = BLAS.level(ofKernels: BLAS.kernels) {
            #expect(BLAS.vectorLevel >= chosen, "OpenBLAS runs \(BLAS.kernels) kernels on a CPU read as level \(BLAS.vectorLevel)")
        }
    }
}
