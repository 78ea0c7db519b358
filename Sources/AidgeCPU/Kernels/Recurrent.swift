import AidgeCore

/// Forward kernels of the recurrent layers (RNN, GRU, LSTM) in float32 and float64.
///
/// Work per run: one GEMM projects every time step's input through W (both directions at once), then each step
/// is one GEMM of the previous hidden state with R (two for GRU's default reset) and vectorised gate functions.
/// The training forward (`RecurrentGradientKernel`) runs the same code and keeps the activated gates and
/// states of every step for backward through time.
func registerRecurrentKernels(_ registry: KernelRegistry) {
    for cell in RecurrentCell.allCases {
        registry.register(cell.rawValue, backend: "cpu") { request in
            RecurrentKernel(try RecurrentLayer(request, cell))
        }
    }
}

/// The inference kernel: the shared forward with scratch for the per-step states.
final class RecurrentKernel: Kernel {
    let layer: RecurrentLayer

    init(_ layer: RecurrentLayer) { self.layer = layer }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        switch layer.g.dtype {
        case .float32: try runScratch(Float.self, inputs, outputs)
        default: try runScratch(Double.self, inputs, outputs)
        }
    }

    private func runScratch<T: RecurrentFloat>(_: T.Type, _ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let l = layer
        let history = l.g.directions * (l.g.seq + 1) * l.g.batch * l.g.hidden
        let gates = UnsafeMutablePointer<T>.allocate(capacity: max(l.rows * l.width, 1))
        let hs = UnsafeMutablePointer<T>.allocate(capacity: max(history, 1))
        let cs = l.g.cell == .lstm ? UnsafeMutablePointer<T>.allocate(capacity: max(history, 1)) : nil
        let aux = l.g.cell == .gru ? UnsafeMutablePointer<T>.allocate(capacity: max(l.g.batch * l.g.hidden, 1)) : nil
        defer {
            gates.deallocate()
            hs.deallocate()
            cs?.deallocate()
            aux?.deallocate()
        }
        let states = RecurrentStates(
            gates: gates, pre: nil, hs: hs, cs: cs, cellOutput: nil, aux: aux, keepsAux: false)
        try l.forward(inputs, outputs, states)
    }
}

/// The float types the recurrent layers compute in: a matrix product and vectorised sigmoid and tanh.
protocol RecurrentFloat: GradientFloat {
    /// C = op(A) op(B), or C += op(A) op(B) when `accumulate`; row-major, op(X) is X or its transpose.
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Self>, lda: Int,
        b: UnsafePointer<Self>, ldb: Int, accumulate: Bool, c: UnsafeMutablePointer<Self>, ldc: Int)
    static func sigmoid(_ p: UnsafeMutablePointer<Self>, _ n: Int)
    static func tanh(_ p: UnsafeMutablePointer<Self>, _ n: Int)
    /// The K x N matrix op(B) made ready for many products (float32 packs it once).
    static func operand(transB: Bool, k: Int, n: Int, b: UnsafePointer<Self>, ldb: Int) -> RecurrentOperand<Self>
    /// C (+)= A · B for an M x K matrix A with row stride `lda`.
    static func gemm(
        m: Int, a: UnsafePointer<Self>, lda: Int, b: RecurrentOperand<Self>, accumulate: Bool,
        c: UnsafeMutablePointer<Self>, ldc: Int)
}

/// A right-hand matrix that every time step multiplies (R or its transpose): packed once per run in float32,
/// instead of once per step.
struct RecurrentOperand<T> {
    let b: UnsafePointer<T>
    let ldb: Int
    let transB: Bool
    let k: Int
    let n: Int
    let packed: PackedMatrix?
}

extension RecurrentFloat {
    static func operand(transB: Bool, k: Int, n: Int, b: UnsafePointer<Self>, ldb: Int) -> RecurrentOperand<Self> {
        RecurrentOperand(b: b, ldb: ldb, transB: transB, k: k, n: n, packed: nil)
    }

