/// Building blocks for shape and dtype inference.
extension Array where Element == ValueInfo? {
    /// Required input `i`.
    public func required(_ i: Int) throws -> ValueInfo {
        guard i < count, let info = self[i] else { throw AidgeError.invalidModel("input \(i) is required") }
        return info
    }

    /// Optional input `i` (nil when absent).
    public func optional(_ i: Int) -> ValueInfo? { i < count ? self[i] : nil }

    /// The value of input `i`, which must be known when planning (a shape, axes, pads...).
    public func constant(_ i: Int, _ what: String) throws -> Tensor {
        let info = try required(i)
        guard let value = info.value else {
            throw AidgeError.unknownValue("\(what) (input \(i)) must be known before running (computed from shapes or constants)")
        }
        return value
    }
}

extension OperatorSchema {
    /// Output 0 has the dtype and shape of input 0.
    public static let sameAsFirst: Inference = { _, inputs in
        let x = try inputs.required(0)
        return [ValueInfo(dtype: x.dtype, shape: x.shape)]
    }

    /// Checks that `info` has one of `dtypes`.
    public static func expect(_ info: ValueInfo, in dtypes: Set<DType>, _ what: String = "input") throws {
        guard dtypes.contains(info.dtype) else {
            throw AidgeError.unsupportedType(
                "\(what) has dtype \(info.dtype); expected one of \(dtypes.map(\.rawValue).sorted().joined(separator: ", "))")
        }
    }

    /// Checks that all present inputs share one dtype.
    public static func sameDType(_ inputs: [ValueInfo?]) throws -> DType {
        let present = inputs.compactMap { $0 }
        guard let first = present.first else { throw AidgeError.invalidModel("no inputs") }
        if let other = present.first(where: { $0.dtype != first.dtype }) {
            throw AidgeError.unsupportedType("inputs mix \(first.dtype) and \(other.dtype)")
        }
        return first.dtype
    }

    public static let floatTypes: Set<DType> = [.float32, .float64, .float16, .bfloat16]
    public static let numericTypes: Set<DType> = Set(DType.allCases).subtracting([.bool, .string])
}
