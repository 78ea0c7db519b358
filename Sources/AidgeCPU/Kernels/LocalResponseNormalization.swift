import AidgeCore

/// LRN: each element divided by (bias + alpha / size · Σ x²)^beta, the sum over the `size` neighbouring channels.
func registerLocalResponseNormalizationKernels(_ registry: KernelRegistry) {
    registry.register("LRN", backend: "cpu") { try makeKernel(LocalResponseNormalizationFamily(), $0) }
}

private struct LocalResponseNormalizationFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let (batch, channels, spatial) = channelLayout(try request.input(0).shape)
        let size = try request.attributes.int("size")
        let alpha = Double(try request.attributes.float("alpha", default: 1e-4))
        let beta = Double(try request.attributes.float("beta", default: 0.75))
        let bias = Double(try request.attributes.float("bias", default: 1))
        let before = (size - 1) / 2
        let after = size - 1 - before
        return ClosureKernel { inputs, outputs in
            let x = try presentInput(inputs, 0).pointer(as: T.self)
            let y = try firstOutput(outputs).pointer(as: T.self)
            Parallel.forEach(batch * channels) { range in
                for item in range {
                    let (n, c) = item.quotientAndRemainder(dividingBy: channels)
                    let window = max(c - before, 0)...min(c + after, channels - 1)
                    for s in 0..<spatial {
                        var squares = 0.0
                        for k in window {
                            let v = Double(x[(n * channels + k) * spatial + s])
                            squares += v * v
                        }
                        let i = item * spatial + s
                        y[i] = T(Double(x[i]) / Double.mathPow(bias + alpha / Double(size) * squares, beta))
                    }
                }
            }
        }
    }
}