    static func gemm(
        m: Int, a: UnsafePointer<Self>, lda: Int, b: RecurrentOperand<Self>, accumulate: Bool,
        c: UnsafeMutablePointer<Self>, ldc: Int
    ) {
        gemm(
            transA: false, transB: b.transB, m: m, n: b.n, k: b.k, a: a, lda: lda, b: b.b, ldb: b.ldb,
            accumulate: accumulate, c: c, ldc: ldc)
    }
}

extension Float: RecurrentFloat {
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, accumulate: Bool, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m <= 0 || n <= 0 { return }
        if k <= 0 {
            if !accumulate { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
            return
        }
        BLAS.sgemm(
            transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb,
            beta: accumulate ? 1 : 0, c: c, ldc: ldc)
    }

    static func operand(transB: Bool, k: Int, n: Int, b: UnsafePointer<Float>, ldb: Int) -> RecurrentOperand<Float> {
        guard k > 0, n > 0 else { return RecurrentOperand(b: b, ldb: ldb, transB: transB, k: k, n: n, packed: nil) }
        let view = transB
            ? StridedMatrix(base: b, rowStride: 1, colStride: ldb) : StridedMatrix(base: b, rowStride: ldb, colStride: 1)
        return RecurrentOperand(
            b: b, ldb: ldb, transB: transB, k: k, n: n, packed: PackedMatrix(view, rows: k, cols: n, role: .b))
    }

    static func gemm(
        m: Int, a: UnsafePointer<Float>, lda: Int, b: RecurrentOperand<Float>, accumulate: Bool,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard let packed = b.packed, m > 0 else {
            gemm(
                transA: false, transB: b.transB, m: m, n: b.n, k: b.k, a: a, lda: lda, b: b.b, ldb: b.ldb,
                accumulate: accumulate, c: c, ldc: ldc)
            return
        }
        SGEMM.multiply(
            m: m, n: b.n, k: b.k, a: StridedA(matrix: StridedMatrix(base: a, rowStride: lda, colStride: 1), rows: m),
            b: PackedB(packed: packed), c: c, ldc: ldc, epilogue: GEMMEpilogue(accumulate: accumulate))
    }

    static func sigmoid(_ p: UnsafeMutablePointer<Float>, _ n: Int) { SigmoidF().run(UnsafePointer(p), p, n) }
    static func tanh(_ p: UnsafeMutablePointer<Float>, _ n: Int) { TanhF().run(UnsafePointer(p), p, n) }
}

extension Double: RecurrentFloat {
    /// Plain loops over rows (spread over cores): float64 is for checks, not speed.
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Double>, lda: Int,
        b: UnsafePointer<Double>, ldb: Int, accumulate: Bool, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        if m <= 0 || n <= 0 { return }
        if !accumulate { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
        if k <= 0 { return }
        let (aRow, aCol) = transA ? (1, lda) : (lda, 1)
        let grain = max(1, (1 << 15) / max(n * k, 1))
        if transB {
            // B(p, j) = b[j * ldb + p]: a dot product per element of C.
            Parallel.forEach(m, grain: grain) { rows in
                for i in rows {
                    for j in 0..<n {
                        let bj = b + j * ldb
                        var sum = 0.0
                        for p in 0..<k { sum += a[i * aRow + p * aCol] * bj[p] }
                        c[i * ldc + j] += sum
                    }
                }
            }
        } else {
            Parallel.forEach(m, grain: grain) { rows in
                for i in rows {
                    let row = c + i * ldc
                    for p in 0..<k {
                        let av = a[i * aRow + p * aCol]
                        let bp = b + p * ldb
                        for j in 0..<n { row[j] += av * bp[j] }
                    }
                }
            }
        }
    }

    static func sigmoid(_ p: UnsafeMutablePointer<Double>, _ n: Int) {
        let op = SigmoidOp<Double>()
        for i in 0..<n { p[i] = op(p[i]) }
    }

