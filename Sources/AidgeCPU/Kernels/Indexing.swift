import AidgeCore

/// Kernels of the indexing operators: Gather and GatherElements (any data dtype, moved by element size;
/// int32 or int64 indices; an index out of range is an error when the kernel runs).
func registerIndexingKernels(_ registry: KernelRegistry) {
    registry.register("Gather", backend: "cpu") { request in
        let data = try request.input(0)
        let indices = try request.input(1)
        let axis = try gatherAxis(request, data: data.shape)
        return try GatherKernel(
            dataShape: data.shape, axis: axis, indexCount: indices.count, indexType: indices.dtype,
            elementSize: data.dtype.byteSize)
    }

    registry.register("GatherElements", backend: "cpu") { request in
        let data = try request.input(0)
        let indices = try request.input(1)
        let axis = try gatherElementsAxis(request, data: data.shape, indices: indices.shape)
        return try GatherElementsKernel(
            dataShape: data.shape, indexShape: indices.shape, axis: axis, indexType: indices.dtype,
            elementSize: data.dtype.byteSize)
    }
}

// MARK: Shared with the gradient kernels

/// Gather's `axis`, resolved against the data's rank: read the same way by the forward and gradient kernels.
func gatherAxis(_ request: KernelRequest, data: [Int]) throws -> Int {
    try ShapeUtil.axis(try request.attributes.int("axis", default: 0), rank: data.count, context: "Gather axis")
}

/// GatherElements' `axis`, resolved against the data's rank, the indices checked to have that rank: read the same
/// way by the forward and gradient kernels.
func gatherElementsAxis(_ request: KernelRequest, data: [Int], indices: [Int]) throws -> Int {
    let axis = try ShapeUtil.axis(
        try request.attributes.int("axis", default: 0), rank: data.count, context: "GatherElements axis")
    guard indices.count == data.count else {
        throw AidgeError.shapeMismatch("GatherElements indices \(indices) and data \(data) differ in rank")
    }
    return axis
}

/// Checks that GatherElements indices of `indexShape` stay within the data along every dimension but `axis`.
func checkGatherElementsShapes(data dataShape: [Int], indices indexShape: [Int], axis: Int) throws {
    for d in dataShape.indices where d != axis && indexShape[d] > dataShape[d] {
        throw AidgeError.shapeMismatch(
            "GatherElements indices shape \(indexShape) exceeds data shape \(dataShape) in dimension \(d)")
    }
}

/// The error for index `bad.value`, at `bad.position` of the indices of a Gather or GatherElements node (`type`),
/// out of range for `axis` (as `normalizeIndices` reports it).
func indexOutOfRange(
    _ type: String, _ bad: (value: Int, position: Int), axis: Int, axisSize: Int, dataShape: [Int]
) -> AidgeError {
    AidgeError.invalidArgument(
        "\(type) index \(bad.value) (at position \(bad.position) of the indices) is out of range for axis \(axis) of "
            + "size \(axisSize) (data shape \(dataShape))")
}

/// Checks `count` indices against `axisSize` and writes them, made non-negative and multiplied by `scale`,
/// to `out`. Returns the first index out of range and its position, or nil.
func normalizeIndices(
    _ indices: Tensor, _ count: Int, axisSize: Int, scale: Int, into out: UnsafeMutablePointer<Int>
) -> (value: Int, position: Int)? {
    if indices.dtype == .int64 {
        return normalizeIndices(indices.pointer(as: Int64.self), count, axisSize, scale, out)
    }
    return normalizeIndices(indices.pointer(as: Int32.self), count, axisSize, scale, out)
}

private func normalizeIndices<I: FixedWidthInteger>(
    _ p: UnsafePointer<I>, _ count: Int, _ axisSize: Int, _ scale: Int, _ out: UnsafeMutablePointer<Int>
) -> (value: Int, position: Int)? {
    for i in 0..<count {
        let raw = Int(truncatingIfNeeded: p[i])
        let v = raw < 0 ? raw &+ axisSize : raw
        guard v >= 0, v < axisSize else { return (raw, i) }
        out[i] = v * scale
    }
    return nil
}

// MARK: Forward

private func checkSizes(_ elementSize: Int, _ indexType: DType) throws {
    guard [1, 2, 4, 8].contains(elementSize) else { throw AidgeError.unsupportedType("elements of \(elementSize) bytes") }
    guard indexType == .int64 || indexType == .int32 else {
        throw AidgeError.unsupportedType("indices must be int64 or int32, got \(indexType)")
    }
}

/// Gather: `out[o, i, r] = data[o, indices[i], r]` with `o` over the dimensions before `axis`, `r` after it.
final class GatherKernel: Kernel {
    let dataShape: [Int]
    let axis: Int
    let outer: Int
    let axisSize: Int
    let inner: Int
    let indexCount: Int
    let indexType: DType
    let elementSize: Int
    /// Checked, non-negative indices.
    let positions: UnsafeMutablePointer<Int>

    init(dataShape: [Int], axis: Int, indexCount: Int, indexType: DType, elementSize: Int) throws {
        try checkSizes(elementSize, indexType)
        self.dataShape = dataShape
        self.axis = axis
        self.outer = ShapeUtil.count(Array(dataShape[..<axis]))
        self.axisSize = dataShape[axis]
        self.inner = ShapeUtil.count(Array(dataShape[(axis + 1)...]))
        self.indexCount = indexCount
        self.indexType = indexType
        self.elementSize = elementSize
        positions = .allocate(capacity: max(indexCount, 1))
    }

