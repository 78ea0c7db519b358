import AidgeCore

/// The window walk shared by pooling and im2col: 1 to 3 spatial dimensions, described by `dims` arguments.
let windowSource = """
    struct window {
        int rank;
        i64 in[3], out[3], kernel[3], stride[3], dilation[3], pad[3], pad_end[3];
    };

    """

/// `WindowGeometry` as the kernels' `struct window`, flattened for the launch (`KernelArgument.dims` x 2).
func windowArguments(_ w: WindowGeometry) -> [KernelArgument] {
    func three(_ values: [Int]) -> [Int] { values + [Int](repeating: 1, count: 3 - values.count) }
    // int rank (padded to 8 bytes) then seven i64[3] arrays: 1 + 21 = 22 words, sent as three dims structs.
    let words = [w.rank] + three(w.input) + three(w.output) + three(w.kernel) + three(w.strides) + three(w.dilations)
        + three(w.padsBegin) + three(w.padsEnd)
    return [.dims(Array(words[0..<8])), .dims(Array(words[8..<16])), .dims(Array(words[16...]))]
}

/// The kernel-side reader of `windowArguments`: three `dims` that together hold one `struct window`.
let windowUnpackSource = """
    __device__ __forceinline__ window unpack_window(const dims& a, const dims& b, const dims& c) {
        i64 w[24];
        for (int i = 0; i < 8; ++i) { w[i] = a.v[i]; w[8 + i] = b.v[i]; w[16 + i] = c.v[i]; }
        window g;
        g.rank = (int)w[0];
        for (int d = 0; d < 3; ++d) {
            g.in[d] = w[1 + d]; g.out[d] = w[4 + d]; g.kernel[d] = w[7 + d]; g.stride[d] = w[10 + d];
            g.dilation[d] = w[13 + d]; g.pad[d] = w[16 + d]; g.pad_end[d] = w[19 + d];
        }
        return g;
    }
    /// Elements of the input plane, of the output plane, and taps of the kernel.
    __device__ __forceinline__ void window_sizes(const window& g, i64& spatial_in, i64& spatial_out, i64& size) {
        spatial_in = 1; spatial_out = 1; size = 1;
        for (int d = 0; d < g.rank; ++d) { spatial_in *= g.in[d]; spatial_out *= g.out[d]; size *= g.kernel[d]; }
    }
    /// Where the window of output position `position` (in its plane) starts in the input, per axis.
    __device__ __forceinline__ void window_start(const window& g, i64 position, i64* start) {
        for (int d = g.rank - 1; d >= 0; --d) {
            start[d] = (position % g.out[d]) * g.stride[d] - g.pad[d];
            position /= g.out[d];
        }
    }

    """

/// MaxPool and AveragePool: one thread per output element over its window (pads are skipped by MaxPool and
/// counted by AveragePool only with `count_include_pad`).
final class PoolKernel: Kernel {
    private let cuda: CUDADevice
    private let function: OpaquePointer?
    private let count: Int
    private let geometry: [KernelArgument]
    private let name: String

    init(_ request: KernelRequest, maximum: Bool) throws {
        cuda = try CUDABackend.device()
        let type = request.op.type
        name = "\(type) (node \(request.nodeName))"
        let x = try request.input(0)
        let window = try PoolGeometry.window(request.attributes, x.shape, what: type)
        guard window.rank <= 3 else { throw AidgeError.unsupported("\(name): 1 to 3 spatial dimensions on CUDA") }
        let element = try ElementType.of(x.dtype, for: type)
        guard element.isFloatingPoint else { throw AidgeError.unsupportedType("\(name) has no CUDA kernel for \(x.dtype)") }
        let includePad = try request.attributes.int("count_include_pad", default: 0) != 0
        count = request.outputs[0].count
        geometry = windowArguments(window)
        let c = element.compute
        let source = indexingSource + windowSource + windowUnpackSource + """
            extern "C" __global__ void pool(const \(element.stored)* __restrict__ x, \(element.stored)* __restrict__ y,
                                            i64 count, dims ga, dims gb, dims gc) {
                window g = unpack_window(ga, gb, gc);
                i64 spatial_in, spatial_out, size, start[3];
                window_sizes(g, spatial_in, spatial_out, size);
                for (i64 o = blockIdx.x * (i64)blockDim.x + threadIdx.x; o < count; o += (i64)gridDim.x * blockDim.x) {
                    i64 plane = o / spatial_out;
                    window_start(g, o % spatial_out, start);
                    \(c) acc = \(maximum ? "-INFINITY" : "0");
                    i64 counted = 0;
                    for (i64 k = 0; k < size; ++k) {
                        i64 kk = k, offset = 0;
                        bool inside = true, padded = true;
                        for (int d = g.rank - 1; d >= 0; --d) {
                            i64 at = start[d] + (kk % g.kernel[d]) * g.dilation[d];
                            kk /= g.kernel[d];
                            if (at < 0 || at >= g.in[d]) inside = false;
                            if (at < -g.pad[d] || at >= g.in[d] + g.pad_end[d]) padded = false;
                            i64 stride = 1;
                            for (int e = d + 1; e < g.rank; ++e) stride *= g.in[e];
                            offset += at * stride;
                        }
                        if (inside) {
                            \(c) v = \(element.load("x[plane * spatial_in + offset]"));
                            \(maximum ? "acc = (v > acc || v != v) ? v : acc;" : "acc += v;")
                        }
                        counted += \(includePad ? "padded" : "inside") ? 1 : 0;
                    }
                    y[o] = \(element.store(maximum ? "acc" : "counted > 0 ? acc / (\(c))counted : (\(c))0"));
                }
            }
            """
        function = try cuda.function("pool", in: source)
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard let x = inputs.first ?? nil else { throw AidgeError.invalidArgument("\(name): missing input") }
        guard outputs.count == 1 else { throw AidgeError.unsupported("\(name): the Indices output runs on cpu only") }
        guard count > 0 else { return }
        try cuda.makeCurrent()
        try cuda.launch(
            function, grid: (cuda.blocks(for: count), 1, 1), block: (256, 1, 1),
            [.tensor(x), .tensor(outputs[0]), .int64(Int64(count))] + geometry, name: name)
    }
}

/// GlobalAveragePool and GlobalMaxPool: the reductions over every spatial axis.
func globalPoolRequest(_ request: KernelRequest, maximum: Bool) throws -> KernelRequest {
    let x = try request.input(0)
    let op = Operator(
        maximum ? "ReduceMax" : "ReduceMean",
        attributes: ["axes": .ints(Array(2..<max(x.shape.count, 2))), "keepdims": .int(1)])
    return KernelRequest(op: op, nodeName: request.nodeName, inputs: [x], outputs: request.outputs)
}

func registerPoolingKernels(_ registry: KernelRegistry) {
    registry.register("MaxPool", backend: CUDABackend.name) { try PoolKernel($0, maximum: true) }
    registry.register("AveragePool", backend: CUDABackend.name) { try PoolKernel($0, maximum: false) }
    registry.register("GlobalAveragePool", backend: CUDABackend.name) {
        try ReduceKernel(try globalPoolRequest($0, maximum: false))
    }
    registry.register("GlobalMaxPool", backend: CUDABackend.name) {
        try ReduceKernel(try globalPoolRequest($0, maximum: true))
    }
}
