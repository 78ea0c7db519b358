/// Linear quantisation: DynamicQuantizeLinear, QuantizeLinear (y = saturate(round(x / scale) + zero_point)) and DequantizeLinear
/// (y = (x - zero_point) · scale), with one scale per tensor, per slice along `axis`, or per block of `block_size`
/// elements along `axis`.

/// Which scale (and zero point) each element uses.
public struct QuantizationLayout: Sendable {
    /// Elements before, along, and after `axis`.
    public let outer: Int
    public let axisSize: Int
    public let inner: Int
    /// 0: one scale per tensor or per slice; else elements per block along `axis`.
    public let blockSize: Int
    public let perTensor: Bool

    public init(_ attributes: Attributes, input: [Int], scale: [Int]) throws {
        let rank = input.count
        blockSize = try attributes.int("block_size", default: 0)
        guard blockSize >= 0 else { throw AidgeError.invalidModel("block_size must not be negative, got \(blockSize)") }
        perTensor = ShapeUtil.count(scale) == 1 && scale.count <= 1 && blockSize == 0
        // `axis` matters only for per-axis and blocked scales (a 1-D input with a scalar scale keeps the default 1).
        let axis = perTensor || rank == 0 ? 0 : try ShapeUtil.axis(try attributes.int("axis", default: 1), rank: rank)
        outer = rank == 0 ? 1 : ShapeUtil.count(Array(input[..<axis]))
        axisSize = rank == 0 ? 1 : input[axis]
        inner = rank == 0 ? 1 : ShapeUtil.count(Array(input[(axis + 1)...]))
        if perTensor { return }
        if blockSize == 0 {
            guard scale == [axisSize] else {
                throw AidgeError.shapeMismatch(
                    "a per-axis scale must have shape [\(axisSize)] (axis \(axis) of \(input)), got \(scale)")
            }
        } else {
            var expected = input
            expected[axis] = (axisSize + blockSize - 1) / blockSize
            guard scale == expected else {
                throw AidgeError.shapeMismatch(
                    "a blocked scale must have shape \(expected) for input \(input) and block_size \(blockSize), got \(scale)")
            }
        }
    }

    /// The scale index of element `i` of the input.
    @inline(__always) public func scaleIndex(_ i: Int) -> Int {
        if perTensor { return 0 }
        let a = (i / inner) % axisSize
        if blockSize == 0 { return a }
        let blocks = (axisSize + blockSize - 1) / blockSize
        return ((i / (inner * axisSize)) * blocks + a / blockSize) * inner + i % inner
    }
}

extension OperatorSchema {
    /// Checks that the inputs at `indices` (scales, zero points), where present, hold one value each.
    static func checkScalars(_ inputs: [ValueInfo?], _ indices: [Int], _ type: String) throws {
        for i in indices {
            guard let info = inputs.optional(i) else { continue }
            guard info.count == 1 else {
                throw AidgeError.unsupported("\(type) input \(i) must hold one value (per-tensor), got shape \(info.shape)")
            }
        }
    }

    /// The dtypes a quantised tensor may have.
    public static let quantizedTypes: Set<DType> = [
        .int8, .uint8, .int16, .uint16, .int4, .uint4, .int2, .uint2, .float8E4M3FN, .float8E4M3FNUZ, .float8E5M2,
        .float8E5M2FNUZ, .float4E2M1,
    ]