    static func tanh(_ p: UnsafeMutablePointer<Double>, _ n: Int) {
        for i in 0..<n { p[i] = Double.mathTanh(p[i]) }
    }
}

extension RecurrentActivation {
    /// p[i] = f(p[i]).
    func apply<T: RecurrentFloat>(_ p: UnsafeMutablePointer<T>, _ n: Int) {
        let a = T(alpha)
        let b = T(beta)
        switch kind {
        case .sigmoid: T.sigmoid(p, n)
        case .tanh: T.tanh(p, n)
        case .relu: for i in 0..<n where p[i] < 0 { p[i] = 0 }
        case .affine: for i in 0..<n { p[i] = a * p[i] + b }
        case .leakyRelu: for i in 0..<n where p[i] < 0 { p[i] = a * p[i] }
        case .thresholdedRelu: for i in 0..<n where !(p[i] > a) { p[i] = 0 }
        case .scaledTanh: for i in 0..<n { p[i] = a * T.mathTanh(b * p[i]) }
        case .hardSigmoid: for i in 0..<n { p[i] = max(0, min(1, a * p[i] + b)) }
        case .elu: for i in 0..<n where p[i] < 0 { p[i] = a * T.mathExpm1(p[i]) }
        case .softsign: for i in 0..<n { p[i] = p[i] / (1 + abs(p[i])) }
        case .softplus:
            for i in 0..<n {
                let x = p[i]
                p[i] = x > 0 ? x + T.mathLog1p(T.mathExp(-x)) : T.mathLog1p(T.mathExp(x))
            }
        }
    }

    /// g[i] *= f'(x[i]), from the output y[i] = f(x[i]) (every listed function's derivative follows from it).
    func scaleByDerivative<T: RecurrentFloat>(_ g: UnsafeMutablePointer<T>, output y: UnsafePointer<T>, _ n: Int) {
        let a = T(alpha)
        let b = T(beta)
        switch kind {
        case .sigmoid: for i in 0..<n { g[i] *= y[i] * (1 - y[i]) }
        case .tanh: for i in 0..<n { g[i] *= 1 - y[i] * y[i] }
        case .relu: for i in 0..<n where !(y[i] > 0) { g[i] = 0 }
        case .affine: for i in 0..<n { g[i] *= a }
        case .leakyRelu: for i in 0..<n where !(y[i] > 0) { g[i] *= a }
        case .thresholdedRelu: for i in 0..<n where y[i] == 0 { g[i] = 0 }
        case .scaledTanh:
            for i in 0..<n {
                let t = a == 0 ? 0 : y[i] / a
                g[i] *= a == 0 ? 0 : a * b * (1 - t * t)
            }
        case .hardSigmoid: for i in 0..<n { g[i] *= y[i] > 0 && y[i] < 1 ? a : 0 }
        case .elu: for i in 0..<n where y[i] < 0 { g[i] *= y[i] + a }
        case .softsign:
            for i in 0..<n {
                let s = 1 - abs(y[i])
                g[i] *= s * s
            }
        case .softplus: for i in 0..<n { g[i] *= -T.mathExpm1(-y[i]) }
        }
    }
}

/// Where the forward keeps its per-step values. In training they are the plan's saved tensors (backward reads
/// them); in inference, scratch.
struct RecurrentStates<T> {
    /// [seq x batch rows in X's order, directions x gates x hidden]: X·Wᵀ + biases, then each step's recurrent
    /// product is added and the gate functions applied in place.
    let gates: UnsafeMutablePointer<T>
    /// With `clip`: the gate inputs before clipping, laid out like `gates` (backward's clip mask).
    let pre: UnsafeMutablePointer<T>?
    /// [directions, seq + 1, batch, hidden]: the hidden state before and after every step, by time (forward
    /// steps read entry t and write t + 1; reverse steps read t + 1 and write t).
    let hs: UnsafeMutablePointer<T>
    /// LSTM: the cell states, laid out like `hs`.
    let cs: UnsafeMutablePointer<T>?
    /// LSTM, training: [directions, seq, batch, hidden] h(C_t).
    let cellOutput: UnsafeMutablePointer<T>?
    /// GRU: r ⊙ H_{t-1} (default) or H_{t-1}·R_hᵀ + Rb_h (`linear_before_reset`); [directions, seq, batch,
    /// hidden] when `keepsAux`, else one [batch, hidden] step.
    let aux: UnsafeMutablePointer<T>?
    let keepsAux: Bool
}

