import AidgeCore

/// One GEMM call through cuBLAS on row-major operands: C[M,N] = alpha * op(A) * op(B) + beta * C, computed as
/// the column-major product C^T = op(B)^T * op(A)^T, so no operand is transposed in memory.
struct BlasProduct {
    let m: Int, n: Int, k: Int
    let transposeA: Bool, transposeB: Bool
    /// Row lengths of A and B as stored.
    let lda: Int, ldb: Int
    let dataType: CuBLAS.DataType
    let compute: CuBLAS.ComputeType

    /// `tf32`: float32 products may use TF32 tensor cores.
    init(m: Int, n: Int, k: Int, transposeA: Bool, transposeB: Bool, dtype: DType, tf32: Bool, what: String) throws {
        guard [m, n, k].allSatisfy({ $0 <= Int(Int32.max) }) else {
            throw AidgeError.unsupported("\(what): a dimension exceeds cuBLAS's 32-bit sizes")
        }
        self.m = m
        self.n = n
        self.k = k
        self.transposeA = transposeA
        self.transposeB = transposeB
        lda = transposeA ? m : k
        ldb = transposeB ? k : n
        switch dtype {
        case .float32: dataType = .float32
        case .float16: dataType = .float16
        case .bfloat16: dataType = .bfloat16
        default: throw AidgeError.unsupportedType("\(what) has no CUDA kernel for \(dtype) (float32, float16, bfloat16)")
        }
        compute = dtype == .float32 && tf32 ? .float32FastTF32 : .float32
    }

    /// Queues `batch` products on the current stream; `strides` are in elements between batch entries.
    func run(
        on cuda: CUDADevice, a: UnsafeRawPointer, b: UnsafeRawPointer, c: UnsafeMutableRawPointer,
        alpha: Float, beta: Float, batch: Int = 1, strides: (a: Int, b: Int, c: Int) = (0, 0, 0)
    ) throws {
        guard m > 0, n > 0 else { return }
        let cublas = cuda.libraries.cublas
        let handle = try cuda.blas()
        var alpha = alpha, beta = beta
        let status = withUnsafePointer(to: &alpha) { alphaPointer in
            withUnsafePointer(to: &beta) { betaPointer in
                cublas.gemmStridedBatchedEx(
                    handle, transposeB ? CuBLAS.Operation.transpose.rawValue : CuBLAS.Operation.none.rawValue,
                    transposeA ? CuBLAS.Operation.transpose.rawValue : CuBLAS.Operation.none.rawValue,
                    Int32(n), Int32(m), Int32(k), alphaPointer, b, dataType.rawValue, Int32(max(ldb, 1)),
                    Int64(strides.b), a, dataType.rawValue, Int32(max(lda, 1)), Int64(strides.a), betaPointer, c,
                    dataType.rawValue, Int32(max(n, 1)), Int64(strides.c), Int32(batch), compute.rawValue,
                    -1 /* CUBLAS_GEMM_DEFAULT */)
            }
        }
        try cublas.check(status, "a \(m)x\(k) by \(k)x\(n) product")
    }
}

/// Gemm: Y = alpha * op(A) * op(B) + beta * C, with C broadcast into Y first.
final class GemmKernel: Kernel {
    private let cuda: CUDADevice
    private let product: BlasProduct
    private let alpha: Float, beta: Float
    private let bias: ElementwiseKernel?
    /// The activation `Recipes.fuseActivation` put on the node.
    private let activation: Epilogue?

    init(_ request: KernelRequest) throws {
        cuda = try CUDABackend.device()
        let a = try request.input(0), b = try request.input(1)
        let output = request.outputs[0]
        guard a.shape.count == 2, b.shape.count == 2, output.shape.count == 2 else { throw AidgeError.shapeMismatch("Gemm needs matrices") }
        let transposeA = try request.attributes.int("transA", default: 0) != 0
        let transposeB = try request.attributes.int("transB", default: 0) != 0
        product = try BlasProduct(
            m: output.shape[0], n: output.shape[1], k: transposeA ? a.shape[0] : a.shape[1], transposeA: transposeA,
            transposeB: transposeB, dtype: a.dtype,
            tf32: CUDABackend.allowsTF32, what: "Gemm")
        alpha = try request.attributes.float("alpha", default: 1)
        let hasBias = request.inputs.count > 2 && request.inputs[2] != nil
        beta = hasBias ? try request.attributes.float("beta", default: 1) : 0
        bias = hasBias && beta != 0
            ? try ElementwiseKernel(
                KernelRequest(op: request.op, nodeName: request.nodeName, inputs: [try request.input(2)], outputs: [output]),
                ElementwiseExpression("a"))
            : nil
        let compute = try ElementType.of(output.dtype, for: "Gemm").compute
        activation = try Epilogue(
            cuda, dtype: output.dtype, bias: nil, activation: try fusedActivation(request.attributes, compute: compute),
            channels: 1, inner: 1)
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard inputs.count >= 2, let a = inputs[0], let b = inputs[1] else {
            throw AidgeError.invalidArgument("Gemm: missing input")
        }
        try cuda.makeCurrent()
        if let bias, inputs.count > 2, let c = inputs[2] { try bias.run([c], outputs) }
        try product.run(
            on: cuda, a: a.rawPointer, b: b.rawPointer, c: outputs[0].rawPointer, alpha: alpha,
            beta: bias == nil ? 0 : beta)
        try activation?.run(on: cuda, outputs[0], bias: nil)
    }
}

