import AidgeCore

/// The activation that `Recipes.fuseActivation` puts on a Conv or Gemm (`activation`, `activation_params`), as
/// an expression of `v`; nil when there is none.
func fusedActivation(_ attributes: Attributes, compute c: String) throws -> String? {
    guard attributes.has("activation") else { return nil }
    switch try attributes.string("activation") {
    case "Relu": return "(v > (\(c))0 ? v : (\(c))0)"
    case "Clip":
        let bounds = try attributes.floats("activation_params", default: [])
        guard bounds.count == 2 else { throw AidgeError.invalidModel("fused Clip needs activation_params = [min, max]") }
        let low = "(\(c))\(floatLiteral(bounds[0]))", high = "(\(c))\(floatLiteral(bounds[1]))"
        return "(v < \(low) ? \(low) : (v > \(high) ? \(high) : v))"
    case let other: throw AidgeError.unsupported("fused activation '\(other)' (supported: Relu, Clip)")
    }
}

/// The pass after a GEMM: adds a bias per channel (`channels` of `inner` elements each) and applies the fused
/// activation, in place.
struct Epilogue {
    private let function: OpaquePointer?
    private let channels: Int, inner: Int

    /// nil when there is nothing to do.
    init?(_ cuda: CUDADevice, dtype: DType, bias: DType?, activation: String?, channels: Int, inner: Int) throws {
        guard bias != nil || activation != nil else { return nil }
        let element = try ElementType.of(dtype, for: "a bias")
        let biasType = try bias.map { try ElementType.of($0, for: "a bias") } ?? element
        let c = element.compute
        self.channels = channels
        self.inner = inner
        let source = """
            extern "C" __global__ void epilogue(\(element.stored)* __restrict__ y,
                    const \(biasType.stored)* __restrict__ bias, i64 count, i64 channels, i64 inner) {
                for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < count; i += (i64)gridDim.x * blockDim.x) {
                    \(c) v = \(element.load("y[i]"))\(bias == nil ? "" : " + (\(c))\(biasType.load("bias[(i / inner) % channels]"))");
                    y[i] = \(element.store(activation ?? "v"));
                }
            }
            """
        function = try cuda.function("epilogue", in: source)
    }

    func run(on cuda: CUDADevice, _ y: Tensor, bias: Tensor?) throws {
        guard y.count > 0 else { return }
        try cuda.launch(
            function, grid: (cuda.blocks(for: y.count), 1, 1), block: (256, 1, 1),
            [.tensor(y), bias.map(KernelArgument.tensor) ?? .tensor(y), .int64(Int64(y.count)),
             .int64(Int64(channels)), .int64(Int64(inner))], name: "a bias and activation pass")
    }
}

/// Conv through cuDNN when it loads and takes the convolution; else as GEMM: per group, the input's patches are
/// unfolded (im2col) for a chunk of images into scratch memory, then one strided-batched cuBLAS call multiplies the
/// group's weights by each image's patches, writing the output in place. A 1x1 convolution with unit strides and
/// no padding multiplies the input directly; a depthwise one (one input channel per group) runs a direct kernel.
/// Bias and fused activation follow in one pass.
final class ConvKernel: Kernel {
    private let cuda: CUDADevice
    private let geometry: ConvGeometry
    private let window: [KernelArgument]
    private let im2col: OpaquePointer?
    private let depthwise: OpaquePointer?
    /// The cuDNN form of this convolution, used whenever cuDNN takes it.
    private let dnn: CuDNNConvolution?
    private let product: BlasProduct
    private let epilogue: Epilogue?
    /// Patches of `chunk` images of one group; nil when the input is multiplied directly (1x1).
    private let scratch: Storage?
    private let chunk: Int
    private let byteSize: Int
    private let name: String

