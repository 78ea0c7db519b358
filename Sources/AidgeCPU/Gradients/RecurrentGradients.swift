import AidgeCore

/// Backward through time of the recurrent layers (RNN, GRU, LSTM).
///
/// The training forward is the inference forward writing into saved tensors: every step's activated gates, the
/// hidden (and cell) states, GRU's reset product and LSTM's h(C_t). Backward walks the steps in reverse order
/// from those, without recomputing: per step, element-wise gate derivatives and one GEMM carrying the hidden
/// state's gradient through R (two for GRU's default reset); then one GEMM each for dX and dW over all steps and
/// directions, and one per direction for dR.
func registerRecurrentGradients(_ registry: KernelRegistry) {
    for cell in RecurrentCell.allCases {
        registry.registerGradient(cell.rawValue, backend: "cpu") { request in
            RecurrentGradientKernel(try RecurrentLayer(request, cell))
        }
    }
}

final class RecurrentGradientKernel: GradientKernel {
    let layer: RecurrentLayer

    init(_ layer: RecurrentLayer) { self.layer = layer }

    var savedInfos: [ValueInfo] { layer.savedInfos }
    var hasTrainingForward: Bool { true }

    /// X (for dW), W (for dX), R (through time), sequence_lens and P; biases and initial states are in the saved
    /// states.
    func readsInput(_ index: Int) -> Bool {
        [RecurrentGeometry.x, RecurrentGeometry.w, RecurrentGeometry.r, RecurrentGeometry.sequenceLengths,
         RecurrentGeometry.p].contains(index)
    }

    func readsOutput(_ index: Int) -> Bool { false }

    func forward(_ inputs: [Tensor?], _ outputs: [Tensor], saved: [Tensor], training: Bool) throws {
        switch layer.g.dtype {
        case .float32: try layer.forward(inputs, outputs, layer.savedStates(saved, Float.self))
        default: try layer.forward(inputs, outputs, layer.savedStates(saved, Double.self))
        }
    }

    func backward(_ pass: BackwardPass) throws {
        switch layer.g.dtype {
        case .float32: try layer.backward(pass, Float.self)
        default: try layer.backward(pass, Double.self)
        }
    }
}

/// Per-run gradient buffers of one backward.
private struct RecurrentGradientBuffers<T> {
    /// [rows, width] in X's row order: gradient of each gate's input (the X·Wᵀ + biases side).
    let dPre: UnsafeMutablePointer<T>
    /// [directions, seq, batch, gates x hidden] by time: gradient of each step's recurrent product (equal to
    /// `dPre` except GRU's h gate with `linear_before_reset`, where the reset multiplies the product).
    let dRec: UnsafeMutablePointer<T>
    /// Gradient of the hidden state entering the current step, and of the one before it ([batch, hidden]).
    var carry: UnsafeMutablePointer<T>
    var next: UnsafeMutablePointer<T>
    /// LSTM: gradient of the cell state entering the step, and of C_t within it.
    let dC: UnsafeMutablePointer<T>
    let dCt: UnsafeMutablePointer<T>
    /// GRU default reset: gradient of r ⊙ H_{t-1}.
    let dReset: UnsafeMutablePointer<T>
}

extension RecurrentLayer {
    /// Zeroes the gradient where `clip` clamped the gate input.
    @inline(__always)
    fileprivate func clipMask<T: RecurrentFloat>(_ grad: UnsafeMutablePointer<T>, _ pre: UnsafePointer<T>?, _ n: Int) {
        guard let bound = g.clip, let pre else { return }
        let c = T(bound)
        for j in 0..<n where !(abs(pre[j]) <= c) { grad[j] = 0 }
    }

    /// Offset of (d, t, b) in `dRec`.
    @inline(__always) fileprivate func recOffset(_ d: Int, _ t: Int, _ b: Int) -> Int {
        ((d * g.seq + t) * g.batch + b) * gateWidth
    }

