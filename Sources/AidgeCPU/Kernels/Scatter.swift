import AidgeCore

/// Kernels that address elements by index tuples or write at indices: GatherND, ScatterND, ScatterElements and
/// OneHot. Indices out of range are an error when the kernel runs; negative ones count from the end.
func registerScatterKernels(_ registry: KernelRegistry) {
    registry.register("GatherND", backend: "cpu") { request in
        let data = try request.input(0)
        let indices = try request.input(1)
        let batch = try request.attributes.int("batch_dims", default: 0)
        return try GatherNDKernel(data: data, indices: indices.shape, batchDims: batch)
    }
    registry.register("TensorScatter", backend: "cpu") { request in
        let cache = try request.input(0)
        let updateShape = try request.input(1).shape
        let axis = try ShapeUtil.axis(try request.attributes.int("axis", default: -2), rank: cache.shape.count)
        let circular = try request.attributes.string("mode", default: "linear") == "circular"
        let rowBytes = ShapeUtil.count(Array(cache.shape[(axis + 1)...])) * cache.dtype.byteSize
        let capacity = cache.shape[axis]
        let length = updateShape[axis]
        let prefixes = ShapeUtil.count(Array(cache.shape[..<axis]))
        let perBatch = prefixes / max(cache.shape[0], 1)
        let node = request.nodeName
        return ClosureKernel { inputs, outputs in
            let x = try presentInput(inputs, 0)
            let update = try presentInput(inputs, 1)
            let y = try firstOutput(outputs)
            copyElements(from: x, to: y)
            let indices = inputs.count > 2 ? inputs[2]?.pointer(as: Int64.self) : nil
            for prefix in 0..<prefixes {
                let start = Int(indices?[prefix / max(perBatch, 1)] ?? 0)
                for s in 0..<length {
                    var row = start + s
                    if circular { row = ((row % capacity) + capacity) % capacity }
                    guard row >= 0 && row < capacity else {
                        throw AidgeError.invalidArgument(
                            "TensorScatter node \(node): write index \(start) + \(s) is outside the cache's \(capacity) rows")
                    }
                    (y.rawPointer + (prefix * capacity + row) * rowBytes).copyMemory(
                        from: update.rawPointer + (prefix * length + s) * rowBytes, byteCount: rowBytes)
                }
            }
        }
    }
    registry.register("ScatterND", backend: "cpu") { request in
        let data = try request.input(0)
        let layout = try ScatterNDLayout(data: data.shape, indices: try request.input(1).shape)
        return try makeScatterKernel(request, data.dtype) { (update: @escaping ScatterUpdate) in
            ClosureKernel { inputs, outputs in
                let (x, indices, updates, y) = try scatterOperands(inputs, outputs)
                copyElements(from: x, to: y)
                try layout.apply(indices: indices.pointer(as: Int64.self)) { target, source in
                    update(y.rawPointer, target, updates.rawPointer, source, layout.sliceSize)
                }
            }
        }
    }
    registry.register("ScatterElements", backend: "cpu") { request in
        let data = try request.input(0)
        let indices = try request.input(1)
        let axis = try ShapeUtil.axis(try request.attributes.int("axis", default: 0), rank: data.shape.count)
        let dataStrides = ShapeUtil.contiguousStrides(data.shape)
        let indexShape = indices.shape
        let axisSize = data.shape[axis]
        return try makeScatterKernel(request, data.dtype) { (update: @escaping ScatterUpdate) in
            ClosureKernel { inputs, outputs in
                let (x, indices, updates, y) = try scatterOperands(inputs, outputs)
                copyElements(from: x, to: y)
                var coordinate = [Int](repeating: 0, count: indexShape.count)
                for position in 0..<ShapeUtil.count(indexShape) {
                    let raw = indices.dtype == .int64
                        ? Int(indices.pointer(as: Int64.self)[position]) : Int(indices.pointer(as: Int32.self)[position])
                    let index = raw < 0 ? raw + axisSize : raw
                    guard index >= 0, index < axisSize else {
                        throw AidgeError.invalidArgument(
                            "ScatterElements index \(raw) is out of range for axis \(axis) of size \(axisSize)")
                    }
                    var target = 0
                    for d in coordinate.indices { target += (d == axis ? index : coordinate[d]) * dataStrides[d] }
                    update(y.rawPointer, target, updates.rawPointer, position, 1)
                    var d = coordinate.count - 1
                    while d >= 0 {
                        coordinate[d] += 1
                        if coordinate[d] < indexShape[d] { break }
                        coordinate[d] = 0
                        d -= 1
                    }
                }
            }
        }
    }
    registry.register("OneHot", backend: "cpu") { request in
        let indices = try request.input(0)
        let shape = request.outputs[0].shape
        let axis = try ShapeUtil.axis(try request.attributes.int("axis", default: -1), rank: shape.count)
        let depth = shape[axis]
        let inner = ShapeUtil.count(Array(shape[(axis + 1)...]))
        let size = request.outputs[0].dtype.byteSize
        let scratch = Tensor(zeros: indices.shape, dtype: .int64)
        return ClosureKernel { inputs, outputs in
            let x = try presentInput(inputs, 0)
            let values = try presentInput(inputs, 2)
            let y = try firstOutput(outputs)
            castElements(x.rawPointer, x.dtype, scratch.rawPointer, .int64, x.count)
            let index = scratch.pointer(as: Int64.self)
            let off = values.rawPointer
            let on = values.rawPointer + size
            for position in 0..<(y.count) {
                (y.rawPointer + position * size).copyMemory(from: off, byteCount: size)
            }
            for i in 0..<x.count {
                let raw = Int(index[i])
                let k = raw < 0 ? raw + depth : raw
                guard k >= 0, k < depth else { continue }
                let (outer, within) = (i / inner, i % inner)
                (y.rawPointer + ((outer * depth + k) * inner + within) * size).copyMemory(from: on, byteCount: size)
            }
        }
    }
}

