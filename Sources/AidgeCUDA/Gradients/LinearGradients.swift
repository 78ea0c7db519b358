import AidgeCore

/// MatMul's backward with NumPy's batching: per output batch entry (or once, when the right operand is one matrix
/// and the batch folds into M), dA += dY · Bᵀ and dB += Aᵀ · dY through cuBLAS with beta = 1, in stream order, so
/// entries that share an operand sum into its gradient.
final class MatMulGradientKernel: GradientKernel {
    private let cuda: CUDADevice
    private let forA: BlasProduct, forB: BlasProduct
    private let batching: MatMulBatching
    private let byteSize: Int

    init(_ request: KernelRequest) throws {
        cuda = try CUDABackend.device()
        let aInfo = try request.input(0)
        batching = try MatMulBatching(aInfo, try request.input(1))
        byteSize = aInfo.dtype.byteSize
        let (k, n) = (batching.k, batching.n)
        let rows = batching.folded ? batching.m * batching.batches : batching.m
        // dA[rows, K] = dY[rows, N] · Bᵀ; dB[K, N] = Aᵀ[K, rows] · dY[rows, N].
        forA = try BlasProduct(
            m: rows, n: k, k: n, transposeA: false, transposeB: true, dtype: aInfo.dtype, tf32: CUDABackend.allowsTF32,
            what: "MatMul backward")
        forB = try BlasProduct(
            m: k, n: n, k: rows, transposeA: true, transposeB: false, dtype: aInfo.dtype, tf32: CUDABackend.allowsTF32,
            what: "MatMul backward")
    }

    func backward(_ pass: BackwardPass) throws {
        guard let dy = pass.outputGradient(0) else { return }
        let a = try pass.input(0), b = try pass.input(1)
        try cuda.makeCurrent()
        for entry in batching.entries {
            let gradient = dy.rawPointer + entry.c * byteSize
            if let da = pass.inputGradient(0) {
                try forA.run(
                    on: cuda, a: gradient, b: b.rawPointer + entry.b * byteSize, c: da.rawPointer + entry.a * byteSize,
                    alpha: 1, beta: 1)
            }
            if let db = pass.inputGradient(1) {
                try forB.run(
                    on: cuda, a: a.rawPointer + entry.a * byteSize, b: gradient, c: db.rawPointer + entry.b * byteSize,
                    alpha: 1, beta: 1)
            }
        }
    }
}

/// Gemm's backward: Y = alpha · op(A) · op(B) + beta · C gives dA, dB by two products (their forms follow the
/// transposes) and dC by summing beta · dY over C's broadcast dimensions.
final class GemmGradientKernel: GradientKernel {
    private let cuda: CUDADevice
    private let forA: BlasProduct, forB: BlasProduct
    /// Whether each product takes dY first (dA = dY · op(B)ᵀ) or second (dA = op(B) · dYᵀ).
    private let aFromGradientFirst: Bool, bFromGradientFirst: Bool
    private let alpha: Float
    private let bias: (ElementwiseGradientKernel)?

    init(_ request: KernelRequest) throws {
        cuda = try CUDABackend.device()
        let a = try request.input(0), output = request.outputs[0]
        let transA = try request.attributes.int("transA", default: 0) != 0
        let transB = try request.attributes.int("transB", default: 0) != 0
        let m = output.shape[0], n = output.shape[1], k = transA ? a.shape[0] : a.shape[1]
        alpha = try request.attributes.float("alpha", default: 1)
        let tf32 = CUDABackend.allowsTF32
        // dA: [M, K] = dY · op(B)ᵀ, or [K, M] = op(B) · dYᵀ when A is stored transposed.
        aFromGradientFirst = !transA
        forA = transA
            ? try BlasProduct(m: k, n: m, k: n, transposeA: transB, transposeB: true, dtype: a.dtype, tf32: tf32, what: "Gemm backward")
            : try BlasProduct(m: m, n: k, k: n, transposeA: false, transposeB: !transB, dtype: a.dtype, tf32: tf32, what: "Gemm backward")
        // dB: [K, N] = op(A)ᵀ · dY, or [N, K] = dYᵀ · op(A) when B is stored transposed.
        bFromGradientFirst = transB
        forB = transB
            ? try BlasProduct(m: n, n: k, k: m, transposeA: true, transposeB: transA, dtype: a.dtype, tf32: tf32, what: "Gemm backward")
            : try BlasProduct(m: k, n: n, k: m, transposeA: !transA, transposeB: false, dtype: a.dtype, tf32: tf32, what: "Gemm backward")
        let beta = try request.attributes.float("beta", default: 1)
        bias = request.inputs.count > 2 && request.inputs[2] != nil
            ? try ElementwiseGradientKernel(
                KernelRequest(op: request.op, nodeName: request.nodeName, inputs: [request.inputs[2]], outputs: [output]),
                [0: "g * (COMPUTE)\(floatLiteral(beta))"])
            : nil
    }

