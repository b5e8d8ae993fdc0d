import Testing
import TensorCore
import TestSupport

@Suite("Tensor values, layout and copy-on-write")
struct TensorTests {
    @Test("copies share storage until one is written")
    func copyOnWrite() {
        let a = Tensor(shape: [2, 2], scalars: [1, 2, 3, 4])
        var b = a
        b[0, 1] = 20
        #expect(a.scalars == [1, 2, 3, 4])
        #expect(b.scalars == [1, 20, 3, 4])
        let reshaped = a.reshaped(to: [4])
        var c = reshaped
        c.withUnsafeMutableBufferPointer { $0[3] = -1 }
        #expect(a.scalars == [1, 2, 3, 4] && c.scalars == [1, 2, 3, -1])
    }

    @Test("broadcasting follows NumPy")
    func broadcasting() {
        let a = Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        #expect((a + Tensor([10, 20, 30])).scalars == [11, 22, 33, 14, 25, 36])
        #expect((a * Tensor(shape: [2, 1], scalars: [2, 3])).scalars == [2, 4, 6, 12, 15, 18])
        let outer = Tensor(shape: [3, 1], scalars: [1, 2, 3]) - Tensor(shape: [1, 2], scalars: [1, 10])
        #expect(outer.shape == [3, 2] && outer.scalars == [0, -9, 1, -8, 2, -7])
        #expect((Tensor(2) / a).shape == [2, 3])
        // An operand repeated whole (its shape, leading 1s dropped, ends the other's) on either
        // side, and shapes that only look alike, against the operand expanded first.
        let cases: [([Int], [Int], [Int])] = [([4, 3, 5], [3, 5], [4, 3, 5]), ([4, 3, 5], [1, 3, 5], [4, 3, 5]), ([1, 5], [2, 1, 5], [2, 1, 5]),
                                              ([2, 3, 5], [1, 1, 5], [2, 3, 5]), ([3, 4], [3, 1], [3, 4]), ([2, 3, 4], [2, 1, 4], [2, 3, 4]),
                                              ([0, 3], [3], [0, 3])]
        for (index, (shapeA, shapeB, shape)) in cases.enumerated() {
            let x = Tensor(shape: shapeA, scalars: (0..<shapeA.reduce(1, *)).map { Float($0) * 0.5 - 3 })
            let y = Tensor(shape: shapeB, scalars: (0..<shapeB.reduce(1, *)).map { Float($0 % 7) + 0.25 })
            let (ex, ey) = (x.expanded(to: shape), y.expanded(to: shape))
            #expect((x - y).scalars == (ex - ey).scalars && (y - x).scalars == (ey - ex).scalars, "case \(index): \(shapeA) and \(shapeB)")
        }
    }

    @Test("reductions over axes")
    func reductions() {
        let x = Tensor(shape: [2, 3], scalars: [1, 5, 3, -4, 2, 8])
        #expect(x.sum(alongAxis: 0).scalars == [-3, 7, 11])
        #expect(x.sum(alongAxis: 1, keepingDimensions: true).shape == [2, 1])
        #expect(x.sum().scalar == 15)
        #expect(x.max(alongAxis: 1).scalars == [5, 8])
        #expect(x.max().scalar == 8)
        expectClose(x.mean(alongAxis: 1).scalars, [3, 2])
        // Rows [1, 5, 3] and [-4, 2, 8]: squared deviations sum to 8 and 72.
        expectClose(x.variance(alongAxes: [1]).scalars, [8.0 / 3, 24])
        expectClose(x.variance(alongAxes: [1], correction: 1).scalars, [4, 36])
    }

    @Test("permute, slice, concat, stack, split, index-select, gather")
    func layout() {
        let x = Tensor(shape: [2, 3], scalars: [0, 1, 2, 3, 4, 5])
        #expect(x.transposed().scalars == [0, 3, 1, 4, 2, 5])
        #expect(x.sliced(alongAxis: 1, 1..<3).scalars == [1, 2, 4, 5])
        #expect(Tensor.concatenated([x, x], alongAxis: 1).scalars == [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5])
        #expect(Tensor.stacked([x, x], alongAxis: 2).shape == [2, 3, 2])
        #expect(x.split(sizes: [2, 1], alongAxis: 1).map(\.scalars) == [[0, 1, 3, 4], [2, 5]])
        #expect(x.indexSelect([2, 0], alongAxis: 1).scalars == [2, 0, 5, 3])
        #expect(x.gathered(alongAxis: 1, indices: [2, 2, 0, 1], indexShape: [2, 2]).scalars == [2, 2, 3, 4])
        let y = Tensor.arange(24).reshaped(to: [2, 3, 4]).permuted([1, 2, 0])
        #expect(y.shape == [3, 4, 2] && y[2, 1, 1] == 21)
    }

