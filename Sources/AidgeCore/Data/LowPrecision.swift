/// ONNX's 8-bit and 4-bit floats and 4-bit and 2-bit integers. Each element takes one byte in memory, its value in
/// the low bits (as `ml_dtypes` lays them out, so NumPy arrays of these types share memory with tensors); ONNX
/// files pack 4-bit and 2-bit values two and four to a byte.

/// The encoding of a small float: sign, exponent and mantissa bits, and how it spells infinity and NaN.
public protocol MiniFloatFormat: Sendable {
    static var dtype: DType { get }
    static var exponentBits: Int { get }
    static var mantissaBits: Int { get }
    static var bias: Int { get }
    /// IEEE infinities (all-ones exponent, zero mantissa) and NaNs (all-ones exponent, nonzero mantissa).
    static var isIEEE: Bool { get }
    /// "fnuz": one NaN, the pattern of negative zero; no negative zero, no infinity.
    static var isUnsignedZeroNaN: Bool { get }
}

extension MiniFloatFormat {
    public static var isIEEE: Bool { false }
    public static var isUnsignedZeroNaN: Bool { false }
    static var signBit: UInt8 { 1 << (exponentBits + mantissaBits) }
    /// The bits of the largest finite value.
    static var maxBits: UInt8 {
        let exponentMask = UInt8((1 << exponentBits) - 1)
        let mantissaMask = UInt8((1 << mantissaBits) - 1)
        if isIEEE { return (exponentMask - 1) << mantissaBits | mantissaMask }
        if isUnsignedZeroNaN { return exponentMask << mantissaBits | mantissaMask }
        // "fn" formats keep the all-ones pattern for NaN (e4m3fn); float4 has no NaN.
        return hasNaN ? exponentMask << mantissaBits | (mantissaMask - 1) : exponentMask << mantissaBits | mantissaMask
    }
    static var hasNaN: Bool { exponentBits + mantissaBits == 7 }
    static var nanBits: UInt8 {
        if isUnsignedZeroNaN { return 0x80 }
        if isIEEE { return UInt8((1 << exponentBits) - 1) << mantissaBits | UInt8(1 << (mantissaBits - 1)) }
        return UInt8((1 << (exponentBits + mantissaBits)) - 1)
    }

    static func decode(_ bits: UInt8) -> Double {
        if isUnsignedZeroNaN && bits == 0x80 { return .nan }
        let negative = bits & signBit != 0
        let exponent = Int(bits >> mantissaBits) & ((1 << exponentBits) - 1)
        let mantissa = Int(bits) & ((1 << mantissaBits) - 1)
        let allOnes = exponent == (1 << exponentBits) - 1
        if isIEEE && allOnes { return mantissa == 0 ? (negative ? -.infinity : .infinity) : .nan }
        if hasNaN && !isIEEE && !isUnsignedZeroNaN && allOnes && mantissa == (1 << mantissaBits) - 1 { return .nan }
        let magnitude = exponent == 0
            ? Double(mantissa) * exp2(1 - bias - mantissaBits)
            : (1 + Double(mantissa) / Double(1 << mantissaBits)) * exp2(exponent - bias)
        return negative ? -magnitude : magnitude
    }

    /// The nearest value (ties to even); out of range: the largest finite value with `saturate` (always for formats
    /// without infinity or NaN), else infinity or NaN as the format has them.
    static func encode(_ x: Double, saturate: Bool) -> UInt8 {
        let sign: UInt8 = x.sign == .minus ? signBit : 0
        if x.isNaN { return hasNaN ? (isUnsignedZeroNaN ? nanBits : sign | nanBits) : sign ^ signBit }
        let overflowBits: UInt8
        if saturate || !hasNaN {
            overflowBits = sign | maxBits
        } else if isIEEE {
            overflowBits = sign | UInt8((1 << exponentBits) - 1) << mantissaBits
        } else {
            overflowBits = isUnsignedZeroNaN ? nanBits : sign | nanBits
        }
        let a = x.magnitude
        let largest = decode(maxBits)
        if a.isInfinite { return overflowBits }
        let minExponent = 1 - bias
        let e = a == 0 ? minExponent : max(Int(a.exponent), minExponent)
        let quantum = exp2(e - mantissaBits)
        let q = (a / quantum).rounded(.toNearestOrEven) * quantum
        if q > largest { return overflowBits }
        if q == 0 { return isUnsignedZeroNaN ? 0 : sign }
        if q < exp2(minExponent) {
            return sign | UInt8(q / exp2(minExponent - mantissaBits))
        }
        let qe = Int(q.exponent)
        let mantissa = Int(q / exp2(qe - mantissaBits)) - (1 << mantissaBits)
        return sign | UInt8(qe + bias) << mantissaBits | UInt8(mantissa)
    }
}