/// One recurrent node at fixed shapes: its geometry and the layout of every buffer, shared by the inference
/// kernel, the training forward and backward.
struct RecurrentLayer: Sendable {
    let g: RecurrentGeometry
    /// gates x hidden: one direction's columns.
    let gateWidth: Int
    /// directions x gates x hidden: columns of the projected inputs.
    let width: Int
    /// seq x batch.
    let rows: Int

    init(_ request: KernelRequest, _ cell: RecurrentCell) throws {
        g = try RecurrentGeometry(cell, request.attributes, request.inputs)
        guard g.dtype == .float32 || g.dtype == .float64 else { throw request.unsupportedType(g.dtype) }
        gateWidth = cell.gates * g.hidden
        width = g.directions * gateWidth
        rows = g.seq * g.batch
    }

    // MARK: Layout

    /// Row of X (and of `gates`) holding time `t` of batch entry `b`.
    @inline(__always) func xRow(_ t: Int, _ b: Int) -> Int { g.batchFirst ? b * g.seq + t : t * g.batch + b }
    /// Elements between the `gates` rows of consecutive batch entries at one time step.
    var stepRowStride: Int { g.batchFirst ? g.seq * width : width }
    /// Offset of direction `d`'s gates for (t, b) in `gates`.
    @inline(__always) func gateOffset(_ t: Int, _ d: Int, _ b: Int) -> Int { xRow(t, b) * width + d * gateWidth }
    /// Offset of (t, d, b) in Y.
    @inline(__always) func yOffset(_ t: Int, _ d: Int, _ b: Int) -> Int {
        g.batchFirst ? ((b * g.seq + t) * g.directions + d) * g.hidden : ((t * g.directions + d) * g.batch + b) * g.hidden
    }
    /// Offset of (d, b) in initial_h, initial_c, Y_h and Y_c.
    @inline(__always) func stateOffset(_ d: Int, _ b: Int) -> Int {
        g.batchFirst ? (b * g.directions + d) * g.hidden : (d * g.batch + b) * g.hidden
    }
    /// Offset of entry `index` (0...seq) of batch entry `b` in `hs` / `cs`.
    @inline(__always) func historyOffset(_ d: Int, _ index: Int, _ b: Int) -> Int {
        ((d * (g.seq + 1) + index) * g.batch + b) * g.hidden
    }
    /// Offset of (d, t, b) in the [directions, seq, batch, hidden] buffers.
    @inline(__always) func stepOffset(_ d: Int, _ t: Int, _ b: Int) -> Int {
        ((d * g.seq + t) * g.batch + b) * g.hidden
    }
    /// History entries read and written by the step at time `t`.
    @inline(__always) func previousIndex(_ d: Int, _ t: Int) -> Int { g.isReverse(d) ? t + 1 : t }
    @inline(__always) func nextIndex(_ d: Int, _ t: Int) -> Int { g.isReverse(d) ? t : t + 1 }
    /// The time of the `s`-th step of direction `d`.
    @inline(__always) func time(_ d: Int, step s: Int) -> Int { g.isReverse(d) ? g.seq - 1 - s : s }
    /// Batch entries per parallel chunk of the gate functions.
    var batchGrain: Int { max(1, 4096 / max(gateWidth, 1)) }

    // MARK: Saved tensors

