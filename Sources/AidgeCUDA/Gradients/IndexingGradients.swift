import AidgeCore

/// Adds a contiguous gradient into a window of another (any strides, no element twice): Slice's and Split's
/// backward.
struct WindowAccumulation {
    private let function: OpaquePointer?

    init(_ cuda: CUDADevice, dtype: DType) throws {
        let element = try ElementType.of(dtype, for: "a gradient")
        guard element.isFloatingPoint else { throw AidgeError.unsupportedType("gradients of \(dtype) values") }
        let c = element.compute
        function = try cuda.function("window_accumulate", in: indexingSource + """
            extern "C" __global__ void window_accumulate(const \(element.stored)* __restrict__ g, \(element.stored)* t,
                    i64 count, int rank, dims shape, dims strides) {
                for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < count; i += (i64)gridDim.x * blockDim.x) {
                    i64 at = strided_offset(i, rank, shape, strides);
                    t[at] = \(element.store("(\(c))\(element.load("t[at]")) + (\(c))\(element.load("g[i]"))"));
                }
            }
            """)
    }

    /// `window += gradient` (same shape; `gradient` made contiguous on the device first).
    func run(on cuda: CUDADevice, _ gradient: Tensor, into window: Tensor) throws {
        guard gradient.count > 0 else { return }
        guard window.shape.count <= maxKernelRank else { throw AidgeError.unsupported("rank over \(maxKernelRank)") }
        let packed = try gradient.contiguousOnDevice()
        try cuda.launch(
            function, grid: (cuda.blocks(for: gradient.count), 1, 1), block: (256, 1, 1),
            [.tensor(packed), .tensor(window), .int64(Int64(gradient.count)), .int32(Int32(window.shape.count)),
             .dims(window.shape), .dims(window.strides)], name: "a window's gradient")
    }
}

/// Slice and Split backward: each output gradient added into the window of the input it was read from.
final class WindowGradientKernel: GradientKernel {
    private let cuda: CUDADevice
    private let accumulation: WindowAccumulation
    /// Per output: the window of the input, as (shape, strides, offset) in elements of a contiguous input.
    private let windows: [(shape: [Int], strides: [Int], offset: Int)]

    init(_ request: KernelRequest) throws {
        cuda = try CUDABackend.device()
        let x = try request.input(0)
        accumulation = try WindowAccumulation(cuda, dtype: x.dtype)
        let contiguous = ShapeUtil.contiguousStrides(x.shape)
        if request.op.type == "Slice" {
            let axes = try OperatorSchema.sliceAxes(x.shape, request.inputs)
            let empty = axes.contains { $0.count == 0 }
            windows = [(
                axes.map(\.count), zip(axes, contiguous).map { $0.step * $1 },
                empty ? 0 : zip(axes, contiguous).reduce(0) { $0 + $1.0.start * $1.1 }
            )]
        } else {
            let axis = try ShapeUtil.axis(try request.attributes.int("axis", default: 0), rank: x.shape.count)
            var start = 0
            windows = request.outputs.map { output in
                defer { start += output.shape[axis] }
                return (output.shape, contiguous, start * contiguous[axis])
            }
        }
    }

    func readsInput(_ index: Int) -> Bool { false }
    func readsOutput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        guard let dx = pass.inputGradient(0) else { return }
        try cuda.makeCurrent()
        for (k, window) in windows.enumerated() {
            guard let dy = pass.outputGradient(k), dy.count > 0 else { continue }
            let target = try Tensor(
                storage: dx.storage, dtype: dx.dtype, shape: window.shape, strides: window.strides,
                offset: dx.offset + window.offset)
            try accumulation.run(on: cuda, dy, into: target)
        }
    }
}

/// Gather backward: each output gradient element added, atomically (indices repeat), to the input element it read.
final class GatherGradientKernel: GradientKernel {
    private let cuda: CUDADevice
    private let function: OpaquePointer?
    private let count: Int, axisSize: Int, inner: Int, indexCount: Int

    init(_ request: KernelRequest) throws {
        cuda = try CUDABackend.device()
        let data = try request.input(0), indices = try request.input(1)
        guard data.dtype == .float32 else { throw AidgeError.unsupportedType("Gather backward on CUDA takes float32") }
        let axis = try ShapeUtil.axis(try request.attributes.int("axis", default: 0), rank: data.shape.count)
        count = request.outputs[0].count
        axisSize = data.shape[axis]
        inner = ShapeUtil.count(Array(data.shape[(axis + 1)...]))
        indexCount = indices.count
        let indexType = indices.dtype == .int64 ? "i64" : "int"
        function = try cuda.function("gather_backward", in: """
            extern "C" __global__ void gather_backward(const \(indexType)* __restrict__ indices, const float* __restrict__ dy,
                    float* dx, i64 count, i64 axis_size, i64 inner, i64 index_count) {
                for (i64 o = blockIdx.x * (i64)blockDim.x + threadIdx.x; o < count; o += (i64)gridDim.x * blockDim.x) {
                    i64 j = o % inner, rest = o / inner, k = rest % index_count, outer = rest / index_count;
                    i64 index = (i64)indices[k];
                    if (index < 0) index += axis_size;
                    if (index >= 0 && index < axis_size) atomicAdd(&dx[(outer * axis_size + index) * inner + j], dy[o]);
                }
            }
            """)
    }

    func readsInput(_ index: Int) -> Bool { index == 1 }
    func readsOutput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        guard let dy = pass.outputGradient(0), let dx = pass.inputGradient(0), count > 0 else { return }
        try cuda.makeCurrent()
        try cuda.launch(
            function, grid: (cuda.blocks(for: count), 1, 1), block: (256, 1, 1),
            [.tensor(try pass.input(1)), .tensor(dy), .tensor(dx), .int64(Int64(count)), .int64(Int64(axisSize)),
             .int64(Int64(max(inner, 1))), .int64(Int64(indexCount))], name: "Gather backward")
    }
}

func registerIndexingGradients(_ registry: KernelRegistry) {
    for type in ["Slice", "Split"] {
        registry.registerGradient(type, backend: CUDABackend.name) { try WindowGradientKernel($0) }
    }
    registry.registerGradient("Gather", backend: CUDABackend.name) { try GatherGradientKernel($0) }
}
