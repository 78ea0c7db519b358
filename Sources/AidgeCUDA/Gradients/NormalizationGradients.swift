import AidgeCore

/// BatchNormalization's training forward and backward, one block per channel (the CPU kernel's rules): in
/// training the batch's mean and variance normalise, the running statistics move toward them
/// (`running · momentum + batch · (1 - momentum)`, the unbiased variance, unless they are constants) and the mean
/// and inverse deviation used are saved for backward.
final class BatchNormGradientKernel: GradientKernel {
    private let cuda: CUDADevice
    private let forwardFunction: OpaquePointer?, backwardFunction: OpaquePointer?
    private let batch: Int, channels: Int, spatial: Int
    private let dtype: DType
    private let constantStatistics: Bool, batchStatistics: Bool
    private static let threads = 256

    init(_ request: KernelRequest) throws {
        cuda = try CUDABackend.device()
        let x = try request.input(0)
        guard x.dtype == .float32 || x.dtype == .float64, x.shape.count >= 2 else {
            throw AidgeError.unsupportedType("BatchNormalization training on CUDA takes float32 or float64 N x C x ...")
        }
        for k in 1...4 where try request.input(k).dtype != x.dtype {
            throw AidgeError.unsupportedType("BatchNormalization training on CUDA needs parameters of the input's dtype")
        }
        dtype = x.dtype
        batch = x.shape[0]
        channels = x.shape[1]
        spatial = ShapeUtil.count(Array(x.shape[2...]))
        constantStatistics = (3...4).contains { request.inputs.count > $0 && request.inputs[$0]?.value != nil }
        batchStatistics = try request.attributes.int("training_mode", default: 0) != 0
        let epsilon = Double(try request.attributes.float("epsilon", default: 1e-5))
        let momentum = Double(try request.attributes.float("momentum", default: 0.9))
        let t = x.dtype == .float32 ? "float" : "double"
        let sqrt = t == "float" ? "sqrtf" : "sqrt"
        let prelude = blockReduceSource(t) + """
            #define FOR_CHANNEL(v) for (i64 e = threadIdx.x; e < batch * spatial; e += blockDim.x) { \\
                i64 at = ((e / spatial) * channels + blockIdx.x) * spatial + e % spatial; v }

            """
        forwardFunction = try cuda.function("batch_norm_train", in: prelude + """
            extern "C" __global__ void batch_norm_train(const \(t)* __restrict__ x, const \(t)* scale, const \(t)* bias,
                    \(t)* running_mean, \(t)* running_var, \(t)* __restrict__ y, \(t)* saved_mean, \(t)* saved_inverse,
                    \(t)* out_mean, \(t)* out_var, i64 batch, i64 channels, i64 spatial, int use_batch, int update,
                    double correction) {
                __shared__ \(t) scratch[\(Self.threads)];
                i64 c = blockIdx.x;
                double n = (double)(batch * spatial);
                \(t) mean = running_mean[c], variance = running_var[c];
                \(t) new_mean = mean, new_var = variance;
                if (use_batch) {
                    \(t) s = 0;
                    FOR_CHANNEL(s += x[at];)
                    mean = block_reduce(s, scratch, false) / (\(t))n;
                    \(t) q = 0;
                    FOR_CHANNEL(\(t) d = x[at] - mean; q += d * d;)
                    variance = block_reduce(q, scratch, false) / (\(t))n;
                    new_mean = (\(t))(new_mean * \(momentum) + mean * (1 - \(momentum)));
                    new_var = (\(t))(new_var * \(momentum) + variance * correction * (1 - \(momentum)));
                }
                \(t) inverse = (\(t))1 / \(sqrt)(variance + (\(t))\(epsilon));
                \(t) a = scale[c] * inverse, b = bias[c] - mean * a;
                FOR_CHANNEL(y[at] = x[at] * a + b;)
                if (threadIdx.x == 0) {
                    if (use_batch && update) { running_mean[c] = new_mean; running_var[c] = new_var; }
                    saved_mean[c] = mean;
                    saved_inverse[c] = inverse;
                    if (out_mean) out_mean[c] = new_mean;
                    if (out_var) out_var[c] = new_var;
                }
            }
            """)
        backwardFunction = try cuda.function("batch_norm_backward", in: prelude + """
            extern "C" __global__ void batch_norm_backward(const \(t)* __restrict__ x, const \(t)* scale,
                    const \(t)* mean_of, const \(t)* inverse_of, const \(t)* __restrict__ dy, \(t)* dx, \(t)* dscale,
                    \(t)* dbias, i64 batch, i64 channels, i64 spatial, int training) {
                __shared__ \(t) scratch[\(Self.threads)];
                i64 c = blockIdx.x;
                \(t) mean = mean_of[c], inverse = inverse_of[c], m = (\(t))(batch * spatial);
                \(t) s = 0, p = 0;
                FOR_CHANNEL(s += dy[at]; p += dy[at] * (x[at] - mean);)
                s = block_reduce(s, scratch, false);
                p = block_reduce(p, scratch, false);
                if (threadIdx.x == 0) {
                    if (dbias) dbias[c] += s;
                    if (dscale) dscale[c] += inverse * p;
                }
                if (dx) {
                    \(t) k = scale[c] * inverse;
                    if (training) {
                        FOR_CHANNEL(dx[at] += k * (dy[at] - s / m - (x[at] - mean) * inverse * inverse * p / m);)
                    } else {
                        FOR_CHANNEL(dx[at] += k * dy[at];)
                    }
                }
            }
            """)
    }