    /// What the training forward keeps: gates, hs, then cs and cell outputs (LSTM) or aux (GRU), then the
    /// pre-clip gate inputs when `clip` is set.
    var savedInfos: [ValueInfo] {
        let history = ValueInfo(dtype: g.dtype, shape: [g.directions, g.seq + 1, g.batch, g.hidden])
        let perStep = ValueInfo(dtype: g.dtype, shape: [g.directions, g.seq, g.batch, g.hidden])
        let gateInfo = ValueInfo(dtype: g.dtype, shape: [rows, width])
        var infos = [gateInfo, history]
        switch g.cell {
        case .lstm: infos += [history, perStep]
        case .gru: infos.append(perStep)
        case .rnn: break
        }
        if g.clip != nil { infos.append(gateInfo) }
        return infos
    }

    /// The saved tensors as `RecurrentStates`.
    func savedStates<T>(_ saved: [Tensor], _: T.Type) throws -> RecurrentStates<T> {
        guard saved.count == savedInfos.count else {
            throw AidgeError.invalidModel("\(g.cell.rawValue): expected \(savedInfos.count) saved tensors, got \(saved.count)")
        }
        let lstm = g.cell == .lstm
        let gru = g.cell == .gru
        return RecurrentStates(
            gates: saved[0].pointer(as: T.self), pre: g.clip != nil ? saved[saved.count - 1].pointer(as: T.self) : nil,
            hs: saved[1].pointer(as: T.self), cs: lstm ? saved[2].pointer(as: T.self) : nil,
            cellOutput: lstm ? saved[3].pointer(as: T.self) : nil, aux: gru ? saved[2].pointer(as: T.self) : nil,
            keepsAux: gru)
    }

    // MARK: Inputs

    /// Input `i`, which the geometry says is there.
    func input(_ inputs: [Tensor?], _ i: Int) throws -> Tensor {
        guard i < inputs.count, let t = inputs[i] else {
            throw AidgeError.invalidModel("\(g.cell.rawValue) input \(g.cell.inputNames[i]) is missing")
        }
        return t
    }

    /// Optional input `i` when the plan had it.
    func optionalInput(_ inputs: [Tensor?], _ i: Int, _ present: Bool) throws -> Tensor? {
        present ? try input(inputs, i) : nil
    }

    /// The length of each batch entry's sequence: `sequence_lens`, checked, or the full length.
    func lengths(_ inputs: [Tensor?]) throws -> [Int] {
        guard g.hasSequenceLengths else { return Array(repeating: g.seq, count: g.batch) }
        let values = try input(inputs, RecurrentGeometry.sequenceLengths).integers()
        guard values.count == g.batch else {
            throw AidgeError.shapeMismatch(
                "\(g.cell.rawValue) sequence_lens has \(values.count) values for a batch of \(g.batch)")
        }
        for (b, v) in values.enumerated() where v < 0 || v > g.seq {
            throw AidgeError.invalidModel(
                "\(g.cell.rawValue) sequence_lens[\(b)] = \(v) is outside 0...\(g.seq) (the sequence length)")
        }
        return values
    }

    // MARK: Forward

    /// Clamps `n` gate inputs to ±clip, keeping the unclipped values in `keep` when given.
    @inline(__always)
    func clip<T: RecurrentFloat>(_ p: UnsafeMutablePointer<T>, _ n: Int, keep: UnsafeMutablePointer<T>?) {
        guard let bound = g.clip else { return }
        let c = T(bound)
        keep?.update(from: p, count: n)
        for i in 0..<n { p[i] = max(-c, min(c, p[i])) }
    }

