import Testing
import TensorCore
import TestSupport

@Suite("Matmul against a naive triple loop")
struct MatmulTests {
    /// C = op(A)·op(B) by the definition, in double precision.
    static func naive(_ a: Tensor, _ b: Tensor, _ ta: Bool, _ tb: Bool) -> [Float] {
        let (ra, ca) = (a.shape[0], a.shape[1]), (rb, cb) = (b.shape[0], b.shape[1])
        let (m, k) = ta ? (ca, ra) : (ra, ca)
        let n = tb ? rb : cb
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var total = 0.0
                for p in 0..<k {
                    let x = ta ? a[p, i] : a[i, p]
                    let y = tb ? b[j, p] : b[p, j]
                    total += Double(x) * Double(y)
                }
                c[i * n + j] = Float(total)
            }
        }
        return c
    }

    @Test("odd shapes in all four transpose combinations", arguments: [(1, 1, 1), (3, 5, 7), (17, 1, 9), (31, 33, 1), (64, 65, 63), (2, 129, 3)])
    func shapes(mkn: (Int, Int, Int)) {
        let (m, k, n) = mkn
        var g = testGenerator(UInt64(m * 10_000 + k * 100 + n))
        for ta in [false, true] {
            for tb in [false, true] {
                let a = Tensor.normal(ta ? [k, m] : [m, k], using: &g)
                let b = Tensor.normal(tb ? [n, k] : [k, n], using: &g)
                let c = Tensor.matmul(a, b, transposeA: ta, transposeB: tb)
                #expect(c.shape == [m, n])
                expectClose(c.scalars, Self.naive(a, b, ta, tb), absolute: 1e-4, relative: 1e-4, "ta=\(ta) tb=\(tb)")
            }
        }
    }

    @Test("batched and broadcast operands equal per-matrix products")
    func batched() {
        var g = testGenerator(3)
        for ta in [false, true] {
            for tb in [false, true] {
                let a = Tensor.normal(ta ? [2, 3, 5, 4] : [2, 3, 4, 5], using: &g)
                let b = Tensor.normal(tb ? [2, 3, 6, 5] : [2, 3, 5, 6], using: &g)
                let shared = Tensor.normal(tb ? [6, 5] : [5, 6], using: &g)
                let c = Tensor.matmul(a, b, transposeA: ta, transposeB: tb)
                let d = Tensor.matmul(a, shared, transposeA: ta, transposeB: tb)
                #expect(c.shape == [2, 3, 4, 6] && d.shape == [2, 3, 4, 6])
                let flatA = a.reshaped(to: [6] + Array(a.shape.suffix(2)))
                let flatB = b.reshaped(to: [6] + Array(b.shape.suffix(2)))
                for i in 0..<6 {
                    let ai = flatA.sliced(alongAxis: 0, i..<(i + 1)).squeezed(at: 0)
                    let bi = flatB.sliced(alongAxis: 0, i..<(i + 1)).squeezed(at: 0)
                    let ci = c.reshaped(to: [6, 4, 6]).sliced(alongAxis: 0, i..<(i + 1)).scalars
                    let di = d.reshaped(to: [6, 4, 6]).sliced(alongAxis: 0, i..<(i + 1)).scalars
                    expectClose(ci, Self.naive(ai, bi, ta, tb), absolute: 1e-4, relative: 1e-4)
                    expectClose(di, Self.naive(ai, shared, ta, tb), absolute: 1e-4, relative: 1e-4)
                }
            }
        }
    }

    @Test("empty inner dimension gives zeros")
    func emptyInner() {
        let c = Tensor.matmul(Tensor.zeros([3, 0]), Tensor.zeros([0, 2]))
        #expect(c == Tensor.zeros([3, 2]))
    }
}
