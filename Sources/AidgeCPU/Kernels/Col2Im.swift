import AidgeCore

/// Col2Im: the inverse of im2col; every column entry is added back into the image position its block and kernel
/// offset cover (overlapping blocks sum).
func registerCol2ImKernels(_ registry: KernelRegistry) {
    registry.register("Col2Im", backend: "cpu") { try makeKernel(Col2ImFamily(), $0) }
}

private struct Col2ImFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        try kernel(T.self, request)
    }

    func integer<T: FixedWidthInteger & ArithmeticElement>(_ type: T.Type, _ request: KernelRequest) throws
        -> any Kernel
    {
        try kernel(T.self, request)
    }

    private func kernel<T: ArithmeticElement>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let geometry = try Col2ImGeometry(attributes: request.attributes, inputs: request.inputs)
        let image = geometry.image
        let imageSize = ShapeUtil.count(image)
        let kernelSize = ShapeUtil.count(geometry.kernel)
        let blockCount = ShapeUtil.count(geometry.blocks)
        let channels = geometry.channels
        let batch = try request.input(0).shape[0]
        let rank = image.count
        let imageStrides = ShapeUtil.contiguousStrides(image)
        return ClosureKernel { inputs, outputs in
            let columns = try presentInput(inputs, 0).pointer(as: T.self)
            let y = try firstOutput(outputs).pointer(as: T.self)
            Parallel.forEach(batch * channels) { range in
                var kernelIndex = [Int](repeating: 0, count: rank)
                var blockIndex = [Int](repeating: 0, count: rank)
                for plane in range {
                    let out = y + plane * imageSize
                    out.update(repeating: T.arithZero, count: imageSize)
                    for k in 0..<kernelSize {
                        ShapeUtil.unravel(k, geometry.kernel, into: &kernelIndex)
                        let column = columns + (plane * kernelSize + k) * blockCount
                        for b in 0..<blockCount {
                            ShapeUtil.unravel(b, geometry.blocks, into: &blockIndex)
                            var offset = 0
                            var inside = true
                            for d in 0..<rank {
                                let p = blockIndex[d] * geometry.strides[d] - geometry.pads[d]
                                    + kernelIndex[d] * geometry.dilations[d]
                                if p < 0 || p >= image[d] { inside = false; break }
                                offset += p * imageStrides[d]
                            }
                            if inside { out[offset] = T.arithAdd(out[offset], column[b]) }
                        }
                    }
                }
            }
        }
    }
}
