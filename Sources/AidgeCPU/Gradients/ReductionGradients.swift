import AidgeCore

/// Backward of the reductions (ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2,
/// ReduceSumSquare, ReduceLogSum, ReduceLogSumExp), with PyTorch's formulas: each input element gets its output
/// element's gradient times a local factor, ties of Max and Min share it evenly (as amax and amin), and Prod
/// handles zeros exactly (the product of the others).
///
/// The input's index space is a `BroadcastFold` with two operand slots: 0 the input (and its gradient), 1 the
/// output seen with kept dimensions (its gradient, the output, and per-output statistics).
func registerReductionGradients(_ registry: KernelRegistry) {
    for type in Reductions.reduceTypes {
        registry.registerGradient(type, backend: "cpu", reduceGradient)
    }
}

private enum ReduceKind {
    case sum, mean, max, min, prod, l1, l2, sumSquare, logSum, logSumExp
}

@Sendable private func reduceGradient(_ request: KernelRequest) throws -> any GradientKernel {
    let type = request.op.type
    let x = try request.input(0)
    let dtype = try gradientType(x.dtype, request)
    let axes = try Reductions.axes(request.attributes, request.inputs, rank: x.shape.count, type: type)
    var kept = x.shape
    for axis in axes { kept[axis] = 1 }
    let output = try onlyOutput(request)
    guard output.count == ShapeUtil.count(kept) else {
        throw AidgeError.shapeMismatch("\(type) backward: output \(output.shape) does not match input \(x.shape)")
    }
    let kind: ReduceKind
    switch type {
    case "ReduceSum": kind = .sum
    case "ReduceMean": kind = .mean
    case "ReduceMax": kind = .max
    case "ReduceMin": kind = .min
    case "ReduceProd": kind = .prod
    case "ReduceL1": kind = .l1
    case "ReduceL2": kind = .l2
    case "ReduceSumSquare": kind = .sumSquare
    case "ReduceLogSum": kind = .logSum
    case "ReduceLogSumExp": kind = .logSumExp
    default: throw AidgeError.unsupported("\(type) has no backward")
    }
    let fold = BroadcastFold(shape: x.shape, operands: [x.shape, kept])
    let reduced = axes.reduce(1) { $0 * x.shape[$1] }
    let body =
        dtype == .float32
        ? reduceBackward(kind, fold, reduced: reduced, outputs: output.count, Float.self)
        : reduceBackward(kind, fold, reduced: reduced, outputs: output.count, Double.self)
    let readsInput: Bool
    let readsOutput: Bool
    switch kind {
    case .sum, .mean: (readsInput, readsOutput) = (false, false)
    case .l1, .sumSquare: (readsInput, readsOutput) = (true, false)
    case .logSum: (readsInput, readsOutput) = (false, true)
    case .max, .min, .prod, .l2, .logSumExp: (readsInput, readsOutput) = (true, true)
    }
    return ElementwiseBackward(reads: readsInput ? [0] : [], output: readsOutput, body)
}

private func reduceBackward<T: GradientFloat>(
    _ kind: ReduceKind, _ fold: BroadcastFold, reduced: Int, outputs: Int, _: T.Type
) -> (BackwardPass) throws -> Void {
    return { pass in
        guard let dx = pass.inputGradient(0), let dy = pass.outputGradient(0) else { return }
        let t: UnsafeMutablePointer<T> = try gradientElements(dx, fold.count, "input gradient")
        let g: UnsafeMutablePointer<T> = try gradientElements(dy, outputs, "output gradient")
        func input() throws -> UnsafeMutablePointer<T> { try gradientElements(pass.input(0), fold.count, "input") }
        func output() throws -> UnsafeMutablePointer<T> { try gradientElements(pass.outputs[0], outputs, "output") }
        switch kind {
        case .sum: spread(fold, t, g, g, g, g, SumTerm())
        case .mean: spread(fold, t, g, g, g, g, MeanTerm(count: reduced))
        case .sumSquare: spread(fold, t, g, try input(), g, g, SumSquareTerm())
        case .l1: spread(fold, t, g, try input(), g, g, L1Term())
        case .l2: spread(fold, t, g, try input(), try output(), g, L2Term())
        case .logSum: spread(fold, t, g, g, try output(), g, LogSumTerm())
        case .logSumExp: spreadLogSumExp(fold, t, g, try input(), try output())
        case .max, .min:
            // How many elements of each slice hold the extreme.
            let (x, y) = (try input(), try output())
            var ties = [T](repeating: 0, count: outputs)
            ties.withUnsafeMutableBufferPointer { buffer in
                guard let c = buffer.baseAddress else { return }
                gather(fold, c, outputs, x, y, product: false, TieCount())
                spread(fold, t, g, x, y, c, ExtremeTerm())
            }
        case .prod:
            // y / x, as PyTorch; a zero gets the product of the others (0 unless it is its slice's only zero),
            // and the other elements of a slice with a zero get y / x = 0.
            let (x, y) = (try input(), try output())
            var zeros = [T](repeating: 0, count: outputs)
            var others = [T](repeating: 1, count: outputs)
            zeros.withUnsafeMutableBufferPointer { zeroBuffer in
                others.withUnsafeMutableBufferPointer { otherBuffer in
                    guard let z = zeroBuffer.baseAddress, let p = otherBuffer.baseAddress else { return }
                    gather(fold, z, outputs, x, y, product: false, ZeroCount())
                    gather(fold, p, outputs, x, y, product: true, NonzeroFactor())
                    for o in 0..<outputs where z[o] != 1 { p[o] = 0 }
                    spread(fold, t, g, x, y, p, ProdTerm())
                }
            }
        }
    }
}