/// MatMul's batching with NumPy's rules: 1-D operands are promoted, batch dimensions broadcast. When B is one
/// matrix the batch folds into A's rows; otherwise each output batch entry reads A and B at its own offsets.
struct MatMulBatching {
    let m: Int, k: Int, n: Int
    let batches: Int
    /// B is one matrix: a single product of `m * batches` rows.
    let folded: Bool
    /// Element offsets of A, B and C for each output batch entry (one zero entry when folded).
    let entries: [(a: Int, b: Int, c: Int)]
    /// Element strides between entries when they are regular (A shared or batched like C, B batched like C): one
    /// strided-batched call does them all.
    let strides: (a: Int, b: Int, c: Int)?

    init(_ aInfo: ValueInfo, _ bInfo: ValueInfo) throws {
        let aShape = aInfo.shape.count == 1 ? [1] + aInfo.shape : aInfo.shape
        let bShape = bInfo.shape.count == 1 ? bInfo.shape + [1] : bInfo.shape
        guard aShape.count >= 2, bShape.count >= 2 else { throw AidgeError.shapeMismatch("MatMul of scalars") }
        m = aShape[aShape.count - 2]
        k = aShape[aShape.count - 1]
        n = bShape[bShape.count - 1]
        let aBatch = Array(aShape.dropLast(2)), bBatch = Array(bShape.dropLast(2))
        let rank = max(aBatch.count, bBatch.count)
        let aAligned = [Int](repeating: 1, count: rank - aBatch.count) + aBatch
        let bAligned = [Int](repeating: 1, count: rank - bBatch.count) + bBatch
        let outBatch = zip(aAligned, bAligned).map { max($0, $1) }
        batches = ShapeUtil.count(outBatch)
        folded = bBatch.allSatisfy { $0 == 1 }
        if folded {
            entries = [(0, 0, 0)]
            strides = nil
            return
        }
        let aStrides = ElementwiseKernel.broadcastStrides(of: aAligned, to: outBatch)
        let bStrides = ElementwiseKernel.broadcastStrides(of: bAligned, to: outBatch)
        let outStrides = ShapeUtil.contiguousStrides(outBatch)
        let (m, k, n) = (m, k, n)
        entries = (0..<batches).map { index in
            var a = 0, b = 0
            for d in outBatch.indices {
                let i = index / outStrides[d] % outBatch[d]
                a += i * aStrides[d]
                b += i * bStrides[d]
            }
            return (a * m * k, b * k * n, index * m * n)
        }
        let aNone = aAligned.allSatisfy { $0 == 1 }
        strides = (aAligned == outBatch || aNone) && bAligned == outBatch ? (aNone ? 0 : m * k, k * n, m * n) : nil
    }
}

/// MatMul: one cuBLAS call when B is one matrix (the batch folded into M) or the batches are regular (strided
/// batched), else one call per output batch entry.
final class MatMulKernel: Kernel {
    private let cuda: CUDADevice
    private let product: BlasProduct
    private let batching: MatMulBatching
    private let byteSize: Int

    init(_ request: KernelRequest) throws {
        cuda = try CUDABackend.device()
        let aInfo = try request.input(0)
        batching = try MatMulBatching(aInfo, try request.input(1))
        byteSize = aInfo.dtype.byteSize
        product = try BlasProduct(
            m: batching.folded ? batching.m * batching.batches : batching.m, n: batching.n, k: batching.k,
            transposeA: false, transposeB: false, dtype: aInfo.dtype, tf32: CUDABackend.allowsTF32, what: "MatMul")
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard inputs.count >= 2, let a = inputs[0], let b = inputs[1] else {
            throw AidgeError.invalidArgument("MatMul: missing input")
        }
        try cuda.makeCurrent()
        if let strides = batching.strides {
            try product.run(
                on: cuda, a: a.rawPointer, b: b.rawPointer, c: outputs[0].rawPointer, alpha: 1, beta: 0,
                batch: batching.batches, strides: strides)
            return
        }
        for entry in batching.entries {
            try product.run(
                on: cuda, a: a.rawPointer + entry.a * byteSize, b: b.rawPointer + entry.b * byteSize,
                c: outputs[0].rawPointer + entry.c * byteSize, alpha: 1, beta: 0)
        }
    }
}

func registerLinearKernels(_ registry: KernelRegistry) {
    registry.register("Gemm", backend: CUDABackend.name) { try GemmKernel($0) }
    registry.register("MatMul", backend: CUDABackend.name) { try MatMulKernel($0) }
}
