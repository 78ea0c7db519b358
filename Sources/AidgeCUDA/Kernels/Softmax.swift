import AidgeCore

/// Softmax and LogSoftmax along one axis: one block per line (each `outer * inner` pair), whose threads walk the
/// line with stride `inner`; the maximum and the sum are block reductions in shared memory.
final class SoftmaxKernel: Kernel {
    private let cuda: CUDADevice
    private let function: OpaquePointer?
    private let outer: Int, length: Int, inner: Int
    private let name: String
    private static let threads = 256

    init(_ request: KernelRequest, log: Bool) throws {
        cuda = try CUDABackend.device()
        let x = try request.input(0)
        name = "\(request.op.type) (node \(request.nodeName))"
        let rank = x.shape.count
        var axis = try request.attributes.int("axis", default: -1)
        if axis < 0 { axis += rank }
        guard rank == 0 || (0..<rank).contains(axis) else {
            throw AidgeError.invalidModel("\(request.op.type) axis \(axis) is out of range for rank \(rank)")
        }
        outer = rank == 0 ? 1 : ShapeUtil.count(Array(x.shape[..<axis]))
        length = rank == 0 ? 1 : x.shape[axis]
        inner = rank == 0 ? 1 : ShapeUtil.count(Array(x.shape[(axis + 1)...]))
        let type = try ElementType.of(x.dtype, for: request.op.type)
        guard type.isFloatingPoint else { throw AidgeError.unsupportedType("\(request.op.type) needs floats, got \(x.dtype)") }
        let c = type.compute
        let math = c == "double" ? (exp: "exp", log: "log") : (exp: "expf", log: "logf")
        let result = log ? "v - m - \(math.log)(s)" : "\(math.exp)(v - m) / s"
        let source = blockReduceSource(c) + """
            extern "C" __global__ void softmax(const \(type.stored)* __restrict__ x, \(type.stored)* __restrict__ y,
                                               i64 length, i64 inner) {
                __shared__ \(c) scratch[\(Self.threads)];
                i64 line = blockIdx.x;
                i64 base = (line / inner) * length * inner + line % inner;
                \(c) m = -INFINITY;
                for (i64 j = threadIdx.x; j < length; j += blockDim.x) {
                    \(c) v = \(type.load("x[base + j * inner]"));
                    m = v > m ? v : m;
                }
                m = block_reduce(m, scratch, true);
                \(c) s = 0;
                for (i64 j = threadIdx.x; j < length; j += blockDim.x) {
                    s += \(math.exp)(\(type.load("x[base + j * inner]")) - m);
                }
                s = block_reduce(s, scratch, false);
                for (i64 j = threadIdx.x; j < length; j += blockDim.x) {
                    \(c) v = \(type.load("x[base + j * inner]"));
                    y[base + j * inner] = \(type.store(result));
                }
            }
            """
        function = try cuda.function("softmax", in: source)
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard let x = inputs.first ?? nil else { throw AidgeError.invalidArgument("\(name): missing input") }
        let lines = outer * inner
        guard lines > 0, length > 0 else { return }
        guard lines <= Int(Int32.max) else { throw AidgeError.unsupported("\(name): too many lines for one grid") }
        try cuda.makeCurrent()
        try cuda.launch(
            function, grid: (lines, 1, 1), block: (Self.threads, 1, 1),
            [.tensor(x), .tensor(outputs[0]), .int64(Int64(length)), .int64(Int64(inner))], name: name)
    }
}

/// `block_reduce(v, scratch, maximum)`: the maximum or the sum of `v` over the block's threads (a power of two,
/// `scratch` one element per thread), returned to every thread.
func blockReduceSource(_ c: String) -> String {
    """
    __device__ \(c) block_reduce(\(c) v, \(c)* scratch, bool maximum) {
        scratch[threadIdx.x] = v;
        __syncthreads();
        for (int half = blockDim.x / 2; half > 0; half /= 2) {
            if (threadIdx.x < half) {
                \(c) other = scratch[threadIdx.x + half];
                scratch[threadIdx.x] = maximum ? (other > scratch[threadIdx.x] ? other : scratch[threadIdx.x])
                                               : scratch[threadIdx.x] + other;
            }
            __syncthreads();
        }
        \(c) total = scratch[0];
        __syncthreads();
        return total;
    }

    """
}

func registerSoftmaxKernels(_ registry: KernelRegistry) {
    registry.register("Softmax", backend: CUDABackend.name) { try SoftmaxKernel($0, log: false) }
    registry.register("LogSoftmax", backend: CUDABackend.name) { try SoftmaxKernel($0, log: true) }
}
