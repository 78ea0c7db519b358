import AidgeCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Arithmetic per element type

/// The arithmetic the element-wise kernels need, with ONNX's integer rules: wrapping overflow, division that
/// truncates toward zero, and 0 for a division by zero (instead of a trap).
protocol ArithmeticElement: TensorElement, Comparable {
    static var arithZero: Self { get }
    /// The smallest and largest values (infinities for floats): Clip's absent bounds.
    static var arithLowest: Self { get }
    static var arithHighest: Self { get }
    static func arithAdd(_ a: Self, _ b: Self) -> Self
    static func arithSubtract(_ a: Self, _ b: Self) -> Self
    static func arithMultiply(_ a: Self, _ b: Self) -> Self
    static func arithDivide(_ a: Self, _ b: Self) -> Self
    /// Larger / smaller of two values; NaN if either is NaN.
    static func arithMaximum(_ a: Self, _ b: Self) -> Self
    static func arithMinimum(_ a: Self, _ b: Self) -> Self
}

extension ArithmeticElement where Self: FixedWidthInteger {
    @inline(__always) static var arithZero: Self { 0 }
    @inline(__always) static var arithLowest: Self { .min }
    @inline(__always) static var arithHighest: Self { .max }
    @inline(__always) static func arithAdd(_ a: Self, _ b: Self) -> Self { a &+ b }
    @inline(__always) static func arithSubtract(_ a: Self, _ b: Self) -> Self { a &- b }
    @inline(__always) static func arithMultiply(_ a: Self, _ b: Self) -> Self { a &* b }
    @inline(__always) static func arithDivide(_ a: Self, _ b: Self) -> Self {
        b == 0 ? 0 : a.dividedReportingOverflow(by: b).partialValue
    }
    @inline(__always) static func arithMaximum(_ a: Self, _ b: Self) -> Self { a > b ? a : b }
    @inline(__always) static func arithMinimum(_ a: Self, _ b: Self) -> Self { a < b ? a : b }
}

extension ArithmeticElement where Self: BinaryFloatingPoint {
    @inline(__always) static var arithZero: Self { 0 }
    @inline(__always) static var arithLowest: Self { -.infinity }
    @inline(__always) static var arithHighest: Self { .infinity }
    @inline(__always) static func arithAdd(_ a: Self, _ b: Self) -> Self { a + b }
    @inline(__always) static func arithSubtract(_ a: Self, _ b: Self) -> Self { a - b }
    @inline(__always) static func arithMultiply(_ a: Self, _ b: Self) -> Self { a * b }
    @inline(__always) static func arithDivide(_ a: Self, _ b: Self) -> Self { a / b }
    @inline(__always) static func arithMaximum(_ a: Self, _ b: Self) -> Self { a > b || a.isNaN ? a : b }
    @inline(__always) static func arithMinimum(_ a: Self, _ b: Self) -> Self { a < b || a.isNaN ? a : b }
}

extension Float: ArithmeticElement {}
extension Double: ArithmeticElement {}
extension Float16: ArithmeticElement {}
extension Int8: ArithmeticElement {}
extension Int16: ArithmeticElement {}
extension Int32: ArithmeticElement {}
extension Int64: ArithmeticElement {}
extension UInt8: ArithmeticElement {}
extension UInt16: ArithmeticElement {}
extension UInt32: ArithmeticElement {}
extension UInt64: ArithmeticElement {}

// MARK: - Floating-point math per element type

/// libm functions for the floating-point element types (float16 computes in float32).
protocol MathFloat: ArithmeticElement, BinaryFloatingPoint {
    static func mathExp(_ x: Self) -> Self
    static func mathExpm1(_ x: Self) -> Self
    static func mathLog(_ x: Self) -> Self
    static func mathLog1p(_ x: Self) -> Self
    static func mathTanh(_ x: Self) -> Self
    static func mathErf(_ x: Self) -> Self
    static func mathErfc(_ x: Self) -> Self
    static func mathSin(_ x: Self) -> Self
    static func mathCos(_ x: Self) -> Self
    static func mathPow(_ x: Self, _ y: Self) -> Self
    static func mathFmod(_ x: Self, _ y: Self) -> Self
}