    func backward(_ pass: BackwardPass) throws {
        guard let dy = pass.outputGradient(0) else { return }
        let a = try pass.input(0), b = try pass.input(1)
        try cuda.makeCurrent()
        if let da = pass.inputGradient(0) {
            let (x, y) = aFromGradientFirst ? (dy, b) : (b, dy)
            try forA.run(on: cuda, a: x.rawPointer, b: y.rawPointer, c: da.rawPointer, alpha: alpha, beta: 1)
        }
        if let db = pass.inputGradient(1) {
            let (x, y) = bFromGradientFirst ? (dy, a) : (a, dy)
            try forB.run(on: cuda, a: x.rawPointer, b: y.rawPointer, c: db.rawPointer, alpha: alpha, beta: 1)
        }
        if let bias, pass.inputs.count > 2, let c = pass.inputs[2] {
            try bias.backward(BackwardPass(
                inputs: [c], outputs: pass.outputs, saved: [], outputGradients: [dy],
                inputGradients: [pass.inputGradient(2)], training: pass.training))
        }
    }
}

/// Softmax and LogSoftmax backward along their axis, one block per line: dx += y · (g - Σ g·y), or for
/// LogSoftmax dx += g - exp(y) · Σ g.
final class SoftmaxGradientKernel: GradientKernel {
    private let cuda: CUDADevice
    private let function: OpaquePointer?
    private let lines: Int, length: Int, inner: Int
    private static let threads = 256

    init(_ request: KernelRequest, log: Bool) throws {
        cuda = try CUDABackend.device()
        let x = try request.input(0)
        let rank = x.shape.count
        var axis = try request.attributes.int("axis", default: -1)
        if axis < 0 { axis += rank }
        guard rank > 0, (0..<rank).contains(axis) else { throw AidgeError.invalidModel("softmax axis out of range") }
        let outer = ShapeUtil.count(Array(x.shape[..<axis]))
        length = x.shape[axis]
        inner = ShapeUtil.count(Array(x.shape[(axis + 1)...]))
        lines = outer * inner
        let element = try ElementType.of(x.dtype, for: request.op.type)
        let c = element.compute == "double" ? "double" : "float"
        let exp = c == "double" ? "exp" : "expf"
        let term = log ? "g" : "g * y"
        let result = log ? "g - \(exp)(y) * s" : "y * (g - s)"
        function = try cuda.function("softmax_backward", in: blockReduceSource(c) + """
            extern "C" __global__ void softmax_backward(const \(element.stored)* __restrict__ out,
                    const \(element.stored)* __restrict__ dy, \(element.stored)* dx, i64 length, i64 inner) {
                __shared__ \(c) scratch[\(Self.threads)];
                i64 base = (blockIdx.x / inner) * length * inner + blockIdx.x % inner;
                \(c) s = 0;
                for (i64 j = threadIdx.x; j < length; j += blockDim.x) {
                    \(c) y = \(element.load("out[base + j * inner]")), g = \(element.load("dy[base + j * inner]"));
                    s += \(term);
                }
                s = block_reduce(s, scratch, false);
                for (i64 j = threadIdx.x; j < length; j += blockDim.x) {
                    i64 at = base + j * inner;
                    \(c) y = \(element.load("out[at]")), g = \(element.load("dy[at]"));
                    dx[at] = \(element.store("(\(c))\(element.load("dx[at]")) + \(result)"));
                }
            }
            """)
    }

    func readsInput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        guard let dy = pass.outputGradient(0), let dx = pass.inputGradient(0), lines > 0, length > 0 else { return }
        try cuda.makeCurrent()
        try cuda.launch(
            function, grid: (lines, 1, 1), block: (Self.threads, 1, 1),
            [.tensor(pass.outputs[0]), .tensor(dy), .tensor(dx), .int64(Int64(length)), .int64(Int64(inner))],
            name: "softmax backward")
    }
}

func registerLinearGradients(_ registry: KernelRegistry) {
    registry.registerGradient("MatMul", backend: CUDABackend.name) { try MatMulGradientKernel($0) }
    registry.registerGradient("Gemm", backend: CUDABackend.name) { try GemmGradientKernel($0) }
    registry.registerGradient("Softmax", backend: CUDABackend.name) { try SoftmaxGradientKernel($0, log: false) }
    registry.registerGradient("LogSoftmax", backend: CUDABackend.name) { try SoftmaxGradientKernel($0, log: true) }
}
