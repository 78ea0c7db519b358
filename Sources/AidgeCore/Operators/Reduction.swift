/// Reductions: ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2, ReduceSumSquare,
/// ReduceLogSum, ReduceLogSumExp (axes as an optional input, opset 18 form), ArgMax and ArgMin (attribute `axis`).

/// Which axes a reduction folds, shared by the schemas and the kernels.
public enum Reductions {
    /// The reductions with axes as an input (opset 18 form; ReduceSum since opset 13).
    public static let reduceTypes: [String] = [
        "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
        "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp",
    ]

    /// The sorted, distinct axes that a Reduce* node folds for an input of rank `rank`. Empty axes fold every
    /// axis, unless `noop_with_empty_axes = 1`: then none is folded (`[]`), and the element map of the reduction
    /// still applies (ReduceL2 gives |x|, ReduceSumSquare x², as in ONNX's reference implementation).
    ///
    /// Axes come from input 1 (an int64/int32 tensor known when planning), else from an `axes` attribute.
    public static func axes(_ attributes: Attributes, _ inputs: [ValueInfo?], rank: Int, type: String) throws
        -> [Int]
    {
        var raw: [Int] = []
        if let info = inputs.optional(1) {
            guard info.dtype == .int64 || info.dtype == .int32 else {
                throw AidgeError.unsupportedType("\(type) axes must be int64 or int32, got \(info.dtype)")
            }
            guard info.shape.count <= 1 else {
                throw AidgeError.shapeMismatch("\(type) axes must be 1-D, got shape \(info.shape)")
            }
            raw = try inputs.constant(1, "\(type) axes").integers()
        } else if attributes.has("axes") {
            raw = try attributes.ints("axes")
        }
        if raw.isEmpty {
            if try attributes.int("noop_with_empty_axes", default: 0) != 0 { return [] }
            return Array(0..<rank)
        }
        return try ShapeOperators.axes(raw, rank: rank, context: type).sorted()
    }

    /// The shape left after folding `axes` of `shape` (kept as 1 when `keepdims`).
    public static func outputShape(_ shape: [Int], axes: [Int], keepdims: Bool) -> [Int] {
        var out: [Int] = []
        for (d, n) in shape.enumerated() {
            if axes.contains(d) {
                if keepdims { out.append(1) }
            } else {
                out.append(n)
            }
        }
        return out
    }

    /// ArgMax/ArgMin's normalised axis.
    public static func argAxis(_ attributes: Attributes, rank: Int, type: String) throws -> Int {
        guard rank > 0 else { throw AidgeError.shapeMismatch("\(type) needs an input of rank >= 1, got a scalar") }
        return try ShapeUtil.axis(try attributes.int("axis", default: 0), rank: rank, context: "\(type) axis")
    }

    /// Element types each reduction takes (ONNX's lists, within the dtypes the engine has).
    static func dtypes(_ type: String) -> Set<DType> {
        let base: Set<DType> = [.float32, .float64, .float16, .bfloat16, .int32, .int64, .uint32, .uint64]
        switch type {
        case "ReduceMax", "ReduceMin": return base.union([.int8, .uint8, .int16, .uint16, .bool])
        case "ArgMax", "ArgMin": return base.union([.int8, .uint8, .int16, .uint16])
        default: return base
        }
    }
}

extension OperatorSchema {
    static let reductionSchemas: [OperatorSchema] =
        Reductions.reduceTypes.map { type in
            OperatorSchema(type, inputs: ["data", "axes"], minInputs: 1) { attributes, inputs in
                let x = try inputs.required(0)
                try expect(x, in: Reductions.dtypes(type), "\(type) input")
                let axes = try Reductions.axes(attributes, inputs, rank: x.shape.count, type: type)
                let keepdims = try attributes.int("keepdims", default: 1) != 0
                return [ValueInfo(dtype: x.dtype, shape: Reductions.outputShape(x.shape, axes: axes, keepdims: keepdims))]
            }
        }
        + ["ArgMax", "ArgMin"].map { type in
            OperatorSchema(type, inputs: ["data"]) { attributes, inputs in
                let x = try inputs.required(0)
                try expect(x, in: Reductions.dtypes(type), "\(type) input")
                let axis = try Reductions.argAxis(attributes, rank: x.shape.count, type: type)
                guard x.shape[axis] > 0 else {
                    throw AidgeError.shapeMismatch("\(type) over axis \(axis) of size 0 (input shape \(x.shape))")
                }
                let keepdims = try attributes.int("keepdims", default: 1) != 0
                return [ValueInfo(dtype: .int64, shape: Reductions.outputShape(x.shape, axes: [axis], keepdims: keepdims))]
            }
        }
        // Running sums and products along one axis, which is read when the kernel runs (the shape does not
        // depend on it).
        + ["CumSum", "CumProd"].map { type in
            OperatorSchema(type, inputs: ["x", "axis"], nonDifferentiable: [1]) { attributes, inputs in
                let x = try inputs.required(0)
                try expect(x, in: [.float32, .float64, .float16, .int32, .int64, .uint32, .uint64], "\(type) input")
                let axis = try inputs.required(1)
                try expect(axis, in: [.int32, .int64], "\(type) axis")
                guard axis.count == 1, axis.shape.count <= 1 else {
                    throw AidgeError.shapeMismatch("\(type) axis must be a scalar, got shape \(axis.shape)")
                }
                for flag in ["exclusive", "reverse"] {
                    let value = try attributes.int(flag, default: 0)
                    guard value == 0 || value == 1 else {
                        throw AidgeError.invalidModel("\(type) attribute '\(flag)' must be 0 or 1, got \(value)")
                    }
                }
                guard !x.shape.isEmpty else { throw AidgeError.shapeMismatch("\(type) cannot scan a scalar") }
                return [ValueInfo(dtype: x.dtype, shape: x.shape)]
            }
        }
}
