import AidgeCore

/// Backward of the indexing operators, Gather and GatherElements: each output element's gradient is added to the
/// data element it read; repeated indices add up. Backward reads the indices (checked again, negative ones
/// counting from the end as in the forward), never the data. Work is split by destination, so no two cores add
/// into one element: by outer index and by ranges of the inner elements, each walking every index in order.
func registerIndexingGradients(_ registry: KernelRegistry) {
    registry.registerGradient("Gather", backend: "cpu") { request in
        let data = try request.input(0)
        let indices = try request.input(1)
        return try movementGradient(data.dtype, request) { dtype in
            let axis = try gatherAxis(request, data: data.shape)
            return GatherGradientKernel(dtype, dataShape: data.shape, axis: axis, indexCount: indices.count)
        }
    }

    registry.registerGradient("GatherElements", backend: "cpu") { request in
        let data = try request.input(0)
        let indices = try request.input(1)
        return try movementGradient(data.dtype, request) { dtype in
            let axis = try gatherElementsAxis(request, data: data.shape, indices: indices.shape)
            return GatherElementsGradientKernel(dtype, dataShape: data.shape, indexShape: indices.shape, axis: axis)
        }
    }
}

/// The indices of `tensor` (int32 or int64), made non-negative, each checked against `axisSize` (as the forward
/// kernels check them).
private func checkedIndices(_ tensor: Tensor, count: Int, axisSize: Int, _ what: String, _ dataShape: [Int], axis: Int)
    throws -> [Int]
{
    guard tensor.count == count else {
        throw AidgeError.shapeMismatch("\(what) indices of shape \(tensor.shape) were not planned")
    }
    guard tensor.dtype == .int64 || tensor.dtype == .int32 else {
        throw AidgeError.unsupportedType("\(what) indices must be int64 or int32, got \(tensor.dtype)")
    }
    var result = [Int](repeating: 0, count: count)
    let bad = result.withUnsafeMutableBufferPointer { buffer in
        buffer.baseAddress.flatMap { normalizeIndices(tensor, count, axisSize: axisSize, scale: 1, into: $0) }
    }
    if let bad { throw indexOutOfRange(what, bad, axis: axis, axisSize: axisSize, dataShape: dataShape) }
    return result
}

/// Gather: `dx[o, indices[i], r] += dy[o, i, r]`.
final class GatherGradientKernel: GradientKernel {
    let dtype: DType
    let dataShape: [Int]
    let axis: Int
    let outer: Int
    let axisSize: Int
    let inner: Int
    let indexCount: Int

    init(_ dtype: DType, dataShape: [Int], axis: Int, indexCount: Int) {
        self.dtype = dtype
        self.dataShape = dataShape
        self.axis = axis
        outer = ShapeUtil.count(Array(dataShape[..<axis]))
        axisSize = dataShape[axis]
        inner = ShapeUtil.count(Array(dataShape[(axis + 1)...]))
        self.indexCount = indexCount
    }

    func readsInput(_ index: Int) -> Bool { index == 1 }
    func readsOutput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        guard let dx = pass.inputGradient(0), let dy = pass.outputGradient(0) else { return }
        guard dx.count == outer * axisSize * inner, dy.count == outer * indexCount * inner else {
            throw AidgeError.shapeMismatch("Gather gradients do not have the planned shapes")
        }
        let positions = try checkedIndices(
            try pass.input(1), count: indexCount, axisSize: axisSize, "Gather", dataShape, axis: axis)
        if dy.count == 0 { return }
        try dispatch(dtype, Body(kernel: self, positions: positions, dx: dx, dy: dy))
    }

    private struct Body: GradientBody {
        let kernel: GatherGradientKernel
        let positions: [Int]
        let dx: Tensor, dy: Tensor
        func run<T: GradientFloat>(_: T.Type) {
            let (outer, axisSize, inner, n) = (kernel.outer, kernel.axisSize, kernel.inner, kernel.indexCount)
            let d = dx.pointer(as: T.self)
            let s = UnsafePointer(dy.pointer(as: T.self))
            let (ranges, length) = innerRanges(outer: outer, inner: inner)
            positions.withUnsafeBufferPointer { positions in
                Parallel.forEach(outer * ranges, grain: max(1, (1 << 14) / max(n * length, 1))) { tasks in
                    for task in tasks {
                        let o = task / ranges
                        let c0 = (task % ranges) * length
                        let width = min(c0 + length, inner) - c0
                        if width <= 0 { continue }
                        let to = d + o * axisSize * inner + c0
                        let from = s + o * n * inner + c0
                        for i in 0..<n {
                            let dp = to + positions[i] * inner
                            let sp = from + i * inner
                            for j in 0..<width { dp[j] += sp[j] }
                        }
                    }
                }
            }
        }
    }
}

