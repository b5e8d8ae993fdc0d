// Branch-free, vectorisable Float32 exp and erfc for the element-wise hot loops (softmax, GELU).
// libm's expf/erff are scalar calls the compiler cannot vectorise; these are written so that
// LLVM's loop vectoriser turns them into SIMD code (no calls, no traps, integer tricks for 2ⁿ).

enum FastMath {
    /// eˣ with relative error below 2·10⁻⁷ on [−87, 88] (Cephes `expf` polynomial on the reduced
    /// argument r = x − n·ln 2, |r| ≤ ln2/2; 2ⁿ built in the exponent bits). 0 below −87.3,
    /// e⁸⁸ on (88, 88.7] and +∞ above; NaN stays NaN.
    @inline(__always)
    static func exp(_ value: Float) -> Float {
        let x = Swift.min(Swift.max(value, -87.33654), 88)
        // n = round(x·log2(e)) with the 1.5·2²³ trick (exact for |n| < 2²²).
        let shifted = x * 1.44269504088896341 + 12_582_912
        let n = shifted - 12_582_912
        let r = x - n * 0.693359375 + n * 2.12194440e-4
        var p: Float = 1.9875691500e-4
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let er = p * r * r + r + 1
        // 2ⁿ: n sits in the low mantissa bits of `shifted`.
        let bits = (shifted.bitPattern &- 0x4B40_0000 &+ 127) << 23
        let result = er * Float(bitPattern: bits)
        return value < -87.33654 ? 0 : (value > 88.72283 ? .infinity : (value.isNaN ? value : result))
    }

    /// tanh(x), branch-free so loops over it vectorise (libm's `tanhf` is a scalar call through
    /// `expm1f` and was a third of a CartPole PPO run): the odd rational minimax approximation
    /// p₁₃(x)/q₆(x) on |x| ≤ 7.9053 that Eigen and XLA use (`generic_fast_tanh_float`), x itself
    /// below 4·10⁻⁴, ±1 beyond the clamp. Relative error < 4·10⁻⁷ (measured against double
    /// precision over [−12, 12]); one division, no exp. NaN stays NaN.
    @inline(__always)
    static func tanh(_ value: Float) -> Float {
        let x = value < -7.90531110763549805 ? -7.90531110763549805 : (value > 7.90531110763549805 ? 7.90531110763549805 : value)
        let x2 = x * x
        var p: Float = -2.76076847742355e-16
        p = p * x2 + 2.00018790482477e-13
        p = p * x2 - 8.60467152213735e-11
        p = p * x2 + 5.12229709037114e-08
        p = p * x2 + 1.48572235717979e-05
        p = p * x2 + 6.37261928875436e-04
        p = p * x2 + 4.89352455891786e-03
        var q: Float = 1.19825839466702e-06
        q = q * x2 + 1.18534705686654e-04
        q = q * x2 + 2.26843463243900e-03
        q = q * x2 + 4.89352518554385e-03
        let t = x * p / q
        return Swift.abs(value) < 0.0004 ? value : (value.isNaN ? value : t)
    }

    /// erfc(z) for z ≥ 0 by Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5·10⁻⁷); the scalar
    /// twin of `FastMath4.erfcNonNegativeShort`, so tail elements match the SIMD lanes.
    @inline(__always)
    static func erfcNonNegativeShort(_ z: Float) -> Float {
        let t = 1 / (1 + 0.3275911 * z)
        var poly: Float = 1.061405429
        poly = poly * t - 1.453152027
        poly = poly * t + 1.421413741
        poly = poly * t - 0.284496736
        poly = poly * t + 0.254829592
        return poly * t * exp(-z * z)
    }

    /// In-place softmax of a row; a row of all −∞ becomes zeros. Sixteen or eight lanes in the
    /// shim's AVX-512 or AVX2 kernel where the CPU has it, the same bits either way (attention's
    /// score rows: the exponentials were half of a vision layer at batch 16), else four lanes in
    /// Swift.
    @inline(__always)
    static func softmaxInPlace(_ row: UnsafeMutablePointer<Float>, count: Int) {
        if BLAS.avx2 {
            BLAS.softmaxRow(row, count: count)
            return
        }
        softmaxInPlacePortable(row, count: count)
    }

