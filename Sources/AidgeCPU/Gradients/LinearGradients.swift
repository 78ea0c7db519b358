import AidgeCore

/// Backward of the matrix products Gemm and MatMul: every input gradient is one GEMM (or one per batch matrix)
/// with the right transposes, accumulating into the gradient buffer (beta = 1), straight on the operands' storage.
func registerLinearGradients(_ registry: KernelRegistry) {
    registry.registerGradient("Gemm", backend: "cpu") { request in try GemmGradientKernel(request) }
    registry.registerGradient("MatMul", backend: "cpu") { request in try MatMulGradientKernel(request) }
    registry.registerGradient("Linear", backend: "cpu") { request in try LinearGradientKernel(request) }
}

/// The engine's `Linear`, Y (M x N) = X (M x K) Wᵀ + B: dX += dY W, dW += dYᵀ X, dB += the column sums of dY.
final class LinearGradientKernel: GradientKernel {
    private let shape: LinearKernel

    init(_ request: KernelRequest) throws {
        shape = try LinearKernel(request)
    }

    // The bias gradient needs only dY; the output is not read.
    func readsInput(_ index: Int) -> Bool { index < 2 }
    func readsOutput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        guard let dy = pass.outputGradient(0) else { return }
        try dispatch(
            shape.dtype,
            Body(
                shape: shape, x: try pass.input(0), w: try pass.input(1), dy: dy, dx: pass.inputGradient(0),
                dw: pass.inputGradient(1), db: pass.inputGradient(2)))
    }

    private struct Body: GradientBody {
        let shape: LinearKernel
        let x: Tensor, w: Tensor, dy: Tensor
        let dx: Tensor?, dw: Tensor?, db: Tensor?

        func run<T: GradientFloat>(_: T.Type) {
            let (m, n, k) = (shape.m, shape.n, shape.k)
            let g = UnsafePointer(dy.pointer(as: T.self))
            if let dx {
                gradientGEMM(
                    m: m, n: k, k: n, a: g, lda: n, b: w.pointer(as: T.self), ldb: k, c: dx.pointer(as: T.self), ldc: k)
            }
            if let dw {
                gradientGEMM(
                    transA: true, m: n, n: k, k: m, a: g, lda: n, b: x.pointer(as: T.self), ldb: k,
                    c: dw.pointer(as: T.self), ldc: k)
            }
            if let db {
                let bp = db.pointer(as: T.self)
                Parallel.forEach(n, grain: max(1, (1 << 14) / max(m, 1))) { columns in
                    for i in 0..<m {
                        let row = g + i * n
                        for j in columns { bp[j] += row[j] }
                    }
                }
            }
        }
    }
}

/// C (M x N, row stride `ldc`) += alpha * op(A) * op(B), or C = alpha * op(A) * op(B) when `accumulate` is false.
///
/// Row-major like `BLAS.sgemm`: op(A) is M x K, stored M x K with row stride `lda` (K x M when `transA`); op(B)
/// is K x N, stored K x N with row stride `ldb` (N x K when `transB`). float32 runs on the packed engine with up to
/// `threads` threads; float64 (the finite-difference tests' type) on plain loops.
func gradientGEMM<T: GradientFloat>(
    transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: T = 1,
    a: UnsafePointer<T>, lda: Int, b: UnsafePointer<T>, ldb: Int, accumulate: Bool = true,
    c: UnsafeMutablePointer<T>, ldc: Int, threads: Int = Parallel.threads
) {
    if m <= 0 || n <= 0 || (accumulate && k <= 0) { return }
    if T.self == Float.self {
        BLAS.sgemm(
            transA: transA, transB: transB, m: m, n: n, k: max(k, 0), alpha: Float(alpha),
            a: UnsafeRawPointer(a).assumingMemoryBound(to: Float.self), lda: lda,
            b: UnsafeRawPointer(b).assumingMemoryBound(to: Float.self), ldb: ldb, beta: accumulate ? 1 : 0,
            c: UnsafeMutableRawPointer(c).assumingMemoryBound(to: Float.self), ldc: ldc, threads: threads)
        return
    }
    let rows = { (range: Range<Int>) in
        for i in range {
            let row = c + i * ldc
            if !accumulate { row.update(repeating: 0, count: n) }
            for p in 0..<k {
                let av = alpha * (transA ? a[p * lda + i] : a[i * lda + p])
                if transB {
                    for j in 0..<n { row[j] += av * b[j * ldb + p] }
                } else {
                    let bp = b + p * ldb
                    for j in 0..<n { row[j] += av * bp[j] }
                }
            }
        }
    }
    if threads > 1 {
        Parallel.forEach(m, grain: max(1, (1 << 15) / max(1, n * k))) { rows($0) }
    } else {
        rows(0..<m)
    }
}

