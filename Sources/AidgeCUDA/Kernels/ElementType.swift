import AidgeCore

/// How a dtype appears in kernel source: the C type stored in memory, the C type arithmetic is done in, and
/// the conversions between them (16-bit floats compute in float).
struct ElementType {
    let dtype: DType
    let stored: String
    let compute: String
    private let loadFormat: (String) -> String
    private let storeFormat: (String) -> String

    func load(_ expression: String) -> String { loadFormat(expression) }
    func store(_ expression: String) -> String { storeFormat(expression) }

    var isFloatingPoint: Bool { dtype.isFloatingPoint }

    private init(_ dtype: DType, _ stored: String, _ compute: String? = nil,
                 load: ((String) -> String)? = nil, store: ((String) -> String)? = nil) {
        self.dtype = dtype
        self.stored = stored
        self.compute = compute ?? stored
        let computeType = compute ?? stored
        loadFormat = load ?? { compute == nil ? $0 : "((\(computeType))(\($0)))" }
        storeFormat = store ?? { "((\(stored))(\($0)))" }
    }

    /// The kernel-source form of `dtype`, or an error naming the operator that cannot take it.
    static func of(_ dtype: DType, for what: @autoclosure () -> String) throws -> ElementType {
        switch dtype {
        case .float32: return ElementType(.float32, "float")
        case .float64: return ElementType(.float64, "double")
        case .float16:
            return ElementType(.float16, "unsigned short", "float", load: { "half_to_float(\($0))" }, store: { "float_to_half(\($0))" })
        case .bfloat16:
            return ElementType(
                .bfloat16, "unsigned short", "float", load: { "bfloat_to_float(\($0))" }, store: { "float_to_bfloat(\($0))" })
        case .int8: return ElementType(.int8, "signed char", "int")
        case .int16: return ElementType(.int16, "short", "int")
        case .int32: return ElementType(.int32, "int")
        case .int64: return ElementType(.int64, "i64")
        case .uint8: return ElementType(.uint8, "unsigned char", "unsigned")
        case .uint16: return ElementType(.uint16, "unsigned short", "unsigned")
        case .uint32: return ElementType(.uint32, "unsigned")
        case .uint64: return ElementType(.uint64, "u64")
        case .bool: return ElementType(.bool, "unsigned char", "bool", store: { "((unsigned char)((\($0)) ? 1 : 0))" })
        default: throw AidgeError.unsupportedType("\(what()) has no CUDA kernel for \(dtype)")
        }
    }
}

/// The source that walks a row-major index back to an offset through strides (`dims` structs by value).
let indexingSource = """
    struct dims { i64 v[8]; };
    __device__ __forceinline__ i64 strided_offset(i64 index, int rank, const dims& shape, const dims& strides) {
        i64 offset = 0;
        for (int d = rank - 1; d >= 0; --d) {
            i64 n = shape.v[d];
            offset += (index % n) * strides.v[d];
            index /= n;
        }
        return offset;
    }

    """