    var savedInfos: [ValueInfo] { [ValueInfo(dtype: dtype, shape: [channels]), ValueInfo(dtype: dtype, shape: [channels])] }
    var hasTrainingForward: Bool { true }
    func readsInput(_ index: Int) -> Bool { index <= 1 }
    func readsOutput(_ index: Int) -> Bool { false }

    func forward(_ inputs: [Tensor?], _ outputs: [Tensor], saved: [Tensor], training: Bool) throws {
        let present = inputs.compactMap { $0 }
        guard present.count == 5, saved.count == 2 else {
            throw AidgeError.invalidModel("BatchNormalization: missing input or saved statistics")
        }
        if training && batch * spatial <= 1 {
            throw AidgeError.invalidArgument(
                "BatchNormalization in training mode needs more than one value per channel, got \(batch * spatial)")
        }
        guard channels > 0 else { return }
        try cuda.makeCurrent()
        let n = Double(batch * spatial)
        func optional(_ k: Int) -> KernelArgument { k < outputs.count ? .tensor(outputs[k]) : .null }
        try cuda.launch(
            forwardFunction, grid: (channels, 1, 1), block: (Self.threads, 1, 1),
            present.map(KernelArgument.tensor) + [
                .tensor(outputs[0]), .tensor(saved[0]), .tensor(saved[1]), optional(1), optional(2),
                .int64(Int64(batch)), .int64(Int64(channels)), .int64(Int64(spatial)),
                .int32(training || batchStatistics ? 1 : 0), .int32(training && !constantStatistics ? 1 : 0),
                .double(training ? n / (n - 1) : 1),
            ], name: "BatchNormalization training forward")
    }

    func backward(_ pass: BackwardPass) throws {
        guard let dy = pass.outputGradient(0), pass.saved.count == 2, channels > 0 else { return }
        let dx = pass.inputGradient(0), dscale = pass.inputGradient(1), dbias = pass.inputGradient(2)
        guard dx != nil || dscale != nil || dbias != nil else { return }
        try cuda.makeCurrent()
        func optional(_ t: Tensor?) -> KernelArgument { t.map(KernelArgument.tensor) ?? .null }
        try cuda.launch(
            backwardFunction, grid: (channels, 1, 1), block: (Self.threads, 1, 1),
            [.tensor(try pass.input(0)), .tensor(try pass.input(1)), .tensor(pass.saved[0]), .tensor(pass.saved[1]),
             .tensor(dy), optional(dx), optional(dscale), optional(dbias), .int64(Int64(batch)),
             .int64(Int64(channels)), .int64(Int64(spatial)), .int32(pass.training || batchStatistics ? 1 : 0)],
            name: "BatchNormalization backward")
    }
}


