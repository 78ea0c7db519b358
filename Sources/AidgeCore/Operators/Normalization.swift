/// Normalisations: BatchNormalization, LayerNormalization, RMSNormalization, InstanceNormalization and
/// LpNormalization.

/// Shape rules of the normalisations, shared by the schemas and the kernels.
public enum Normalizations {
    /// Checks that a per-channel parameter holds `channels` values (1-D, or a scalar for one channel).
    static func checkChannelParameter(_ info: ValueInfo, channels: Int, _ what: String, _ type: String) throws {
        try OperatorSchema.expect(info, in: OperatorSchema.floatTypes, "\(type) \(what)")
        guard info.shape.count <= 1, info.count == channels else {
            throw AidgeError.shapeMismatch(
                "\(type) \(what) must hold one value per channel (\(channels)), got shape \(info.shape)")
        }
    }

    /// LayerNormalization's normalised axis (`axis`, default -1) for an input of rank `rank`.
    public static func layerAxis(_ attributes: Attributes, rank: Int) throws -> Int {
        let raw = try attributes.int("axis", default: -1)
        return try ShapeUtil.axis(raw, rank: rank, context: "LayerNormalization axis")
    }

    /// Whether `shape` broadcasts to `target` without changing `target` (NumPy rules, one direction).
    public static func broadcasts(_ shape: [Int], to target: [Int]) -> Bool {
        guard shape.count <= target.count else {
            return shape.prefix(shape.count - target.count).allSatisfy { $0 == 1 }
                && broadcasts(Array(shape.suffix(target.count)), to: target)
        }
        let offset = target.count - shape.count
        return shape.enumerated().allSatisfy { $0.element == 1 || $0.element == target[$0.offset + offset] }
    }
}