    func backward<T: RecurrentFloat>(_ pass: BackwardPass, _: T.Type) throws {
        typealias G = RecurrentGeometry
        let lstm = g.cell == .lstm
        let dX = pass.inputGradient(G.x)?.pointer(as: T.self)
        let dW = pass.inputGradient(G.w)?.pointer(as: T.self)
        let dR = pass.inputGradient(G.r)?.pointer(as: T.self)
        let dB = g.hasBias ? pass.inputGradient(G.b)?.pointer(as: T.self) : nil
        let dH0 = g.hasInitialH ? pass.inputGradient(G.initialH)?.pointer(as: T.self) : nil
        let dC0 = lstm && g.hasInitialC ? pass.inputGradient(G.initialC)?.pointer(as: T.self) : nil
        let dP = lstm && g.hasPeepholes ? pass.inputGradient(G.p)?.pointer(as: T.self) : nil
        guard dX != nil || dW != nil || dR != nil || dB != nil || dH0 != nil || dC0 != nil || dP != nil else { return }
        let dY = pass.outputGradient(0)?.pointer(as: T.self)
        let dYh = pass.outputGradient(1)?.pointer(as: T.self)
        let dYc = lstm ? pass.outputGradient(2)?.pointer(as: T.self) : nil
        guard dY != nil || dYh != nil || dYc != nil else { return }

        let s = try savedStates(pass.saved, T.self)
        let lengths = try lengths(pass.inputs)
        let x = try input(pass.inputs, G.x).pointer(as: T.self)
        let w = try input(pass.inputs, G.w).pointer(as: T.self)
        let r = try input(pass.inputs, G.r).pointer(as: T.self)
        let peepholes = try optionalInput(pass.inputs, G.p, g.hasPeepholes)?.pointer(as: T.self)
        let h = g.hidden
        let state = g.batch * h

        func zeroed(_ n: Int) -> UnsafeMutablePointer<T> {
            let p = UnsafeMutablePointer<T>.allocate(capacity: max(n, 1))
            p.initialize(repeating: 0, count: max(n, 1))
            return p
        }
        var buffers = RecurrentGradientBuffers(
            dPre: zeroed(rows * width), dRec: zeroed(g.directions * rows * gateWidth), carry: zeroed(state),
            next: zeroed(state), dC: zeroed(lstm ? state : 0), dCt: zeroed(lstm ? state : 0),
            dReset: zeroed(g.cell == .gru && !g.linearBeforeReset ? state : 0))
        defer {
            for p in [buffers.dPre, buffers.dRec, buffers.carry, buffers.next, buffers.dC, buffers.dCt, buffers.dReset] {
                p.deallocate()
            }
        }

        for d in 0..<g.directions {
            // The final states' gradients (none for an empty sequence, whose final states are constant zeros).
            for b in 0..<g.batch {
                let carry = buffers.carry + b * h
                let dC = buffers.dC + b * h
                if let dYh, lengths[b] > 0 { carry.update(from: dYh + stateOffset(d, b), count: h) } else {
                    carry.update(repeating: 0, count: h)
                }
                if lstm {
                    if let dYc, lengths[b] > 0 { dC.update(from: dYc + stateOffset(d, b), count: h) } else {
                        dC.update(repeating: 0, count: h)
                    }
                }
            }
            let rd = r + d * gateWidth * h
            let pd = peepholes.map { $0 + d * 3 * h }
            // R (z and r only for GRU's default reset, whose h part goes through r first), and R_h: packed once.
            let k = g.cell == .gru && !g.linearBeforeReset ? 2 * h : gateWidth
            let recurrent = T.operand(transB: false, k: k, n: h, b: rd, ldb: h)
            let reset = g.cell == .gru && !g.linearBeforeReset
                ? T.operand(transB: false, k: h, n: h, b: rd + 2 * h * h, ldb: h) : nil
            for step in (0..<g.seq).reversed() {
                let t = time(d, step: step)
                switch g.cell {
                case .rnn: rnnBackStep(s, buffers, d: d, t: t, lengths: lengths, dY: dY)
                case .lstm: lstmBackStep(s, buffers, d: d, t: t, lengths: lengths, dY: dY, peepholes: pd)
                case .gru: gruBackStep(s, buffers, d: d, t: t, reset: reset, lengths: lengths, dY: dY)
                }
                // Through the recurrent product: dH_{t-1} += dRec_t · R.
                T.gemm(
                    m: g.batch, a: buffers.dRec + recOffset(d, t, 0), lda: gateWidth, b: recurrent, accumulate: true,
                    c: buffers.next, ldc: h)
                swap(&buffers.carry, &buffers.next)
            }
            for b in 0..<g.batch {
                if let dH0 {
                    let dst = dH0 + stateOffset(d, b)
                    let src = buffers.carry + b * h
                    for j in 0..<h { dst[j] += src[j] }
                }
                if let dC0 {
                    let dst = dC0 + stateOffset(d, b)
                    let src = buffers.dC + b * h
                    for j in 0..<h { dst[j] += src[j] }
                }
            }
        }

        // Input side, all steps and directions at once: dX += dPre · W, dW += dPreᵀ · X.
        if let dX {
            T.gemm(
                transA: false, transB: false, m: rows, n: g.inputSize, k: width, a: buffers.dPre, lda: width, b: w,
                ldb: g.inputSize, accumulate: true, c: dX, ldc: g.inputSize)
        }
        if let dW {
            T.gemm(
                transA: true, transB: false, m: width, n: g.inputSize, k: rows, a: buffers.dPre, lda: width, b: x,
                ldb: g.inputSize, accumulate: true, c: dW, ldc: g.inputSize)
        }
        // dR_d += dRecᵀ · H_{t-1} over all steps (by time, the states before each step are contiguous).
        if let dR {
            for d in 0..<g.directions {
                let rec = buffers.dRec + recOffset(d, 0, 0)
                let previous = s.hs + historyOffset(d, g.isReverse(d) ? 1 : 0, 0)
                let drd = dR + d * gateWidth * h
                if g.cell == .gru && !g.linearBeforeReset, let aux = s.aux {
                    T.gemm(
                        transA: true, transB: false, m: 2 * h, n: h, k: rows, a: rec, lda: gateWidth, b: previous,
                        ldb: h, accumulate: true, c: drd, ldc: h)
                    T.gemm(
                        transA: true, transB: false, m: h, n: h, k: rows, a: rec + 2 * h, lda: gateWidth,
                        b: aux + stepOffset(d, 0, 0), ldb: h, accumulate: true, c: drd + 2 * h * h, ldc: h)
                } else {
                    T.gemm(
                        transA: true, transB: false, m: gateWidth, n: h, k: rows, a: rec, lda: gateWidth, b: previous,
                        ldb: h, accumulate: true, c: drd, ldc: h)
                }
            }
        }
        // Biases: Wb gets the column sums of dPre, Rb those of dRec.
        if let dB {
            for d in 0..<g.directions {
                let wb = dB + d * 2 * gateWidth
                let rb = wb + gateWidth
                for row in 0..<rows {
                    let p = buffers.dPre + row * width + d * gateWidth
                    for j in 0..<gateWidth { wb[j] += p[j] }
                    let q = buffers.dRec + (d * rows + row) * gateWidth
                    for j in 0..<gateWidth { rb[j] += q[j] }
                }
            }
        }
        // Peepholes (order i, o, f): dP_i += dI ⊙ C_{t-1}, dP_o += dO ⊙ C_t, dP_f += dF ⊙ C_{t-1}.
        if let dP, let cs = s.cs {
            for d in 0..<g.directions {
                let p = dP + d * 3 * h
                for t in 0..<g.seq {
                    for b in 0..<g.batch where t < lengths[b] {
                        let gi = buffers.dPre + gateOffset(t, d, b)
                        let cPrev = cs + historyOffset(d, previousIndex(d, t), b)
                        let cNext = cs + historyOffset(d, nextIndex(d, t), b)
                        for j in 0..<h {
                            p[j] += gi[j] * cPrev[j]
                            p[h + j] += gi[h + j] * cNext[j]
                            p[2 * h + j] += gi[2 * h + j] * cPrev[j]
                        }
                    }
                }
            }
        }
    }