extension Float: MathFloat {
    @inline(__always) static func mathExp(_ x: Float) -> Float { expf(x) }
    @inline(__always) static func mathExpm1(_ x: Float) -> Float { expm1f(x) }
    @inline(__always) static func mathLog(_ x: Float) -> Float { logf(x) }
    @inline(__always) static func mathLog1p(_ x: Float) -> Float { log1pf(x) }
    @inline(__always) static func mathTanh(_ x: Float) -> Float { tanhf(x) }
    @inline(__always) static func mathErf(_ x: Float) -> Float { erff(x) }
    @inline(__always) static func mathErfc(_ x: Float) -> Float { erfcf(x) }
    @inline(__always) static func mathSin(_ x: Float) -> Float { sinf(x) }
    @inline(__always) static func mathCos(_ x: Float) -> Float { cosf(x) }
    @inline(__always) static func mathPow(_ x: Float, _ y: Float) -> Float { powf(x, y) }
    @inline(__always) static func mathFmod(_ x: Float, _ y: Float) -> Float { fmodf(x, y) }
}

extension Double: MathFloat {
    @inline(__always) static func mathExp(_ x: Double) -> Double { Glibc.exp(x) }
    @inline(__always) static func mathExpm1(_ x: Double) -> Double { Glibc.expm1(x) }
    @inline(__always) static func mathLog(_ x: Double) -> Double { Glibc.log(x) }
    @inline(__always) static func mathLog1p(_ x: Double) -> Double { Glibc.log1p(x) }
    @inline(__always) static func mathTanh(_ x: Double) -> Double { Glibc.tanh(x) }
    @inline(__always) static func mathErf(_ x: Double) -> Double { Glibc.erf(x) }
    @inline(__always) static func mathErfc(_ x: Double) -> Double { Glibc.erfc(x) }
    @inline(__always) static func mathSin(_ x: Double) -> Double { Glibc.sin(x) }
    @inline(__always) static func mathCos(_ x: Double) -> Double { Glibc.cos(x) }
    @inline(__always) static func mathPow(_ x: Double, _ y: Double) -> Double { Glibc.pow(x, y) }
    @inline(__always) static func mathFmod(_ x: Double, _ y: Double) -> Double { Glibc.fmod(x, y) }
}

extension Float16: MathFloat {
    @inline(__always) static func mathExp(_ x: Float16) -> Float16 { Float16(expf(Float(x))) }
    @inline(__always) static func mathExpm1(_ x: Float16) -> Float16 { Float16(expm1f(Float(x))) }
    @inline(__always) static func mathLog(_ x: Float16) -> Float16 { Float16(logf(Float(x))) }
    @inline(__always) static func mathLog1p(_ x: Float16) -> Float16 { Float16(log1pf(Float(x))) }
    @inline(__always) static func mathTanh(_ x: Float16) -> Float16 { Float16(tanhf(Float(x))) }
    @inline(__always) static func mathErf(_ x: Float16) -> Float16 { Float16(erff(Float(x))) }
    @inline(__always) static func mathErfc(_ x: Float16) -> Float16 { Float16(erfcf(Float(x))) }
    @inline(__always) static func mathSin(_ x: Float16) -> Float16 { Float16(sinf(Float(x))) }
    @inline(__always) static func mathCos(_ x: Float16) -> Float16 { Float16(cosf(Float(x))) }
    @inline(__always) static func mathPow(_ x: Float16, _ y: Float16) -> Float16 { Float16(powf(Float(x), Float(y))) }
    @inline(__always) static func mathFmod(_ x: Float16, _ y: Float16) -> Float16 { Float16(fmodf(Float(x), Float(y))) }
}

// MARK: - Vectorised float32 functions