    /// Runs the layer over the whole sequence, writing the present outputs and `states`.
    func forward<T: RecurrentFloat>(_ inputs: [Tensor?], _ outputs: [Tensor], _ s: RecurrentStates<T>) throws {
        let x = try input(inputs, RecurrentGeometry.x).pointer(as: T.self)
        let w = try input(inputs, RecurrentGeometry.w).pointer(as: T.self)
        let r = try input(inputs, RecurrentGeometry.r).pointer(as: T.self)
        let bias = try optionalInput(inputs, RecurrentGeometry.b, g.hasBias)?.pointer(as: T.self)
        let initialH = try optionalInput(inputs, RecurrentGeometry.initialH, g.hasInitialH)?.pointer(as: T.self)
        let initialC = try optionalInput(inputs, RecurrentGeometry.initialC, g.hasInitialC)?.pointer(as: T.self)
        let lengths = try lengths(inputs)
        let h = g.hidden
        let y = outputs.count > 0 ? outputs[0].pointer(as: T.self) : nil

        // Every step's input projection in one product, then the biases (W's and R's, except GRU's R bias of
        // the h gate with linear_before_reset, which enters inside the reset).
        T.gemm(
            transA: false, transB: true, m: rows, n: width, k: g.inputSize, a: x, lda: g.inputSize, b: w,
            ldb: g.inputSize, accumulate: false, c: s.gates, ldc: width)
        if let bias {
            var combined = [T](repeating: 0, count: width)
            for d in 0..<g.directions {
                for j in 0..<gateWidth {
                    let wb = bias[d * 2 * gateWidth + j]
                    let rb = bias[d * 2 * gateWidth + gateWidth + j]
                    combined[d * gateWidth + j] = g.linearBeforeReset && j >= 2 * h ? wb : wb + rb
                }
            }
            combined.withUnsafeBufferPointer { cb in
                guard let c = cb.baseAddress else { return }
                Parallel.forEach(rows, grain: max(1, 8192 / max(width, 1))) { range in
                    for row in range {
                        let p = s.gates + row * width
                        for j in 0..<width { p[j] += c[j] }
                    }
                }
            }
        }

        for d in 0..<g.directions {
            // Initial states.
            let start = g.isReverse(d) ? g.seq : 0
            for b in 0..<g.batch {
                let hs0 = s.hs + historyOffset(d, start, b)
                if let initialH { hs0.update(from: initialH + stateOffset(d, b), count: h) } else {
                    hs0.update(repeating: 0, count: h)
                }
                if let cs = s.cs {
                    let cs0 = cs + historyOffset(d, start, b)
                    if let initialC { cs0.update(from: initialC + stateOffset(d, b), count: h) } else {
                        cs0.update(repeating: 0, count: h)
                    }
                }
            }
            let rd = r + d * gateWidth * h
            // H·Rᵀ (GRU: z and r, then h apart), packed once for all steps.
            let gru = g.cell == .gru
            let recurrent = T.operand(transB: true, k: h, n: gru ? 2 * h : gateWidth, b: rd, ldb: h)
            let resetOperand = gru ? T.operand(transB: true, k: h, n: h, b: rd + 2 * h * h, ldb: h) : nil
            let recurrentBias = bias.map { $0 + d * 2 * gateWidth + gateWidth }
            let peepholes = try optionalInput(inputs, RecurrentGeometry.p, g.hasPeepholes).map {
                $0.pointer(as: T.self) + d * 3 * h
            }
            for step in 0..<g.seq {
                let t = time(d, step: step)
                let prev = s.hs + historyOffset(d, previousIndex(d, t), 0)
                let stepGates = s.gates + gateOffset(t, d, 0)
                switch g.cell {
                case .rnn, .lstm:
                    T.gemm(m: g.batch, a: prev, lda: h, b: recurrent, accumulate: true, c: stepGates, ldc: stepRowStride)
                    if g.cell == .rnn {
                        rnnStep(s, d: d, t: t, lengths: lengths, y: y)
                    } else {
                        lstmStep(s, d: d, t: t, lengths: lengths, peepholes: peepholes, y: y)
                    }
                case .gru:
                    if let resetOperand {
                        gruStep(
                            s, d: d, t: t, gates: recurrent, reset: resetOperand, recurrentBias: recurrentBias,
                            lengths: lengths, y: y)
                    }
                }
            }
            // Final states; an empty sequence gives zeros (as ONNX Runtime).
            let last = g.isReverse(d) ? 0 : g.seq
            let finals: [(Int, UnsafeMutablePointer<T>?)] = [(1, s.hs), (2, s.cs)]
            for (k, states) in finals {
                guard k < outputs.count, let states else { continue }
                let out = outputs[k].pointer(as: T.self)
                for b in 0..<g.batch {
                    let dst = out + stateOffset(d, b)
                    if lengths[b] == 0 { dst.update(repeating: 0, count: h) } else {
                        dst.update(from: states + historyOffset(d, last, b), count: h)
                    }
                }
            }
        }
    }

