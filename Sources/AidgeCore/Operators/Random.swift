/// Random generators: RandomUniform, RandomNormal (of a shape attribute or like an input), Bernoulli and
/// Multinomial. They are not deterministic, so planning never evaluates them ahead of time.
extension OperatorSchema {
    static let randomSchemas: [OperatorSchema] = [
        OperatorSchema("RandomUniform", inputs: [], deterministic: false) { attributes, _ in
            [try generated(attributes, like: nil)]
        },
        OperatorSchema("RandomNormal", inputs: [], deterministic: false) { attributes, _ in
            [try generated(attributes, like: nil)]
        },
        OperatorSchema("RandomUniformLike", inputs: ["input"], deterministic: false) { attributes, inputs in
            [try generated(attributes, like: try inputs.required(0))]
        },
        OperatorSchema("RandomNormalLike", inputs: ["input"], deterministic: false) { attributes, inputs in
            [try generated(attributes, like: try inputs.required(0))]
        },
        OperatorSchema("Bernoulli", inputs: ["input"], deterministic: false) { attributes, inputs in
            let p = try inputs.required(0)
            try expect(p, in: floatTypes, "Bernoulli input")
            let dtype = try attributes.has("dtype") ? onnxDType(try attributes.int("dtype")) : p.dtype
            return [ValueInfo(dtype: dtype, shape: p.shape)]
        },
        OperatorSchema("Multinomial", inputs: ["input"], deterministic: false) { attributes, inputs in
            let x = try inputs.required(0)
            try expect(x, in: floatTypes, "Multinomial input")
            guard x.shape.count == 2 else {
                throw AidgeError.shapeMismatch("Multinomial takes [batch, classes] log-probabilities, got \(ShapeUtil.text(x.shape))")
            }
            let samples = try attributes.int("sample_size", default: 1)
            guard samples >= 0 else { throw AidgeError.invalidArgument("Multinomial sample_size \(samples) is negative") }
            let dtype = try onnxDType(try attributes.int("dtype", default: 6))
            guard dtype == .int32 || dtype == .int64 else {
                throw AidgeError.unsupportedType("Multinomial gives int32 or int64 samples, not \(dtype)")
            }
            return [ValueInfo(dtype: dtype, shape: [x.shape[0], samples])]
        },
    ]

    /// The output of RandomUniform/RandomNormal (shape and dtype attributes) or their Like forms (the input's shape;
    /// its dtype unless `dtype` is given): a float type.
    private static func generated(_ attributes: Attributes, like input: ValueInfo?) throws -> ValueInfo {
        let dtype = try attributes.has("dtype") || input == nil
            ? onnxDType(try attributes.int("dtype", default: 1)) : input?.dtype ?? .float32
        guard floatTypes.contains(dtype) else {
            throw AidgeError.unsupportedType("random values are generated in float types, not \(dtype)")
        }
        let shape = try input?.shape ?? attributes.ints("shape")
        guard shape.allSatisfy({ $0 >= 0 }) else { throw AidgeError.invalidArgument("random shape \(shape) has a negative size") }
        return ValueInfo(dtype: dtype, shape: shape)
    }

    private static func onnxDType(_ code: Int) throws -> DType {
        guard let dtype = DType(onnx: code) else { throw AidgeError.unsupportedType("ONNX data type \(code) is not supported") }
        return dtype
    }
}
