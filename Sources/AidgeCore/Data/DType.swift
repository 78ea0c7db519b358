/// The element types a tensor can hold.
public enum DType: String, Sendable, CaseIterable, CustomStringConvertible {
    case float32, float64, float16, bfloat16
    case int8, int16, int32, int64
    case uint8, uint16, uint32, uint64
    case bool
    /// Low-precision storage types (`LowPrecision.swift`): cast, quantised and moved, not computed on.
    case float8E4M3FN = "float8_e4m3fn", float8E4M3FNUZ = "float8_e4m3fnuz", float8E5M2 = "float8_e5m2"
    case float8E5M2FNUZ = "float8_e5m2fnuz", float4E2M1 = "float4_e2m1fn", float8E8M0 = "float8_e8m0fnu"
    case int4, uint4, int2, uint2
    /// Text (`StringElement` handles): moved, compared and transformed by the string operators, never computed on.
    case string

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .float64, .int64, .uint64, .string: return 8
        case .float32, .int32, .uint32: return 4
        case .float16, .bfloat16, .int16, .uint16: return 2
        case .int8, .uint8, .bool: return 1
        case .float8E4M3FN, .float8E4M3FNUZ, .float8E5M2, .float8E5M2FNUZ, .float4E2M1, .float8E8M0: return 1
        case .int4, .uint4, .int2, .uint2: return 1
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float64, .float16, .bfloat16: return true
        case .float8E4M3FN, .float8E4M3FNUZ, .float8E5M2, .float8E5M2FNUZ, .float4E2M1, .float8E8M0: return true
        default: return false
        }
    }

    /// The low-precision storage types, which only casts, quantisation and data movement take.
    public var isLowPrecision: Bool {
        switch self {
        case .float8E4M3FN, .float8E4M3FNUZ, .float8E5M2, .float8E5M2FNUZ, .float4E2M1, .float8E8M0, .int4, .uint4, .int2,
            .uint2:
            return true
        default: return false
        }
    }

    /// The dtypes whose elements are bits of a wider byte (4-bit and 2-bit): how many ONNX packs per byte.
    public var elementsPerPackedByte: Int {
        switch self {
        case .int4, .uint4, .float4E2M1: return 2
        case .int2, .uint2: return 4
        default: return 1
        }
    }

    public var isInteger: Bool { !isFloatingPoint && self != .bool && self != .string }

    public var isSigned: Bool {
        switch self {
        case .int8, .int16, .int32, .int64, .float32, .float64, .float16, .bfloat16: return true
        case .float8E4M3FN, .float8E4M3FNUZ, .float8E5M2, .float8E5M2FNUZ, .float4E2M1, .int4, .int2: return true
        default: return false
        }
    }

    public var description: String { rawValue }

    /// Calls `visitor` with the Swift type that stores elements of this dtype.
    @inlinable
    public func visit<V: DTypeVisitor>(_ visitor: V) throws -> V.Result {
        switch self {
        case .float32: return try visitor.visit(Float.self)
        case .float64: return try visitor.visit(Double.self)
        case .float16: return try visitor.visit(Float16.self)
        case .bfloat16: return try visitor.visit(BFloat16.self)
        case .int8: return try visitor.visit(Int8.self)
        case .int16: return try visitor.visit(Int16.self)
        case .int32: return try visitor.visit(Int32.self)
        case .int64: return try visitor.visit(Int64.self)
        case .uint8: return try visitor.visit(UInt8.self)
        case .uint16: return try visitor.visit(UInt16.self)
        case .uint32: return try visitor.visit(UInt32.self)
        case .uint64: return try visitor.visit(UInt64.self)
        case .bool: return try visitor.visit(Bool.self)
        case .float8E4M3FN: return try visitor.visit(Float8E4M3FN.self)
        case .float8E4M3FNUZ: return try visitor.visit(Float8E4M3FNUZ.self)
        case .float8E5M2: return try visitor.visit(Float8E5M2.self)
        case .float8E5M2FNUZ: return try visitor.visit(Float8E5M2FNUZ.self)
        case .float4E2M1: return try visitor.visit(Float4E2M1.self)
        case .int4: return try visitor.visit(Int4.self)
        case .uint4: return try visitor.visit(UInt4.self)
        case .int2: return try visitor.visit(Int2.self)
        case .uint2: return try visitor.visit(UInt2.self)
        case .float8E8M0: return try visitor.visit(Float8E8M0.self)
        case .string:
            throw AidgeError.unsupportedType("strings have no numeric element type: only the string operators take them")
        }
    }
}

/// A generic operation to run on the element type of a runtime dtype (Swift has no generic closures).
public protocol DTypeVisitor {
    associatedtype Result
    func visit<T: TensorElement>(_ type: T.Type) throws -> Result
}
