import AidgeCore

/// CumSum and CumProd: the input seen as `[outer, n, inner]` around the axis (given at run time), a running
/// total of `inner` lanes carried along `n`, forward or reversed, each output taking the total before
/// (exclusive) or after (inclusive) its own element. Integers wrap, as ONNX's reference does.
struct Cumulative: KernelFamily {
    let product: Bool
    let exclusive: Bool
    let reverse: Bool
    let shape: [Int]

    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel { kernel(one: T(1)) }

    func integer<T: FixedWidthInteger & ArithmeticElement>(_ type: T.Type, _ request: KernelRequest) throws
        -> any Kernel
    {
        kernel(one: T(1))
    }

    private func kernel<T: ArithmeticElement>(one: T) -> any Kernel {
        let (product, exclusive, reverse, shape) = (product, exclusive, reverse, shape)
        return ClosureKernel { inputs, outputs in
            guard inputs.count == 2, let x = inputs[0], let axisTensor = inputs[1], let y = outputs.first,
                x.count == y.count, x.dtype == T.dtype, y.dtype == T.dtype
            else { throw AidgeError.invalidModel("a cumulative kernel needs x, axis and an output of x's size") }
            guard axisTensor.count == 1, let raw = axisTensor.integers().first else {
                throw AidgeError.shapeMismatch("the axis must be a scalar, got shape \(axisTensor.shape)")
            }
            let axis = try ShapeUtil.axis(raw, rank: shape.count, context: "axis")
            let n = shape[axis]
            let inner = ShapeUtil.count(Array(shape[(axis + 1)...]))
            let outer = ShapeUtil.count(Array(shape[..<axis]))
            let src = x.pointer(as: T.self)
            let dst = y.pointer(as: T.self)
            let start = product ? one : T.arithZero
            withUnsafeTemporaryAllocation(of: T.self, capacity: max(inner, 1)) { total in
                for o in 0..<outer {
                    for i in 0..<inner { total[i] = start }
                    for step in 0..<n {
                        let j = reverse ? n - 1 - step : step
                        let row = (o * n + j) * inner
                        for i in 0..<inner {
                            let value = src[row + i]
                            let next = product ? T.arithMultiply(total[i], value) : T.arithAdd(total[i], value)
                            dst[row + i] = exclusive ? total[i] : next
                            total[i] = next
                        }
                    }
                }
            }
        }
    }
}
