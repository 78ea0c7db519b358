import AidgeCore

/// BatchNormalization in inference form: y = (x - mean) / sqrt(var + epsilon) * scale + B, per channel (axis 1),
/// one thread per element.
final class BatchNormKernel: Kernel {
    private let cuda: CUDADevice
    private let function: OpaquePointer?
    private let count: Int, channels: Int, inner: Int
    private let name: String

    init(_ request: KernelRequest) throws {
        cuda = try CUDABackend.device()
        name = "BatchNormalization (node \(request.nodeName))"
        let x = try request.input(0)
        guard x.shape.count >= 2 else { throw AidgeError.shapeMismatch("\(name) needs an input N x C x ...") }
        let epsilon = try request.attributes.float("epsilon", default: 1e-5)
        let element = try ElementType.of(x.dtype, for: "BatchNormalization")
        guard element.isFloatingPoint else { throw AidgeError.unsupportedType("\(name) needs floats, got \(x.dtype)") }
        let types = try (1...4).map { try ElementType.of(try request.input($0).dtype, for: "BatchNormalization") }
        count = x.count
        channels = x.shape[1]
        inner = ShapeUtil.count(Array(x.shape[2...]))
        let c = element.compute == "double" ? "double" : "float"
        let parameters = ["scale", "bias", "mean", "var"].enumerated().map { k, p in "const \(types[k].stored)* \(p)" }
        let source = """
            extern "C" __global__ void batch_norm(const \(element.stored)* __restrict__ x, \(parameters.joined(separator: ", ")),
                    \(element.stored)* __restrict__ y, i64 count, i64 channels, i64 inner) {
                for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < count; i += (i64)gridDim.x * blockDim.x) {
                    i64 k = (i / inner) % channels;
                    \(c) v = (\(c))\(element.load("x[i]"));
                    \(c) s = (\(c))\(types[0].load("scale[k]")) / sqrt\(c == "double" ? "" : "f")((\(c))\(types[3].load("var[k]")) + (\(c))\(floatLiteral(epsilon)));
                    y[i] = \(element.store("(v - (\(c))\(types[2].load("mean[k]"))) * s + (\(c))\(types[1].load("bias[k]"))"));
                }
            }
            """
        function = try cuda.function("batch_norm", in: source)
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let present = inputs.compactMap { $0 }
        guard present.count == 5, inputs.count == 5 else { throw AidgeError.invalidArgument("\(name): missing input") }
        guard outputs.count == 1 else {
            throw AidgeError.unsupported("\(name): only the inference form (one output) runs on CUDA")
        }
        guard count > 0 else { return }
        try cuda.makeCurrent()
        try cuda.launch(
            function, grid: (cuda.blocks(for: count), 1, 1), block: (256, 1, 1),
            present.map(KernelArgument.tensor) + [
                .tensor(outputs[0]), .int64(Int64(count)), .int64(Int64(channels)), .int64(Int64(max(inner, 1))),
            ], name: name)
    }
}

/// LayerNormalization over the axes from `axis` on, and InstanceNormalization over the spatial axes of each
/// (image, channel): one block per row, mean and variance by block reductions. LayerNormalization's scale and bias
/// follow the row (one value per element), InstanceNormalization's the channel (one per row); LayerNormalization's
/// optional Mean and InvStdDev outputs are written when asked for.
final class LayerNormKernel: Kernel {
    private let cuda: CUDADevice
    private let function: OpaquePointer?
    private let rows: Int, length: Int
    private let name: String
    private static let threads = 256