    init(_ request: KernelRequest) throws {
        cuda = try CUDABackend.device()
        name = "Conv (node \(request.nodeName))"
        let g = try ConvGeometry(request.attributes, request.inputs)
        geometry = g
        guard g.window.rank >= 1, g.window.rank <= 3 else {
            throw AidgeError.unsupported("\(name): 1 to 3 spatial dimensions on CUDA")
        }
        let element = try ElementType.of(g.dtype, for: "Conv")
        byteSize = g.dtype.byteSize
        window = windowArguments(g.window)
        let groupIn = g.inChannels / g.group, groupOut = g.outChannels / g.group
        let kernelSize = ShapeUtil.count(g.window.kernel), positions = ShapeUtil.count(g.window.output)
        let activation = try fusedActivation(request.attributes, compute: element.compute)
        product = try BlasProduct(
            m: groupOut, n: positions, k: groupIn * kernelSize, transposeA: false, transposeB: false, dtype: g.dtype,
            tf32: CUDABackend.allowsTF32Convolutions, what: "Conv")
        let c = element.compute
        dnn = try CuDNNConvolution(cuda, g)
        if dnn != nil {
            depthwise = nil
            im2col = nil
            scratch = nil
            chunk = g.batch
            epilogue = try Epilogue(
                cuda, dtype: g.dtype, bias: g.hasBias ? try request.input(2).dtype : nil, activation: activation,
                channels: g.outChannels, inner: positions)
            return
        }
        let prelude = indexingSource + windowSource + windowUnpackSource
        let pointwise = g.window.kernel.allSatisfy { $0 == 1 } && g.window.strides.allSatisfy { $0 == 1 }
            && (g.window.padsBegin + g.window.padsEnd).allSatisfy { $0 == 0 }
        if groupIn == 1 && groupOut == 1 {
            // Depthwise: each output channel reads one input channel.
            let biasTerm = g.hasBias ? "acc += (\(c))\(element.load("bias[plane % channels]"));" : ""
            depthwise = try cuda.function("depthwise", in: prelude + """
                extern "C" __global__ void depthwise(const \(element.stored)* __restrict__ x,
                        const \(element.stored)* __restrict__ w, const \(element.stored)* __restrict__ bias,
                        \(element.stored)* __restrict__ y, i64 count, i64 channels, dims ga, dims gb, dims gc) {
                    window g = unpack_window(ga, gb, gc);
                    i64 spatial_in, spatial_out, size, start[3];
                    window_sizes(g, spatial_in, spatial_out, size);
                    for (i64 o = blockIdx.x * (i64)blockDim.x + threadIdx.x; o < count; o += (i64)gridDim.x * blockDim.x) {
                        i64 plane = o / spatial_out;
                        window_start(g, o % spatial_out, start);
                        \(c) acc = 0;
                        for (i64 k = 0; k < size; ++k) {
                            i64 kk = k, offset = 0, stride = 1;
                            bool inside = true;
                            for (int d = g.rank - 1; d >= 0; --d) {
                                i64 at = start[d] + (kk % g.kernel[d]) * g.dilation[d];
                                kk /= g.kernel[d];
                                inside = inside && at >= 0 && at < g.in[d];
                                offset += at * stride;
                                stride *= g.in[d];
                            }
                            if (inside) acc += (\(c))\(element.load("x[plane * spatial_in + offset]")) * (\(c))\(element.load("w[(plane % channels) * size + k]"));
                        }
                        \(biasTerm)
                        \(c) v = acc;
                        y[o] = \(element.store(activation ?? "v"));
                    }
                }
                """)
            im2col = nil
            epilogue = nil
            scratch = nil
            chunk = 1
            return
        }
        depthwise = nil
        epilogue = try Epilogue(
            cuda, dtype: g.dtype, bias: g.hasBias ? try request.input(2).dtype : nil, activation: activation,
            channels: g.outChannels, inner: positions)
        if pointwise {
            im2col = nil
            scratch = nil
            chunk = g.batch
            return
        }
        im2col = try cuda.function("im2col", in: im2colSource(element))
        // Patches of as many images as fit in 256 MiB (at least one).
        let perImage = groupIn * kernelSize * positions * byteSize
        chunk = max(1, min(g.batch, (256 << 20) / max(perImage, 1)))
        scratch = try CUDABackend.memory().allocate(byteCount: chunk * perImage)
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard inputs.count >= 2, let x = inputs[0], let w = inputs[1] else {
            throw AidgeError.invalidArgument("\(name): missing input")
        }
        let bias = inputs.count > 2 ? inputs[2] : nil
        let y = outputs[0]
        guard y.count > 0 else { return }
        try cuda.makeCurrent()
        let g = geometry
        if let dnn {
            try dnn.run(on: cuda, x: x, w: w, y: y)
            try epilogue?.run(on: cuda, y, bias: bias)
            return
        }
        if let depthwise {
            try cuda.launch(
                depthwise, grid: (cuda.blocks(for: y.count), 1, 1), block: (256, 1, 1),
                [.tensor(x), .tensor(w), .tensor(bias ?? w), .tensor(y), .int64(Int64(y.count)),
                 .int64(Int64(g.outChannels))] + window, name: name)
            return
        }
        let groupIn = g.inChannels / g.group, groupOut = g.outChannels / g.group
        let positions = ShapeUtil.count(g.window.output), inputPlane = ShapeUtil.count(g.window.input)
        let patchRows = groupIn * ShapeUtil.count(g.window.kernel)
        for group in 0..<g.group {
            let weights = w.rawPointer + group * groupOut * patchRows * byteSize
            var image = 0
            while image < g.batch {
                let images = min(chunk, g.batch - image)
                let source = x.rawPointer + (image * g.inChannels + group * groupIn) * inputPlane * byteSize
                let output = y.rawPointer + (image * g.outChannels + group * groupOut) * positions * byteSize
                if let im2col, let scratch {
                    try cuda.launch(
                        im2col, grid: (cuda.blocks(for: images * patchRows * positions), 1, 1), block: (256, 1, 1),
                        [.pointer(source), .pointer(scratch.pointer), .int64(Int64(images)),
                         .int64(Int64(g.inChannels * inputPlane)), .int64(Int64(groupIn))] + window, name: name)
                    try product.run(
                        on: cuda, a: weights, b: scratch.pointer, c: output, alpha: 1, beta: 0, batch: images,
                        strides: (0, patchRows * positions, g.outChannels * positions))
                } else {
                    try product.run(
                        on: cuda, a: weights, b: source, c: output, alpha: 1, beta: 0, batch: images,
                        strides: (0, g.inChannels * inputPlane, g.outChannels * positions))
                }
                image += images
            }
        }
        try epilogue?.run(on: cuda, y, bias: bias)
    }
}

