/// Activation functions: element-wise non-linearities, Clip, PRelu, and Softmax / LogSoftmax along one axis.
extension OperatorSchema {
    static let activationSchemas: [OperatorSchema] =
        [unary("Relu", types: signedTypes)]
        + [
            "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu", "Softplus", "Softsign",
            "ThresholdedRelu", "Celu", "Mish", "Swish", "Shrink",
        ].map { unary($0, types: floatTypes) }
        + [
            OperatorSchema("Gelu", inputs: ["X"], infer: geluInference),
            OperatorSchema("Clip", inputs: ["input", "min", "max"], minInputs: 1, nonDifferentiable: [1, 2], infer: clipInference),
            OperatorSchema("PRelu", inputs: ["X", "slope"], infer: preluInference),
            OperatorSchema("Softmax", inputs: ["input"], infer: softmaxInference),
            OperatorSchema("LogSoftmax", inputs: ["input"], infer: softmaxInference),
            OperatorSchema("Hardmax", inputs: ["input"], infer: softmaxInference),
            // A · sigmoid(alpha · A) · B, on two inputs of one shape.
            OperatorSchema("SwiGLU", inputs: ["A", "B"]) { _, inputs in
                let a = try inputs.required(0)
                let b = try inputs.required(1)
                try expect(a, in: floatTypes, "A")
                guard a.dtype == b.dtype, a.shape == b.shape else {
                    throw AidgeError.shapeMismatch("SwiGLU needs A and B of one dtype and shape, got \(a.shape) and \(b.shape)")
                }
                return [ValueInfo(dtype: a.dtype, shape: a.shape)]
            },
        ]

    /// Gelu: `approximate` is "none" (erf) or "tanh".
    static let geluInference: Inference = { attributes, inputs in
        let approximate = try attributes.string("approximate", default: "none")
        guard approximate == "none" || approximate == "tanh" else {
            throw AidgeError.invalidModel("Gelu attribute 'approximate' must be \"none\" or \"tanh\", got \"\(approximate)\"")
        }
        let x = try inputs.required(0)
        try expect(x, in: floatTypes)
        return [ValueInfo(dtype: x.dtype, shape: x.shape)]
    }

    /// Clip: the optional bounds are one-element tensors (converted to the input's dtype when they differ).
    static let clipInference: Inference = { _, inputs in
        let x = try inputs.required(0)
        try expect(x, in: numericTypes)
        for (i, name) in [(1, "min"), (2, "max")] {
            guard let bound = inputs.optional(i) else { continue }
            try expect(bound, in: numericTypes, name)
            guard bound.count == 1, bound.shape.count <= 1 else {
                throw AidgeError.shapeMismatch("Clip \(name) must be a scalar, got shape \(bound.shape)")
            }
        }
        return [ValueInfo(dtype: x.dtype, shape: x.shape)]
    }

    /// PRelu: the slope broadcasts to the input's shape (one-directional broadcasting).
    static let preluInference: Inference = { _, inputs in
        let x = try inputs.required(0)
        let slope = try inputs.required(1)
        try expect(x, in: signedTypes)
        guard slope.dtype == x.dtype else {
            throw AidgeError.unsupportedType("PRelu slope has dtype \(slope.dtype) but X has \(x.dtype)")
        }
        let shape = try ShapeUtil.broadcast(x.shape, slope.shape)
        guard shape == x.shape else {
            throw AidgeError.shapeMismatch("PRelu slope of shape \(slope.shape) does not broadcast to X's shape \(x.shape)")
        }
        return [ValueInfo(dtype: x.dtype, shape: x.shape)]
    }

    /// Softmax and LogSoftmax (opset 13): normalise along `axis` (default -1).
    static let softmaxInference: Inference = { attributes, inputs in
        let x = try inputs.required(0)
        try expect(x, in: floatTypes)
        _ = try ShapeUtil.axis(try attributes.int("axis", default: -1), rank: max(x.shape.count, 1))
        return [ValueInfo(dtype: x.dtype, shape: x.shape)]
    }
}
