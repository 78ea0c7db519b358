import AidgeCore

/// GroupNormalization (the channels split into `num_groups` groups, each normalised over its channels and spatial
/// positions, then scaled and shifted per channel) and MeanVarianceNormalization (normalised over `axes`), both with
/// their statistics in double.
func registerGroupNormalizationKernels(_ registry: KernelRegistry) {
    registry.register("GroupNormalization", backend: "cpu") { try makeKernel(GroupNormalizationFamily(), $0) }
    registry.register("MeanVarianceNormalization", backend: "cpu") { try makeKernel(MeanVarianceFamily(), $0) }
}

private struct GroupNormalizationFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let (batch, channels, spatial) = channelLayout(try request.input(0).shape)
        let groups = try request.attributes.int("num_groups")
        let epsilon = Double(try request.attributes.float("epsilon", default: 1e-5))
        let perGroupParameters = try request.input(1).count == groups && groups != channels
        let groupSize = channels / groups * spatial
        return ClosureKernel { inputs, outputs in
            let x = try presentInput(inputs, 0).pointer(as: T.self)
            let scale = try presentInput(inputs, 1)
            let bias = try presentInput(inputs, 2)
            let y = try firstOutput(outputs).pointer(as: T.self)
            Parallel.forEach(batch * groups) { range in
                for item in range {
                    let start = item * groupSize
                    var sum = 0.0
                    for i in 0..<groupSize { sum += Double(x[start + i]) }
                    let mean = sum / Double(groupSize)
                    var squares = 0.0
                    for i in 0..<groupSize {
                        let d = Double(x[start + i]) - mean
                        squares += d * d
                    }
                    let inverse = 1 / (squares / Double(groupSize) + epsilon).squareRoot()
                    let group = item % groups
                    for k in 0..<(channels / groups) {
                        let channel = group * (channels / groups) + k
                        let p = perGroupParameters ? group : channel
                        let a = inverse * parameter(scale, p)
                        let b = parameter(bias, p)
                        let offset = start + k * spatial
                        for i in 0..<spatial { y[offset + i] = T((Double(x[offset + i]) - mean) * a + b) }
                    }
                }
            }
        }
    }
}

private struct MeanVarianceFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let shape = try request.input(0).shape
        let axes = try Set(request.attributes.ints("axes", default: [0, 2, 3]).map {
            try ShapeUtil.axis($0, rank: shape.count, context: "MeanVarianceNormalization axes")
        })
        // Outer positions (kept axes) and the offsets of one normalised set (reduced axes).
        let strides = ShapeUtil.contiguousStrides(shape)
        func offsets(_ dims: [Int]) -> [Int] {
            var result = [0]
            for d in dims { result = result.flatMap { base in (0..<shape[d]).map { base + $0 * strides[d] } } }
            return result
        }
        let outer = offsets((0..<shape.count).filter { !axes.contains($0) })
        let inner = offsets(axes.sorted())
        return ClosureKernel { inputs, outputs in
            let x = try presentInput(inputs, 0).pointer(as: T.self)
            let y = try firstOutput(outputs).pointer(as: T.self)
            Parallel.forEach(outer.count) { range in
                for o in range {
                    let base = outer[o]
                    var sum = 0.0
                    var squares = 0.0
                    for i in inner {
                        let v = Double(x[base + i])
                        sum += v
                        squares += v * v
                    }
                    let mean = sum / Double(inner.count)
                    // ONNX's function body: (X - E[X]) / (sqrt(E[X²] - E[X]²) + 1e-9).
                    let deviation = max(squares / Double(inner.count) - mean * mean, 0).squareRoot() + 1e-9
                    for i in inner { y[base + i] = T((Double(x[base + i]) - mean) / deviation) }
                }
            }
        }
    }
}
