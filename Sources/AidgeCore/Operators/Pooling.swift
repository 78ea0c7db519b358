/// Pooling: MaxPool, AveragePool and LpPool over sliding windows (1-D, 2-D, 3-D; ONNX's latest attributes: kernel_shape,
/// strides, pads, auto_pad, dilations, ceil_mode, count_include_pad, storage_order), and the global pools.
extension OperatorSchema {
    static let poolingSchemas: [OperatorSchema] = [
        // MaxPool's optional second output, Indices (int64), is inferred too; a node created with one output
        // (the default) does not compute it.
        OperatorSchema("MaxPool", inputs: ["X"], infer: maxPoolInference),
        OperatorSchema("AveragePool", inputs: ["X"], infer: averagePoolInference),
        // (sum over the window of |x|^p)^(1/p); padding adds nothing.
        OperatorSchema("LpPool", inputs: ["X"]) { attributes, inputs in
            let x = try inputs.required(0)
            try expect(x, in: floatTypes, "X")
            let window = try PoolGeometry.window(attributes, x.shape, what: "LpPool")
            guard try attributes.int("p", default: 2) >= 1 else { throw AidgeError.invalidModel("LpPool p must be >= 1") }
            return [ValueInfo(dtype: x.dtype, shape: Array(x.shape.prefix(2)) + window.output)]
        },
        OperatorSchema("GlobalAveragePool", inputs: ["X"], infer: globalPoolInference(floatTypes)),
        OperatorSchema("GlobalMaxPool", inputs: ["X"], infer: globalPoolInference(floatTypes)),
        OperatorSchema("RoiAlign", inputs: ["X", "rois", "batch_indices"]) { attributes, inputs in
            let x = try inputs.required(0)
            let rois = try inputs.required(1)
            let indices = try inputs.required(2)
            try expect(x, in: [.float32, .float64, .float16], "RoiAlign X")
            guard x.shape.count == 4, rois.shape.count == 2, rois.shape[1] == 4, indices.shape == [rois.shape[0]],
                indices.dtype == .int64
            else {
                throw AidgeError.shapeMismatch(
                    "RoiAlign needs X (N, C, H, W), rois (R, 4) and int64 batch_indices (R), got \(x.shape), \(rois.shape) "
                        + "and \(indices.shape)")
            }
            let height = try attributes.int("output_height", default: 1)
            let width = try attributes.int("output_width", default: 1)
            guard height > 0, width > 0, try attributes.int("sampling_ratio", default: 0) >= 0 else {
                throw AidgeError.invalidModel("RoiAlign output_height, output_width must be positive, sampling_ratio >= 0")
            }
            return [ValueInfo(dtype: x.dtype, shape: [rois.shape[0], x.shape[1], height, width])]
        },
        OperatorSchema("MaxUnpool", inputs: ["X", "I", "output_shape"], minInputs: 2) { attributes, inputs in
            let x = try inputs.required(0)
            try expect(x, in: [.float32, .float64, .float16], "MaxUnpool X")
            let indices = try inputs.required(1)
            guard indices.shape == x.shape else {
                throw AidgeError.shapeMismatch("MaxUnpool indices \(indices.shape) must have X's shape \(x.shape)")
            }
            let unpooled = try MaxUnpoolGeometry.unpooledShape(attributes, input: x.shape)
            guard inputs.optional(2) != nil else { return [ValueInfo(dtype: x.dtype, shape: unpooled)] }
            let output = try inputs.constant(2, "MaxUnpool output_shape").integers()
            guard output.count == unpooled.count, zip(output, unpooled).allSatisfy({ $0 >= $1 }) else {
                throw AidgeError.shapeMismatch("MaxUnpool output_shape \(output) must cover the unpooled shape \(unpooled)")
            }
            return [ValueInfo(dtype: x.dtype, shape: output)]
        },
    ]

    /// The types MaxPool takes (ONNX adds 8-bit integers to the floats).
    public static let maxPoolTypes: Set<DType> = floatTypes.union([.int8, .uint8])

    static let maxPoolInference: Inference = { attributes, inputs in
        let x = try inputs.required(0)
        try expect(x, in: maxPoolTypes, "X")
        let window = try PoolGeometry.window(attributes, x.shape, what: "MaxPool")
        let shape = Array(x.shape.prefix(2)) + window.output
        return [ValueInfo(dtype: x.dtype, shape: shape), ValueInfo(dtype: .int64, shape: shape)]
    }

    static let averagePoolInference: Inference = { attributes, inputs in
        let x = try inputs.required(0)
        try expect(x, in: floatTypes, "X")
        let window = try PoolGeometry.window(attributes, x.shape, what: "AveragePool")
        return [ValueInfo(dtype: x.dtype, shape: Array(x.shape.prefix(2)) + window.output)]
    }

    static func globalPoolInference(_ types: Set<DType>) -> Inference {
        { _, inputs in
            let x = try inputs.required(0)
            try expect(x, in: types, "X")
            guard x.shape.count >= 3 else {
                throw AidgeError.shapeMismatch(
                    "global pooling needs an input N x C x spatial..., got shape \(ShapeUtil.text(x.shape))")
            }
            return [ValueInfo(dtype: x.dtype, shape: Array(x.shape.prefix(2)) + [Int](repeating: 1, count: x.shape.count - 2))]
        }
    }
}

/// Window geometry of MaxPool / AveragePool.
public enum PoolGeometry {
    /// The window of a pooling node over input `shape` (N x C x spatial...).
    public static func window(_ attributes: Attributes, _ shape: [Int], what: String) throws -> WindowGeometry {
        guard shape.count >= 3 else {
            throw AidgeError.shapeMismatch("\(what) needs an input N x C x spatial..., got shape \(ShapeUtil.text(shape))")
        }
        guard attributes.has("kernel_shape") else {
            throw AidgeError.invalidModel("\(what): attribute 'kernel_shape' is required")
        }
        let kernel = try attributes.ints("kernel_shape")
        let ceilMode = try attributes.int("ceil_mode", default: 0) != 0
        let window = try WindowGeometry(
            attributes, input: Array(shape[2...]), kernel: kernel, ceilMode: ceilMode, what: what)
        guard window.output.allSatisfy({ $0 >= 1 }) else {
            throw AidgeError.shapeMismatch("\(what): empty output \(window.output) for input \(ShapeUtil.text(shape))")
        }
        return window
    }
}

/// MaxUnpool's unpooled shape: (in - 1) · stride - pads + kernel along each spatial dimension.
public enum MaxUnpoolGeometry {
    public static func unpooledShape(_ attributes: Attributes, input: [Int]) throws -> [Int] {
        let kernel = try attributes.ints("kernel_shape")
        let rank = kernel.count
        let strides = try attributes.ints("strides", default: Array(repeating: 1, count: rank))
        let pads = try attributes.ints("pads", default: Array(repeating: 0, count: 2 * rank))
        guard input.count == rank + 2, strides.count == rank, pads.count == 2 * rank else {
            throw AidgeError.invalidModel(
                "MaxUnpool kernel_shape \(kernel), strides \(strides) and pads \(pads) do not fit an input of shape \(input)")
        }
        let spatial = (0..<rank).map { d in (input[d + 2] - 1) * strides[d] - pads[d] - pads[d + rank] + kernel[d] }
        guard spatial.allSatisfy({ $0 > 0 }) else {
            throw AidgeError.shapeMismatch("MaxUnpool gives a non-positive output size \(spatial)")
        }
        return Array(input.prefix(2)) + spatial
    }
}