/// LayerNormalization's backward, one block per row: the row's mean and inverse deviation are computed again,
/// then with `x̂ = (x - mean)·inv` and `h = dy·scale`: dx += inv · (h - mean(h) - x̂ · mean(h·x̂)); the scale's and
/// bias's gradients (Σ over rows of dy·x̂ and dy) are added atomically, element by element.
final class LayerNormGradientKernel: GradientKernel {
    private let cuda: CUDADevice
    private let function: OpaquePointer?
    private let rows: Int, length: Int
    private static let threads = 256

    init(_ request: KernelRequest) throws {
        cuda = try CUDABackend.device()
        let x = try request.input(0)
        guard x.dtype == .float32 else {
            throw AidgeError.unsupportedType("LayerNormalization backward on CUDA takes float32, got \(x.dtype)")
        }
        let axis = try Normalizations.layerAxis(request.attributes, rank: x.shape.count)
        rows = ShapeUtil.count(Array(x.shape[..<axis]))
        length = ShapeUtil.count(Array(x.shape[axis...]))
        for p in request.inputs.dropFirst().compactMap({ $0 }) where p.count != length || p.dtype != .float32 {
            throw AidgeError.unsupported("LayerNormalization backward on CUDA: scale and bias of \(length) float32 values")
        }
        let epsilon = try request.attributes.float("epsilon", default: 1e-5)
        function = try cuda.function("layer_norm_backward", in: blockReduceSource("float") + """
            extern "C" __global__ void layer_norm_backward(const float* __restrict__ x, const float* __restrict__ scale,
                    const float* __restrict__ dy, float* dx, float* dscale, float* dbias, i64 length) {
                __shared__ float scratch[\(Self.threads)];
                i64 base = blockIdx.x * length;
                float s = 0;
                for (i64 j = threadIdx.x; j < length; j += blockDim.x) s += x[base + j];
                float mean = block_reduce(s, scratch, false) / (float)length;
                float q = 0;
                for (i64 j = threadIdx.x; j < length; j += blockDim.x) { float d = x[base + j] - mean; q += d * d; }
                float inv = 1.0f / sqrtf(block_reduce(q, scratch, false) / (float)length + \(floatLiteral(epsilon)));
                float a = 0, b = 0;
                for (i64 j = threadIdx.x; j < length; j += blockDim.x) {
                    float h = dy[base + j] * scale[j], xh = (x[base + j] - mean) * inv;
                    a += h;
                    b += h * xh;
                    if (dscale) atomicAdd(&dscale[j], dy[base + j] * xh);
                    if (dbias) atomicAdd(&dbias[j], dy[base + j]);
                }
                a = block_reduce(a, scratch, false) / (float)length;
                b = block_reduce(b, scratch, false) / (float)length;
                if (dx) {
                    for (i64 j = threadIdx.x; j < length; j += blockDim.x) {
                        float xh = (x[base + j] - mean) * inv;
                        dx[base + j] += inv * (dy[base + j] * scale[j] - a - xh * b);
                    }
                }
            }
            """)
    }

    func readsInput(_ index: Int) -> Bool { index <= 1 }
    func readsOutput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        guard let dy = pass.outputGradient(0), rows > 0, length > 0 else { return }
        func optional(_ t: Tensor?) -> KernelArgument { t.map(KernelArgument.tensor) ?? .null }
        try cuda.makeCurrent()
        try cuda.launch(
            function, grid: (rows, 1, 1), block: (Self.threads, 1, 1),
            [.tensor(try pass.input(0)), .tensor(try pass.input(1)), .tensor(dy), optional(pass.inputGradient(0)),
             optional(pass.inputGradient(1)), optional(pass.inputGradient(2)), .int64(Int64(length))],
            name: "LayerNormalization backward")
    }
}

func registerNormalizationGradients(_ registry: KernelRegistry) {
    registry.registerGradient("BatchNormalization", backend: CUDABackend.name) { try BatchNormGradientKernel($0) }
    registry.registerGradient("LayerNormalization", backend: CUDABackend.name) { try LayerNormGradientKernel($0) }
    registry.registerGradient("Dropout", backend: CUDABackend.name) { try DropoutGradientKernel($0) }
}