/// Combines `count` elements at `source` of the updates into `count` elements at `target` of the output (element
/// offsets).
typealias ScatterUpdate = (
    _ output: UnsafeMutableRawPointer, _ target: Int, _ updates: UnsafeRawPointer, _ source: Int, _ count: Int
) -> Void

private func scatterOperands(_ inputs: [Tensor?], _ outputs: [Tensor]) throws -> (Tensor, Tensor, Tensor, Tensor) {
    (try presentInput(inputs, 0), try presentInput(inputs, 1), try presentInput(inputs, 2), try firstOutput(outputs))
}

/// The kernel `make` builds around the update rule of the node's reduction for `dtype`: a plain copy of any dtype,
/// or add / mul / max / min on numbers.
private func makeScatterKernel(
    _ request: KernelRequest, _ dtype: DType, _ make: @escaping (@escaping ScatterUpdate) throws -> any Kernel
) throws -> any Kernel {
    let reduction = try OperatorSchema.scatterReduction(request.attributes)
    if reduction == .none {
        let size = dtype.byteSize
        return try make { output, target, updates, source, count in
            (output + target * size).copyMemory(from: updates + source * size, byteCount: count * size)
        }
    }
    return try makeKernel(ScatterReduceFamily(reduction: reduction, make: make), request)
}

