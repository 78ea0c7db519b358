import AidgeCore

/// MaxUnpool: X's values written at the flat positions MaxPool's indices name, in a zero tensor of the unpooled
/// shape, placed at the origin of a larger `output_shape` when one is given.
func registerMaxUnpoolKernels(_ registry: KernelRegistry) {
    registry.register("MaxUnpool", backend: "cpu") { try makeKernel(MaxUnpoolFamily(), $0) }
}

private struct MaxUnpoolFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let x = try request.input(0)
        let indices = try request.input(1)
        guard indices.dtype == .int64 else { throw request.unsupportedType(indices.dtype) }
        let unpooled = try MaxUnpoolGeometry.unpooledShape(request.attributes, input: x.shape)
        let output = request.outputs[0].shape
        let unpooledCount = ShapeUtil.count(unpooled)
        let count = x.count
        let scratch = Tensor(zeros: [unpooledCount], dtype: x.dtype)
        let node = request.nodeName
        return ClosureKernel { inputs, outputs in
            let values = try presentInput(inputs, 0).pointer(as: T.self)
            let positions = try presentInput(inputs, 1).pointer(as: Int64.self)
            let y = try firstOutput(outputs).pointer(as: T.self)
            let direct = output == unpooled
            let target = direct ? y : scratch.pointer(as: T.self)
            target.update(repeating: T.arithZero, count: unpooledCount)
            for i in 0..<count {
                let p = Int(positions[i])
                guard p >= 0 && p < unpooledCount else {
                    throw AidgeError.invalidArgument(
                        "MaxUnpool node \(node): index \(p) is outside the unpooled tensor of \(unpooledCount) elements")
                }
                target[p] = values[i]
            }
            if !direct { copyIntoOrigin(target, unpooled, y, output) }
        }
    }
}

/// Copies a contiguous `shape` block to the origin of a zero `destination` of the larger `destinationShape`.
private func copyIntoOrigin<T: ArithmeticElement>(
    _ source: UnsafeMutablePointer<T>, _ shape: [Int], _ destination: UnsafeMutablePointer<T>, _ destinationShape: [Int]
) {
    destination.update(repeating: T.arithZero, count: ShapeUtil.count(destinationShape))
    guard let row = shape.last, ShapeUtil.count(shape) > 0 else { return }
    let strides = ShapeUtil.contiguousStrides(destinationShape)
    let rows = Array(shape.dropLast())
    var index = [Int](repeating: 0, count: rows.count)
    for r in 0..<ShapeUtil.count(rows) {
        ShapeUtil.unravel(r, rows, into: &index)
        var offset = 0
        for d in 0..<(shape.count - 1) { offset += index[d] * strides[d] }
        (destination + offset).update(from: source + r * row, count: row)
    }
}
