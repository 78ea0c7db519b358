/// Operators that produce or pass on data without arithmetic on it: Identity, Dropout (inference), Constant,
/// ConstantOfShape, Cast, CastLike, Shape, Size and Range.

extension DType {
    /// The dtype of an ONNX `TensorProto.DataType` number (1 float32, 7 int64, 9 bool, ...), or nil for a type
    /// the engine does not hold (strings, complex numbers, float8e8m0, 6-bit floats).
    public init?(onnx code: Int) {
        switch code {
        case 1: self = .float32
        case 2: self = .uint8
        case 3: self = .int8
        case 4: self = .uint16
        case 5: self = .int16
        case 6: self = .int32
        case 7: self = .int64
        case 9: self = .bool
        case 10: self = .float16
        case 11: self = .float64
        case 12: self = .uint32
        case 13: self = .uint64
        case 16: self = .bfloat16
        case 17: self = .float8E4M3FN
        case 18: self = .float8E4M3FNUZ
        case 19: self = .float8E5M2
        case 20: self = .float8E5M2FNUZ
        case 21: self = .uint4
        case 22: self = .int4
        case 23: self = .float4E2M1
        case 24: self = .float8E8M0
        case 25: self = .uint2
        case 26: self = .int2
        case 8: self = .string
        default: return nil
        }
    }

    /// The ONNX `TensorProto.DataType` number of this dtype (the inverse of `init?(onnx:)`).
    public var onnxDataType: Int {
        switch self {
        case .float32: return 1
        case .uint8: return 2
        case .int8: return 3
        case .uint16: return 4
        case .int16: return 5
        case .int32: return 6
        case .int64: return 7
        case .bool: return 9
        case .float16: return 10
        case .float64: return 11
        case .uint32: return 12
        case .uint64: return 13
        case .bfloat16: return 16
        case .float8E4M3FN: return 17
        case .float8E4M3FNUZ: return 18
        case .float8E5M2: return 19
        case .float8E5M2FNUZ: return 20
        case .uint4: return 21
        case .int4: return 22
        case .float4E2M1: return 23
        case .float8E8M0: return 24
        case .uint2: return 25
        case .int2: return 26
        case .string: return 8
        }
    }
}

