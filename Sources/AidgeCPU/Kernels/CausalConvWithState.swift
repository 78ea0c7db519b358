import AidgeCore

/// CausalConvWithState: a depthwise 1-D convolution over the past state followed by the input (the streaming
/// form of a causal convolution), with an optional SiLU, and the last kernel-1 positions as the next state.
func registerCausalConvWithStateKernels(_ registry: KernelRegistry) {
    registry.register("CausalConvWithState", backend: "cpu") { try makeKernel(CausalConvFamily(), $0) }
}

private struct CausalConvFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let x = try request.input(0)
        let (batch, channels, length) = (x.shape[0], x.shape[1], x.shape[2])
        let kernel = try request.input(1).shape[2]
        let history = kernel - 1
        let silu = try request.attributes.string("activation", default: "none") != "none"
        return ClosureKernel { inputs, outputs in
            let input = try presentInput(inputs, 0).pointer(as: T.self)
            let weight = try presentInput(inputs, 1).pointer(as: T.self)
            let bias = inputs.count > 2 ? inputs[2]?.pointer(as: T.self) : nil
            let past = inputs.count > 3 ? inputs[3]?.pointer(as: T.self) : nil
            guard outputs.count >= 2 else { throw AidgeError.invalidModel("CausalConvWithState has two outputs") }
            let y = outputs[0].pointer(as: T.self)
            let present = outputs[1].pointer(as: T.self)
            Parallel.forEach(batch * channels) { range in
                for line in range {
                    let c = line % channels
                    // Position j of the padded line: the past state, then the input.
                    func padded(_ j: Int) -> Double {
                        if j < history { return past.map { Double($0[line * history + j]) } ?? 0 }
                        return Double(input[line * length + j - history])
                    }
                    for t in 0..<length {
                        var sum = bias.map { Double($0[c]) } ?? 0
                        for k in 0..<kernel { sum += Double(weight[c * kernel + k]) * padded(t + k) }
                        var value = T(sum)
                        if silu {
                            let v = Double(value)
                            value = T(v / (1 + Double.mathExp(-v)))
                        }
                        y[line * length + t] = value
                    }
                    for j in 0..<history { present[line * history + j] = T(padded(length + j)) }
                }
            }
        }
    }
}