/// `t[i] += term(g[o], x[i], y[o], s[o])` for every input element `i` and its output element `o` (`x`, `y` or `s`
/// may stand in for what the term does not read).
private func spread<T: GradientFloat, Term: ReduceTerm>(
    _ fold: BroadcastFold, _ t: UnsafeMutablePointer<T>, _ g: UnsafePointer<T>, _ x: UnsafePointer<T>,
    _ y: UnsafePointer<T>, _ s: UnsafePointer<T>, _ term: Term
) {
    let so = fold.innerStride(1)
    fold.fold(onto: 0, t, count: fold.count) { base, o, n in
        let (tp, xp, k) = (base + o[0], x + o[0], o[1])
        if so == 0 {
            let (gv, yv, sv) = (g[k], y[k], s[k])
            for i in 0..<n { tp[i] += term(gv, xp[i], yv, sv) }
        } else {
            for i in 0..<n { tp[i] += term(g[k + i], xp[i], y[k + i], s[k + i]) }
        }
    }
}

/// ReduceLogSumExp: g e^(x - y), 8 lanes at a time in float32.
private func spreadLogSumExp<T: GradientFloat>(
    _ fold: BroadcastFold, _ t: UnsafeMutablePointer<T>, _ g: UnsafePointer<T>, _ x: UnsafePointer<T>,
    _ y: UnsafePointer<T>
) {
    guard T.self == Float.self else {
        spread(fold, t, g, x, y, g, LogSumExpTerm())
        return
    }
    let tf = UnsafeMutableRawPointer(t).assumingMemoryBound(to: Float.self)
    let (gf, xf, yf) = (
        UnsafeRawPointer(g).assumingMemoryBound(to: Float.self), UnsafeRawPointer(x).assumingMemoryBound(to: Float.self),
        UnsafeRawPointer(y).assumingMemoryBound(to: Float.self)
    )
    let so = fold.innerStride(1)
    fold.fold(onto: 0, tf, count: fold.count) { base, o, n in
        let (tp, xp, k) = (base + o[0], xf + o[0], o[1])
        func lanes(_ i: Int, _ count: Int) -> (SIMD8<Float>, SIMD8<Float>) {
            so == 0
                ? (SIMD8(repeating: gf[k]), SIMD8(repeating: yf[k]))
                : (loadPartial8(gf + k + i, count), loadPartial8(yf + k + i, count))
        }
        var i = 0
        while i + 8 <= n {
            let (gv, yv) = so == 0 ? (SIMD8(repeating: gf[k]), SIMD8(repeating: yf[k])) : (load8(gf + k + i), load8(yf + k + i))
            store8(load8(tp + i) + gv * VectorMath.exp(load8(xp + i) - yv), tp + i)
            i += 8
        }
        if i < n {
            let rest = n - i
            let (gv, yv) = lanes(i, rest)
            storePartial8(loadPartial8(tp + i, rest) + gv * VectorMath.exp(loadPartial8(xp + i, rest) - yv), tp + i, rest)
        }
    }
}

