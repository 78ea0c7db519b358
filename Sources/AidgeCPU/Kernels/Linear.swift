import AidgeCore

func registerLinearKernels(_ registry: KernelRegistry) {
    registry.register("Gemm", backend: "cpu") { request in
        let dtype = try request.input(0).dtype
        switch dtype {
        case .float32: return try GemmF32Kernel(request)
        case .float64: return try GemmLoopKernel(request)
        default: throw request.unsupportedType(dtype)
        }
    }
    registry.register("Linear", backend: "cpu") { request in try LinearKernel(request) }
    registry.register("MatMul", backend: "cpu") { request in
        let dtype = try request.input(0).dtype
        switch dtype {
        case .float32: return try MatMulF32Kernel(request)
        case .float64, .float16, .int32, .int64, .uint32, .uint64: return try MatMulLoopKernel(request)
        default: throw request.unsupportedType(dtype)
        }
    }
}

/// The geometry of an ONNX Gemm node.
private struct GemmGeometry {
    let m: Int, n: Int, k: Int
    let transA: Bool, transB: Bool
    let alpha: Float, beta: Float
    let aShape: [Int], bShape: [Int]
    let cShape: [Int]?

    init(_ request: KernelRequest) throws {
        let a = try request.input(0)
        let b = try request.input(1)
        guard a.shape.count == 2, b.shape.count == 2, let out = request.outputs.first, out.shape.count == 2 else {
            throw AidgeError.shapeMismatch("Gemm needs matrices")
        }
        transA = try request.attributes.int("transA", default: 0) != 0
        transB = try request.attributes.int("transB", default: 0) != 0
        alpha = try request.attributes.float("alpha", default: 1)
        beta = try request.attributes.float("beta", default: 1)
        m = out.shape[0]
        n = out.shape[1]
        k = transA ? a.shape[0] : a.shape[1]
        aShape = a.shape
        bShape = b.shape
        cShape = request.inputs.count > 2 ? request.inputs[2]?.shape : nil
    }

    var aMatrixStrides: (row: Int, col: Int) { transA ? (1, aShape[1]) : (aShape[1], 1) }
    var bMatrixStrides: (row: Int, col: Int) { transB ? (1, bShape[1]) : (bShape[1], 1) }

    /// Strides of C broadcast to M x N (0 along a broadcast dimension).
    var cBroadcastStrides: (row: Int, col: Int) {
        guard let c = cShape else { return (0, 0) }
        let cols = c.last ?? 1
        let rows = c.count == 2 ? c[0] : 1
        return (rows == 1 ? 0 : cols, cols == 1 ? 0 : 1)
    }
}

/// How Gemm's `beta * C` enters the product.
private enum GemmBias {
    case none
    /// Added per column (C of shape N, 1xN or a scalar), scaled ahead of time or used as is when beta = 1.
    case column(AlignedBuffer)
    case row(AlignedBuffer)
    /// C given at run time with beta = 1 and shape N or 1xN: read in place.
    case runtimeColumn
    /// Anything else: the output is prefilled with beta * C, then the product is added.
    case prefill
}

/// float32 Gemm on the packed engine; B is packed once when it is a constant (a fully-connected layer's weights).
final class GemmF32Kernel: Kernel {
    private let g: GemmGeometry
    private let packedB: PackedMatrix?
    private let bias: GemmBias
    private let activation: FusedActivation