/// Gemm: Y = alpha * op(A) * op(B) + beta * C.
///
/// dA = alpha * dY * op(B)^T (transposed back when `transA`), dB = alpha * op(A)^T * dY (likewise), and
/// dC = beta * dY summed over the dimensions along which C was broadcast.
final class GemmGradientKernel: GradientKernel {
    private let dtype: DType
    private let m: Int, n: Int, k: Int
    private let transA: Bool, transB: Bool
    private let alpha: Float, beta: Float
    /// Strides of C broadcast to M x N (0 along a broadcast dimension).
    private let cStrides: (row: Int, col: Int)

    init(_ request: KernelRequest) throws {
        let a = try request.input(0)
        let b = try request.input(1)
        dtype = try gradientType(a.dtype, request)
        guard !request.attributes.has("activation") else {
            throw AidgeError.unsupported("Gemm (node \(request.nodeName)) with a fused activation has no backward")
        }
        guard a.shape.count == 2, b.shape.count == 2, let out = request.outputs.first, out.shape.count == 2 else {
            throw AidgeError.shapeMismatch("Gemm (node \(request.nodeName)) needs matrices A and B")
        }
        transA = try request.attributes.int("transA", default: 0) != 0
        transB = try request.attributes.int("transB", default: 0) != 0
        alpha = try request.attributes.float("alpha", default: 1)
        beta = try request.attributes.float("beta", default: 1)
        m = out.shape[0]
        n = out.shape[1]
        k = transA ? a.shape[0] : a.shape[1]
        if request.inputs.count > 2, let c = request.inputs[2] {
            let cols = c.shape.last ?? 1
            let rows = c.shape.count == 2 ? c.shape[0] : 1
            cStrides = (rows == 1 ? 0 : cols, cols == 1 ? 0 : 1)
        } else {
            cStrides = (0, 0)
        }
    }