extension OperatorSchema {
    static let dataSchemas: [OperatorSchema] = [
        OperatorSchema("Identity", inputs: ["input"], infer: sameAsFirst),

        // Inference Dropout: output 0 is the input, the optional output 1 (`mask`) is all true.
        OperatorSchema(
            "Dropout", inputs: ["data", "ratio", "training_mode"], minInputs: 1, nonDifferentiable: [1],
            trainingForm: true
        ) { _, inputs in
            let x = try inputs.required(0)
            if let ratio = inputs.optional(1) {
                try expect(ratio, in: floatTypes, "ratio")
                guard ratio.shape.isEmpty || ratio.count == 1 else {
                    throw AidgeError.shapeMismatch("ratio must be a scalar, got shape \(ratio.shape)")
                }
            }
            if let mode = inputs.optional(2) {
                try expect(mode, in: [.bool], "training_mode")
            }
            return [ValueInfo(dtype: x.dtype, shape: x.shape), ValueInfo(dtype: .bool, shape: x.shape)]
        },

        OperatorSchema("Constant", inputs: []) { attributes, _ in
            [ValueInfo(try constantAttributeValue(attributes))]
        },

        OperatorSchema("ConstantOfShape", inputs: ["input"]) { attributes, inputs in
            let shapeInfo = try inputs.required(0)
            try expect(shapeInfo, in: [.int64, .int32], "shape")
            guard shapeInfo.shape.count == 1 else {
                throw AidgeError.shapeMismatch("the shape input must be 1-D, got shape \(shapeInfo.shape)")
            }
            let shape = try inputs.constant(0, "shape").integers()
            if let bad = shape.first(where: { $0 < 0 }) {
                throw AidgeError.invalidArgument("ConstantOfShape dimension \(bad) is negative (shape \(shape))")
            }
            _ = try ShapeOperators.checkedCount(shape, "ConstantOfShape")
            let dtype: DType
            if attributes.has("value") {
                let value = try attributes.tensor("value")
                guard value.count == 1 else {
                    throw AidgeError.invalidModel("attribute 'value' must hold one element, it holds \(value.count)")
                }
                dtype = value.dtype
            } else {
                dtype = .float32
            }
            return [ValueInfo(dtype: dtype, shape: shape)]
        },

        OperatorSchema("Cast", inputs: ["input"]) { attributes, inputs in
            let x = try inputs.required(0)
            let code = try attributes.int("to")
            guard let dtype = DType(onnx: code) else {
                throw AidgeError.unsupportedType("Cast to ONNX data type \(code) is not supported")
            }
            return [ValueInfo(dtype: dtype, shape: x.shape)]
        },

        // The same bytes read as another dtype of the same width.
        OperatorSchema("BitCast", inputs: ["input"], nonDifferentiable: [0]) { attributes, inputs in
            let x = try inputs.required(0)
            let code = try attributes.int("to")
            guard let dtype = DType(onnx: code) else {
                throw AidgeError.unsupportedType("BitCast to ONNX data type \(code) is not supported")
            }
            guard dtype.byteSize == x.dtype.byteSize, !dtype.isLowPrecision, !x.dtype.isLowPrecision else {
                throw AidgeError.unsupportedType("BitCast needs dtypes of one width, got \(x.dtype) to \(dtype)")
            }
            return [ValueInfo(dtype: dtype, shape: x.shape)]
        },

        OperatorSchema("CastLike", inputs: ["input", "target_type"], nonDifferentiable: [1]) { _, inputs in
            let x = try inputs.required(0)
            let target = try inputs.required(1)
            return [ValueInfo(dtype: target.dtype, shape: x.shape)]
        },

        // A 2-D tensor with ones on diagonal k, of the input's shape and of `dtype` (default: the input's).
        OperatorSchema("EyeLike", inputs: ["input"], nonDifferentiable: [0]) { attributes, inputs in
            let x = try inputs.required(0)
            guard x.shape.count == 2 else { throw AidgeError.shapeMismatch("EyeLike needs a 2-D input, got \(x.shape)") }
            var dtype = x.dtype
            if attributes.has("dtype") {
                let code = try attributes.int("dtype")
                guard let d = DType(onnx: code) else {
                    throw AidgeError.unsupportedType("EyeLike to ONNX data type \(code) is not supported")
                }
                dtype = d
            }
            return [ValueInfo(dtype: dtype, shape: x.shape)]
        },

        OperatorSchema("Shape", inputs: ["data"], nonDifferentiable: [0]) { attributes, inputs in
            let x = try inputs.required(0)
            let rank = x.shape.count
            func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + rank : v, 0), rank) }
            let start = clamp(try attributes.int("start", default: 0))
            let end = clamp(try attributes.int("end", default: rank))
            let dims = start < end ? Array(x.shape[start..<end]) : []
            return [ValueInfo(Tensor(dims.map { Int64($0) }))]
        },

        OperatorSchema("Size", inputs: ["data"], nonDifferentiable: [0]) { _, inputs in
            let x = try inputs.required(0)
            return [ValueInfo(Tensor(scalar: Int64(x.count)))]
        },

        OperatorSchema("Range", inputs: ["start", "limit", "delta"], nonDifferentiable: [0, 1, 2]) { _, inputs in
            let dtype = try sameDType(inputs)
            try expect(try inputs.required(0), in: numericTypes, "start")
            for (i, name) in ["start", "limit", "delta"].enumerated() {
                let info = try inputs.required(i)
                guard info.count == 1, info.shape.count <= 1 else {
                    throw AidgeError.shapeMismatch("\(name) must be a scalar, got shape \(info.shape)")
                }
            }
            let start = try inputs.constant(0, "start")
            let limit = try inputs.constant(1, "limit")
            let delta = try inputs.constant(2, "delta")
            let n = try rangeCount(start: start, limit: limit, delta: delta)
            return [ValueInfo(dtype: dtype, shape: [n])]
        },
    ]

    /// The tensor a `Constant` node holds: `value`, or one of `value_float(s)` / `value_int(s)`.
    public static func constantAttributeValue(_ attributes: Attributes) throws -> Tensor {
        switch attributes["value"] {
        case .tensor(let t)?: return t.contiguous()
        case nil: break
        default: throw AidgeError.invalidModel("attribute 'value' must be a tensor")
        }
        if attributes.has("value_float") { return Tensor(scalar: try attributes.float("value_float")) }
        if attributes.has("value_floats") { return Tensor(try attributes.floats("value_floats")) }
        if attributes.has("value_int") { return Tensor(scalar: Int64(try attributes.int("value_int"))) }
        if attributes.has("value_ints") { return Tensor(try attributes.ints("value_ints").map { Int64($0) }) }
        throw AidgeError.invalidModel(
            "Constant needs one of the attributes value, value_float, value_floats, value_int, value_ints")
    }

    /// Number of elements of `Range(start, limit, delta)`: `max(ceil((limit - start) / delta), 0)`.
    public static func rangeCount(start: Tensor, limit: Tensor, delta: Tensor) throws -> Int {
        if start.dtype.isFloatingPoint {
            let s = start.doubles()[0]
            let l = limit.doubles()[0]
            let d = delta.doubles()[0]
            guard d != 0 else { throw AidgeError.invalidArgument("Range delta is 0") }
            let n = ((l - s) / d).rounded(.up)
            guard n.isFinite || n < 0 else {
                throw AidgeError.invalidArgument("Range(\(s), \(l), \(d)) does not have a finite length")
            }
            guard n < Double(1 << 40) else {
                throw AidgeError.invalidArgument("Range(\(s), \(l), \(d)) is too long (\(n) elements)")
            }
            return n > 0 ? Int(n) : 0
        }
        let s = start.integers()[0]
        let l = limit.integers()[0]
        let d = delta.integers()[0]
        guard d != 0 else { throw AidgeError.invalidArgument("Range delta is 0") }
        let (diff, overflow) = l.subtractingReportingOverflow(s)
        guard !overflow else { throw AidgeError.invalidArgument("Range(\(s), \(l), \(d)) overflows") }
        if (diff > 0) != (d > 0) || diff == 0 { return 0 }
        let (q, divOverflow) = diff.dividedReportingOverflow(by: d)
        guard !divOverflow else { throw AidgeError.invalidArgument("Range(\(s), \(l), \(d)) overflows") }
        let n = q + (q * d != diff ? 1 : 0)
        guard n < 1 << 40 else { throw AidgeError.invalidArgument("Range(\(s), \(l), \(d)) is too long (\(n) elements)") }
        return n
    }
}