/// Folds `value(x[i], y[o])` over each output element's slice into `s[o]`: summed, or multiplied with `product`
/// (`s` holds the identity when called).
private func gather<T: GradientFloat, Value: SliceValue>(
    _ fold: BroadcastFold, _ s: UnsafeMutablePointer<T>, _ count: Int, _ x: UnsafePointer<T>, _ y: UnsafePointer<T>,
    product: Bool, _ value: Value
) {
    let so = fold.innerStride(1)
    fold.fold(onto: 1, s, count: count, product: product) { base, o, n in
        let (sp, xp, k) = (base + o[1], x + o[0], o[1])
        if so == 0 {
            let yv = y[k]
            if product {
                var v: T = 1
                for i in 0..<n { v *= value(xp[i], yv) }
                sp[0] *= v
            } else {
                sp[0] += sumTerms(n) { value(xp[$0], yv) }
            }
        } else if product {
            for i in 0..<n { sp[i] *= value(xp[i], y[k + i]) }
        } else {
            for i in 0..<n { sp[i] += value(xp[i], y[k + i]) }
        }
    }
}

// MARK: - Terms

/// A reduction's gradient term `g · ∂y/∂x` from the output gradient `g`, the input `x`, the output `y` and a
/// per-output statistic `s` (a type, not a closure, so that the loops over elements are specialised for it).
private protocol ReduceTerm {
    func callAsFunction<T: GradientFloat>(_ g: T, _ x: T, _ y: T, _ s: T) -> T
}

private struct SumTerm: ReduceTerm {
    @inline(__always) func callAsFunction<T: GradientFloat>(_ g: T, _ x: T, _ y: T, _ s: T) -> T { g }
}

private struct MeanTerm: ReduceTerm {
    let count: Int
    @inline(__always) func callAsFunction<T: GradientFloat>(_ g: T, _ x: T, _ y: T, _ s: T) -> T { g / T(count) }
}

private struct SumSquareTerm: ReduceTerm {
    @inline(__always) func callAsFunction<T: GradientFloat>(_ g: T, _ x: T, _ y: T, _ s: T) -> T { g * (2 * x) }
}

/// sgn(x): 0 at 0.
private struct L1Term: ReduceTerm {
    @inline(__always) func callAsFunction<T: GradientFloat>(_ g: T, _ x: T, _ y: T, _ s: T) -> T {
        x > 0 ? g : x < 0 ? -g : 0
    }
}

/// x / ‖x‖, 0 for a zero norm (torch.linalg.vector_norm).
private struct L2Term: ReduceTerm {
    @inline(__always) func callAsFunction<T: GradientFloat>(_ g: T, _ x: T, _ y: T, _ s: T) -> T {
        y == 0 ? 0 : x * (g / y)
    }
}

/// 1 / Σx, with Σx = e^y.
private struct LogSumTerm: ReduceTerm {
    @inline(__always) func callAsFunction<T: GradientFloat>(_ g: T, _ x: T, _ y: T, _ s: T) -> T { g / T.mathExp(y) }
}

private struct LogSumExpTerm: ReduceTerm {
    @inline(__always) func callAsFunction<T: GradientFloat>(_ g: T, _ x: T, _ y: T, _ s: T) -> T {
        g * T.mathExp(x - y)
    }
}

/// Max and Min: the elements equal to the extreme share it (`s` of them).
private struct ExtremeTerm: ReduceTerm {
    @inline(__always) func callAsFunction<T: GradientFloat>(_ g: T, _ x: T, _ y: T, _ s: T) -> T {
        x == y ? g / s : 0
    }
}

/// Prod: y / x, and for a zero the product of the others (`s`: nonzero only in a slice with one zero).
private struct ProdTerm: ReduceTerm {
    @inline(__always) func callAsFunction<T: GradientFloat>(_ g: T, _ x: T, _ y: T, _ s: T) -> T {
        x == 0 ? g * s : g * (y / x)
    }
}

/// A per-element value folded into a per-output statistic.
private protocol SliceValue {
    func callAsFunction<T: GradientFloat>(_ x: T, _ y: T) -> T
}

private struct TieCount: SliceValue {
    @inline(__always) func callAsFunction<T: GradientFloat>(_ x: T, _ y: T) -> T { x == y ? 1 : 0 }
}

private struct ZeroCount: SliceValue {
    @inline(__always) func callAsFunction<T: GradientFloat>(_ x: T, _ y: T) -> T { x == 0 ? 1 : 0 }
}

private struct NonzeroFactor: SliceValue {
    @inline(__always) func callAsFunction<T: GradientFloat>(_ x: T, _ y: T) -> T { x == 0 ? 1 : x }
}