    /// dH_t: the gradient carried from later steps plus Y's at (t, d, b), into `out`.
    @inline(__always)
    private func hiddenGradient<T: RecurrentFloat>(
        _ carry: UnsafePointer<T>, _ dY: UnsafeMutablePointer<T>?, _ t: Int, _ d: Int, _ b: Int,
        into out: UnsafeMutablePointer<T>
    ) {
        if let dY {
            let y = dY + yOffset(t, d, b)
            for j in 0..<g.hidden { out[j] = carry[j] + y[j] }
        } else {
            out.update(from: carry, count: g.hidden)
        }
    }

    /// Runs `step` (in parallel) on each batch row still inside its sequence at step `t`, with the row's carried
    /// gradient (dH from later steps), its `next` row (to end as dH_{t-1}) and its offset in the gates. A row past
    /// its sequence's end passes the carried gradient on unchanged (LSTM's dC too, which `step` would update):
    /// the one rule for padded rows of every cell.
    @inline(__always)
    private func forEachActiveRow<T: RecurrentFloat>(
        _ buf: RecurrentGradientBuffers<T>, d: Int, t: Int, lengths: [Int],
        _ step: (_ b: Int, _ carry: UnsafeMutablePointer<T>, _ next: UnsafeMutablePointer<T>, _ offset: Int) -> Void
    ) {
        let h = g.hidden
        Parallel.forEach(g.batch, grain: batchGrain) { range in
            for b in range {
                let carry = buf.carry + b * h
                let next = buf.next + b * h
                guard t < lengths[b] else {
                    next.update(from: carry, count: h)
                    continue
                }
                step(b, carry, next, gateOffset(t, d, b))
            }
        }
    }

