import AidgeCore

/// RotaryEmbedding: each (batch, position, head) row rotates its feature pairs (first and second halves of the
/// rotated features, or interleaved neighbours) by the cache's cos and sin; features past the rotated ones are copied.
func registerRotaryEmbeddingKernels(_ registry: KernelRegistry) {
    registry.register("RotaryEmbedding", backend: "cpu") { try makeKernel(RotaryFamily(), $0) }
}

private struct RotaryFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let l = try RotaryLayout(request.attributes, request.inputs)
        let half = l.rotated / 2
        return ClosureKernel { inputs, outputs in
            let x = try presentInput(inputs, 0).pointer(as: T.self)
            let cos = try presentInput(inputs, 1).pointer(as: T.self)
            let sin = try presentInput(inputs, 2).pointer(as: T.self)
            let ids = inputs.count > 3 ? inputs[3]?.pointer(as: Int64.self) : nil
            let y = try firstOutput(outputs).pointer(as: T.self)
            for b in 0..<l.batch {
                for s in 0..<l.sequence {
                    var row = b * l.sequence + s
                    if let ids, let positions = l.positions {
                        let id = Int(ids[row])
                        guard id >= 0, id < positions else {
                            throw AidgeError.invalidArgument(
                                "RotaryEmbedding position id \(id) is out of range for \(positions) cached positions")
                        }
                        row = id
                    }
                    for h in 0..<l.heads {
                        let base = l.headsFirst
                            ? ((b * l.heads + h) * l.sequence + s) * l.headSize
                            : ((b * l.sequence + s) * l.heads + h) * l.headSize
                        for i in 0..<half {
                            let (first, second) = l.interleaved ? (base + 2 * i, base + 2 * i + 1) : (base + i, base + half + i)
                            let (c, sn) = (cos[row * half + i], sin[row * half + i])
                            let (x1, x2) = (x[first], x[second])
                            y[first] = c * x1 - sn * x2
                            y[second] = sn * x1 + c * x2
                        }
                        for d in l.rotated..<l.headSize { y[base + d] = x[base + d] }
                    }
                }
            }
        }
    }
}