/// 8-lane float32 exp, tanh and sigmoid (Cephes polynomials; within 2 ulp of the exact values, NaN and infinities
/// handled, subnormal results rounded correctly).
enum VectorMath {
    @inline(__always) static func select(
        _ mask: SIMDMask<SIMD8<Int32>>, _ a: SIMD8<Float>, _ b: SIMD8<Float>
    ) -> SIMD8<Float> {
        b.replacing(with: a, where: mask)
    }

    /// Whether any lane is set: the standard library's `any` reduces through a call that is not inlined, which
    /// cost more than the polynomials it was meant to skip.
    @inline(__always) static func anyLane(_ mask: SIMDMask<SIMD8<Int32>>) -> Bool {
        let lanes = unsafeBitCast(mask, to: SIMD8<Int32>.self)  // 0 or -1 each
        let half = lanes.lowHalf | lanes.highHalf
        let quarter = half.lowHalf | half.highHalf
        return quarter[0] | quarter[1] != 0
    }

    /// Whether every lane is set (see `anyLane`).
    @inline(__always) static func allLanes(_ mask: SIMDMask<SIMD8<Int32>>) -> Bool {
        let lanes = unsafeBitCast(mask, to: SIMD8<Int32>.self)
        let half = lanes.lowHalf & lanes.highHalf
        let quarter = half.lowHalf & half.highHalf
        return quarter[0] & quarter[1] != 0
    }

    /// a * b + c, fused (one rounding).
    @inline(__always) static func madd(_ a: SIMD8<Float>, _ b: SIMD8<Float>, _ c: Float) -> SIMD8<Float> {
        SIMD8(repeating: c).addingProduct(a, b)
    }

    /// e^r for |r| <= ln2 / 2.
    @inline(__always) static func expReduced(_ r: SIMD8<Float>) -> SIMD8<Float> {
        var p = SIMD8<Float>(repeating: 1.987_569_150_0e-4)
        p = madd(p, r, 1.398_199_950_7e-3)
        p = madd(p, r, 8.333_451_907_3e-3)
        p = madd(p, r, 4.166_579_589_4e-2)
        p = madd(p, r, 1.666_666_545_9e-1)
        p = madd(p, r, 5.000_000_120_1e-1)
        return r.addingProduct(p, r * r) + 1
    }

    /// Clamps an exponent (NaN passes through): below -104 e^x rounds to 0, above 89 to infinity.
    @inline(__always) static func clampExponent(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let xc = x.replacing(with: 89, where: x .> 89)
        return xc.replacing(with: -104, where: xc .< -104)
    }

    /// 1.5 * 2^23: adding it rounds a float below 2^22 to an integer, held in the low mantissa bits.
    static let roundingMagic: Float = 12_582_912

    /// 2^n as two factors that each stay normal (n in [-150, 128]), from `shifted` = n + `roundingMagic`.
    @inline(__always) static func powerOfTwo(_ shifted: SIMD8<Float>) -> (SIMD8<Float>, SIMD8<Float>) {
        let n = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
        let n1 = n &>> 1
        let n2 = n &- n1
        return (
            unsafeBitCast((n1 &+ 127) &<< 23, to: SIMD8<Float>.self),
            unsafeBitCast((n2 &+ 127) &<< 23, to: SIMD8<Float>.self)
        )
    }

    /// e^x: x = n ln2 + r with |r| <= ln2 / 2, e^x = 2^n e^r.
    @inline(__always) static func exp(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let xc = clampExponent(x)
        let shifted = madd(xc, SIMD8(repeating: 1.442_695_040_888_963_4), roundingMagic)
        let n = shifted - roundingMagic
        var r = xc.addingProduct(n, SIMD8(repeating: -0.693_359_375))
        r = r.addingProduct(n, SIMD8(repeating: 2.121_944_4e-4))
        let (s1, s2) = powerOfTwo(shifted)
        return expReduced(r) * s1 * s2
    }