    /// Writes Y at (t, d, b): the new hidden state, or zero past the sequence's end.
    @inline(__always)
    private func writeY<T: RecurrentFloat>(_ y: UnsafeMutablePointer<T>?, _ t: Int, _ d: Int, _ b: Int, _ value: UnsafePointer<T>?) {
        guard let y else { return }
        let dst = y + yOffset(t, d, b)
        if let value { dst.update(from: value, count: g.hidden) } else { dst.update(repeating: 0, count: g.hidden) }
    }

    /// H_t = f(X_t·Wᵀ + H_{t-1}·Rᵀ + Wb + Rb).
    private func rnnStep<T: RecurrentFloat>(
        _ s: RecurrentStates<T>, d: Int, t: Int, lengths: [Int], y: UnsafeMutablePointer<T>?
    ) {
        let h = g.hidden
        let f = g.activations[d][0]
        Parallel.forEach(g.batch, grain: batchGrain) { range in
            for b in range {
                let z = s.gates + gateOffset(t, d, b)
                let out = s.hs + historyOffset(d, nextIndex(d, t), b)
                let prev = s.hs + historyOffset(d, previousIndex(d, t), b)
                clip(z, h, keep: s.pre.map { $0 + gateOffset(t, d, b) })
                f.apply(z, h)
                let active = t < lengths[b]
                out.update(from: active ? z : prev, count: h)
                writeY(y, t, d, b, active ? UnsafePointer(out) : nil)
            }
        }
    }

    /// i, o, f, c (order of W) with optional peepholes; C_t = f ⊙ C_{t-1} + i ⊙ c, H_t = o ⊙ h(C_t).
    private func lstmStep<T: RecurrentFloat>(
        _ s: RecurrentStates<T>, d: Int, t: Int, lengths: [Int], peepholes: UnsafeMutablePointer<T>?,
        y: UnsafeMutablePointer<T>?
    ) {
        let h = g.hidden
        let (fa, ga, ha) = (g.activations[d][0], g.activations[d][1], g.activations[d][2])
        guard let cs = s.cs else { return }
        Parallel.forEach(g.batch, grain: batchGrain) { range in
            for b in range {
                let offset = gateOffset(t, d, b)
                let zi = s.gates + offset
                let (zo, zf, zc) = (zi + h, zi + 2 * h, zi + 3 * h)
                let pre = s.pre.map { $0 + offset }
                let cPrev = cs + historyOffset(d, previousIndex(d, t), b)
                let cNext = cs + historyOffset(d, nextIndex(d, t), b)
                let hPrev = s.hs + historyOffset(d, previousIndex(d, t), b)
                let hNext = s.hs + historyOffset(d, nextIndex(d, t), b)
                if let p = peepholes {
                    for j in 0..<h { zi[j] += p[j] * cPrev[j] }
                    if !g.inputForget { for j in 0..<h { zf[j] += p[2 * h + j] * cPrev[j] } }
                }
                clip(zi, h, keep: pre)
                fa.apply(zi, h)
                if g.inputForget {
                    for j in 0..<h { zf[j] = 1 - zi[j] }
                } else {
                    clip(zf, h, keep: pre.map { $0 + 2 * h })
                    fa.apply(zf, h)
                }
                clip(zc, h, keep: pre.map { $0 + 3 * h })
                ga.apply(zc, h)
                for j in 0..<h { cNext[j] = zf[j] * cPrev[j] + zi[j] * zc[j] }
                if let p = peepholes { for j in 0..<h { zo[j] += p[h + j] * cNext[j] } }
                clip(zo, h, keep: pre.map { $0 + h })
                fa.apply(zo, h)
                // h(C_t), kept for backward in training, else formed in place in H_t. `clip` leaves C_t alone
                // (as ONNX Runtime: it bounds the gate inputs).
                let cellOut = s.cellOutput.map { $0 + stepOffset(d, t, b) } ?? hNext
                cellOut.update(from: cNext, count: h)
                ha.apply(cellOut, h)
                if t < lengths[b] {
                    for j in 0..<h { hNext[j] = zo[j] * cellOut[j] }
                    writeY(y, t, d, b, UnsafePointer(hNext))
                } else {
                    hNext.update(from: hPrev, count: h)
                    cNext.update(from: cPrev, count: h)
                    writeY(y, t, d, b, nil)
                }
            }
        }
    }

