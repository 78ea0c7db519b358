import AidgeCore

/// Resize in every mode the CPU has (nearest, linear, cubic, antialiasing, the coordinate transformations): the
/// per-axis taps and weights (`ResizeAxisSampling`, ONNX's reference coefficients) are computed on the host when
/// the kernel is made and uploaded once; one thread per output element sums its taps over the resampled axes (at
/// most 3; the others are read as they are).
final class ResizeKernel: Kernel {
    private let cuda: CUDADevice
    private let function: OpaquePointer?
    private let count: Int
    private let tables: (indices: Tensor, weights: Tensor, extrapolated: Tensor)
    private let arguments: [KernelArgument]
    private let name: String

    init(_ request: KernelRequest) throws {
        cuda = try CUDABackend.device()
        name = "Resize (node \(request.nodeName))"
        let g = try ResizeGeometry(type: request.op.type, attributes: request.attributes, inputs: request.inputs)
        let x = try request.input(0)
        let element = try ElementType.of(x.dtype, for: "Resize")
        guard element.isFloatingPoint else { throw AidgeError.unsupportedType("\(name) on CUDA takes floats, got \(x.dtype)") }
        let rank = g.inputShape.count
        guard rank <= maxKernelRank else { throw AidgeError.unsupported("\(name): rank over \(maxKernelRank)") }
        let samplings = (0..<rank).map { ResizeAxisSampling(g, axis: $0) }
        let sampled = (0..<rank).filter { !samplings[$0].isIdentity(inputLength: g.inputShape[$0]) }
        guard sampled.count <= 3 else { throw AidgeError.unsupported("\(name): more than 3 resampled axes on CUDA") }
        // The tables of the resampled axes, end to end, and where each axis's part starts.
        var indices: [Int64] = [], weights: [Double] = [], extrapolated: [UInt8] = []
        var starts: [Int] = [], flagStarts: [Int] = []
        for a in sampled {
            starts.append(indices.count)
            flagStarts.append(extrapolated.count)
            indices += samplings[a].index.map(Int64.init)
            weights += samplings[a].weight
            extrapolated += samplings[a].extrapolated.map { $0 ? 1 : 0 }
        }
        let memory = try CUDABackend.memory()
        let c = element.compute == "double" ? "double" : "float"
        let weightType: DType = c == "double" ? .float64 : .float32
        func upload(_ t: Tensor) throws -> Tensor { try t.copy(to: memory.device) }
        tables = (
            try upload(Tensor(indices.isEmpty ? [0] : indices)),
            try upload(Tensor(weights.isEmpty ? [0] : weights).cast(to: weightType)),
            try upload(Tensor(extrapolated.isEmpty ? [0] : extrapolated))
        )
        count = ShapeUtil.count(g.outputShape)
        function = try cuda.function("resize", in: indexingSource + """
            extern "C" __global__ void resize(const \(element.stored)* __restrict__ x, \(element.stored)* __restrict__ y,
                    const i64* __restrict__ taps, const \(c)* __restrict__ weights,
                    const unsigned char* __restrict__ outside, i64 count, int rank, dims out_shape, dims in_strides,
                    int sampled, dims axes, dims tap_counts, dims starts, dims flag_starts, float fill) {
                for (i64 o = blockIdx.x * (i64)blockDim.x + threadIdx.x; o < count; o += (i64)gridDim.x * blockDim.x) {
                    i64 coordinate[8], rest = o, base = 0;
                    for (int d = rank - 1; d >= 0; --d) { coordinate[d] = rest % out_shape.v[d]; rest /= out_shape.v[d]; }
                    bool extrapolated = false;
                    i64 combinations = 1;
                    for (int d = 0; d < rank; ++d) {
                        bool resampled = false;
                        for (int s = 0; s < sampled; ++s) resampled = resampled || axes.v[s] == d;
                        if (!resampled) base += coordinate[d] * in_strides.v[d];
                    }
                    for (int s = 0; s < sampled; ++s) {
                        extrapolated = extrapolated || outside[flag_starts.v[s] + coordinate[axes.v[s]]];
                        combinations *= tap_counts.v[s];
                    }
                    \(c) acc = 0;
                    for (i64 k = 0; k < combinations && !extrapolated; ++k) {
                        i64 kk = k, offset = base;
                        \(c) w = 1;
                        for (int s = 0; s < sampled; ++s) {
                            i64 n = tap_counts.v[s], t = kk % n, at = starts.v[s] + coordinate[axes.v[s]] * n + t;
                            kk /= n;
                            w *= weights[at];
                            offset += taps[at] * in_strides.v[axes.v[s]];
                        }
                        if (w != 0) acc += w * (\(c))\(element.load("x[offset]"));
                    }
                    y[o] = \(element.store("extrapolated ? (\(c))fill : acc"));
                }
            }
            """)
        arguments = [
            .int64(Int64(count)), .int32(Int32(rank)), .dims(g.outputShape), .dims(ShapeUtil.contiguousStrides(g.inputShape)),
            .int32(Int32(sampled.count)), .dims(sampled), .dims(sampled.map { samplings[$0].count }), .dims(starts),
            .dims(flagStarts), .float(Float(g.extrapolationValue)),
        ]
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard let x = inputs.first ?? nil else { throw AidgeError.invalidArgument("\(name): missing input") }
        guard count > 0 else { return }
        try cuda.makeCurrent()
        try cuda.launch(
            function, grid: (cuda.blocks(for: count), 1, 1), block: (256, 1, 1),
            [.tensor(x), .tensor(outputs[0]), .tensor(tables.indices), .tensor(tables.weights),
             .tensor(tables.extrapolated)] + arguments, name: name)
    }
}

func registerResizeKernels(_ registry: KernelRegistry) {
    for type in ["Resize", "Upsample"] {
        registry.register(type, backend: CUDABackend.name) { try ResizeKernel($0) }
    }
}