    /// e^(x + lo) as `y * s1 * s2`, for a small correction `lo` that float32 cannot add to `x` exactly (erfc's
    /// -z^2); a caller that multiplies `y` by other factors first avoids rounding twice when the result is
    /// subnormal.
    @inline(__always) static func expParts(
        _ x: SIMD8<Float>, plus lo: SIMD8<Float>
    ) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        let xc = clampExponent(x)
        let shifted = madd(xc + lo, SIMD8(repeating: 1.442_695_040_888_963_4), roundingMagic)
        let n = shifted - roundingMagic
        var r = xc.addingProduct(n, SIMD8(repeating: -0.693_359_375))
        r = r.addingProduct(n, SIMD8(repeating: 2.121_944_4e-4)) + lo
        let (s1, s2) = powerOfTwo(shifted)
        return (expReduced(r), s1, s2)
    }

    /// min(x, bound), NaN kept (where erf and erfc are already exactly 1 and 0: keeps infinities out of them).
    @inline(__always) static func clampAbove(_ x: SIMD8<Float>, _ bound: Float) -> SIMD8<Float> {
        x.replacing(with: bound, where: x .> bound)
    }

    /// |x|.
    @inline(__always) static func magnitude(_ x: SIMD8<Float>) -> SIMD8<Float> {
        unsafeBitCast(unsafeBitCast(x, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF, to: SIMD8<Float>.self)
    }

    /// erf(x) = x + x R(x^2), accurate for |x| <= 1 (coefficients from scripts/fixtures/erf_coefficients.py).
    @inline(__always) static func erfSmall(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let s = x * x
        var r = SIMD8<Float>(repeating: 7.853_877_468_733_117e-05)
        r = madd(r, s, -0.000_801_019_952_632_486_8)
        r = madd(r, s, 0.005_188_328_679_651_022)
        r = madd(r, s, -0.026_853_812_858_462_334)
        r = madd(r, s, 0.112_835_854_291_915_9)
        r = madd(r, s, -0.376_126_259_565_353_4)
        r = madd(r, s, 0.128_379_166_126_251_22)
        return x.addingProduct(x, r)
    }

    /// erfc(z) for z >= 0.5, with relative accuracy, as `m * s1 * s2`: exp(-z^2) erfcx(z), where z^2 = `hi` + `lo`
    /// exactly (its float32 rounding would cost 2 z^2 ulps), and erfcx is a polynomial in z on [0.5, 2), in 1/z^2
    /// beyond.
    @_transparent static func erfcParts(
        _ z: SIMD8<Float>, squareHi hi: SIMD8<Float>, squareLo lo: SIMD8<Float>
    ) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        let u = z - 1.25
        var p = SIMD8<Float>(repeating: -0.000_184_962_278_581_224_38)
        p = madd(p, u, 0.000_556_823_448_278_009_9)
        p = madd(p, u, -0.001_318_114_693_276_584_1)
        p = madd(p, u, 0.003_511_496_353_894_472)
        p = madd(p, u, -0.009_081_950_411_200_523)
        p = madd(p, u, 0.022_019_736_468_791_96)
        p = madd(p, u, -0.050_218_451_768_159_866)
        p = madd(p, u, 0.106_794_990_599_155_43)
        p = madd(p, u, -0.208_821_862_936_019_9)
        p = madd(p, u, 0.367_822_915_315_628_05)
        var scaled = p
        if anyLane(z .>= 2) {  // the tail polynomial (and its division) only for the vectors that need it
            let q = 1 / z
            let y = q * q
            var h = SIMD8<Float>(repeating: 29.627_754_211_425_78)
            h = madd(h, y, -40.275_268_554_687_5)
            h = madd(h, y, 25.186_817_169_189_453)
            h = madd(h, y, -10.112_924_575_805_664)
            h = madd(h, y, 3.234_447_956_085_205)
            h = madd(h, y, -1.035_974_264_144_897_5)
            h = madd(h, y, 0.422_542_214_393_615_7)
            h = madd(h, y, -0.282_086_551_189_422_6)
            h = madd(h, y, 0.564_189_553_260_803_2)
            scaled = select(z .< 2, p, h * q)
        }
        let (e, s1, s2) = expParts(-hi, plus: -lo)
        return (e * scaled, s1, s2)
    }

    /// `a * a * scale` as `hi + lo` with `hi` exact: `a` split into 12 high bits and the rest.
    @inline(__always) static func splitSquare(_ a: SIMD8<Float>, scale: Float) -> (SIMD8<Float>, SIMD8<Float>) {
        let ah = unsafeBitCast(unsafeBitCast(a, to: SIMD8<UInt32>.self) & 0xFFFF_F000, to: SIMD8<Float>.self)
        let al = a - ah
        return (ah * ah * scale, al * (a + ah) * scale)
    }

    /// erf(x): the odd polynomial below 1, 1 - erfc(|x|) with x's sign above.
    @inline(__always) static func erf(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let a = clampAbove(magnitude(x), 16)
        if allLanes(a .< 1) { return erfSmall(x) }
        let (hi, lo) = splitSquare(a, scale: 1)
        let (m, s1, s2) = erfcParts(a, squareHi: hi, squareLo: lo)
        let large = 1 - m * s1 * s2
        let signed = unsafeBitCast(
            unsafeBitCast(large, to: SIMD8<UInt32>.self) | (unsafeBitCast(x, to: SIMD8<UInt32>.self) & 0x8000_0000),
            to: SIMD8<Float>.self)
        return select(a .< 1, erfSmall(x), signed)
    }

    /// Gelu: x Phi(x), Phi(x) = erfc(-x / sqrt 2) / 2, keeping its relative accuracy for negative x.
    @inline(__always) static func gelu(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let a = clampAbove(magnitude(x), 32)
        let z = a * 0.707_106_781_186_547_524_4
        let small = x * (0.5 + 0.5 * erfSmall(x * 0.707_106_781_186_547_524_4))
        if allLanes(z .< 0.5) { return small }
        let (hi, lo) = splitSquare(a, scale: 0.5)
        let (m, s1, s2) = erfcParts(z, squareHi: hi, squareLo: lo)
        let negative = x * 0.5 * m * s1 * s2
        let positive = x * (1 - 0.5 * m * s1 * s2)
        let y = select(z .< 0.5, small, select(x .< 0, negative, positive))
        return y.replacing(with: 0, where: x .== -.infinity)
    }

    /// tanh(x): an odd polynomial near 0, 1 - 2 / (e^{2|x|} + 1) elsewhere.
    @inline(__always) static func tanh(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let signBit = SIMD8<UInt32>(repeating: 0x8000_0000)
        let bits = unsafeBitCast(x, to: SIMD8<UInt32>.self)
        let a = unsafeBitCast(bits & ~signBit, to: SIMD8<Float>.self)
        let z = x * x
        var p = SIMD8<Float>(repeating: -5.704_988_727_45e-3)
        p = madd(p, z, 2.063_908_879_54e-2)
        p = madd(p, z, -5.373_971_555_31e-2)
        p = madd(p, z, 1.333_144_220_36e-1)
        p = madd(p, z, -3.333_328_194_22e-1)
        let small = x.addingProduct(x * z, p)
        let e = exp(a + a)
        let large = 1 - 2 / (e + 1)
        let signed = unsafeBitCast(unsafeBitCast(large, to: SIMD8<UInt32>.self) | (bits & signBit), to: SIMD8<Float>.self)
        return select(a .< 0.625, small, signed)
    }

    /// 1 / (1 + e^-x), computed from e^-|x| so that both tails keep their relative accuracy.
    @inline(__always) static func sigmoid(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let bits = unsafeBitCast(x, to: SIMD8<UInt32>.self)
        let a = unsafeBitCast(bits & SIMD8(repeating: 0x7FFF_FFFF), to: SIMD8<Float>.self)
        let e = exp(-a)
        let positive = 1 / (1 + e)
        return select(x .< 0, e * positive, positive)
    }
}