    /// `softmaxInPlace` on `rows` rows `stride` floats apart, each `count` long: four at a time in
    /// the shim's kernels where the CPU has them (each row's bits as alone; the rows' dependency
    /// chains interleave), the rest one at a time.
    @inline(__always)
    static func softmaxRowsInPlace(_ base: UnsafeMutablePointer<Float>, rows: Int, stride: Int, count: Int) {
        var r = 0
        if BLAS.avx2 {
            while r + 4 <= rows {
                BLAS.softmaxFourRows(base + r * stride, stride: stride, count: count)
                r += 4
            }
        }
        while r < rows {
            softmaxInPlace(base + r * stride, count: count)
            r += 1
        }
    }

    /// `softmaxInPlace` in four-lane Swift SIMD (any CPU; the AVX2 kernel's reference in tests).
    /// The max uses compare-and-select: `Swift.max`'s NaN handling and `pointwiseMax` do not
    /// vectorise.
    @inline(__always)
    static func softmaxInPlacePortable(_ row: UnsafeMutablePointer<Float>, count: Int) {
        var laneMax = SIMD4<Float>(repeating: -.infinity)
        var j = 0
        while j + 4 <= count {
            let v = FastMath4.load(row, j)
            laneMax.replace(with: v, where: v .> laneMax)
            j += 4
        }
        var maximum = Swift.max(Swift.max(laneMax[0], laneMax[1]), Swift.max(laneMax[2], laneMax[3]))
        while j < count {
            maximum = Swift.max(maximum, row[j])
            j += 1
        }
        if maximum == -.infinity {
            row.update(repeating: 0, count: count)
            return
        }
        var lanes = SIMD4<Float>(repeating: 0)
        j = 0
        while j + 4 <= count {
            let e = FastMath4.exp(FastMath4.load(row, j) - maximum)
            FastMath4.store(e, row, j)
            lanes += e
            j += 4
        }
        var total = lanes.sum()
        while j < count {
            let e = exp(row[j] - maximum)
            row[j] = e
            total += e
            j += 1
        }
        let scale = 1 / total
        j = 0
        while j + 4 <= count {
            FastMath4.store(FastMath4.load(row, j) * scale, row, j)
            j += 4
        }
        while j < count {
            row[j] *= scale
            j += 1
        }
    }
}

/// Four-lane versions of `FastMath`, for loops the auto-vectoriser does not handle.
enum FastMath4 {
    typealias V = SIMD4<Float>
    /// Four rows for `sums` and `dots`.
    typealias FourRows = (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>)

    /// Rows `first`…`first + 3` of `base` (`stride` apart) for `sums` and `dots`; past `count`
    /// rows the last one repeats.
    @inline(__always)
    static func fourRows(_ base: UnsafeMutablePointer<Float>, from first: Int, count: Int, stride: Int) -> FourRows {
        func row(_ g: Int) -> UnsafePointer<Float> { UnsafePointer(base + (first + Swift.min(g, count - 1)) * stride) }
        return (row(0), row(1), row(2), row(3))
    }