    // C's gradient needs only its shape; the output is not read.
    func readsInput(_ index: Int) -> Bool { index < 2 }
    func readsOutput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        guard let dy = pass.outputGradient(0) else { return }
        try dispatch(
            dtype,
            Body(
                kernel: self, a: try pass.input(0), b: try pass.input(1), dy: dy, da: pass.inputGradient(0),
                db: pass.inputGradient(1), dc: pass.inputGradient(2)))
    }

    private struct Body: GradientBody {
        let kernel: GemmGradientKernel
        let a: Tensor, b: Tensor, dy: Tensor
        let da: Tensor?, db: Tensor?, dc: Tensor?

        func run<T: GradientFloat>(_: T.Type) {
            let (m, n, k) = (kernel.m, kernel.n, kernel.k)
            let (transA, transB) = (kernel.transA, kernel.transB)
            let alpha = T(kernel.alpha)
            let ap = UnsafePointer(a.pointer(as: T.self))
            let bp = UnsafePointer(b.pointer(as: T.self))
            let g = UnsafePointer(dy.pointer(as: T.self))
            // Stored row strides of A (M x K, or K x M when transposed) and B (K x N, or N x K).
            let lda = transA ? m : k
            let ldb = transB ? k : n
            if let da {
                if transA {
                    // dA (K x M) = alpha * op(B) (K x N) * dY^T.
                    gradientGEMM(
                        transA: transB, transB: true, m: k, n: m, k: n, alpha: alpha, a: bp, lda: ldb, b: g, ldb: n,
                        c: da.pointer(as: T.self), ldc: m)
                } else {
                    // dA (M x K) = alpha * dY * op(B)^T.
                    gradientGEMM(
                        transA: false, transB: !transB, m: m, n: k, k: n, alpha: alpha, a: g, lda: n, b: bp, ldb: ldb,
                        c: da.pointer(as: T.self), ldc: k)
                }
            }
            if let db {
                if transB {
                    // dB (N x K) = alpha * dY^T * op(A).
                    gradientGEMM(
                        transA: true, transB: transA, m: n, n: k, k: m, alpha: alpha, a: g, lda: n, b: ap, ldb: lda,
                        c: db.pointer(as: T.self), ldc: k)
                } else {
                    // dB (K x N) = alpha * op(A)^T * dY.
                    gradientGEMM(
                        transA: !transA, transB: false, m: k, n: n, k: m, alpha: alpha, a: ap, lda: lda, b: g, ldb: n,
                        c: db.pointer(as: T.self), ldc: n)
                }
            }
            if let dc, kernel.beta != 0 {
                let beta = T(kernel.beta)
                let (rs, cs) = kernel.cStrides
                let cp = dc.pointer(as: T.self)
                if rs != 0 && cs != 0 {
                    // C has the output's shape: rows are independent.
                    Parallel.forEach(m, grain: max(1, (1 << 14) / max(n, 1))) { range in
                        for i in range {
                            for j in 0..<n { cp[i * n + j] += beta * g[i * n + j] }
                        }
                    }
                } else if rs == 0 && cs == 1 {
                    // A bias per column (a layer's): rows of dY added into one row.
                    for i in 0..<m {
                        let row = g + i * n
                        for j in 0..<n { cp[j] += beta * row[j] }
                    }
                } else {
                    for i in 0..<m {
                        for j in 0..<n { cp[i * rs + j * cs] += beta * g[i * n + j] }
                    }
                }
            }
        }
    }
}

/// MatMul (NumPy matmul): for each output matrix t, Y_t = A_a(t) * B_b(t), where a(t) and b(t) pick the operand
/// matrices its broadcast batch index reads (1-D operands are a 1 x K row and a K x 1 column).
///
/// dA_i += dY_t * B_b(t)^T and dB_j += A_a(t)^T * dY_t, summed over the t that read matrix i (or j). When B is
/// one matrix and A is not broadcast (a layer's weights), A's batches stack into one tall matrix and each gradient
/// is a single GEMM.
final class MatMulGradientKernel: GradientKernel {
    private let dtype: DType
    private let m: Int, n: Int, k: Int
    private let aCount: Int, bCount: Int
    /// For each output matrix: the A matrix and the B matrix it reads.
    private let aIndex: [Int]
    private let bIndex: [Int]

    init(_ request: KernelRequest) throws {
        let a = try request.input(0)
        dtype = try gradientType(a.dtype, request)
        let shape = try OperatorSchema.matMulShape(a.shape, try request.input(1).shape)
        (m, n, k) = (shape.m, shape.n, shape.k)
        aCount = ShapeUtil.count(shape.batchA)
        bCount = ShapeUtil.count(shape.batchB)
        let batch = shape.batch
        // Strides (in matrices) of an operand's batch shape aligned right in `batch`, 0 where broadcast.
        func strides(_ s: [Int]) -> [Int] {
            let own = ShapeUtil.contiguousStrides(s)
            let pad = batch.count - s.count
            return (0..<batch.count).map { d in d < pad || s[d - pad] == 1 ? 0 : own[d - pad] }
        }
        let sa = strides(shape.batchA)
        let sb = strides(shape.batchB)
        let count = ShapeUtil.count(batch)
        var ai = [Int](repeating: 0, count: count)
        var bi = [Int](repeating: 0, count: count)
        for t in 0..<count {
            var rest = t
            for d in stride(from: batch.count - 1, through: 0, by: -1) {
                let x = rest % batch[d]
                rest /= batch[d]
                ai[t] += x * sa[d]
                bi[t] += x * sb[d]
            }
        }
        aIndex = ai
        bIndex = bi
    }

