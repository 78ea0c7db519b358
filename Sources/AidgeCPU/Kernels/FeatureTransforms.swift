import AidgeCore

/// The ai.onnx.ml feature transforms: Binarizer (1 where X > threshold, else 0, in X's type) and
/// ArrayFeatureExtractor (the entries of X's last axis that Y lists, per row).
func registerFeatureTransformKernels(_ registry: KernelRegistry) {
    registry.register("ai.onnx.ml.Binarizer", backend: "cpu") { try makeKernel(BinarizerFamily(), $0) }
    registry.register("ai.onnx.ml.ArrayFeatureExtractor", backend: "cpu") { request in
        let x = try request.input(0)
        guard let last = x.shape.last else { throw request.unsupportedType(x.dtype) }
        let size = x.dtype.byteSize
        let rows = x.count / max(last, 1)
        let picked = try request.input(1).count
        let node = request.nodeName
        return ClosureKernel { inputs, outputs in
            let source = try presentInput(inputs, 0).rawPointer
            let indices = try presentInput(inputs, 1).integers()
            let y = try firstOutput(outputs).rawPointer
            if let bad = indices.first(where: { $0 < 0 || $0 >= last }) {
                throw AidgeError.invalidArgument(
                    "ArrayFeatureExtractor node \(node): index \(bad) is out of range for X's last axis (size \(last))")
            }
            for r in 0..<rows {
                for (k, index) in indices.prefix(picked).enumerated() {
                    (y + (r * picked + k) * size).copyMemory(from: source + (r * last + index) * size, byteCount: size)
                }
            }
        }
    }
}

private struct BinarizerFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        try binarizer(T.self, request) { Double($0) }
    }

    func integer<T: FixedWidthInteger & ArithmeticElement>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        try binarizer(T.self, request) { Double($0) }
    }

    private func binarizer<T: Numeric>(
        _: T.Type, _ request: KernelRequest, _ value: @escaping (T) -> Double
    ) throws -> any Kernel {
        let threshold = Double(try request.attributes.float("threshold", default: 0))
        let count = try request.input(0).count
        return ClosureKernel { inputs, outputs in
            let x = UnsafePointer(try presentInput(inputs, 0).pointer(as: T.self))
            let y = try firstOutput(outputs).pointer(as: T.self)
            Parallel.forEach(count, grain: 1 << 15) { range in
                for i in range { y[i] = value(x[i]) > threshold ? 1 : 0 }
            }
        }
    }
}
