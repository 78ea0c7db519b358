import AidgeCore

/// The Reduce* operators: one thread per output element, which walks the reduced axes through their strides
/// (any set of axes, no gather first). Floats accumulate in float (double for float64).
final class ReduceKernel: Kernel {
    private let cuda: CUDADevice
    private let function: OpaquePointer?
    private let outputCount: Int
    private let arguments: [KernelArgument]
    private let name: String

    init(_ request: KernelRequest) throws {
        cuda = try CUDABackend.device()
        let type = request.op.type
        let x = try request.input(0)
        name = "\(type) (node \(request.nodeName))"
        let axes = try Reductions.axes(request.attributes, request.inputs, rank: x.shape.count, type: type)
        let element = try ElementType.of(x.dtype, for: type)
        let strides = ShapeUtil.contiguousStrides(x.shape)
        let kept = x.shape.indices.filter { !axes.contains($0) }
        let folded = axes.filter { x.shape[$0] != 1 }
        guard kept.count <= maxKernelRank, folded.count <= maxKernelRank else {
            throw AidgeError.unsupported("\(name): more than \(maxKernelRank) dimensions on CUDA")
        }
        outputCount = request.outputs[0].count
        let reducedCount = folded.reduce(1) { $0 * x.shape[$1] }
        let c = element.compute == "double" ? "double" : (element.isFloatingPoint ? "float" : element.compute)
        let f = c == "double" ? "" : "f"
        // (initial value, accumulation of v into acc, final value from acc and n)
        let (start, step, finish): (String, String, String)
        switch type {
        case "ReduceSum": (start, step, finish) = ("0", "acc += v", "acc")
        case "ReduceMean": (start, step, finish) = ("0", "acc += v", "acc / (\(c))n")
        case "ReduceProd": (start, step, finish) = ("1", "acc *= v", "acc")
        case "ReduceMax": (start, step, finish) = ("v0", "acc = (v > acc || v != v) ? v : acc", "acc")
        case "ReduceMin": (start, step, finish) = ("v0", "acc = (v < acc || v != v) ? v : acc", "acc")
        case "ReduceL1": (start, step, finish) = ("0", "acc += v < 0 ? -v : v", "acc")
        case "ReduceL2": (start, step, finish) = ("0", "acc += v * v", "sqrt\(f)(acc)")
        case "ReduceSumSquare": (start, step, finish) = ("0", "acc += v * v", "acc")
        case "ReduceLogSum": (start, step, finish) = ("0", "acc += v", "log\(f)(acc)")
        case "ReduceLogSumExp": (start, step, finish) = ("0", "acc += exp\(f)(v - v0)", "v0 + log\(f)(acc)")
        default: throw AidgeError.unsupported("\(type) has no CUDA kernel")
        }
        guard element.isFloatingPoint || !["ReduceL2", "ReduceLogSum", "ReduceLogSumExp"].contains(type) else {
            throw AidgeError.unsupportedType("\(name) has no CUDA kernel for \(x.dtype)")
        }
        let out = try ElementType.of(request.outputs[0].dtype, for: type)
        let load = element.load("x[base + strided_offset(r, folded_rank, folded_shape, folded_strides)]")
        // LogSumExp subtracts the maximum first, so exp cannot overflow.
        let maximum = "for (i64 r = 0; r < n; ++r) { \(c) v = (\(c))\(load); v0 = v > v0 ? v : v0; }"

        let source = indexingSource + """
            extern "C" __global__ void reduce(const \(element.stored)* __restrict__ x, \(out.stored)* __restrict__ y,
                    i64 count, int kept_rank, dims kept_shape, dims kept_strides, i64 n, int folded_rank,
                    dims folded_shape, dims folded_strides) {
                for (i64 o = blockIdx.x * (i64)blockDim.x + threadIdx.x; o < count; o += (i64)gridDim.x * blockDim.x) {
                    i64 base = strided_offset(o, kept_rank, kept_shape, kept_strides);
                    \(c) v0 = n > 0 ? (\(c))\(element.load("x[base]")) : (\(c))0;
                    \(type == "ReduceLogSumExp" ? maximum : "")
                    \(c) acc = \(start);
                    for (i64 r = 0; r < n; ++r) {
                        \(c) v = (\(c))\(load);
                        \(step);
                    }
                    y[o] = \(out.store(finish));
                }
            }
            """
        function = try cuda.function("reduce", in: source)
        arguments = [
            .int64(Int64(outputCount)), .int32(Int32(kept.count)), .dims(kept.map { x.shape[$0] }),
            .dims(kept.map { strides[$0] }), .int64(Int64(reducedCount)), .int32(Int32(folded.count)),
            .dims(folded.map { x.shape[$0] }), .dims(folded.map { strides[$0] }),
        ]
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard let x = inputs.first ?? nil else { throw AidgeError.invalidArgument("\(name): missing input") }
        guard outputCount > 0 else { return }
        try cuda.makeCurrent()
        try cuda.launch(
            function, grid: (cuda.blocks(for: outputCount), 1, 1), block: (256, 1, 1),
            [.tensor(x), .tensor(outputs[0])] + arguments, name: name)
    }
}

func registerReductionKernels(_ registry: KernelRegistry) {
    for type in Reductions.reduceTypes {
        registry.register(type, backend: CUDABackend.name) { try ReduceKernel($0) }
    }
}
