import AidgeCore

/// Expand, Slice and Tile read the input through a view (shape, strides and offset in elements) that the
/// planner's shapes fix: the kernel is one strided copy into the contiguous output.
final class ViewCopyKernel: Kernel {
    private let cuda: CUDADevice
    private let shape: [Int], strides: [Int], offset: Int

    init(shape: [Int], strides: [Int], offset: Int) throws {
        cuda = try CUDABackend.device()
        self.shape = shape
        self.strides = strides
        self.offset = offset
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard let x = inputs.first ?? nil else { throw AidgeError.invalidArgument("a view copy is missing its input") }
        guard outputs[0].count > 0 else { return }
        try cuda.makeCurrent()
        let view = try Tensor(storage: x.storage, dtype: x.dtype, shape: shape, strides: strides, offset: x.offset + offset)
        try StridedCopy.run(on: cuda, from: view, to: outputs[0])
    }
}

/// Concat and Split: each part is a copy between a whole tensor and a window of the joined one along `axis`.
final class JoinKernel: Kernel {
    private let cuda: CUDADevice
    private let axis: Int
    private let split: Bool

    init(axis: Int, split: Bool) throws {
        cuda = try CUDABackend.device()
        self.axis = axis
        self.split = split
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let parts = split ? outputs : inputs.compactMap { $0 }
        guard let joined = split ? inputs.first ?? nil : outputs.first else {
            throw AidgeError.invalidArgument("\(split ? "Split" : "Concat") is missing a tensor")
        }
        try cuda.makeCurrent()
        var start = 0
        for part in parts {
            defer { start += part.shape[axis] }
            guard part.count > 0 else { continue }
            let window = try Tensor(
                storage: joined.storage, dtype: joined.dtype, shape: part.shape, strides: joined.strides,
                offset: joined.offset + start * joined.strides[axis])
            if split {
                try StridedCopy.run(on: cuda, from: window, to: part)
            } else {
                try StridedCopy.run(on: cuda, from: part, to: window)
            }
        }
    }
}

/// Gather along one axis: one thread per output element; negative indices count from the end, and an index
/// out of range reads nothing and writes 0 (the CPU backend reports it; a GPU kernel cannot throw).
final class GatherKernel: Kernel {
    private let cuda: CUDADevice
    private let function: OpaquePointer?
    private let count: Int, axisSize: Int, inner: Int, indexCount: Int

    init(_ request: KernelRequest) throws {
        cuda = try CUDABackend.device()
        let data = try request.input(0), indices = try request.input(1)
        let axis = try ShapeUtil.axis(try request.attributes.int("axis", default: 0), rank: data.shape.count)
        guard indices.dtype == .int64 || indices.dtype == .int32 else {
            throw AidgeError.unsupportedType("Gather indices must be int64 or int32, got \(indices.dtype)")
        }
        let bytes = data.dtype.byteSize
        guard [1, 2, 4, 8].contains(bytes) else { throw AidgeError.unsupportedType("Gather on CUDA: \(data.dtype)") }
        let type = ["", "unsigned char", "unsigned short", "", "unsigned int", "", "", "", "u64"][bytes]
        let indexType = indices.dtype == .int64 ? "i64" : "int"
        count = request.outputs[0].count
        axisSize = data.shape[axis]
        inner = ShapeUtil.count(Array(data.shape[(axis + 1)...]))
        indexCount = indices.count
        function = try cuda.function("gather", in: """
            extern "C" __global__ void gather(const \(type)* __restrict__ data, const \(indexType)* __restrict__ indices,
                    \(type)* __restrict__ y, i64 count, i64 axis_size, i64 inner, i64 index_count) {
                for (i64 o = blockIdx.x * (i64)blockDim.x + threadIdx.x; o < count; o += (i64)gridDim.x * blockDim.x) {
                    i64 j = o % inner, rest = o / inner;
                    i64 k = rest % index_count, outer = rest / index_count;
                    i64 index = (i64)indices[k];
                    if (index < 0) index += axis_size;
                    y[o] = (index >= 0 && index < axis_size) ? data[(outer * axis_size + index) * inner + j] : (\(type))0;
                }
            }
            """)
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard inputs.count >= 2, let data = inputs[0], let indices = inputs[1] else {
            throw AidgeError.invalidArgument("Gather is missing an input")
        }
        guard count > 0 else { return }
        try cuda.makeCurrent()
        try cuda.launch(
            function, grid: (cuda.blocks(for: count), 1, 1), block: (256, 1, 1),
            [.tensor(data), .tensor(indices), .tensor(outputs[0]), .int64(Int64(count)), .int64(Int64(axisSize)),
             .int64(Int64(max(inner, 1))), .int64(Int64(indexCount))], name: "Gather")
    }
}