private struct ScatterReduceFamily: KernelFamily {
    let reduction: ScatterReduction
    let make: (@escaping ScatterUpdate) throws -> any Kernel

    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        try make(reducer(T.self))
    }
    func integer<T: FixedWidthInteger & ArithmeticElement>(_ type: T.Type, _ request: KernelRequest) throws
        -> any Kernel
    {
        try make(reducer(T.self))
    }

    private func reducer<T: ArithmeticElement>(_: T.Type) -> ScatterUpdate {
        let reduction = self.reduction
        return { output, target, updates, source, count in
            let o = output.assumingMemoryBound(to: T.self) + target
            let u = updates.assumingMemoryBound(to: T.self) + source
            for i in 0..<count {
                switch reduction {
                case .add: o[i] = T.arithAdd(o[i], u[i])
                case .mul: o[i] = T.arithMultiply(o[i], u[i])
                case .max: o[i] = T.arithMaximum(o[i], u[i])
                case .min: o[i] = T.arithMinimum(o[i], u[i])
                case .none: o[i] = u[i]
                }
            }
        }
    }
}

/// Where the index tuples of ScatterND (the last dimension of indices) land in the data.
private struct ScatterNDLayout {
    let dataShape: [Int]
    let strides: [Int]
    let depth: Int
    let tuples: Int
    let sliceSize: Int

    init(data: [Int], indices: [Int]) throws {
        depth = try OperatorSchema.gatherNDDepth(data: data, indices: indices, batchDims: 0)
        dataShape = data
        strides = ShapeUtil.contiguousStrides(data)
        tuples = ShapeUtil.count(Array(indices.dropLast()))
        sliceSize = ShapeUtil.count(Array(data[depth...]))
    }

    /// Calls `body(target element offset, update element offset)` for each tuple, in order.
    func apply(indices: UnsafePointer<Int64>, _ body: (Int, Int) -> Void) throws {
        for t in 0..<tuples {
            var target = 0
            for d in 0..<depth {
                let raw = Int(indices[t * depth + d])
                let index = raw < 0 ? raw + dataShape[d] : raw
                guard index >= 0, index < dataShape[d] else {
                    throw AidgeError.invalidArgument(
                        "ScatterND index \(raw) is out of range for dimension \(d) of size \(dataShape[d])")
                }
                target += index * strides[d]
            }
            body(target, t * sliceSize)
        }
    }
}

/// GatherND: copies one slice of the data per index tuple, within each batch.
private final class GatherNDKernel: Kernel {
    let dataShape: [Int]
    let strides: [Int]
    let batchDims: Int
    let depth: Int
    let batches: Int
    let tuplesPerBatch: Int
    let sliceSize: Int
    let batchSize: Int
    let elementSize: Int

    init(data: ValueInfo, indices: [Int], batchDims: Int) throws {
        depth = try OperatorSchema.gatherNDDepth(data: data.shape, indices: indices, batchDims: batchDims)
        dataShape = data.shape
        strides = ShapeUtil.contiguousStrides(data.shape)
        self.batchDims = batchDims
        batches = ShapeUtil.count(Array(data.shape[..<batchDims]))
        tuplesPerBatch = ShapeUtil.count(Array(indices[batchDims..<(indices.count - 1)]))
        sliceSize = ShapeUtil.count(Array(data.shape[(batchDims + depth)...]))
        batchSize = ShapeUtil.count(Array(data.shape[batchDims...]))
        elementSize = data.dtype.byteSize
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let x = try presentInput(inputs, 0)
        let indices = try presentInput(inputs, 1).pointer(as: Int64.self)
        let y = try firstOutput(outputs)
        let bytes = sliceSize * elementSize
        for b in 0..<batches {
            for t in 0..<tuplesPerBatch {
                let tuple = b * tuplesPerBatch + t
                var source = b * batchSize
                for d in 0..<depth {
                    let dim = dataShape[batchDims + d]
                    let raw = Int(indices[tuple * depth + d])
                    let index = raw < 0 ? raw + dim : raw
                    guard index >= 0, index < dim else {
                        throw AidgeError.invalidArgument(
                            "GatherND index \(raw) is out of range for dimension \(batchDims + d) of size \(dim)")
                    }
                    source += index * strides[batchDims + d]
                }
                (y.rawPointer + tuple * bytes).copyMemory(from: x.rawPointer + source * elementSize, byteCount: bytes)
            }
        }
    }
}