    /// z, r, h (order of W); H_t = (1 - z) ⊙ h + z ⊙ H_{t-1}, the reset applied before the recurrent product of
    /// h or (`linear_before_reset`) after it.
    private func gruStep<T: RecurrentFloat>(
        _ s: RecurrentStates<T>, d: Int, t: Int, gates: RecurrentOperand<T>, reset: RecurrentOperand<T>,
        recurrentBias: UnsafePointer<T>?, lengths: [Int], y: UnsafeMutablePointer<T>?
    ) {
        let h = g.hidden
        let (fa, ga) = (g.activations[d][0], g.activations[d][1])
        guard let auxBase = s.aux else { return }
        let aux = s.keepsAux ? auxBase + stepOffset(d, t, 0) : auxBase
        let prevAll = s.hs + historyOffset(d, previousIndex(d, t), 0)
        let stepGates = s.gates + gateOffset(t, d, 0)
        // z and r: recurrent product, clip, f.
        T.gemm(m: g.batch, a: prevAll, lda: h, b: gates, accumulate: true, c: stepGates, ldc: stepRowStride)
        if g.linearBeforeReset {
            T.gemm(m: g.batch, a: prevAll, lda: h, b: reset, accumulate: false, c: aux, ldc: h)
        }
        Parallel.forEach(g.batch, grain: batchGrain) { range in
            for b in range {
                let offset = gateOffset(t, d, b)
                let z = s.gates + offset
                clip(z, 2 * h, keep: s.pre.map { $0 + offset })
                fa.apply(z, 2 * h)
                let r = z + h
                let a = aux + b * h
                let prev = prevAll + b * h
                if g.linearBeforeReset {
                    if let rb = recurrentBias { for j in 0..<h { a[j] += rb[2 * h + j] } }
                    for j in 0..<h { z[2 * h + j] += r[j] * a[j] }
                } else {
                    for j in 0..<h { a[j] = r[j] * prev[j] }
                }
            }
        }
        if !g.linearBeforeReset {
            T.gemm(m: g.batch, a: aux, lda: h, b: reset, accumulate: true, c: stepGates + 2 * h, ldc: stepRowStride)
        }
        Parallel.forEach(g.batch, grain: batchGrain) { range in
            for b in range {
                let offset = gateOffset(t, d, b)
                let z = s.gates + offset
                let hh = z + 2 * h
                clip(hh, h, keep: s.pre.map { $0 + offset + 2 * h })
                ga.apply(hh, h)
                let prev = prevAll + b * h
                let out = s.hs + historyOffset(d, nextIndex(d, t), b)
                if t < lengths[b] {
                    for j in 0..<h { out[j] = (1 - z[j]) * hh[j] + z[j] * prev[j] }
                    writeY(y, t, d, b, UnsafePointer(out))
                } else {
                    out.update(from: prev, count: h)
                    writeY(y, t, d, b, nil)
                }
            }
        }
    }
}
