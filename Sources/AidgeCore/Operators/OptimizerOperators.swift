/// ONNX's training operators (domain ai.onnx.preview.training): Adagrad, Momentum and Adam update n tensors at
/// once from the rate R, the step count T, the tensors, their gradients and their accumulators.
extension OperatorSchema {
    /// Inputs per updated tensor (X, G and the accumulators) of each optimizer.
    public static let optimizerGroups = ["Adagrad": 3, "Momentum": 3, "Adam": 4]

    static let optimizerSchemas: [OperatorSchema] = optimizerGroups.map { name, groups in
        OperatorSchema("ai.onnx.preview.training.\(name)", inputs: ["R", "T", "inputs"], minInputs: 2 + groups, variadic: true) {
            _, inputs in
            let n = (inputs.count - 2) / groups
            guard n >= 1, inputs.count == 2 + groups * n else {
                throw AidgeError.invalidModel("\(name) takes R, T and \(groups) groups of tensors, got \(inputs.count) inputs")
            }
            try expect(try inputs.required(0), in: [.float32, .float64], "\(name) R")
            try expect(try inputs.required(1), in: [.int64], "\(name) T")
            for i in 0..<n {
                let x = try inputs.required(2 + i)
                try expect(x, in: [.float32, .float64], "\(name) X")
                for g in 1..<groups {
                    let other = try inputs.required(2 + g * n + i)
                    guard other.shape == x.shape, other.dtype == x.dtype else {
                        throw AidgeError.shapeMismatch("\(name) tensor \(i): group \(g) has \(other.shape), X has \(x.shape)")
                    }
                }
            }
            // The new X, then each accumulator (all but G), for every tensor.
            return (0..<(groups - 1)).flatMap { g in
                (0..<n).map { i in
                    let source = try? inputs.required(2 + (g == 0 ? 0 : g + 1) * n + i)
                    return ValueInfo(dtype: source?.dtype ?? .float32, shape: source?.shape ?? [])
                }
            }
        }
    }
}