func registerShapeKernels(_ registry: KernelRegistry) {
    registry.register("Expand", backend: CUDABackend.name) { request in
        let x = try request.input(0)
        let out = request.outputs[0].shape
        return try ViewCopyKernel(
            shape: out, strides: ElementwiseKernel.broadcastStrides(of: x.shape, to: out), offset: 0)
    }
    registry.register("Slice", backend: CUDABackend.name) { request in
        let x = try request.input(0)
        let axes = try OperatorSchema.sliceAxes(x.shape, request.inputs)
        let contiguous = ShapeUtil.contiguousStrides(x.shape)
        let empty = axes.contains { $0.count == 0 }
        let offset = empty ? 0 : zip(axes, contiguous).reduce(0) { $0 + $1.0.start * $1.1 }
        return try ViewCopyKernel(
            shape: axes.map(\.count), strides: zip(axes, contiguous).map { $0.count > 1 ? $0.step * $1 : 0 },
            offset: offset)
    }
    registry.register("Concat", backend: CUDABackend.name) { request in
        let rank = request.outputs[0].shape.count
        return try JoinKernel(
            axis: try ShapeUtil.axis(try request.attributes.int("axis"), rank: rank, context: "Concat axis"), split: false)
    }
    registry.register("Split", backend: CUDABackend.name) { request in
        let rank = try request.input(0).shape.count
        return try JoinKernel(axis: try ShapeUtil.axis(try request.attributes.int("axis", default: 0), rank: rank), split: true)
    }
    registry.register("Gather", backend: CUDABackend.name) { try GatherKernel($0) }
    registry.register("Pad", backend: CUDABackend.name) { try PadKernel($0) }
}

/// Pad in constant, reflect, edge or wrap mode, negative pads cropping first (as the CPU kernel): one thread per
/// output element walks back to the input index it reads, or writes the constant.
final class PadKernel: Kernel {
    private let cuda: CUDADevice
    private let function: OpaquePointer?
    private let count: Int
    private let arguments: [KernelArgument]

    init(_ request: KernelRequest) throws {
        cuda = try CUDABackend.device()
        let x = try request.input(0)
        let mode = try request.attributes.string("mode", default: "constant")
        let (begin, end) = try OperatorSchema.padAmounts(x.shape.count, request.inputs)
        let input = x.shape.isEmpty ? [1] : x.shape, output = request.outputs[0].shape.isEmpty ? [1] : request.outputs[0].shape
        let padsBegin = begin.isEmpty ? [0] : begin, padsEnd = end.isEmpty ? [0] : end
        guard input.count <= maxKernelRank else { throw AidgeError.unsupported("Pad on CUDA: rank over \(maxKernelRank)") }
        let firsts = padsBegin.map { max(-$0, 0) }
        let kept = input.indices.map { input[$0] - firsts[$0] - max(-padsEnd[$0], 0) }
        for k in input.indices where kept[k] <= 0 && mode != "constant" && output[k] > 0 {
            throw AidgeError.invalidArgument("Pad mode '\(mode)' cannot pad dimension \(k), which is empty")
        }
        let outside: String
        switch mode {
        case "constant": outside = "constant = true;"
        case "edge": outside = "i = i < 0 ? 0 : n - 1;"
        case "wrap": outside = "i = ((i % n) + n) % n;"
        case "reflect":
            outside = "if (n == 1) { i = 0; } else { i64 p = 2 * (n - 1), t = ((i % p) + p) % p; i = t < n ? t : p - t; }"
        default: throw AidgeError.unsupported("Pad mode '\(mode)'")
        }
        let bytes = x.dtype.byteSize
        guard [1, 2, 4, 8].contains(bytes) else { throw AidgeError.unsupportedType("Pad on CUDA: \(x.dtype)") }
        let type = ["", "unsigned char", "unsigned short", "", "unsigned int", "", "", "", "u64"][bytes]
        count = ShapeUtil.count(output)
        function = try cuda.function("pad", in: indexingSource + """
            extern "C" __global__ void pad(const \(type)* __restrict__ x, \(type)* __restrict__ y,
                    const \(type)* __restrict__ value, i64 count, int rank, dims out_shape, dims in_strides,
                    dims first, dims kept, dims shift) {
                for (i64 o = blockIdx.x * (i64)blockDim.x + threadIdx.x; o < count; o += (i64)gridDim.x * blockDim.x) {
                    i64 rest = o, offset = 0;
                    bool constant = false;
                    for (int d = rank - 1; d >= 0; --d) {
                        i64 n = kept.v[d], i = rest % out_shape.v[d] - shift.v[d];
                        rest /= out_shape.v[d];
                        if (i < 0 || i >= n) { \(outside) }
                        offset += (i + first.v[d]) * in_strides.v[d];
                    }
                    y[o] = constant ? (value ? *value : (\(type))0) : x[offset];
                }
            }
            """)
        arguments = [
            .int64(Int64(count)), .int32(Int32(input.count)), .dims(output), .dims(ShapeUtil.contiguousStrides(input)),
            .dims(firsts), .dims(kept.map { max($0, 0) }), .dims(padsBegin.map { max($0, 0) }),
        ]
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard let x = inputs.first ?? nil else { throw AidgeError.invalidArgument("Pad is missing its input") }
        guard count > 0 else { return }
        let value = inputs.count > 2 ? inputs[2] : nil
        if let value, value.count < 1 || value.dtype != x.dtype {
            throw AidgeError.invalidArgument("Pad constant_value must be one \(x.dtype) element")
        }
        try cuda.makeCurrent()
        try cuda.launch(
            function, grid: (cuda.blocks(for: count), 1, 1), block: (256, 1, 1),
            [.tensor(x), .tensor(outputs[0]), value.map(KernelArgument.tensor) ?? .null] + arguments, name: "Pad")
    }
}