/// The im2col kernel: the patches of `images` images (channels `channels` of each, from `x`) unfolded into rows
/// of `channels * kernel size` by columns of output positions.
func im2colSource(_ element: ElementType) -> String {
    indexingSource + windowSource + windowUnpackSource + """

        extern "C" __global__ void im2col(const \(element.stored)* __restrict__ x, \(element.stored)* __restrict__ col,
                i64 images, i64 image_stride, i64 channels, dims ga, dims gb, dims gc) {
            window g = unpack_window(ga, gb, gc);
            i64 spatial_out = 1, size = 1;
            for (int d = 0; d < g.rank; ++d) { spatial_out *= g.out[d]; size *= g.kernel[d]; }
            i64 count = images * channels * size * spatial_out;
            for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < count; i += (i64)gridDim.x * blockDim.x) {
                i64 p = i % spatial_out, row = i / spatial_out;
                i64 k = row % size, channel = (row / size) % channels, image = row / (size * channels);
                i64 offset = 0, stride = 1, kk = k, pp = p;
                bool inside = true;
                for (int d = g.rank - 1; d >= 0; --d) {
                    i64 at = (pp % g.out[d]) * g.stride[d] - g.pad[d] + (kk % g.kernel[d]) * g.dilation[d];
                    pp /= g.out[d];
                    kk /= g.kernel[d];
                    inside = inside && at >= 0 && at < g.in[d];
                    offset += at * stride;
                    stride *= g.in[d];
                }
                col[i] = inside ? x[image * image_stride + channel * stride + offset] : (\(element.stored))0;
            }
        }
        """
}

func registerConvolutionKernels(_ registry: KernelRegistry) {
    registry.register("Conv", backend: CUDABackend.name) { try ConvKernel($0) }
    registry.register("ConvTranspose", backend: CUDABackend.name) { try ConvTransposeKernel($0) }
}
