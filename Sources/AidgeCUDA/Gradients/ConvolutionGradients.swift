import AidgeCore

/// Conv's backward through GEMMs, per image and group: dW += dY · colᵀ (the input's patches, unfolded by the
/// forward's im2col), d(col) = Wᵀ · dY folded back into dX by a gather over the taps that read each input
/// element (col2im), and dB by summing dY over images and positions.
final class ConvGradientKernel: GradientKernel {
    private let cuda: CUDADevice
    private let geometry: ConvGeometry
    private let window: [KernelArgument]
    private let im2col: OpaquePointer?, col2im: OpaquePointer?
    private let forWeights: BlasProduct, forColumns: BlasProduct
    private let bias: BroadcastReduction?
    private let outputInfo: ValueInfo
    private let byteSize: Int

    init(_ request: KernelRequest) throws {
        cuda = try CUDABackend.device()
        let g = try ConvGeometry(request.attributes, request.inputs)
        guard (1...3).contains(g.window.rank), !request.attributes.has("activation") else {
            throw AidgeError.unsupported("Conv backward on CUDA: 1 to 3 spatial dimensions, no fused activation")
        }
        geometry = g
        let element = try ElementType.of(g.dtype, for: "Conv")
        byteSize = g.dtype.byteSize
        window = windowArguments(g.window)
        let groupIn = g.inChannels / g.group, groupOut = g.outChannels / g.group
        let rows = groupIn * ShapeUtil.count(g.window.kernel), positions = ShapeUtil.count(g.window.output)
        let tf32 = CUDABackend.allowsTF32Convolutions
        // dW[Mg, rows] += dY[Mg, P] · col[rows, P]ᵀ; d(col)[rows, P] = W[Mg, rows]ᵀ · dY[Mg, P].
        forWeights = try BlasProduct(
            m: groupOut, n: rows, k: positions, transposeA: false, transposeB: true, dtype: g.dtype, tf32: tf32,
            what: "Conv backward")
        forColumns = try BlasProduct(
            m: rows, n: positions, k: groupOut, transposeA: true, transposeB: false, dtype: g.dtype, tf32: tf32,
            what: "Conv backward")
        im2col = try cuda.function("im2col", in: im2colSource(element))
        let c = element.compute
        col2im = try cuda.function("col2im", in: indexingSource + windowSource + windowUnpackSource + """
            extern "C" __global__ void col2im(const \(element.stored)* __restrict__ col, \(element.stored)* dx,
                    i64 channels, dims ga, dims gb, dims gc) {
                window g = unpack_window(ga, gb, gc);
                i64 spatial_in, spatial_out, size;
                window_sizes(g, spatial_in, spatial_out, size);
                i64 count = channels * spatial_in;
                for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < count; i += (i64)gridDim.x * blockDim.x) {
                    i64 channel = i / spatial_in, position[3], rest = i % spatial_in;
                    for (int d = g.rank - 1; d >= 0; --d) { position[d] = rest % g.in[d] + g.pad[d]; rest /= g.in[d]; }
                    \(c) acc = 0;
                    for (i64 k = 0; k < size; ++k) {
                        i64 kk = k, p = 0, stride = 1;
                        bool hit = true;
                        for (int d = g.rank - 1; d >= 0; --d) {
                            i64 t = position[d] - (kk % g.kernel[d]) * g.dilation[d];
                            kk /= g.kernel[d];
                            if (t < 0 || t % g.stride[d] != 0 || t / g.stride[d] >= g.out[d]) hit = false;
                            p += (t / g.stride[d]) * stride;
                            stride *= g.out[d];
                        }
                        if (hit) acc += (\(c))\(element.load("col[(channel * size + k) * spatial_out + p]"));
                    }
                    dx[i] = \(element.store("(\(c))\(element.load("dx[i]")) + acc"));
                }
            }
            """)
        outputInfo = request.outputs[0]
        bias = g.hasBias
            ? try BroadcastReduction(
                cuda, from: outputInfo,
                to: ValueInfo(dtype: g.dtype, shape: [g.outChannels] + [Int](repeating: 1, count: g.window.rank)))
            : nil
    }

    func backward(_ pass: BackwardPass) throws {
        guard let dy = pass.outputGradient(0) else { return }
        let x = try pass.input(0), w = try pass.input(1)
        let dx = pass.inputGradient(0), dw = pass.inputGradient(1)
        try cuda.makeCurrent()
        let g = geometry
        let groupIn = g.inChannels / g.group, groupOut = g.outChannels / g.group
        let positions = ShapeUtil.count(g.window.output), plane = ShapeUtil.count(g.window.input)
        let rows = groupIn * ShapeUtil.count(g.window.kernel)
        if dx != nil || dw != nil {
            let scratch = try CUDABackend.memory().allocate(byteCount: rows * positions * byteSize)
            for image in 0..<g.batch {
                for group in 0..<g.group {
                    let input = x.rawPointer + (image * g.inChannels + group * groupIn) * plane * byteSize
                    let gradient = dy.rawPointer + (image * g.outChannels + group * groupOut) * positions * byteSize
                    let weightsAt = group * groupOut * rows * byteSize
                    if let dw {
                        try cuda.launch(
                            im2col, grid: (cuda.blocks(for: rows * positions), 1, 1), block: (256, 1, 1),
                            [.pointer(input), .pointer(scratch.pointer), .int64(1), .int64(Int64(g.inChannels * plane)),
                             .int64(Int64(groupIn))] + window, name: "Conv backward")
                        try forWeights.run(
                            on: cuda, a: gradient, b: scratch.pointer, c: dw.rawPointer + weightsAt, alpha: 1, beta: 1)
                    }
                    if let dx {
                        try forColumns.run(
                            on: cuda, a: w.rawPointer + weightsAt, b: gradient, c: scratch.pointer, alpha: 1, beta: 0)
                        try cuda.launch(
                            col2im, grid: (cuda.blocks(for: groupIn * plane), 1, 1), block: (256, 1, 1),
                            [.pointer(scratch.pointer), .pointer(dx.rawPointer + (input - x.rawPointer)),
                             .int64(Int64(groupIn))] + window, name: "Conv backward")
                    }
                }
            }
        }
        if let bias, let db = pass.inputGradient(2) { try bias.run(on: cuda, dy, into: db) }
    }
}

func registerConvolutionGradients(_ registry: KernelRegistry) {
    registry.registerGradient("Conv", backend: CUDABackend.name) { try ConvGradientKernel($0) }
}
