import AidgeCore

/// Einsum: for every output element, the sum over the contracted labels of the product of the operands, walking
/// each operand by its per-label strides (floats accumulate in double).
func registerEinsumKernels(_ registry: KernelRegistry) {
    registry.register("Einsum", backend: "cpu") { try makeKernel(EinsumFamily(), $0) }
}

private struct EinsumFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        try kernel(request, load: { (v: T) -> Double in Double(v) }, store: { (v: Double) -> T in T(v) })
    }

    func integer<T: FixedWidthInteger & ArithmeticElement>(_ type: T.Type, _ request: KernelRequest) throws
        -> any Kernel
    {
        try kernel(request, load: { (v: T) -> T in v }, store: { (v: T) -> T in v })
    }

    /// `A` is the accumulator type; `load` widens an element into it, `store` narrows the sum back.
    private func kernel<T: TensorElement, A: Numeric>(
        _ request: KernelRequest, load: @escaping @Sendable (T) -> A, store: @escaping @Sendable (A) -> T
    ) throws -> any Kernel {
        let shapes = try (0..<request.inputs.count).map { try request.input($0).shape }
        let equation = try EinsumEquation(try request.attributes.string("equation"), shapes: shapes)
        let outputCount = ShapeUtil.count(equation.outputShape)
        let summedSizes = Array(equation.sizes.dropFirst(equation.outputRank))
        let summedCount = ShapeUtil.count(summedSizes)
        return ClosureKernel { inputs, outputs in
            let operands = try (0..<shapes.count).map { try presentInput(inputs, $0).pointer(as: T.self) }
            let y = try firstOutput(outputs).pointer(as: T.self)
            Parallel.forEach(outputCount, grain: max(1, 4096 / max(summedCount, 1))) { range in
                var index = [Int](repeating: 0, count: equation.sizes.count)
                for o in range {
                    // The output labels' positions, from the flat output index.
                    var rest = o
                    for d in stride(from: equation.outputRank - 1, through: 0, by: -1) {
                        index[d] = rest % equation.sizes[d]
                        rest /= equation.sizes[d]
                    }
                    var total = A.zero
                    for s in 0..<summedCount {
                        var rest = s
                        for d in stride(from: equation.sizes.count - 1, through: equation.outputRank, by: -1) {
                            index[d] = rest % equation.sizes[d]
                            rest /= equation.sizes[d]
                        }
                        var product: A = 1
                        for (k, operand) in operands.enumerated() {
                            var offset = 0
                            for (d, stride) in equation.strides[k].enumerated() { offset += index[d] * stride }
                            product *= load(operand[offset])
                        }
                        total += product
                    }
                    y[o] = store(total)
                }
            }
        }
    }
}