extension OperatorSchema {
    static let normalizationSchemas: [OperatorSchema] = [
        // Inference form: Y = (X - mean) / sqrt(var + epsilon) * scale + B, per channel (axis 1). In training
        // mode (the graph's, like PyTorch's module.train()) the statistics are the batch's and the running ones
        // are updated in place (`stateInputs`); `training_mode` is accepted, the graph's mode decides.
        OperatorSchema(
            "BatchNormalization", inputs: ["X", "scale", "B", "input_mean", "input_var"],
            stateInputs: [3, 4], trainingForm: true) {
            attributes, inputs in
            let x = try inputs.required(0)
            try expect(x, in: floatTypes, "BatchNormalization input")
            guard x.shape.count >= 2 else {
                throw AidgeError.shapeMismatch(
                    "BatchNormalization needs an input of rank >= 2 (N x C x ...), got shape \(x.shape)")
            }
            let channels = x.shape[1]
            for (i, what) in [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")] {
                try Normalizations.checkChannelParameter(
                    try inputs.required(i), channels: channels, what, "BatchNormalization")
            }
            // Y, then the optional running_mean and running_var outputs of ONNX training graphs (a node
            // created with one output, the default, does not have them).
            let mean = try inputs.required(3)
            let variance = try inputs.required(4)
            return [
                ValueInfo(dtype: x.dtype, shape: x.shape), ValueInfo(dtype: mean.dtype, shape: mean.shape),
                ValueInfo(dtype: variance.dtype, shape: variance.shape),
            ]
        },

        // Y, and the Mean and InvStdDev of each normalised row (dimensions from `axis` on set to 1); a node may
        // use only Y.
        OperatorSchema("LayerNormalization", inputs: ["X", "Scale", "B"], minInputs: 2, outputs: 3) {
            attributes, inputs in
            let x = try inputs.required(0)
            try expect(x, in: floatTypes, "LayerNormalization input")
            let axis = try Normalizations.layerAxis(attributes, rank: x.shape.count)
            let normalized = Array(x.shape[axis...])
            for (i, what) in [(1, "Scale"), (2, "B")] {
                guard let p = inputs.optional(i) else { continue }
                guard p.dtype == x.dtype else {
                    throw AidgeError.unsupportedType(
                        "LayerNormalization \(what) has dtype \(p.dtype), the input \(x.dtype)")
                }
                guard Normalizations.broadcasts(p.shape, to: normalized) else {
                    throw AidgeError.shapeMismatch(
                        "LayerNormalization \(what) of shape \(p.shape) does not broadcast to the normalised shape "
                            + "\(normalized) (input \(x.shape), axis \(axis))")
                }
            }
            let stash: DType = try attributes.int("stash_type", default: 1) == 1 ? .float32 : x.dtype
            let statsShape = x.shape.enumerated().map { $0.offset < axis ? $0.element : 1 }
            return [
                ValueInfo(dtype: x.dtype, shape: x.shape), ValueInfo(dtype: stash, shape: statsShape),
                ValueInfo(dtype: stash, shape: statsShape),
            ]
        },

        // Y = (x - mean) / sqrt(var + epsilon) * scale[c] + B[c], statistics over the spatial axes of each
        // (n, c).
        // X / sqrt(mean(X² over the axes from `axis` on) + epsilon) · scale (scale broadcast to X).
        OperatorSchema("RMSNormalization", inputs: ["X", "scale"]) { attributes, inputs in
            let x = try inputs.required(0)
            let scale = try inputs.required(1)
            try expect(x, in: floatTypes, "RMSNormalization input")
            guard scale.dtype == x.dtype else {
                throw AidgeError.unsupportedType("RMSNormalization scale is \(scale.dtype), X is \(x.dtype)")
            }
            _ = try Normalizations.layerAxis(attributes, rank: max(x.shape.count, 1))
            guard Normalizations.broadcasts(scale.shape, to: x.shape) else {
                throw AidgeError.shapeMismatch("RMSNormalization scale \(scale.shape) does not broadcast to X \(x.shape)")
            }
            return [ValueInfo(dtype: x.dtype, shape: x.shape)]
        },

        // X divided by its L1 or L2 norm along `axis`.
        OperatorSchema("LpNormalization", inputs: ["input"]) { attributes, inputs in
            let x = try inputs.required(0)
            try expect(x, in: floatTypes)
            _ = try ShapeUtil.axis(try attributes.int("axis", default: -1), rank: max(x.shape.count, 1))
            let p = try attributes.int("p", default: 2)
            guard p == 1 || p == 2 else { throw AidgeError.invalidModel("LpNormalization p must be 1 or 2, got \(p)") }
            return [ValueInfo(dtype: x.dtype, shape: x.shape)]
        },

        OperatorSchema("LRN", inputs: ["X"]) { attributes, inputs in
            let x = try inputs.required(0)
            try expect(x, in: [.float32, .float64, .float16], "LRN input")
            guard x.shape.count >= 3, try attributes.int("size") > 0 else {
                throw AidgeError.shapeMismatch("LRN needs an input (N, C, D1, ...) and a positive size, got shape \(x.shape)")
            }
            return [ValueInfo(dtype: x.dtype, shape: x.shape)]
        },
        // Opset 18 had one scale and bias per group, opset 21 one per channel: both are taken.
        OperatorSchema("GroupNormalization", inputs: ["X", "scale", "bias"]) { attributes, inputs in
            let x = try inputs.required(0)
            try expect(x, in: [.float32, .float64, .float16], "GroupNormalization input")
            let groups = try attributes.int("num_groups")
            guard x.shape.count >= 2, groups > 0, x.shape[1] % groups == 0 else {
                throw AidgeError.shapeMismatch(
                    "GroupNormalization needs an input (N, C, ...) whose C divides into num_groups (\(groups)), got \(x.shape)")
            }
            for i in 1...2 {
                let p = try inputs.required(i)
                guard p.shape.count == 1, p.count == x.shape[1] || p.count == groups else {
                    throw AidgeError.shapeMismatch(
                        "GroupNormalization \(i == 1 ? "scale" : "bias") must hold one value per channel, got shape \(p.shape)")
                }
            }
            return [ValueInfo(dtype: x.dtype, shape: x.shape)]
        },
        OperatorSchema("MeanVarianceNormalization", inputs: ["X"]) { attributes, inputs in
            let x = try inputs.required(0)
            try expect(x, in: [.float32, .float64, .float16], "MeanVarianceNormalization input")
            for axis in try attributes.ints("axes", default: [0, 2, 3]) {
                _ = try ShapeUtil.axis(axis, rank: x.shape.count, context: "MeanVarianceNormalization axes")
            }
            return [ValueInfo(dtype: x.dtype, shape: x.shape)]
        },
        OperatorSchema("InstanceNormalization", inputs: ["input", "scale", "B"]) { _, inputs in
            let x = try inputs.required(0)
            try expect(x, in: floatTypes, "InstanceNormalization input")
            guard x.shape.count >= 2 else {
                throw AidgeError.shapeMismatch(
                    "InstanceNormalization needs an input of rank >= 2 (N x C x ...), got shape \(x.shape)")
            }
            for (i, what) in [(1, "scale"), (2, "B")] {
                try Normalizations.checkChannelParameter(
                    try inputs.required(i), channels: x.shape[1], what, "InstanceNormalization")
            }
            return [ValueInfo(dtype: x.dtype, shape: x.shape)]
        },
    ]
}