    deinit { positions.deallocate() }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard inputs.count >= 2, let x = inputs[0], let indices = inputs[1], let y = outputs.first else {
            throw AidgeError.invalidModel("Gather needs data, indices and an output")
        }
        guard indices.dtype == indexType, indices.count == indexCount, y.count == outer * indexCount * inner,
            x.count == outer * axisSize * inner
        else {
            throw AidgeError.shapeMismatch("Gather tensors do not have the planned shapes")
        }
        if let bad = normalizeIndices(indices, indexCount, axisSize: axisSize, scale: inner, into: positions) {
            throw indexOutOfRange("Gather", bad, axis: axis, axisSize: axisSize, dataShape: dataShape)
        }
        if y.count == 0 { return }
        switch elementSize {
        case 1: gather(x, y, UInt8.self)
        case 2: gather(x, y, UInt16.self)
        case 4: gather(x, y, UInt32.self)
        default: gather(x, y, UInt64.self)
        }
    }

    private func gather<T>(_ x: Tensor, _ y: Tensor, _: T.Type) {
        let s = UnsafePointer(x.pointer(as: T.self))
        let d = y.pointer(as: T.self)
        let positions = UnsafePointer(self.positions)
        let n = indexCount
        let inner = self.inner
        let block = axisSize * inner
        Parallel.forEach(outer * n, grain: max(1, (1 << 15) / inner)) { range in
            var o = range.lowerBound / n
            var i = range.lowerBound % n
            var to = d + range.lowerBound * inner
            for _ in range {
                let from = s + o * block + positions[i]
                if inner == 1 { to.pointee = from.pointee } else { to.update(from: from, count: inner) }
                to += inner
                i += 1
                if i == n {
                    i = 0
                    o += 1
                }
            }
        }
    }
}

/// GatherElements: the output has the indices' shape; each element reads data at its own coordinates, the one
/// along `axis` replaced by its index.
final class GatherElementsKernel: Kernel {
    let dataShape: [Int]
    let indexShape: [Int]
    let axis: Int
    let indexType: DType
    let elementSize: Int
    let count: Int
    let dataCount: Int
    /// Data strides, 0 along `axis` (its offset comes from the index).
    let rowStrides: [Int]
    let axisStride: Int
    /// Checked indices times the data stride of `axis`.
    let offsets: UnsafeMutablePointer<Int>

    init(dataShape: [Int], indexShape: [Int], axis: Int, indexType: DType, elementSize: Int) throws {
        try checkSizes(elementSize, indexType)
        try checkGatherElementsShapes(data: dataShape, indices: indexShape, axis: axis)
        self.dataShape = dataShape
        self.indexShape = indexShape
        self.axis = axis
        self.indexType = indexType
        self.elementSize = elementSize
        self.count = ShapeUtil.count(indexShape)
        self.dataCount = ShapeUtil.count(dataShape)
        var strides = ShapeUtil.contiguousStrides(dataShape)
        axisStride = strides[axis]
        strides[axis] = 0
        rowStrides = strides
        offsets = .allocate(capacity: max(count, 1))
    }

    deinit { offsets.deallocate() }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard inputs.count >= 2, let x = inputs[0], let indices = inputs[1], let y = outputs.first else {
            throw AidgeError.invalidModel("GatherElements needs data, indices and an output")
        }
        guard indices.dtype == indexType, indices.count == count, y.count == count, x.count == dataCount else {
            throw AidgeError.shapeMismatch("GatherElements tensors do not have the planned shapes")
        }
        let axisSize = dataShape[axis]
        if let bad = normalizeIndices(indices, count, axisSize: axisSize, scale: axisStride, into: offsets) {
            throw indexOutOfRange("GatherElements", bad, axis: axis, axisSize: axisSize, dataShape: dataShape)
        }
        if count == 0 { return }
        switch elementSize {
        case 1: gather(x, y, UInt8.self)
        case 2: gather(x, y, UInt16.self)
        case 4: gather(x, y, UInt32.self)
        default: gather(x, y, UInt64.self)
        }
    }

    private func gather<T>(_ x: Tensor, _ y: Tensor, _: T.Type) {
        let s = UnsafePointer(x.pointer(as: T.self))
        let d = y.pointer(as: T.self)
        let offsets = UnsafePointer(self.offsets)
        let rank = indexShape.count
        let inner = indexShape[rank - 1]
        let innerStride = rowStrides[rank - 1]
        let rows = count / inner
        indexShape.withUnsafeBufferPointer { shape in
            rowStrides.withUnsafeBufferPointer { strides in
                Parallel.forEach(rows, grain: max(1, (1 << 14) / inner)) { range in
                    withUnsafeTemporaryAllocation(of: Int.self, capacity: rank) { index in
                        var rest = range.lowerBound
                        var base = 0
                        for k in stride(from: rank - 2, through: 0, by: -1) {
                            index[k] = rest % shape[k]
                            rest /= shape[k]
                            base += index[k] * strides[k]
                        }
                        for row in range {
                            let to = d + row * inner
                            let off = offsets + row * inner
                            for j in 0..<inner { to[j] = s[base + j * innerStride + off[j]] }
                            var k = rank - 2
                            while k >= 0 {
                                index[k] += 1
                                base += strides[k]
                                if index[k] < shape[k] { break }
                                base -= index[k] * strides[k]
                                index[k] = 0
                                k -= 1
                            }
                        }
                    }
                }
            }
        }
    }
}
