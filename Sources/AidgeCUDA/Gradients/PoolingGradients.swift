import AidgeCore

/// MaxPool and AveragePool backward: one thread per output element finds its window again and adds its gradient
/// to the maximum (the first one, as the CPU) or spreads it over the counted elements, with atomic adds since
/// windows overlap.
final class PoolGradientKernel: GradientKernel {
    private let cuda: CUDADevice
    private let function: OpaquePointer?
    private let count: Int
    private let geometry: [KernelArgument]

    init(_ request: KernelRequest, maximum: Bool) throws {
        cuda = try CUDABackend.device()
        let x = try request.input(0)
        guard x.dtype == .float32 else {
            throw AidgeError.unsupportedType("\(request.op.type) backward on CUDA takes float32, got \(x.dtype)")
        }
        let window = try PoolGeometry.window(request.attributes, x.shape, what: request.op.type)
        guard window.rank <= 3 else { throw AidgeError.unsupported("\(request.op.type) backward: 1 to 3 spatial axes") }
        let includePad = try request.attributes.int("count_include_pad", default: 0) != 0
        count = request.outputs[0].count
        geometry = windowArguments(window)
        let spread = maximum
            ? "if (best >= 0) atomicAdd(&dx[plane * spatial_in + best], g);"
            : "if (counted > 0) for (i64 k = 0; k < size; ++k) { i64 at = tap(g_, start, k, plane * spatial_in); if (at >= 0) atomicAdd(&dx[at], g / (float)counted); }"
        function = try cuda.function("pool_backward", in: indexingSource + windowSource + windowUnpackSource + """
            /// The input offset of tap `k` of the window starting at `start` (from `base`), or -1 in the padding.
            __device__ i64 tap(const window& g, const i64* start, i64 k, i64 base) {
                i64 offset = 0, stride = 1;
                for (int d = g.rank - 1; d >= 0; --d) {
                    i64 at = start[d] + (k % g.kernel[d]) * g.dilation[d];
                    k /= g.kernel[d];
                    if (at < 0 || at >= g.in[d]) return -1;
                    offset += at * stride;
                    stride *= g.in[d];
                }
                return base + offset;
            }
            extern "C" __global__ void pool_backward(const float* __restrict__ x, const float* __restrict__ dy, float* dx,
                                                     i64 count, dims ga, dims gb, dims gc) {
                window g_ = unpack_window(ga, gb, gc);
                i64 spatial_in, spatial_out, size, start[3];
                window_sizes(g_, spatial_in, spatial_out, size);
                for (i64 o = blockIdx.x * (i64)blockDim.x + threadIdx.x; o < count; o += (i64)gridDim.x * blockDim.x) {
                    i64 plane = o / spatial_out;
                    window_start(g_, o % spatial_out, start);
                    float g = dy[o], top = -INFINITY;
                    i64 best = -1, counted = 0;
                    for (i64 k = 0; k < size; ++k) {
                        i64 at = tap(g_, start, k, plane * spatial_in);
                        if (at >= 0) {
                            float v = x[at];
                            if (best < 0 || v > top) { top = v; best = at - plane * spatial_in; }
                            counted += 1;
                        } else if (\(includePad ? "true" : "false")) {
                            i64 kk = k;
                            bool padded = true;
                            for (int d = g_.rank - 1; d >= 0; --d) {
                                i64 p = start[d] + (kk % g_.kernel[d]) * g_.dilation[d];
                                kk /= g_.kernel[d];
                                if (p < -g_.pad[d] || p >= g_.in[d] + g_.pad_end[d]) padded = false;
                            }
                            counted += padded ? 1 : 0;
                        }
                    }
                    \(spread)
                }
            }
            """)
    }

    func readsOutput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        guard let dy = pass.outputGradient(0), let dx = pass.inputGradient(0), count > 0 else { return }
        try cuda.makeCurrent()
        try cuda.launch(
            function, grid: (cuda.blocks(for: count), 1, 1), block: (256, 1, 1),
            [.tensor(try pass.input(0)), .tensor(dy), .tensor(dx), .int64(Int64(count))] + geometry,
            name: "pooling backward")
    }
}

/// GlobalAveragePool backward: each input element gets its plane's gradient over the plane's size.
final class GlobalAveragePoolGradientKernel: GradientKernel {
    private let cuda: CUDADevice
    private let function: OpaquePointer?
    private let count: Int, spatial: Int

    init(_ request: KernelRequest) throws {
        cuda = try CUDABackend.device()
        let x = try request.input(0)
        let element = try ElementType.of(x.dtype, for: "GlobalAveragePool")
        count = x.count
        spatial = ShapeUtil.count(Array(x.shape.dropFirst(2)))
        let c = element.compute
        function = try cuda.function("global_average_backward", in: """
            extern "C" __global__ void global_average_backward(const \(element.stored)* __restrict__ dy,
                    \(element.stored)* dx, i64 count, i64 spatial) {
                for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < count; i += (i64)gridDim.x * blockDim.x) {
                    dx[i] = \(element.store("(\(c))\(element.load("dx[i]")) + (\(c))\(element.load("dy[i / spatial]")) / (\(c))spatial"));
                }
            }
            """)
    }

    func readsInput(_ index: Int) -> Bool { false }
    func readsOutput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        guard let dy = pass.outputGradient(0), let dx = pass.inputGradient(0), count > 0 else { return }
        try cuda.makeCurrent()
        try cuda.launch(
            function, grid: (cuda.blocks(for: count), 1, 1), block: (256, 1, 1),
            [.tensor(dy), .tensor(dx), .int64(Int64(count)), .int64(Int64(max(spatial, 1)))],
            name: "GlobalAveragePool backward")
    }
}

func registerPoolingGradients(_ registry: KernelRegistry) {
    registry.registerGradient("MaxPool", backend: CUDABackend.name) { try PoolGradientKernel($0, maximum: true) }
    registry.registerGradient("AveragePool", backend: CUDABackend.name) { try PoolGradientKernel($0, maximum: false) }
    registry.registerGradient("GlobalAveragePool", backend: CUDABackend.name) { try GlobalAveragePoolGradientKernel($0) }
}
