/// Element-wise operators: arithmetic and comparisons with NumPy broadcasting, logic, selection, and unary math.
extension OperatorSchema {
    static let elementwiseSchemas: [OperatorSchema] =
        ["Add", "Sub", "Mul", "Div"].map { arithmetic($0) }
        + [
            OperatorSchema("Pow", inputs: ["X", "Y"], infer: powInference),
            OperatorSchema("Mod", inputs: ["A", "B"], infer: modInference),
            OperatorSchema("BitShift", inputs: ["X", "Y"], infer: bitShiftInference),
        ]
        + ["Min", "Max", "Sum"].map { variadic($0, types: numericTypes) }
        + [variadic("Mean", types: floatTypes)]
        + [comparison("Equal", types: Set(DType.allCases))]
        + ["Less", "Greater", "LessOrEqual", "GreaterOrEqual"].map { comparison($0, types: numericTypes) }
        + ["And", "Or", "Xor"].map { comparison($0, types: [.bool]) }
        + [OperatorSchema("Where", inputs: ["condition", "X", "Y"], infer: whereInference)]
        + [unary("Neg", types: signedTypes), unary("Abs", types: numericTypes), unary("Sign", types: numericTypes)]
        + ["Floor", "Ceil", "Round", "Sqrt", "Reciprocal", "Exp", "Log", "Erf", "Sin", "Cos"].map {
            unary($0, types: floatTypes)
        }
        + ["Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh"].map {
            unary($0, types: floatTypes)
        }
        + [unary("Not", types: [.bool])]
        + ["BitwiseAnd", "BitwiseOr", "BitwiseXor"].map { arithmetic($0, types: integerTypes) }
        + [unary("BitwiseNot", types: integerTypes)]
        + [
            OperatorSchema("IsNaN", inputs: ["X"], infer: floatClassInference),
            OperatorSchema("IsInf", inputs: ["X"], infer: floatClassInference),
        ]

    /// Signed numbers (floats and signed integers): the types that negation and absolute value take.
    static let signedTypes: Set<DType> = Set(DType.allCases.filter { $0.isSigned })

    /// The dtype and broadcast shape of inputs that must share one dtype among `types`.
    public static func broadcastInputs(_ inputs: [ValueInfo?], types: Set<DType>) throws -> (DType, [Int]) {
        let dtype = try sameDType(inputs)
        let present = inputs.compactMap { $0 }
        try expect(present[0], in: types)
        return (dtype, try ShapeUtil.broadcast(present.map(\.shape)))
    }

    /// A two-input arithmetic operator on numbers; the output has the inputs' dtype and their broadcast shape.
    static func arithmetic(_ type: String, types: Set<DType> = numericTypes) -> OperatorSchema {
        OperatorSchema(type, inputs: ["A", "B"]) { _, inputs in
            let (dtype, shape) = try broadcastInputs(inputs, types: types)
            return [ValueInfo(dtype: dtype, shape: shape)]
        }
    }

    /// A variadic operator broadcasting all its inputs together (Min, Max, Sum, Mean).
    static func variadic(_ type: String, types: Set<DType>) -> OperatorSchema {
        OperatorSchema(type, inputs: ["data_0"], variadic: true) { _, inputs in
            let (dtype, shape) = try broadcastInputs(inputs, types: types)
            return [ValueInfo(dtype: dtype, shape: shape)]
        }
    }

    /// A two-input operator with a bool output of the broadcast shape.
    static func comparison(_ type: String, types: Set<DType>) -> OperatorSchema {
        OperatorSchema(type, inputs: ["A", "B"]) { _, inputs in
            let (_, shape) = try broadcastInputs(inputs, types: types)
            return [ValueInfo(dtype: .bool, shape: shape)]
        }
    }

    /// A one-input operator whose output has the input's dtype and shape.
    static func unary(_ type: String, types: Set<DType>) -> OperatorSchema {
        OperatorSchema(type, inputs: ["X"]) { _, inputs in
            let x = try inputs.required(0)
            try expect(x, in: types)
            return [ValueInfo(dtype: x.dtype, shape: x.shape)]
        }
    }

    /// Pow: the base and exponent may have different numeric dtypes; the output has the base's.
    static let powInference: Inference = { _, inputs in
        let x = try inputs.required(0)
        let y = try inputs.required(1)
        try expect(x, in: numericTypes, "base")
        try expect(y, in: numericTypes, "exponent")
        return [ValueInfo(dtype: x.dtype, shape: try ShapeUtil.broadcast(x.shape, y.shape))]
    }

    /// IsNaN and IsInf: a bool per element of a float input.
    static let floatClassInference: Inference = { _, inputs in
        let x = try inputs.required(0)
        try expect(x, in: floatTypes)
        return [ValueInfo(dtype: .bool, shape: x.shape)]
    }

    /// BitShift: integers of one dtype, broadcast; `direction` is "LEFT" or "RIGHT".
    static let bitShiftInference: Inference = { attributes, inputs in
        let (dtype, shape) = try broadcastInputs(inputs, types: integerTypes)
        let direction = try attributes.string("direction")
        guard direction == "LEFT" || direction == "RIGHT" else {
            throw AidgeError.invalidModel("BitShift direction must be \"LEFT\" or \"RIGHT\", got \"\(direction)\"")
        }
        return [ValueInfo(dtype: dtype, shape: shape)]
    }

    /// The integer dtypes.
    static let integerTypes: Set<DType> = [.int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64]

    /// Mod: `fmod = 0` takes the divisor's sign (Python's %), `fmod = 1` the dividend's (C's fmod).
    static let modInference: Inference = { attributes, inputs in
        let (dtype, shape) = try broadcastInputs(inputs, types: numericTypes)
        let fmod = try attributes.int("fmod", default: 0)
        guard fmod == 0 || fmod == 1 else {
            throw AidgeError.invalidModel("attribute 'fmod' must be 0 or 1, got \(fmod)")
        }
        return [ValueInfo(dtype: dtype, shape: shape)]
    }

    /// Where: a bool condition selects between X and Y; all three broadcast together.
    static let whereInference: Inference = { _, inputs in
        let condition = try inputs.required(0)
        let x = try inputs.required(1)
        let y = try inputs.required(2)
        try expect(condition, in: [.bool], "condition")
        guard x.dtype == y.dtype else {
            throw AidgeError.unsupportedType("X has dtype \(x.dtype) but Y has \(y.dtype); they must match")
        }
        let shape = try ShapeUtil.broadcast([condition.shape, x.shape, y.shape])
        return [ValueInfo(dtype: x.dtype, shape: shape)]
    }
}