    init(_ request: KernelRequest) throws {
        g = try GemmGeometry(request)
        activation = try FusedActivation(request.attributes)
        if let b = try request.input(1).value {
            let bs = g.bMatrixStrides
            packedB = PackedMatrix(
                StridedMatrix(base: b.pointer(as: Float.self), rowStride: bs.row, colStride: bs.col), rows: g.k,
                cols: g.n, role: .b)
        } else {
            packedB = nil
        }
        let c = request.inputs.count > 2 ? request.inputs[2] : nil
        if let c, g.beta != 0 {
            let (rs, cs) = g.cBroadcastStrides
            if let value = c.value, rs == 0 {
                let buffer = AlignedBuffer(count: g.n)
                let p = value.pointer(as: Float.self)
                for j in 0..<g.n { buffer.pointer[j] = g.beta * p[j * cs] }
                bias = .column(buffer)
            } else if let value = c.value, cs == 0 {
                let buffer = AlignedBuffer(count: g.m)
                let p = value.pointer(as: Float.self)
                for i in 0..<g.m { buffer.pointer[i] = g.beta * p[i * rs] }
                bias = .row(buffer)
            } else if rs == 0 && cs == 1 && g.beta == 1 {
                bias = .runtimeColumn
            } else {
                bias = .prefill
            }
        } else {
            bias = .none
        }
        ScratchPool.shared.reserve(floats: SGEMM.scratchFloats(threads: Parallel.threads))
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard inputs.count >= 2, let a = inputs[0], let out = outputs.first else {
            throw AidgeError.invalidModel("Gemm needs inputs A and B")
        }
        let c = out.pointer(as: Float.self)
        var ep = GEMMEpilogue(alpha: g.alpha, lower: activation.lower, upper: activation.upper)
        switch bias {
        case .none: break
        case .column(let buffer): ep.colBias = UnsafePointer(buffer.pointer)
        case .row(let buffer): ep.rowBias = UnsafePointer(buffer.pointer)
        case .runtimeColumn, .prefill:
            guard inputs.count > 2, let cIn = inputs[2] else { throw AidgeError.invalidModel("Gemm input C is missing") }
            let cp = cIn.pointer(as: Float.self)
            if case .runtimeColumn = bias {
                ep.colBias = UnsafePointer(cp)
            } else {
                let (rs, cs) = g.cBroadcastStrides
                for i in 0..<g.m {
                    for j in 0..<g.n { c[i * g.n + j] = g.beta * cp[i * rs + j * cs] }
                }
                ep.accumulate = true
            }
        }
        let asd = g.aMatrixStrides
        let av = StridedA(
            matrix: StridedMatrix(base: a.pointer(as: Float.self), rowStride: asd.row, colStride: asd.col), rows: g.m)
        if let packedB {
            SGEMM.multiply(m: g.m, n: g.n, k: g.k, a: av, b: PackedB(packed: packedB), c: c, ldc: g.n, epilogue: ep)
        } else {
            guard let b = inputs[1] else { throw AidgeError.invalidModel("Gemm input B is missing") }
            let bsd = g.bMatrixStrides
            let bv = StridedB(
                matrix: StridedMatrix(base: b.pointer(as: Float.self), rowStride: bsd.row, colStride: bsd.col),
                cols: g.n)
            SGEMM.multiply(m: g.m, n: g.n, k: g.k, a: av, b: bv, c: c, ldc: g.n, epilogue: ep)
        }
    }
}

/// float64 Gemm with plain loops.
final class GemmLoopKernel: Kernel {
    private let g: GemmGeometry
    private let activation: FusedActivation

    init(_ request: KernelRequest) throws {
        g = try GemmGeometry(request)
        activation = try FusedActivation(request.attributes)
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard inputs.count >= 2, let a = inputs[0], let b = inputs[1], let out = outputs.first else {
            throw AidgeError.invalidModel("Gemm needs inputs A and B")
        }
        let c = out.pointer(as: Double.self)
        let asd = g.aMatrixStrides
        let bsd = g.bMatrixStrides
        loopGEMM(
            m: g.m, n: g.n, k: g.k, a: a.pointer(as: Double.self), aRow: asd.row, aCol: asd.col,
            b: b.pointer(as: Double.self), bRow: bsd.row, bCol: bsd.col, c: c, ldc: g.n)
        let alpha = Double(g.alpha)
        let beta = Double(g.beta)
        let cIn = inputs.count > 2 ? inputs[2] : nil
        let (rs, cs) = g.cBroadcastStrides
        let cp = cIn?.pointer(as: Double.self)
        for i in 0..<g.m {
            for j in 0..<g.n {
                var v = alpha * c[i * g.n + j]
                if let cp, beta != 0 { v += beta * cp[i * rs + j * cs] }
                if let lower = activation.lower, v < Double(lower) { v = Double(lower) }
                if let upper = activation.upper, v > Double(upper) { v = Double(upper) }
                c[i * g.n + j] = v
            }
        }
    }
}

/// Where each product of a batched MatMul reads its operands.
private struct MatMulBatches {
    let shape: OperatorSchema.MatMulShape
    /// For each output matrix: index of the A matrix and of the B matrix.
    let aIndex: [Int]
    let bIndex: [Int]
    let aCount: Int
    let bCount: Int