@inline(__always) private func exp2(_ n: Int) -> Double { Double(sign: .plus, exponent: n, significand: 1) }

public enum E4M3FN: MiniFloatFormat {
    public static var dtype: DType { .float8E4M3FN }
    public static var exponentBits: Int { 4 }
    public static var mantissaBits: Int { 3 }
    public static var bias: Int { 7 }
}
public enum E4M3FNUZ: MiniFloatFormat {
    public static var dtype: DType { .float8E4M3FNUZ }
    public static var exponentBits: Int { 4 }
    public static var mantissaBits: Int { 3 }
    public static var bias: Int { 8 }
    public static var isUnsignedZeroNaN: Bool { true }
}
public enum E5M2: MiniFloatFormat {
    public static var dtype: DType { .float8E5M2 }
    public static var exponentBits: Int { 5 }
    public static var mantissaBits: Int { 2 }
    public static var bias: Int { 15 }
    public static var isIEEE: Bool { true }
}
public enum E5M2FNUZ: MiniFloatFormat {
    public static var dtype: DType { .float8E5M2FNUZ }
    public static var exponentBits: Int { 5 }
    public static var mantissaBits: Int { 2 }
    public static var bias: Int { 16 }
    public static var isUnsignedZeroNaN: Bool { true }
}
public enum E2M1: MiniFloatFormat {
    public static var dtype: DType { .float4E2M1 }
    public static var exponentBits: Int { 2 }
    public static var mantissaBits: Int { 1 }
    public static var bias: Int { 1 }
}

/// A small float of format `F`, its bits in one byte. Conversions from other types saturate, as ONNX's Cast does by
/// default.
public struct MiniFloat<F: MiniFloatFormat>: TensorElement, Equatable {
    public var bits: UInt8
    public init(bits: UInt8) { self.bits = bits }
    public init(_ value: Double, saturate: Bool = true) { bits = F.encode(value, saturate: saturate) }
    public static var dtype: DType { F.dtype }
    public var doubleValue: Double { F.decode(bits) }
    public var scalarValue: ScalarValue { .float(F.decode(bits)) }
    public init(scalar: ScalarValue) { self.init(Double(scalar: scalar)) }
}

public typealias Float8E4M3FN = MiniFloat<E4M3FN>
public typealias Float8E4M3FNUZ = MiniFloat<E4M3FNUZ>
public typealias Float8E5M2 = MiniFloat<E5M2>
public typealias Float8E5M2FNUZ = MiniFloat<E5M2FNUZ>
public typealias Float4E2M1 = MiniFloat<E2M1>

/// The width and signedness of a small integer.
public protocol SubByteFormat: Sendable {
    static var dtype: DType { get }
    static var bits: Int { get }
    static var isSigned: Bool { get }
}

public enum Int4Format: SubByteFormat {
    public static var dtype: DType { .int4 }
    public static var bits: Int { 4 }
    public static var isSigned: Bool { true }
}
public enum UInt4Format: SubByteFormat {
    public static var dtype: DType { .uint4 }
    public static var bits: Int { 4 }
    public static var isSigned: Bool { false }
}
public enum Int2Format: SubByteFormat {
    public static var dtype: DType { .int2 }
    public static var bits: Int { 2 }
    public static var isSigned: Bool { true }
}
public enum UInt2Format: SubByteFormat {
    public static var dtype: DType { .uint2 }
    public static var bits: Int { 2 }
    public static var isSigned: Bool { false }
}