/// GatherElements: `dx[..., indices[e], ...] += dy[e]`, the index replacing element e's coordinate along `axis`.
/// Tasks are an outer index (dimensions before `axis`) and a range of inner ones (after it); each walks the
/// indices along `axis` in order.
final class GatherElementsGradientKernel: GradientKernel {
    let dtype: DType
    let dataShape: [Int]
    let indexShape: [Int]
    let axis: Int
    let count: Int
    let dataCount: Int
    /// Index dimensions before `axis` (outer) and after it (inner), with the data strides they step.
    let outerShape: [Int]
    let outerStrides: [Int]
    let axisLength: Int
    let axisStride: Int
    let innerCount: Int
    /// Data offset of each inner index.
    let innerOffsets: [Int]

    init(_ dtype: DType, dataShape: [Int], indexShape: [Int], axis: Int) {
        self.dtype = dtype
        self.dataShape = dataShape
        self.indexShape = indexShape
        self.axis = axis
        count = ShapeUtil.count(indexShape)
        dataCount = ShapeUtil.count(dataShape)
        let strides = ShapeUtil.contiguousStrides(dataShape)
        outerShape = Array(indexShape[..<axis])
        outerStrides = Array(strides[..<axis])
        axisLength = indexShape[axis]
        axisStride = strides[axis]
        let innerShape = Array(indexShape[(axis + 1)...])
        let innerStrides = Array(strides[(axis + 1)...])
        innerCount = ShapeUtil.count(innerShape)
        var offsets = [Int](repeating: 0, count: innerCount)
        for e in 0..<innerCount {
            var rest = e
            var offset = 0
            for k in stride(from: innerShape.count - 1, through: 0, by: -1) {
                offset += rest % innerShape[k] * innerStrides[k]
                rest /= innerShape[k]
            }
            offsets[e] = offset
        }
        innerOffsets = offsets
    }

    func readsInput(_ index: Int) -> Bool { index == 1 }
    func readsOutput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        guard let dx = pass.inputGradient(0), let dy = pass.outputGradient(0) else { return }
        guard dx.count == dataCount, dy.count == count else {
            throw AidgeError.shapeMismatch("GatherElements gradients do not have the planned shapes")
        }
        try checkGatherElementsShapes(data: dataShape, indices: indexShape, axis: axis)
        let indices = try checkedIndices(
            try pass.input(1), count: count, axisSize: dataShape[axis], "GatherElements", dataShape, axis: axis)
        if count == 0 { return }
        try dispatch(dtype, Body(kernel: self, indices: indices, dx: dx, dy: dy))
    }

    private struct Body: GradientBody {
        let kernel: GatherElementsGradientKernel
        let indices: [Int]
        let dx: Tensor, dy: Tensor
        func run<T: GradientFloat>(_: T.Type) {
            let k = kernel
            let (outerShape, outerStrides) = (k.outerShape, k.outerStrides)
            let (m, axisStride, inner) = (k.axisLength, k.axisStride, k.innerCount)
            let outer = ShapeUtil.count(outerShape)
            let d = dx.pointer(as: T.self)
            let s = UnsafePointer(dy.pointer(as: T.self))
            let (ranges, length) = innerRanges(outer: outer, inner: inner)
            indices.withUnsafeBufferPointer { indices in
                k.innerOffsets.withUnsafeBufferPointer { innerOffsets in
                    Parallel.forEach(outer * ranges, grain: max(1, (1 << 14) / max(m * length, 1))) { tasks in
                        for task in tasks {
                            let o = task / ranges
                            let c0 = (task % ranges) * length
                            let c1 = min(c0 + length, inner)
                            if c0 >= c1 { continue }
                            var rest = o
                            var base = 0
                            for j in stride(from: outerShape.count - 1, through: 0, by: -1) {
                                base += rest % outerShape[j] * outerStrides[j]
                                rest /= outerShape[j]
                            }
                            for j in 0..<m {
                                let e = (o * m + j) * inner
                                for r in c0..<c1 {
                                    d[base + indices[e + r] * axisStride + innerOffsets[r]] += s[e + r]
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