    func readsOutput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        guard let dy = pass.outputGradient(0) else { return }
        try dispatch(
            dtype,
            Body(
                kernel: self, a: try pass.input(0), b: try pass.input(1), dy: dy, da: pass.inputGradient(0),
                db: pass.inputGradient(1)))
    }

    private struct Body: GradientBody {
        let kernel: MatMulGradientKernel
        let a: Tensor, b: Tensor, dy: Tensor
        let da: Tensor?, db: Tensor?

        func run<T: GradientFloat>(_: T.Type) {
            let s = kernel
            let count = s.aIndex.count
            if count == 0 || s.m == 0 || s.n == 0 || s.k == 0 { return }
            let ap = UnsafePointer(a.pointer(as: T.self))
            let bp = UnsafePointer(b.pointer(as: T.self))
            let g = UnsafePointer(dy.pointer(as: T.self))
            let stacked = s.bCount == 1 && s.aCount == count
            if let da {
                let d = da.pointer(as: T.self)
                if stacked {
                    // dA (count*M x K) = dY (count*M x N) * B^T.
                    gradientGEMM(
                        transB: true, m: count * s.m, n: s.k, k: s.n, a: g, lda: s.n, b: bp, ldb: s.n, c: d, ldc: s.k)
                } else {
                    s.accumulate(into: s.aCount, of: s.aIndex) { t, threads in
                        gradientGEMM(
                            transB: true, m: s.m, n: s.k, k: s.n, a: g + t * s.m * s.n, lda: s.n,
                            b: bp + s.bIndex[t] * s.k * s.n, ldb: s.n, c: d + s.aIndex[t] * s.m * s.k, ldc: s.k,
                            threads: threads)
                    }
                }
            }
            if let db {
                let d = db.pointer(as: T.self)
                if stacked {
                    // dB (K x N) = A^T (K x count*M) * dY (count*M x N).
                    gradientGEMM(
                        transA: true, m: s.k, n: s.n, k: count * s.m, a: ap, lda: s.k, b: g, ldb: s.n, c: d, ldc: s.n)
                } else {
                    s.accumulate(into: s.bCount, of: s.bIndex) { t, threads in
                        gradientGEMM(
                            transA: true, m: s.k, n: s.n, k: s.m, a: ap + s.aIndex[t] * s.m * s.k, lda: s.k,
                            b: g + t * s.m * s.n, ldb: s.n, c: d + s.bIndex[t] * s.k * s.n, ldc: s.n, threads: threads)
                    }
                }
            }
        }
    }

    /// Runs `product(t, threads)` for every output matrix t, where `target[t]` (one of `targets` matrices) is the
    /// gradient matrix it adds into. Small products run in parallel over targets, one thread each (no two threads
    /// add into one matrix); large ones one after another, each GEMM on every thread.
    private func accumulate(into targets: Int, of target: [Int], _ product: (Int, Int) -> Void) {
        let threads = Parallel.threads
        if targets >= 2 && threads > 1 && m * n * k < (1 << 18) {
            var byTarget = [[Int]](repeating: [], count: targets)
            for (t, i) in target.enumerated() { byTarget[i].append(t) }
            Parallel.forEach(targets) { range in
                for i in range {
                    for t in byTarget[i] { product(t, 1) }
                }
            }
        } else {
            for t in target.indices { product(t, threads) }
        }
    }
}
