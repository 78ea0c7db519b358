/// A value in flight between two element types, in the widest form of its kind.
public enum ScalarValue: Sendable {
    case float(Double)
    case signed(Int64)
    case unsigned(UInt64)
    case bool(Bool)
}

/// A Swift type that stores the elements of one `DType`, with NumPy's `astype` conversion rules.
///
/// Conversions follow NumPy where it defines them (float to int truncates toward zero, int to int wraps,
/// anything to bool is `!= 0`) and saturate where it does not (float out of an integer's range; NaN gives 0).
public protocol TensorElement: Sendable {
    static var dtype: DType { get }
    var scalarValue: ScalarValue { get }
    init(scalar: ScalarValue)
}

extension TensorElement {
    @inlinable public init<S: TensorElement>(converting value: S) { self.init(scalar: value.scalarValue) }
    @inlinable public var doubleValue: Double {
        switch scalarValue {
        case .float(let v): return v
        case .signed(let v): return Double(v)
        case .unsigned(let v): return Double(v)
        case .bool(let v): return v ? 1 : 0
        }
    }
}

@usableFromInline func saturatingInteger<I: FixedWidthInteger>(_ v: Double) -> I {
    if v.isNaN { return 0 }
    if v <= Double(I.min) { return I.min }
    if v >= Double(I.max) { return I.max }  // Double(I.max) may round up to 2^n: clamp before converting
    return I(v.rounded(.towardZero))
}

@usableFromInline func integer<I: FixedWidthInteger>(_ s: ScalarValue) -> I {
    switch s {
    case .float(let v): return saturatingInteger(v)
    case .signed(let v): return I(truncatingIfNeeded: v)
    case .unsigned(let v): return I(truncatingIfNeeded: v)
    case .bool(let v): return v ? 1 : 0
    }
}

@usableFromInline func floating<F: BinaryFloatingPoint>(_ s: ScalarValue) -> F {
    switch s {
    case .float(let v): return F(v)
    case .signed(let v): return F(v)
    case .unsigned(let v): return F(v)
    case .bool(let v): return v ? 1 : 0
    }
}

extension Float: TensorElement {
    public static var dtype: DType { .float32 }
    @inlinable public var scalarValue: ScalarValue { .float(Double(self)) }
    @inlinable public init(scalar: ScalarValue) { self = floating(scalar) }
}
extension Double: TensorElement {
    public static var dtype: DType { .float64 }
    @inlinable public var scalarValue: ScalarValue { .float(self) }
    @inlinable public init(scalar: ScalarValue) { self = floating(scalar) }
}
extension Float16: TensorElement {
    public static var dtype: DType { .float16 }
    @inlinable public var scalarValue: ScalarValue { .float(Double(self)) }
    @inlinable public init(scalar: ScalarValue) {
        // Float16(Int64) and Float16(Double) both round once, to nearest even.
        self = floating(scalar)
    }
}
extension BFloat16: TensorElement {
    public static var dtype: DType { .bfloat16 }
    @inlinable public var scalarValue: ScalarValue { .float(Double(floatValue)) }
    @inlinable public init(scalar: ScalarValue) {
        switch scalar {
        case .float(let v):
            // Rounding through Float could round twice; a Float tie between two bfloat16 values is decided by
            // which side of it the exact double lies.
            let f = Float(v)
            let bits = f.bitPattern
            if bits & 0xFFFF == 0x8000, !f.isNaN, Double(f) != v {
                let truncated = UInt16(truncatingIfNeeded: bits >> 16)
                self.init(bitPattern: abs(v) > abs(Double(f)) ? truncated &+ 1 : truncated)
            } else {
                self.init(f)
            }
        default:
            self.init(Float(scalar: scalar))
        }
    }
}
extension Int8: TensorElement {
    public static var dtype: DType { .int8 }
    @inlinable public var scalarValue: ScalarValue { .signed(Int64(self)) }
    @inlinable public init(scalar: ScalarValue) { self = integer(scalar) }
}
extension Int16: TensorElement {
    public static var dtype: DType { .int16 }
    @inlinable public var scalarValue: ScalarValue { .signed(Int64(self)) }
    @inlinable public init(scalar: ScalarValue) { self = integer(scalar) }
}
extension Int32: TensorElement {
    public static var dtype: DType { .int32 }
    @inlinable public var scalarValue: ScalarValue { .signed(Int64(self)) }
    @inlinable public init(scalar: ScalarValue) { self = integer(scalar) }
}
extension Int64: TensorElement {
    public static var dtype: DType { .int64 }
    @inlinable public var scalarValue: ScalarValue { .signed(self) }
    @inlinable public init(scalar: ScalarValue) { self = integer(scalar) }
}
extension UInt8: TensorElement {
    public static var dtype: DType { .uint8 }
    @inlinable public var scalarValue: ScalarValue { .unsigned(UInt64(self)) }
    @inlinable public init(scalar: ScalarValue) { self = integer(scalar) }
}
extension UInt16: TensorElement {
    public static var dtype: DType { .uint16 }
    @inlinable public var scalarValue: ScalarValue { .unsigned(UInt64(self)) }
    @inlinable public init(scalar: ScalarValue) { self = integer(scalar) }
}
extension UInt32: TensorElement {
    public static var dtype: DType { .uint32 }
    @inlinable public var scalarValue: ScalarValue { .unsigned(UInt64(self)) }
    @inlinable public init(scalar: ScalarValue) { self = integer(scalar) }
}
extension UInt64: TensorElement {
    public static var dtype: DType { .uint64 }
    @inlinable public var scalarValue: ScalarValue { .unsigned(self) }
    @inlinable public init(scalar: ScalarValue) { self = integer(scalar) }
}
extension Bool: TensorElement {
    public static var dtype: DType { .bool }
    @inlinable public var scalarValue: ScalarValue { .bool(self) }
    @inlinable public init(scalar: ScalarValue) {
        switch scalar {
        case .float(let v): self = v != 0  // NaN != 0, as in NumPy
        case .signed(let v): self = v != 0
        case .unsigned(let v): self = v != 0
        case .bool(let v): self = v
        }
    }
}