    init(_ request: KernelRequest) throws {
        shape = try OperatorSchema.matMulShape(try request.input(0).shape, try request.input(1).shape)
        let batch = shape.batch
        let count = ShapeUtil.count(batch)
        aCount = ShapeUtil.count(shape.batchA)
        bCount = ShapeUtil.count(shape.batchB)
        func strides(_ s: [Int]) -> [Int] {
            // Strides (in matrices) of `s` aligned to the right of `batch`, 0 where broadcast.
            let own = ShapeUtil.contiguousStrides(s)
            let pad = batch.count - s.count
            return (0..<batch.count).map { d in d < pad || s[d - pad] == 1 ? 0 : own[d - pad] }
        }
        let sa = strides(shape.batchA)
        let sb = strides(shape.batchB)
        var ai = [Int](repeating: 0, count: count)
        var bi = [Int](repeating: 0, count: count)
        for t in 0..<count {
            var rest = t
            var oa = 0
            var ob = 0
            for d in stride(from: batch.count - 1, through: 0, by: -1) {
                let x = rest % batch[d]
                rest /= batch[d]
                oa += x * sa[d]
                ob += x * sb[d]
            }
            ai[t] = oa
            bi[t] = ob
        }
        aIndex = ai
        bIndex = bi
    }
}

/// float32 MatMul on the packed engine. When B is one matrix (the usual weights), all of A's batches form one
/// tall product; constant B matrices are packed once.
final class MatMulF32Kernel: Kernel {
    private let batches: MatMulBatches
    private let packedB: [PackedMatrix]
    private let threads: Int

    init(_ request: KernelRequest) throws {
        batches = try MatMulBatches(request)
        let s = batches.shape
        if let b = try request.input(1).value {
            let p = b.pointer(as: Float.self)
            packedB = (0..<batches.bCount).map { i in
                PackedMatrix(
                    StridedMatrix(base: p + i * s.k * s.n, rowStride: s.n, colStride: 1), rows: s.k, cols: s.n,
                    role: .b)
            }
        } else {
            packedB = []
        }
        threads = Parallel.threads
        ScratchPool.shared.reserve(floats: SGEMM.scratchFloats(threads: threads))
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard inputs.count >= 2, let a = inputs[0], let b = inputs[1], let out = outputs.first else {
            throw AidgeError.invalidModel("MatMul needs inputs A and B")
        }
        let s = batches.shape
        let ap = a.pointer(as: Float.self)
        let bp = b.pointer(as: Float.self)
        let cp = out.pointer(as: Float.self)
        let count = batches.aIndex.count
        if count == 0 { return }
        let ep = GEMMEpilogue()
        if batches.bCount == 1 {
            // One B for every batch: A's batches stacked make one (count * M) x K matrix.
            let av = StridedA(matrix: StridedMatrix(base: ap, rowStride: s.k, colStride: 1), rows: count * s.m)
            if let packed = packedB.first {
                SGEMM.multiply(m: count * s.m, n: s.n, k: s.k, a: av, b: PackedB(packed: packed), c: cp, ldc: s.n, epilogue: ep)
            } else {
                let bv = StridedB(matrix: StridedMatrix(base: bp, rowStride: s.n, colStride: 1), cols: s.n)
                SGEMM.multiply(m: count * s.m, n: s.n, k: s.k, a: av, b: bv, c: cp, ldc: s.n, epilogue: ep)
            }
            return
        }
        if packedB.isEmpty && s.n <= 64 && s.m * s.n * s.k <= 1 << 15 {
            // Many tiny products (attention heads): rows of C accumulated in registers, no packing.
            Parallel.forEach(count, grain: max(1, (1 << 14) / (s.m * s.n * max(s.k, 1)))) { range in
                for i in range {
                    tinyProduct(
                        ap + batches.aIndex[i] * s.m * s.k, bp + batches.bIndex[i] * s.k * s.n, cp + i * s.m * s.n,
                        m: s.m, n: s.n, k: s.k)
                }
            }
            return
        }
        let t = min(threads, Parallel.threads)
        let small = s.m * s.n * s.k < SGEMM.parallelThreshold
        if small && count >= 2 && t > 1 {
            // Many small products: one thread per group of products.
            let slots = min(t, count)
            ScratchPool.shared.with(floats: SGEMM.scratchFloats(threads: slots)) { scratch in
                Parallel.forEach(slots) { range in
                    for slot in range {
                        let lo = count * slot / slots
                        let hi = count * (slot + 1) / slots
                        for i in lo..<hi {
                            product(i, ap, bp, cp, single: scratch + slot * GEMMBlocking.scratchPerThread)
                        }
                    }
                }
            }
        } else {
            for i in 0..<count { product(i, ap, bp, cp, single: nil) }
        }
    }