    /// H_t = f(pre): dPre = dH_t ⊙ f'.
    private func rnnBackStep<T: RecurrentFloat>(
        _ s: RecurrentStates<T>, _ buf: RecurrentGradientBuffers<T>, d: Int, t: Int, lengths: [Int],
        dY: UnsafeMutablePointer<T>?
    ) {
        let h = g.hidden
        let f = g.activations[d][0]
        forEachActiveRow(buf, d: d, t: t, lengths: lengths) { b, carry, next, offset in
            let pd = buf.dPre + offset
            hiddenGradient(carry, dY, t, d, b, into: pd)
            f.scaleByDerivative(pd, output: s.gates + offset, h)
            clipMask(pd, s.pre.map { UnsafePointer($0 + offset) }, h)
            (buf.dRec + recOffset(d, t, b)).update(from: pd, count: h)
            next.update(repeating: 0, count: h)
        }
    }

    /// The LSTM cell's derivatives, from its saved gates, cell states and h(C_t).
    private func lstmBackStep<T: RecurrentFloat>(
        _ s: RecurrentStates<T>, _ buf: RecurrentGradientBuffers<T>, d: Int, t: Int, lengths: [Int],
        dY: UnsafeMutablePointer<T>?, peepholes: UnsafeMutablePointer<T>?
    ) {
        let h = g.hidden
        let (fa, ga, ha) = (g.activations[d][0], g.activations[d][1], g.activations[d][2])
        guard let cs = s.cs, let cellOutput = s.cellOutput else { return }
        forEachActiveRow(buf, d: d, t: t, lengths: lengths) { b, carry, next, offset in
            let gi = s.gates + offset
            let (go, gf, gc) = (gi + h, gi + 2 * h, gi + 3 * h)
            let pre = s.pre.map { UnsafePointer($0 + offset) }
            let pi = buf.dPre + offset
            let (po, pf, pc) = (pi + h, pi + 2 * h, pi + 3 * h)
            let cPrev = cs + historyOffset(d, previousIndex(d, t), b)
            let cNext = cs + historyOffset(d, nextIndex(d, t), b)
            let hc = cellOutput + stepOffset(d, t, b)
            let dC = buf.dC + b * h
            let dCt = buf.dCt + b * h
            let dH = next  // dH_t, held in the row that ends as dH_{t-1}'s direct part (zero)
            hiddenGradient(carry, dY, t, d, b, into: dH)
            // H_t = o ⊙ h(C_t).
            for j in 0..<h { po[j] = dH[j] * hc[j] }
            fa.scaleByDerivative(po, output: go, h)
            clipMask(po, pre.map { $0 + h }, h)
            for j in 0..<h { dCt[j] = dH[j] * go[j] }
            ha.scaleByDerivative(dCt, output: hc, h)
            for j in 0..<h { dCt[j] += dC[j] }
            if let p = peepholes { for j in 0..<h { dCt[j] += p[h + j] * po[j] } }
            // C_t = f ⊙ C_{t-1} + i ⊙ c.
            for j in 0..<h {
                pi[j] = dCt[j] * gc[j]
                pf[j] = dCt[j] * cPrev[j]
                pc[j] = dCt[j] * gi[j]
            }
            if g.inputForget {
                for j in 0..<h {
                    pi[j] -= pf[j]
                    pf[j] = 0
                }
            }
            fa.scaleByDerivative(pi, output: gi, h)
            clipMask(pi, pre, h)
            if !g.inputForget {
                fa.scaleByDerivative(pf, output: gf, h)
                clipMask(pf, pre.map { $0 + 2 * h }, h)
            }
            ga.scaleByDerivative(pc, output: gc, h)
            clipMask(pc, pre.map { $0 + 3 * h }, h)
            for j in 0..<h { dC[j] = dCt[j] * gf[j] }
            if let p = peepholes { for j in 0..<h { dC[j] += p[j] * pi[j] + p[2 * h + j] * pf[j] } }
            (buf.dRec + recOffset(d, t, b)).update(from: pi, count: gateWidth)
            next.update(repeating: 0, count: h)
        }
    }

