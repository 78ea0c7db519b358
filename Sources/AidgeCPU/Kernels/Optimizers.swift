import AidgeCore

/// Adagrad, Momentum (standard or Nesterov) and Adam as ONNX defines them, element by element in double.
func registerOptimizerKernels(_ registry: KernelRegistry) {
    for (name, groups) in OperatorSchema.optimizerGroups {
        registry.register("ai.onnx.preview.training.\(name)", backend: "cpu") { request in
            let a = request.attributes
            let epsilon = Double(try a.float("epsilon", default: 0))
            let norm = Double(try a.float("norm_coefficient", default: 0))
            let decay = Double(try a.float("decay_factor", default: 0))
            let alpha = Double(try a.float("alpha", default: name == "Adam" ? 0.9 : 0))
            let beta = Double(try a.float("beta", default: name == "Adam" ? 0.999 : 0))
            let normPost = Double(try a.float("norm_coefficient_post", default: 0))
            let nesterov = try a.string("mode", default: "standard") == "nesterov"
            let n = (request.inputs.count - 2) / groups
            return ClosureKernel { inputs, outputs in
                let r = try presentInput(inputs, 0).doubles().first ?? 0
                let t = Double(try presentInput(inputs, 1).integers().first ?? 0)
                for i in 0..<n {
                    let x = try presentInput(inputs, 2 + i)
                    let tensors = try (0..<groups).map { try presentInput(inputs, 2 + $0 * n + i).doubles() }
                    var results = [[Double]](repeating: [Double](repeating: 0, count: x.count), count: groups - 1)
                    for k in 0..<x.count {
                        let value = tensors[0][k]
                        let gradient = norm * value + tensors[1][k]
                        switch name {
                        case "Adagrad":
                            let h = tensors[2][k] + gradient * gradient
                            results[0][k] = value - r / (1 + t * decay) * gradient / (h.squareRoot() + epsilon)
                            results[1][k] = h
                        case "Momentum":
                            let v = alpha * tensors[2][k] + (t > 0 ? beta : 1) * gradient
                            results[0][k] = value - r * (nesterov ? gradient + alpha * v : v)
                            results[1][k] = v
                        default:
                            let v = alpha * tensors[2][k] + (1 - alpha) * gradient
                            let h = beta * tensors[3][k] + (1 - beta) * gradient * gradient
                            let rate = t > 0 ? r * (1 - Double.mathPow(beta, t)).squareRoot() / (1 - Double.mathPow(alpha, t)) : r
                            results[0][k] = (1 - normPost) * (value - rate * v / (h.squareRoot() + epsilon))
                            results[1][k] = v
                            results[2][k] = h
                        }
                    }
                    for (g, values) in results.enumerated() {
                        let out = outputs[g * n + i]
                        copyElements(from: Tensor(values).cast(to: out.dtype), to: out)
                    }
                }
            }
        }
    }
}