    @inline(__always)
    private func product(
        _ i: Int, _ ap: UnsafePointer<Float>, _ bp: UnsafePointer<Float>, _ cp: UnsafeMutablePointer<Float>,
        single scratch: UnsafeMutablePointer<Float>?
    ) {
        let s = batches.shape
        let av = StridedA(
            matrix: StridedMatrix(base: ap + batches.aIndex[i] * s.m * s.k, rowStride: s.k, colStride: 1), rows: s.m)
        let c = cp + i * s.m * s.n
        let ep = GEMMEpilogue()
        if batches.bIndex[i] < packedB.count {
            let bv = PackedB(packed: packedB[batches.bIndex[i]])
            if let scratch {
                SGEMM.multiplySingle(m: s.m, n: s.n, k: s.k, a: av, b: bv, c: c, ldc: s.n, epilogue: ep, scratch: scratch)
            } else {
                SGEMM.multiply(m: s.m, n: s.n, k: s.k, a: av, b: bv, c: c, ldc: s.n, epilogue: ep)
            }
        } else {
            let bv = StridedB(
                matrix: StridedMatrix(base: bp + batches.bIndex[i] * s.k * s.n, rowStride: s.n, colStride: 1),
                cols: s.n)
            if let scratch {
                SGEMM.multiplySingle(m: s.m, n: s.n, k: s.k, a: av, b: bv, c: c, ldc: s.n, epilogue: ep, scratch: scratch)
            } else {
                SGEMM.multiply(m: s.m, n: s.n, k: s.k, a: av, b: bv, c: c, ldc: s.n, epilogue: ep)
            }
        }
    }
}

/// C (m x n) = A (m x k) B (k x n), all contiguous, for a small n: four rows of C at a time are accumulated in
/// registers, 8 columns at a time (four independent chains hide the multiply-add latency), over the rows of A
/// broadcast element by element.
@inline(__always)
private func tinyProduct(
    _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, m: Int, n: Int, k: Int
) {
    let vectorColumns = n / 8 * 8
    var i = 0
    while i + 4 <= m {
        let (r0, r1, r2, r3) = (a + i * k, a + (i + 1) * k, a + (i + 2) * k, a + (i + 3) * k)
        var j = 0
        while j < vectorColumns {
            var (c0, c1, c2, c3) = (SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>())
            for p in 0..<k {
                let row = load8(b + p * n + j)
                c0 = c0.addingProduct(SIMD8(repeating: r0[p]), row)
                c1 = c1.addingProduct(SIMD8(repeating: r1[p]), row)
                c2 = c2.addingProduct(SIMD8(repeating: r2[p]), row)
                c3 = c3.addingProduct(SIMD8(repeating: r3[p]), row)
            }
            store8(c0, c + i * n + j)
            store8(c1, c + (i + 1) * n + j)
            store8(c2, c + (i + 2) * n + j)
            store8(c3, c + (i + 3) * n + j)
            j += 8
        }
        for r in i..<i + 4 { tinyColumns(a + r * k, b, c + r * n, from: vectorColumns, n: n, k: k) }
        i += 4
    }
    while i < m {
        var j = 0
        while j < vectorColumns {
            var acc = SIMD8<Float>()
            for p in 0..<k { acc = acc.addingProduct(SIMD8(repeating: a[i * k + p]), load8(b + p * n + j)) }
            store8(acc, c + i * n + j)
            j += 8
        }
        tinyColumns(a + i * k, b, c + i * n, from: vectorColumns, n: n, k: k)
        i += 1
    }
}

/// The columns `from..<n` of one row of a `tinyProduct`, one by one.
@inline(__always)
private func tinyColumns(
    _ row: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, from: Int, n: Int,
    k: Int
) {
    for j in from..<n {
        var acc: Float = 0
        for p in 0..<k { acc = acc.addingProduct(row[p], b[p * n + j]) }
        out[j] = acc
    }
}

/// MatMul with plain loops (float64, integers).
final class MatMulLoopKernel: Kernel {
    private let batches: MatMulBatches
    private let dtype: DType

