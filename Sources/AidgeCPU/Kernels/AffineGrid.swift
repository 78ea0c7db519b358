import AidgeCore

/// AffineGrid: the normalised sampling grid of an affine transform, `theta` (N, r, r + 1) applied to the
/// homogeneous coordinates (last dimension first) of every point of the output's spatial size.
func registerAffineGridKernels(_ registry: KernelRegistry) {
    registry.register("AffineGrid", backend: "cpu") { try makeKernel(AffineGridFamily(), $0) }
}

private struct AffineGridFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let output = request.outputs[0].shape
        let batch = output[0]
        let rank = output.count - 2
        let spatial = Array(output.dropFirst().dropLast())
        let points = ShapeUtil.count(spatial)
        let alignCorners = try request.attributes.int("align_corners", default: 0) != 0
        // The normalised coordinate of every position along each dimension.
        let axes: [[Double]] = spatial.map { (n: Int) -> [Double] in
            let size = Double(n)
            return (0..<n).map { (i: Int) -> Double in
                let position = Double(i)
                if alignCorners { return n > 1 ? 2 * position / (size - 1) - 1 : 0 }
                return (2 * position + 1) / size - 1
            }
        }
        return ClosureKernel { inputs, outputs in
            let theta = try presentInput(inputs, 0).pointer(as: T.self)
            let y = try firstOutput(outputs).pointer(as: T.self)
            var index = [Int](repeating: 0, count: rank)
            var homogeneous = [Double](repeating: 1, count: rank + 1)
            for n in 0..<batch {
                let matrix = theta + n * rank * (rank + 1)
                for p in 0..<points {
                    ShapeUtil.unravel(p, spatial, into: &index)
                    for d in 0..<rank { homogeneous[rank - 1 - d] = axes[d][index[d]] }
                    let out = y + (n * points + p) * rank
                    for row in 0..<rank {
                        var sum = 0.0
                        for k in 0...rank { sum += Double(matrix[row * (rank + 1) + k]) * homogeneous[k] }
                        out[row] = T(sum)
                    }
                }
            }
        }
    }
}