    /// The GRU cell's derivatives; with the default reset, d(r ⊙ H_{t-1}) needs a product with R_h first.
    private func gruBackStep<T: RecurrentFloat>(
        _ s: RecurrentStates<T>, _ buf: RecurrentGradientBuffers<T>, d: Int, t: Int, reset: RecurrentOperand<T>?,
        lengths: [Int], dY: UnsafeMutablePointer<T>?
    ) {
        let h = g.hidden
        let (fa, ga) = (g.activations[d][0], g.activations[d][1])
        guard let aux = s.aux else { return }
        forEachActiveRow(buf, d: d, t: t, lengths: lengths) { b, carry, next, offset in
            let gz = s.gates + offset
            let (gr, gh) = (gz + h, gz + 2 * h)
            let pre = s.pre.map { UnsafePointer($0 + offset) }
            let pz = buf.dPre + offset
            let (pr, ph) = (pz + h, pz + 2 * h)
            let rec = buf.dRec + recOffset(d, t, b)
            let prev = s.hs + historyOffset(d, previousIndex(d, t), b)
            // H_t = (1 - z) ⊙ h + z ⊙ H_{t-1}; `next` first holds dH_t.
            hiddenGradient(carry, dY, t, d, b, into: next)
            for j in 0..<h {
                let dh = next[j]
                pz[j] = dh * (prev[j] - gh[j])
                ph[j] = dh * (1 - gz[j])
                next[j] = dh * gz[j]
            }
            ga.scaleByDerivative(ph, output: gh, h)
            clipMask(ph, pre.map { $0 + 2 * h }, h)
            fa.scaleByDerivative(pz, output: gz, h)
            clipMask(pz, pre, h)
            rec.update(from: pz, count: h)
            if g.linearBeforeReset {
                // h's input has r ⊙ (H_{t-1}·R_hᵀ + Rb_h).
                let a = aux + stepOffset(d, t, b)
                for j in 0..<h {
                    pr[j] = ph[j] * a[j]
                    rec[2 * h + j] = ph[j] * gr[j]
                }
                fa.scaleByDerivative(pr, output: gr, h)
                clipMask(pr, pre.map { $0 + h }, h)
                (rec + h).update(from: pr, count: h)
            } else {
                (rec + 2 * h).update(from: ph, count: h)
            }
        }
        guard let reset else { return }
        // d(r ⊙ H_{t-1}) = dh · R_h, then r's and H_{t-1}'s shares.
        T.gemm(
            m: g.batch, a: buf.dRec + recOffset(d, t, 0) + 2 * h, lda: gateWidth, b: reset, accumulate: false,
            c: buf.dReset, ldc: h)
        Parallel.forEach(g.batch, grain: batchGrain) { range in
            for b in range where t < lengths[b] {
                let offset = gateOffset(t, d, b)
                let gr = s.gates + offset + h
                let pr = buf.dPre + offset + h
                let dReset = buf.dReset + b * h
                let prev = s.hs + historyOffset(d, previousIndex(d, t), b)
                let next = buf.next + b * h
                for j in 0..<h {
                    pr[j] = dReset[j] * prev[j]
                    next[j] += dReset[j] * gr[j]
                }
                fa.scaleByDerivative(pr, output: gr, h)
                clipMask(pr, s.pre.map { UnsafePointer($0 + offset + h) }, h)
                (buf.dRec + recOffset(d, t, b) + h).update(from: pr, count: h)
            }
        }
    }
}