    init(_ request: KernelRequest) throws {
        batches = try MatMulBatches(request)
        dtype = try request.input(0).dtype
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard inputs.count >= 2, let a = inputs[0], let b = inputs[1], let out = outputs.first else {
            throw AidgeError.invalidModel("MatMul needs inputs A and B")
        }
        switch dtype {
        case .float64: compute(a, b, out, Double.self)
        case .float16: compute(a, b, out, Float16.self)
        case .int32: compute(a, b, out, Int32.self)
        case .int64: compute(a, b, out, Int64.self)
        case .uint32: compute(a, b, out, UInt32.self)
        case .uint64: compute(a, b, out, UInt64.self)
        default: throw AidgeError.unsupportedType("MatMul has no CPU kernel for \(dtype)")
        }
    }

    private func compute<T: LoopGEMMElement>(_ a: Tensor, _ b: Tensor, _ out: Tensor, _: T.Type) {
        let s = batches.shape
        let ap = a.pointer(as: T.self)
        let bp = b.pointer(as: T.self)
        let cp = out.pointer(as: T.self)
        for i in 0..<batches.aIndex.count {
            loopGEMM(
                m: s.m, n: s.n, k: s.k, a: ap + batches.aIndex[i] * s.m * s.k, aRow: s.k, aCol: 1,
                b: bp + batches.bIndex[i] * s.k * s.n, bRow: s.n, bCol: 1, c: cp + i * s.m * s.n, ldc: s.n)
        }
    }
}

/// The engine's `Linear`: Y (M x N) = X (M x K, the leading dimensions of X as rows) Wᵀ + B in one GEMM, what an
/// exported `nn.Linear` on a batch of sequences spells as Transpose, MatMul and Add. float32 copies Wᵀ out once per
/// run (its panels then pack with vector loads) and adds the bias in the GEMM's output pass; float64 (the
/// finite-difference tests' type) writes the bias first and accumulates onto it.
final class LinearKernel: Kernel {
    let dtype: DType
    let m: Int, n: Int, k: Int
    /// W (N x K) read as Wᵀ (K x N), for float32.
    private let transposeW: StridedCopy?

    init(_ request: KernelRequest) throws {
        let x = try request.input(0)
        let w = try request.input(1)
        dtype = x.dtype
        guard dtype == .float32 || dtype == .float64 else { throw request.unsupportedType(dtype) }
        guard w.shape.count == 2, let k = x.shape.last, k == w.shape[1] else {
            throw AidgeError.shapeMismatch("Linear (node \(request.nodeName)) needs X (..., K) and W (N x K)")
        }
        self.k = k
        n = w.shape[0]
        m = k == 0 ? 0 : ShapeUtil.count(x.shape) / k
        if dtype == .float32 {
            transposeW = try StridedCopy(shape: [k, n], strides: [1, k], offset: 0, elementSize: 4)
            ScratchPool.shared.reserve(floats: n * k)
        } else {
            transposeW = nil
        }
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard inputs.count >= 2, let x = inputs[0], let w = inputs[1], let y = outputs.first else {
            throw AidgeError.invalidModel("Linear needs inputs X and W")
        }
        try dispatch(dtype, Body(kernel: self, x: x, w: w, b: inputs.count > 2 ? inputs[2] : nil, y: y))
    }

    private struct Body: GradientBody {
        let kernel: LinearKernel
        let x: Tensor, w: Tensor, b: Tensor?, y: Tensor

        func run<T: GradientFloat>(_: T.Type) {
            let (m, n, k) = (kernel.m, kernel.n, kernel.k)
            if let transposeW = kernel.transposeW {
                let bias = b.map { UnsafePointer($0.pointer(as: Float.self)) }
                ScratchPool.shared.with(floats: n * k) { wt in
                    transposeW.run(w.rawPointer, wt)
                    SGEMM.multiply(
                        m: m, n: n, k: k,
                        a: StridedA(matrix: StridedMatrix(base: x.pointer(as: Float.self), rowStride: k, colStride: 1), rows: m),
                        b: StridedB(matrix: StridedMatrix(base: wt, rowStride: n, colStride: 1), cols: n),
                        c: y.pointer(as: Float.self), ldc: n, epilogue: GEMMEpilogue(colBias: bias))
                }
                return
            }
            let yp = y.pointer(as: T.self)
            if let b {
                let bp = UnsafePointer(b.pointer(as: T.self))
                Parallel.forEach(m, grain: max(1, (1 << 14) / max(n, 1))) { rows in
                    for i in rows { (yp + i * n).update(from: bp, count: n) }
                }
            }
            gradientGEMM(
                transB: true, m: m, n: n, k: k, a: x.pointer(as: T.self), lda: k, b: w.pointer(as: T.self), ldb: k,
                accumulate: b != nil, c: yp, ldc: n)
        }
    }
}