    static let quantizationSchemas: [OperatorSchema] = [
        OperatorSchema(
            "QuantizeLinear", inputs: ["x", "y_scale", "y_zero_point"], minInputs: 2, nonDifferentiable: [1, 2]
        ) { attributes, inputs in
            let x = try inputs.required(0)
            let scale = try inputs.required(1)
            try expect(x, in: floatTypes.union([.int32]), "x")
            try expect(scale, in: floatTypes, "y_scale")
            _ = try QuantizationLayout(attributes, input: x.shape, scale: scale.shape)
            var dtype = DType.uint8
            if attributes.has("output_dtype") {
                let code = try attributes.int("output_dtype")
                guard let d = DType(onnx: code) else {
                    throw AidgeError.unsupportedType("QuantizeLinear output_dtype \(code) is not supported")
                }
                dtype = d
            }
            if let zeroPoint = inputs.optional(2) {
                guard zeroPoint.shape == scale.shape || zeroPoint.count == 1 && scale.count == 1 else {
                    throw AidgeError.shapeMismatch("y_zero_point \(zeroPoint.shape) and y_scale \(scale.shape) differ")
                }
                dtype = zeroPoint.dtype
            }
            try expect(ValueInfo(dtype: dtype, shape: []), in: quantizedTypes, "the quantised output")
            return [ValueInfo(dtype: dtype, shape: x.shape)]
        },
        OperatorSchema(
            "DequantizeLinear", inputs: ["x", "x_scale", "x_zero_point"], minInputs: 2, nonDifferentiable: [1, 2]
        ) { attributes, inputs in
            let x = try inputs.required(0)
            let scale = try inputs.required(1)
            try expect(x, in: quantizedTypes.union([.int32]), "x")
            try expect(scale, in: floatTypes, "x_scale")
            _ = try QuantizationLayout(attributes, input: x.shape, scale: scale.shape)
            if let zeroPoint = inputs.optional(2) {
                guard zeroPoint.dtype == x.dtype, zeroPoint.shape == scale.shape || zeroPoint.count == 1 && scale.count == 1
                else {
                    throw AidgeError.shapeMismatch(
                        "x_zero_point (\(zeroPoint.dtype) \(zeroPoint.shape)) must have x's dtype and the scale's shape")
                }
            }
            var dtype = scale.dtype
            if attributes.has("output_dtype") {
                let code = try attributes.int("output_dtype")
                guard let d = DType(onnx: code), floatTypes.contains(d) else {
                    throw AidgeError.unsupportedType("DequantizeLinear output_dtype \(code) is not supported")
                }
                dtype = d
            }
            return [ValueInfo(dtype: dtype, shape: x.shape)]
        },
        // (A - a_zero_point) @ (B - b_zero_point) in int32, zero points per tensor.
        OperatorSchema(
            "MatMulInteger", inputs: ["A", "B", "a_zero_point", "b_zero_point"], minInputs: 2,
            nonDifferentiable: [0, 1, 2, 3]
        ) { _, inputs in
            let a = try inputs.required(0)
            let b = try inputs.required(1)
            try expect(a, in: [.int8, .uint8], "A")
            try expect(b, in: [.int8, .uint8], "B")
            try checkScalars(inputs, [2, 3], "MatMulInteger")
            return [ValueInfo(dtype: .int32, shape: try matMulShape(a.shape, b.shape).output)]
        },
        // The int32 product of the zero-point-shifted operands, requantised: a_scale · b_scale / y_scale, plus
        // y_zero_point, rounded half to even and clamped.
        OperatorSchema(
            "QLinearMatMul",
            inputs: ["a", "a_scale", "a_zero_point", "b", "b_scale", "b_zero_point", "y_scale", "y_zero_point"],
            nonDifferentiable: Set(0..<8)
        ) { _, inputs in
            let a = try inputs.required(0)
            let b = try inputs.required(3)
            try expect(a, in: [.int8, .uint8], "a")
            try expect(b, in: [.int8, .uint8], "b")
            try checkScalars(inputs, [1, 2, 4, 5, 6, 7], "QLinearMatMul")
            let y = try inputs.required(7)
            try expect(y, in: [.int8, .uint8], "y_zero_point")
            return [ValueInfo(dtype: y.dtype, shape: try matMulShape(a.shape, b.shape).output)]
        },
        OperatorSchema("ConvInteger", inputs: ["x", "w", "x_zero_point", "w_zero_point"], minInputs: 2) { attributes, inputs in
            let x = try inputs.required(0)
            let w = try inputs.required(1)
            try expect(x, in: [.int8, .uint8], "x")
            try expect(w, in: [.int8, .uint8], "w")
            return [ValueInfo(dtype: .int32, shape: try integerConvolutionShape(attributes, x, w))]
        },
        OperatorSchema(
            "QLinearConv",
            inputs: ["x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point", "y_scale", "y_zero_point", "B"],
            minInputs: 8
        ) { attributes, inputs in
            let x = try inputs.required(0)
            let w = try inputs.required(3)
            try expect(x, in: [.int8, .uint8], "x")
            try expect(w, in: [.int8, .uint8], "w")
            try checkScalars(inputs, [1, 2, 6, 7], "QLinearConv")
            let y = try inputs.required(7)
            try expect(y, in: [.int8, .uint8], "y_zero_point")
            return [ValueInfo(dtype: y.dtype, shape: try integerConvolutionShape(attributes, x, w))]
        },
        // uint8 quantisation with the scale and zero point that map [min(x, 0), max(x, 0)] onto [0, 255].
        OperatorSchema("DynamicQuantizeLinear", inputs: ["x"], outputs: 3) { _, inputs in
            let x = try inputs.required(0)
            try expect(x, in: [.float32], "x")
            return [
                ValueInfo(dtype: .uint8, shape: x.shape), ValueInfo(dtype: .float32, shape: []),
                ValueInfo(dtype: .uint8, shape: []),
            ]
        },
    ]
}

extension OperatorSchema {
    /// The output shape of a convolution of 8-bit `x` by `w`, as Conv's geometry gives it.
    static func integerConvolutionShape(_ attributes: Attributes, _ x: ValueInfo, _ w: ValueInfo) throws -> [Int] {
        try ConvGeometry(
            attributes, [ValueInfo(dtype: .float64, shape: x.shape), ValueInfo(dtype: .float64, shape: w.shape)]
        ).outputShape
    }
}