    @Test("softmax rows sum to one; a fully masked row gives zeros, not NaN")
    func softmax() {
        let x = Tensor(shape: [2, 3], scalars: [1, 2, 3, 1000, 1000, -1000])
        let p = x.softmax()
        expectClose(p.sum(alongAxis: 1).scalars, [1, 1])
        expectClose(p.scalars, [0.09003057, 0.24472847, 0.66524096, 0.5, 0.5, 0])
        let mask = Tensor(shape: [2, 3], scalars: [-.infinity, -.infinity, -.infinity, 0, 0, 0])
        #expect(x.softmax(additiveMask: mask).scalars.prefix(3).allSatisfy { $0 == 0 })
        expectClose(x.logSoftmax().scalars.prefix(3).map { $0 }, [-2.40760596, -1.40760596, -0.40760596])
    }

    @Test("activations agree with their closed forms")
    func activations() {
        let x = Tensor([-3, -0.5, 0, 0.7, 4])
        // Reference values printed by PyTorch 2.15 (torch.nn.functional, float64).
        expectClose(x.gelu().scalars, [-0.0040496941, -0.1542687694, 0, 0.5306254434, 3.9998733150], absolute: 1e-6)
        expectClose(x.gelu(approximation: .tanh).scalars, [-0.0036373921, -0.1542859902, 0, 0.5305701347, 3.9999297541], absolute: 1e-6)
        expectClose(x.quickGELU().scalars, [-0.0180713097, -0.1496115634, 0, 0.5368939517, 3.9955852759], absolute: 1e-6)
        expectClose(x.silu().scalars, [-0.1422776195, -0.1887703344, 0, 0.4677314405, 3.9280551602], absolute: 1e-6)
        expectClose(Tensor([-30, 0, 25]).softplus().scalars, [9.357623e-14, 0.69314718, 25], absolute: 1e-7)
    }

    @Test("layer norm and RMS norm normalise the last axis")
    func norms() {
        let x = Tensor(shape: [1, 4], scalars: [1, 2, 3, 4])
        let ln = Tensor.layerNorm(x, weight: nil, bias: nil, epsilon: 0)
        expectClose(ln.scalars, [-1.34164079, -0.44721360, 0.44721360, 1.34164079])
        let rms = Tensor.rmsNorm(x, weight: Tensor([1, 1, 2, 2]), epsilon: 0)
        let r = (30.0 / 4).squareRoot()
        expectClose(rms.scalars, [Float(1 / r), Float(2 / r), Float(6 / r), Float(8 / r)])
    }

    @Test("patchify orders patches row-major and values as (channel, row, column)")
    func patchify() {
        let image = Tensor.arange(2 * 4 * 4).reshaped(to: [1, 2, 4, 4])
        let patches = image.patchified(patchSize: 2)
        #expect(patches.shape == [1, 4, 8])
        // Patch (0, 1): channel 0 rows 0-1 cols 2-3, then channel 1.
        #expect(patches.sliced(alongAxis: 1, 1..<2).scalars == [2, 3, 6, 7, 18, 19, 22, 23])
    }

    @Test("rotary embedding rotates pairs (i, i + D/2) by position·θᵢ")
    func rotary() {
        let (cos, sin) = Tensor.rotaryTables(positions: [0, 3], dimension: 4, base: 100)
        // θ = [1, 0.1]; position 3 angles [3, 0.3, 3, 0.3].
        expectClose(cos.scalars, [1, 1, 1, 1, Float(Foundation_cos(3)), Float(Foundation_cos(0.3)), Float(Foundation_cos(3)), Float(Foundation_cos(0.3))])
        let x = Tensor(shape: [2, 4], scalars: [1, 2, 3, 4, 1, 2, 3, 4])
        let y = x.applyingRotaryEmbedding(cos: cos, sin: sin)
        expectClose(y.sliced(alongAxis: 0, 0..<1).scalars, [1, 2, 3, 4])
        let (c0, s0, c1, s1) = (Foundation_cos(3), Foundation_sin(3), Foundation_cos(0.3), Foundation_sin(0.3))
        expectClose(y.sliced(alongAxis: 0, 1..<2).scalars,
                    [Float(1 * c0 - 3 * s0), Float(2 * c1 - 4 * s1), Float(3 * c0 + 1 * s0), Float(4 * c1 + 2 * s1)])
    }
}

import Foundation
private func Foundation_cos(_ x: Double) -> Double { cos(x) }
private func Foundation_sin(_ x: Double) -> Double { sin(x) }
