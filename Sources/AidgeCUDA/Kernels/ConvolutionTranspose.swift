import AidgeCore

/// ConvTranspose as a direct gather: one thread per output element sums the input positions whose strided,
/// dilated kernel taps land on it (the adjoint of Conv), then adds the bias.
final class ConvTransposeKernel: Kernel {
    private let cuda: CUDADevice
    private let function: OpaquePointer?
    private let count: Int
    private let arguments: [KernelArgument]
    private let name: String

    init(_ request: KernelRequest) throws {
        cuda = try CUDABackend.device()
        name = "ConvTranspose (node \(request.nodeName))"
        let g = try ConvTransposeGeometry(request.attributes, request.inputs)
        guard (1...3).contains(g.window.rank) else { throw AidgeError.unsupported("\(name): 1 to 3 spatial dimensions") }
        let element = try ElementType.of(g.dtype, for: "ConvTranspose")
        let c = element.compute
        count = ShapeUtil.count(g.outputShape)
        // The window as seen from the output: `in` is X's spatial size, `out` the result's.
        let bias = g.hasBias ? "acc += (\(c))\(element.load("b[m]"));" : ""
        function = try cuda.function("conv_transpose", in: indexingSource + windowSource + windowUnpackSource + """
            extern "C" __global__ void conv_transpose(const \(element.stored)* __restrict__ x,
                    const \(element.stored)* __restrict__ w, const \(element.stored)* __restrict__ b,
                    \(element.stored)* __restrict__ y, i64 count, i64 in_channels, i64 out_channels, i64 groups,
                    dims ga, dims gb, dims gc) {
                window g = unpack_window(ga, gb, gc);
                i64 spatial_in, spatial_out, size;
                window_sizes(g, spatial_in, spatial_out, size);
                i64 group_in = in_channels / groups, group_out = out_channels / groups;
                for (i64 o = blockIdx.x * (i64)blockDim.x + threadIdx.x; o < count; o += (i64)gridDim.x * blockDim.x) {
                    i64 p = o % spatial_out, m = (o / spatial_out) % out_channels, n = o / (spatial_out * out_channels);
                    i64 group = m / group_out, mg = m % group_out;
                    i64 position[3];
                    i64 rest = p;
                    for (int d = g.rank - 1; d >= 0; --d) { position[d] = rest % g.out[d] + g.pad[d]; rest /= g.out[d]; }
                    \(c) acc = 0;
                    for (i64 k = 0; k < size; ++k) {
                        i64 kk = k, offset = 0, stride = 1;
                        bool hit = true;
                        for (int d = g.rank - 1; d >= 0; --d) {
                            i64 t = position[d] - (kk % g.kernel[d]) * g.dilation[d];
                            kk /= g.kernel[d];
                            if (t < 0 || t % g.stride[d] != 0 || t / g.stride[d] >= g.in[d]) hit = false;
                            offset += (t / g.stride[d]) * stride;
                            stride *= g.in[d];
                        }
                        if (!hit) continue;
                        for (i64 ci = 0; ci < group_in; ++ci) {
                            i64 channel = group * group_in + ci;
                            acc += (\(c))\(element.load("x[(n * in_channels + channel) * spatial_in + offset]"))
                                 * (\(c))\(element.load("w[(channel * group_out + mg) * size + k]"));
                        }
                    }
                    \(bias)
                    y[o] = \(element.store("acc"));
                }
            }
            """)
        arguments = [.int64(Int64(count)), .int64(Int64(g.inChannels)), .int64(Int64(g.outChannels)),
                     .int64(Int64(g.group))] + windowArguments(g.window)
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard inputs.count >= 2, let x = inputs[0], let w = inputs[1] else {
            throw AidgeError.invalidArgument("\(name): missing input")
        }
        guard count > 0 else { return }
        try cuda.makeCurrent()
        let bias = inputs.count > 2 ? inputs[2] : nil
        try cuda.launch(
            function, grid: (cuda.blocks(for: count), 1, 1), block: (256, 1, 1),
            [.tensor(x), .tensor(w), .tensor(bias ?? w), .tensor(outputs[0])] + arguments, name: name)
    }
}