    init(_ request: KernelRequest, instance: Bool = false) throws {
        cuda = try CUDABackend.device()
        let type = request.op.type
        name = "\(type) (node \(request.nodeName))"
        let x = try request.input(0)
        guard !instance || x.shape.count >= 3 else { throw AidgeError.shapeMismatch("\(name) needs N x C x spatial...") }
        let axis = instance ? 2 : try Normalizations.layerAxis(request.attributes, rank: x.shape.count)
        rows = ShapeUtil.count(Array(x.shape[..<axis]))
        length = ShapeUtil.count(Array(x.shape[axis...]))
        let epsilon = try request.attributes.float("epsilon", default: 1e-5)
        let element = try ElementType.of(x.dtype, for: type)
        guard element.isFloatingPoint else { throw AidgeError.unsupportedType("\(name) needs floats, got \(x.dtype)") }
        let scale = try request.input(1)
        let bias = request.inputs.count > 2 ? request.inputs[2] : nil
        let parameters = instance ? x.shape[1] : length
        for p in [scale, bias].compactMap({ $0 }) where p.count != parameters {
            throw AidgeError.unsupported("\(name): on CUDA, scale and bias hold \(parameters) values")
        }
        let at = instance ? "blockIdx.x % \(x.shape[1])" : "j"
        for statistic in request.outputs.dropFirst() where statistic.dtype != .float32 {
            throw AidgeError.unsupportedType("\(name): Mean and InvStdDev are float32 on CUDA")
        }
        let scaleType = try ElementType.of(scale.dtype, for: type)
        let biasType = try bias.map { try ElementType.of($0.dtype, for: type) } ?? scaleType
        let c = element.compute == "double" ? "double" : "float"
        let biasTerm = bias == nil ? "" : " + (\(c))\(biasType.load("bias[\(at)]"))"
        let source = blockReduceSource(c) + """
            extern "C" __global__ void layer_norm(const \(element.stored)* __restrict__ x,
                    const \(scaleType.stored)* __restrict__ scale, const \(biasType.stored)* __restrict__ bias,
                    \(element.stored)* __restrict__ y, float* mean_out, float* inv_std_out, i64 length) {
                __shared__ \(c) scratch[\(Self.threads)];
                i64 base = blockIdx.x * length;
                \(c) s = 0;
                for (i64 j = threadIdx.x; j < length; j += blockDim.x) s += (\(c))\(element.load("x[base + j]"));
                \(c) mean = block_reduce(s, scratch, false) / (\(c))length;
                \(c) q = 0;
                for (i64 j = threadIdx.x; j < length; j += blockDim.x) {
                    \(c) d = (\(c))\(element.load("x[base + j]")) - mean;
                    q += d * d;
                }
                \(c) inv_std = (\(c))1 / sqrt\(c == "double" ? "" : "f")(block_reduce(q, scratch, false) / (\(c))length + (\(c))\(floatLiteral(epsilon)));
                for (i64 j = threadIdx.x; j < length; j += blockDim.x) {
                    \(c) v = ((\(c))\(element.load("x[base + j]")) - mean) * inv_std;
                    y[base + j] = \(element.store("v * (\(c))\(scaleType.load("scale[\(at)]"))\(biasTerm)"));
                }
                if (threadIdx.x == 0 && mean_out) mean_out[blockIdx.x] = (float)mean;
                if (threadIdx.x == 0 && inv_std_out) inv_std_out[blockIdx.x] = (float)inv_std;
            }
            """
        function = try cuda.function("layer_norm", in: source)
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard inputs.count >= 2, let x = inputs[0], let scale = inputs[1] else {
            throw AidgeError.invalidArgument("\(name): missing input")
        }
        guard rows > 0, length > 0 else { return }
        guard rows <= Int(Int32.max) else { throw AidgeError.unsupported("\(name): too many rows for one grid") }
        try cuda.makeCurrent()
        let bias = inputs.count > 2 ? inputs[2] : nil
        try cuda.launch(
            function, grid: (rows, 1, 1), block: (Self.threads, 1, 1),
            [.tensor(x), .tensor(scale), .tensor(bias ?? scale), .tensor(outputs[0]),
             outputs.count > 1 ? .tensor(outputs[1]) : .null, outputs.count > 2 ? .tensor(outputs[2]) : .null,
             .int64(Int64(length))], name: name)
    }
}

func registerNormalizationKernels(_ registry: KernelRegistry) {
    registry.register("BatchNormalization", backend: CUDABackend.name) { try BatchNormKernel($0) }
    registry.register("LayerNormalization", backend: CUDABackend.name) { try LayerNormKernel($0) }
    registry.register("InstanceNormalization", backend: CUDABackend.name) { try LayerNormKernel($0, instance: true) }
}