/// A small integer of format `F` in the low bits of a byte. Conversions wrap, as NumPy's do between integer types
/// (a float is truncated toward zero first; NaN and infinities give 0).
public struct SubByteInteger<F: SubByteFormat>: TensorElement, Equatable {
    public var bits: UInt8
    public init(bits: UInt8) { self.bits = bits & UInt8((1 << F.bits) - 1) }
    public init(wrapping value: Int64) { self.init(bits: UInt8(truncatingIfNeeded: value)) }
    public static var dtype: DType { F.dtype }
    public var value: Int64 {
        let v = Int64(bits)
        return F.isSigned && v >= 1 << (F.bits - 1) ? v - (1 << F.bits) : v
    }
    public var scalarValue: ScalarValue { F.isSigned ? .signed(value) : .unsigned(UInt64(value)) }
    public init(scalar: ScalarValue) {
        switch scalar {
        case .float(let v): self.init(wrapping: v.isFinite ? Int64(exactly: v.rounded(.towardZero)) ?? 0 : 0)
        case .signed(let v): self.init(wrapping: v)
        case .unsigned(let v): self.init(wrapping: Int64(truncatingIfNeeded: v))
        case .bool(let v): self.init(wrapping: v ? 1 : 0)
        }
    }
}

public typealias Int4 = SubByteInteger<Int4Format>
public typealias UInt4 = SubByteInteger<UInt4Format>
public typealias Int2 = SubByteInteger<Int2Format>
public typealias UInt2 = SubByteInteger<UInt2Format>

/// The small float formats by dtype.
public enum MiniFloats {
    /// The encoder of a small-float dtype (nil for other dtypes).
    public static func encoder(_ dtype: DType, saturate: Bool) -> (@Sendable (Double) -> UInt8)? {
        switch dtype {
        case .float8E4M3FN: return { E4M3FN.encode($0, saturate: saturate) }
        case .float8E4M3FNUZ: return { E4M3FNUZ.encode($0, saturate: saturate) }
        case .float8E5M2: return { E5M2.encode($0, saturate: saturate) }
        case .float8E5M2FNUZ: return { E5M2FNUZ.encode($0, saturate: saturate) }
        case .float4E2M1: return { E2M1.encode($0, saturate: saturate) }
        default: return nil
        }
    }
}

/// OCP's E8M0 scale format: a biased exponent alone (2^(bits - 127)), no sign, no zero; 0xFF is NaN. Conversions
/// from other types take the float32 exponent, rounding up when the value lies above a power of two and saturating
/// at 2^127, as ONNX's Cast does by default (`round_mode` "up", `saturate` 1).
public struct Float8E8M0: TensorElement, Equatable {
    /// How a value between two powers of two is rounded.
    public enum Rounding: String, Sendable {
        case up, down, nearest
    }

    public var bits: UInt8
    public init(bits: UInt8) { self.bits = bits }
    public static var dtype: DType { .float8E8M0 }
    public var scalarValue: ScalarValue { .float(bits == 0xFF ? .nan : exp2(Int(bits) - 127)) }
    public init(scalar: ScalarValue) { self.init(Float(Double(scalar: scalar))) }

    /// The code of `value` (its sign is ignored; NaN and infinities give NaN).
    public init(_ value: Float, rounding: Rounding = .up, saturate: Bool = true) {
        let f = value.bitPattern
        let exponent = UInt16((f >> 23) & 0xFF)
        guard exponent != 0xFF else {
            bits = 0xFF
            return
        }
        let fraction = f & 0x7F_FFFF
        let roundsUp: Bool
        switch rounding {
        case .up: roundsUp = fraction != 0
        case .down: roundsUp = false
        case .nearest:
            // The half-way bit set: up, ties included (as ONNX's definition does), except below the smallest
            // normal float32, where only more than half rounds up.
            roundsUp = fraction & 0x40_0000 != 0 && (fraction & 0x3F_FFFF != 0 || exponent > 0)
        }
        let next = exponent + (roundsUp ? 1 : 0)
        bits = UInt8(saturate && next > 0xFE ? 0xFE : min(next, 0xFF))
    }
}