    /// Out-of-range lanes are computed with garbage exponents and then replaced by masks (no
    /// clamp: `clamped` calls non-inlined generic code).
    @inline(__always)
    static func exp(_ value: V) -> V {
        let x = value
        let shifted = x * 1.44269504088896341 + 12_582_912
        let n = shifted - 12_582_912
        let r = x - n * 0.693359375 + n * 2.12194440e-4
        var p = V(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let er = p * r * r + r + 1
        let bits = (unsafeBitCast(shifted, to: SIMD4<UInt32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        var result = er * unsafeBitCast(bits, to: V.self)
        result.replace(with: 0, where: value .< -87.33654)
        result.replace(with: .infinity, where: value .> 88)
        result.replace(with: value, where: value .!= value)  // NaN
        return result
    }

    /// tanh on four lanes: the same formula as `FastMath.tanh`, so tail elements match.
    @inline(__always)
    static func tanh(_ value: V) -> V {
        var x = value
        x.replace(with: -7.90531110763549805, where: value .< -7.90531110763549805)
        x.replace(with: 7.90531110763549805, where: value .> 7.90531110763549805)
        let x2 = x * x
        var p = V(repeating: -2.76076847742355e-16)
        p = p * x2 + 2.00018790482477e-13
        p = p * x2 - 8.60467152213735e-11
        p = p * x2 + 5.12229709037114e-08
        p = p * x2 + 1.48572235717979e-05
        p = p * x2 + 6.37261928875436e-04
        p = p * x2 + 4.89352455891786e-03
        var q = V(repeating: 1.19825839466702e-06)
        q = q * x2 + 1.18534705686654e-04
        q = q * x2 + 2.26843463243900e-03
        q = q * x2 + 4.89352518554385e-03
        var t = x * p / q
        t.replace(with: value, where: abs(value) .< 0.0004)
        t.replace(with: value, where: value .!= value)  // NaN
        return t
    }

    /// erfc(z) for z ≥ 0 by Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5·10⁻⁷), used by
    /// GELU, where absolute accuracy is what matters.
    @inline(__always)
    static func erfcNonNegativeShort(_ z: V) -> V {
        let t = 1 / (1 + 0.3275911 * z)
        var poly = V(repeating: 1.061405429)
        poly = poly * t - 1.453152027
        poly = poly * t + 1.421413741
        poly = poly * t - 0.284496736
        poly = poly * t + 0.254829592
        return poly * t * exp(-z * z)
    }

    /// Sum of `a[i]·b[i]` over `count` values, four lanes at a time.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Float {
        var lanes = V(repeating: 0)
        var j = 0
        while j + 4 <= count {
            lanes += load(a, j) * load(b, j)
            j += 4
        }
        var total = lanes.sum()
        while j < count {
            total += a[j] * b[j]
            j += 1
        }
        return total
    }

    /// Sum of `count` values, four lanes at a time.
    @inline(__always)
    static func sum(_ a: UnsafePointer<Float>, _ count: Int) -> Float {
        var lanes = V(repeating: 0)
        var j = 0
        while j + 4 <= count {
            lanes += load(a, j)
            j += 4
        }
        var total = lanes.sum()
        while j < count {
            total += a[j]
            j += 1
        }
        return total
    }

    /// `dot(a[g], b[g], count)` of four pairs of rows at once, each with `dot`'s lanes and order
    /// (so the same bits); the four dependency chains overlap. Pairs may repeat.
    @inline(__always)
    static func dots(_ a: FourRows, _ b: FourRows, _ count: Int) -> SIMD4<Float> {
        var (l0, l1, l2, l3) = (V(repeating: 0), V(repeating: 0), V(repeating: 0), V(repeating: 0))
        var j = 0
        while j + 4 <= count {
            l0 += load(a.0, j) * load(b.0, j)
            l1 += load(a.1, j) * load(b.1, j)
            l2 += load(a.2, j) * load(b.2, j)
            l3 += load(a.3, j) * load(b.3, j)
            j += 4
        }
        var totals = SIMD4(l0.sum(), l1.sum(), l2.sum(), l3.sum())
        while j < count {
            totals += SIMD4(a.0[j] * b.0[j], a.1[j] * b.1[j], a.2[j] * b.2[j], a.3[j] * b.3[j])
            j += 1
        }
        return totals
    }

    /// `sum(a[g], count)` of four rows at once, each with `sum`'s lanes and order (so the same
    /// bits); the four dependency chains overlap. Rows may repeat.
    @inline(__always)
    static func sums(_ a: FourRows, _ count: Int) -> SIMD4<Float> {
        var (l0, l1, l2, l3) = (V(repeating: 0), V(repeating: 0), V(repeating: 0), V(repeating: 0))
        var j = 0
        while j + 4 <= count {
            l0 += load(a.0, j)
            l1 += load(a.1, j)
            l2 += load(a.2, j)
            l3 += load(a.3, j)
            j += 4
        }
        var totals = SIMD4(l0.sum(), l1.sum(), l2.sum(), l3.sum())
        while j < count {
            totals += SIMD4(a.0[j], a.1[j], a.2[j], a.3[j])
            j += 1
        }
        return totals
    }

    /// |x| by clearing the sign bits.
    @inline(__always)
    static func abs(_ x: V) -> V { unsafeBitCast(unsafeBitCast(x, to: SIMD4<UInt32>.self) & 0x7FFF_FFFF, to: V.self) }

    @inline(__always)
    static func load(_ pointer: UnsafePointer<Float>, _ index: Int) -> V {
        UnsafeRawPointer(pointer + index).loadUnaligned(as: V.self)
    }

    @inline(__always)
    static func store(_ value: V, _ pointer: UnsafeMutablePointer<Float>, _ index: Int) {
        UnsafeMutableRawPointer(pointer + index).storeBytes(of: value, as: V.self)
    }
}