/// What a Dropout node does in one run, from its optional inputs: whether it drops (`training_mode`, input 2,
/// overrides the plan's mode) and its `ratio` (input 1, default 0.5), read on the host whatever the backend.
public enum DropoutSettings {
    public static func resolve(_ inputs: [Tensor?], training: Bool) throws -> (drops: Bool, ratio: Double) {
        var drops = training
        if inputs.count > 2, let mode = inputs[2] {
            guard mode.count == 1, mode.dtype == .bool else {
                throw AidgeError.invalidArgument("Dropout training_mode must be one bool, got \(mode.dtype) \(mode.shape)")
            }
            drops = try mode.onHost().rawPointer.load(as: UInt8.self) != 0
        }
        var ratio = 0.5
        if inputs.count > 1, let r = inputs[1] {
            guard r.count == 1 else { throw AidgeError.invalidArgument("Dropout ratio must be a scalar, got shape \(r.shape)") }
            guard r.dtype.isFloatingPoint, !r.dtype.isLowPrecision else {
                throw AidgeError.unsupportedType("Dropout ratio must be a float, got \(r.dtype)")
            }
            ratio = try r.onHost().doubles()[0]
        }
        guard ratio >= 0 && ratio <= 1 else { throw AidgeError.invalidArgument("Dropout ratio must be in [0, 1], got \(ratio)") }
        return (drops, ratio)
    }
}
