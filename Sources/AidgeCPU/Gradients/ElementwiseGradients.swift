import AidgeCore

/// Backward of the element-wise operators: arithmetic with NumPy broadcasting (each input's gradient summed back
/// to its shape), the variadic Sum, Mean, Max and Min, Where, and the unary math functions. Formulas and tie rules
/// follow PyTorch's autograd (derivatives.yaml), so that training matches it.
func registerElementwiseGradients(_ registry: KernelRegistry) {
    registry.registerGradient("Add", backend: "cpu") { try binaryGradient(AddPartials(), $0) }
    registry.registerGradient("Sub", backend: "cpu") { try binaryGradient(SubPartials(), $0) }
    registry.registerGradient("Mul", backend: "cpu") { try binaryGradient(MulPartials(), $0) }
    registry.registerGradient("Div", backend: "cpu") { try binaryGradient(DivPartials(), $0) }
    registry.registerGradient("Pow", backend: "cpu") { try binaryGradient(PowPartials(), $0) }
    for (type, kind) in [("Sum", VariadicKind.sum), ("Mean", .mean), ("Max", .max), ("Min", .min)] {
        registry.registerGradient(type, backend: "cpu") { try variadicGradient(kind, $0) }
    }
    registry.registerGradient("Where", backend: "cpu", whereGradient)
    registry.registerGradient("Neg", backend: "cpu") { UnaryGradientKernel(NegDerivative(), try floatInput($0)) }
    registry.registerGradient("Abs", backend: "cpu") { UnaryGradientKernel(AbsDerivative(), try floatInput($0)) }
    registry.registerGradient("Sqrt", backend: "cpu") { UnaryGradientKernel(SqrtDerivative(), try floatInput($0)) }
    registry.registerGradient("Reciprocal", backend: "cpu") {
        UnaryGradientKernel(ReciprocalDerivative(), try floatInput($0))
    }
    registry.registerGradient("Exp", backend: "cpu") { UnaryGradientKernel(ExpDerivative(), try floatInput($0)) }
    registry.registerGradient("Log", backend: "cpu") { UnaryGradientKernel(LogDerivative(), try floatInput($0)) }
    registry.registerGradient("Erf", backend: "cpu") { UnaryGradientKernel(ErfDerivative(), try floatInput($0)) }
    registry.registerGradient("Sin", backend: "cpu") { UnaryGradientKernel(SinDerivative(), try floatInput($0)) }
    registry.registerGradient("Cos", backend: "cpu") { UnaryGradientKernel(CosDerivative(), try floatInput($0)) }
    // Piecewise constant: the gradient is zero (PyTorch's), so backward adds nothing and reads nothing.
    for type in ["Floor", "Ceil", "Round", "Sign"] {
        registry.registerGradient(type, backend: "cpu") { request in
            _ = try floatInput(request)
            return ElementwiseBackward(reads: [], output: false) { _ in }
        }
    }
}

/// Input 0's dtype when gradients are computed in it.
func floatInput(_ request: KernelRequest) throws -> DType {
    try gradientType(try request.input(0).dtype, request)
}

/// The single output's info.
func onlyOutput(_ request: KernelRequest) throws -> ValueInfo {
    guard let output = request.outputs.first else {
        throw AidgeError.invalidModel("\(request.op.type) node \(request.nodeName) has no output")
    }
    return output
}

// MARK: - Two inputs with broadcasting

/// The gradient terms of a two-input element-wise function `y = f(a, b)`: `g · ∂y/∂a` and `g · ∂y/∂b` from the
/// output gradient `g`, the inputs and the output (written as PyTorch writes them, for the same rounding).
protocol BinaryPartials {
    /// The inputs (0: a, 1: b) that the terms read.
    var reads: Set<Int> { get }
    /// Whether the terms read the output.
    var readsOutput: Bool { get }
    func da<T: GradientFloat>(_ g: T, _ a: T, _ b: T, _ y: T) -> T
    func db<T: GradientFloat>(_ g: T, _ a: T, _ b: T, _ y: T) -> T
}

extension BinaryPartials {
    var readsOutput: Bool { false }
}

struct AddPartials: BinaryPartials {
    var reads: Set<Int> { [] }
    @inline(__always) func da<T: GradientFloat>(_ g: T, _ a: T, _ b: T, _ y: T) -> T { g }
    @inline(__always) func db<T: GradientFloat>(_ g: T, _ a: T, _ b: T, _ y: T) -> T { g }
}

struct SubPartials: BinaryPartials {
    var reads: Set<Int> { [] }
    @inline(__always) func da<T: GradientFloat>(_ g: T, _ a: T, _ b: T, _ y: T) -> T { g }
    @inline(__always) func db<T: GradientFloat>(_ g: T, _ a: T, _ b: T, _ y: T) -> T { -g }
}

struct MulPartials: BinaryPartials {
    var reads: Set<Int> { [0, 1] }
    @inline(__always) func da<T: GradientFloat>(_ g: T, _ a: T, _ b: T, _ y: T) -> T { g * b }
    @inline(__always) func db<T: GradientFloat>(_ g: T, _ a: T, _ b: T, _ y: T) -> T { g * a }
}

struct DivPartials: BinaryPartials {
    var reads: Set<Int> { [0, 1] }
    @inline(__always) func da<T: GradientFloat>(_ g: T, _ a: T, _ b: T, _ y: T) -> T { g / b }
    @inline(__always) func db<T: GradientFloat>(_ g: T, _ a: T, _ b: T, _ y: T) -> T { -g * a / (b * b) }
}

/// Pow: `b a^(b-1)` (0 where b = 0) for the base, `y log a` (0 where a = 0 and b >= 0) for the exponent.
struct PowPartials: BinaryPartials {
    var reads: Set<Int> { [0, 1] }
    var readsOutput: Bool { true }
    @inline(__always) func da<T: GradientFloat>(_ g: T, _ a: T, _ b: T, _ y: T) -> T {
        b == 0 ? 0 : g * (b * T.mathPow(a, b - 1))
    }
    @inline(__always) func db<T: GradientFloat>(_ g: T, _ a: T, _ b: T, _ y: T) -> T {
        a == 0 && b >= 0 ? 0 : g * (y * T.mathLog(a))
    }
}

/// torch.maximum: the larger input gets the gradient; equal inputs get half each.
struct MaxPartials: BinaryPartials {
    var reads: Set<Int> { [0, 1] }
    @inline(__always) func da<T: GradientFloat>(_ g: T, _ a: T, _ b: T, _ y: T) -> T {
        a == b ? g / 2 : a < b ? 0 : g
    }
    @inline(__always) func db<T: GradientFloat>(_ g: T, _ a: T, _ b: T, _ y: T) -> T {
        a == b ? g / 2 : a > b ? 0 : g
    }
}

/// torch.minimum: the smaller input gets the gradient; equal inputs get half each.
struct MinPartials: BinaryPartials {
    var reads: Set<Int> { [0, 1] }
    @inline(__always) func da<T: GradientFloat>(_ g: T, _ a: T, _ b: T, _ y: T) -> T {
        a == b ? g / 2 : a > b ? 0 : g
    }
    @inline(__always) func db<T: GradientFloat>(_ g: T, _ a: T, _ b: T, _ y: T) -> T {
        a == b ? g / 2 : a < b ? 0 : g
    }
}

/// The backward of `y = f(inputs[a], inputs[b])` broadcast to the output's shape.
func binaryGradient<P: BinaryPartials>(_ partials: P, _ request: KernelRequest) throws -> any GradientKernel {
    let dtype = try floatInput(request)
    let a = try request.input(0)
    let b = try request.input(1)
    let output = try onlyOutput(request)
    let fold = BroadcastFold(shape: output.shape, operands: [output.shape, a.shape, b.shape])
    let body: (BackwardPass) throws -> Void
    switch dtype {
    case .float32: body = binaryBackward(partials, fold, b.dtype, Float.self)
    default: body = binaryBackward(partials, fold, b.dtype, Double.self)
    }
    return ElementwiseBackward(reads: partials.reads, output: partials.readsOutput, body)
}

/// Operand slots of a binary fold: 0 the output (and its gradient), 1 input a, 2 input b.
private func binaryBackward<P: BinaryPartials, T: GradientFloat>(
    _ partials: P, _ fold: BroadcastFold, _ bType: DType, _: T.Type
) -> (BackwardPass) throws -> Void {
    let (sa, sb) = (fold.innerStride(1), fold.innerStride(2))
    return { pass in
        guard let dy = pass.outputGradient(0) else { return }
        let count = fold.count
        let (countA, countB) = (fold.counts[1], fold.counts[2])
        let g: UnsafeMutablePointer<T> = try gradientElements(dy, count, "output gradient")
        let a: UnsafeMutablePointer<T> =
            partials.reads.contains(0) ? try gradientElements(pass.input(0), countA, "input 0") : g
        // An exponent of another dtype (Pow) is read converted.
        let bTensor = partials.reads.contains(1) && bType != T.dtype ? try pass.input(1).cast(to: T.dtype) : nil
        let b: UnsafeMutablePointer<T> =
            partials.reads.contains(1) ? try gradientElements(bTensor ?? pass.input(1), countB, "input 1") : g
        let y: UnsafeMutablePointer<T> =
            partials.readsOutput ? try gradientElements(pass.outputs[0], count, "output") : g
        // Same shapes (the common case): flat loops, no broadcast bookkeeping.
        let flat = countA == count && countB == count
        if let da = pass.inputGradient(0) {
            let t: UnsafeMutablePointer<T> = try gradientElements(da, countA, "gradient of input 0")
            if flat {
                Parallel.forEach(count, grain: BroadcastFold.grain) { range in
                    for i in range { t[i] += partials.da(g[i], a[i], b[i], y[i]) }
                }
            } else {
                fold.fold(onto: 1, t, count: countA) { base, o, n in
                    foldBinaryRun(base + o[1], kept: sa != 0, n, g + o[0], a + o[1], sa, b + o[2], sb, y + o[0]) {
                        partials.da($0, $1, $2, $3)
                    }
                }
            }
        }
        if let db = pass.inputGradient(1) {
            // A gradient of another float dtype (Pow's exponent) is computed in T, then added converted.
            let scratch = db.dtype == T.dtype ? nil : Tensor(zeros: db.shape, dtype: T.dtype)
            let t: UnsafeMutablePointer<T> = try gradientElements(scratch ?? db, countB, "gradient of input 1")
            if flat {
                Parallel.forEach(count, grain: BroadcastFold.grain) { range in
                    for i in range { t[i] += partials.db(g[i], a[i], b[i], y[i]) }
                }
            } else {
                fold.fold(onto: 2, t, count: countB) { base, o, n in
                    foldBinaryRun(base + o[2], kept: sb != 0, n, g + o[0], a + o[1], sa, b + o[2], sb, y + o[0]) {
                        partials.db($0, $1, $2, $3)
                    }
                }
            }
            if let scratch { try Gradients.accumulate(scratch.cast(to: db.dtype), into: db) }
        }
    }
}

/// Folds `term(g, a, b, y)` over one run onto `t`, with one loop per stride pair of a and b (0: one value for the
/// run, 1: one per element) so that each loop vectorises.
@inline(__always)
func foldBinaryRun<T: GradientFloat>(
    _ t: UnsafeMutablePointer<T>, kept: Bool, _ n: Int, _ g: UnsafePointer<T>, _ a: UnsafePointer<T>, _ sa: Int,
    _ b: UnsafePointer<T>, _ sb: Int, _ y: UnsafePointer<T>, _ term: (T, T, T, T) -> T
) {
    switch (sa, sb) {
    case (0, 0):
        let (av, bv) = (a[0], b[0])
        foldRun(t, kept: kept, n) { term(g[$0], av, bv, y[$0]) }
    case (0, _):
        let av = a[0]
        foldRun(t, kept: kept, n) { term(g[$0], av, b[$0], y[$0]) }
    case (_, 0):
        let bv = b[0]
        foldRun(t, kept: kept, n) { term(g[$0], a[$0], bv, y[$0]) }
    default:
        foldRun(t, kept: kept, n) { term(g[$0], a[$0], b[$0], y[$0]) }
    }
}

// MARK: - Variadic

enum VariadicKind { case sum, mean, max, min }

/// Sum and Mean pass the (scaled) gradient to every input; Max and Min pass it to the inputs that hold the
/// extreme, split equally between tied inputs (torch.maximum's rule, extended to any number of inputs).
func variadicGradient(_ kind: VariadicKind, _ request: KernelRequest) throws -> any GradientKernel {
    let dtype = try floatInput(request)
    let count = request.inputs.count
    if count == 2 && kind == .max { return try binaryGradient(MaxPartials(), request) }
    if count == 2 && kind == .min { return try binaryGradient(MinPartials(), request) }
    let output = try onlyOutput(request).shape
    let folds = try (0..<count).map {
        BroadcastFold(shape: output, operands: [output, try request.input($0).shape])
    }
    let extreme = count > 1 && (kind == .max || kind == .min)
    let scale = kind == .mean ? 1 / Double(count) : 1
    let body: (BackwardPass) throws -> Void
    switch dtype {
    case .float32: body = extreme ? extremeBackward(folds, Float.self) : sumBackward(folds, scale, Float.self)
    default: body = extreme ? extremeBackward(folds, Double.self) : sumBackward(folds, scale, Double.self)
    }
    return ElementwiseBackward(reads: extreme ? Set(0..<count) : [], output: extreme, body)
}

/// `dx_k += scale · g`, summed to each input's shape (slots: 0 the output, 1 input k).
private func sumBackward<T: GradientFloat>(_ folds: [BroadcastFold], _ scale: Double, _: T.Type)
    -> (BackwardPass) throws -> Void
{
    let factor = T(scale)
    return { pass in
        guard let dy = pass.outputGradient(0) else { return }
        for (k, fold) in folds.enumerated() {
            guard let dx = pass.inputGradient(k) else { continue }
            let g: UnsafeMutablePointer<T> = try gradientElements(dy, fold.count, "output gradient")
            let t: UnsafeMutablePointer<T> = try gradientElements(dx, fold.counts[1], "gradient of input \(k)")
            if dx.count == fold.count {
                // Same shape as the output: a flat loop.
                Parallel.forEach(fold.count, grain: BroadcastFold.grain) { range in
                    for i in range { t[i] += g[i] * factor }
                }
                continue
            }
            let kept = fold.innerStride(1) != 0
            fold.fold(onto: 1, t, count: dx.count) { base, o, n in
                let (tp, gp) = (base + o[1], g + o[0])
                if factor == 1 {
                    foldRun(tp, kept: kept, n) { gp[$0] }
                } else {
                    foldRun(tp, kept: kept, n) { gp[$0] * factor }
                }
            }
        }
    }
}

/// Max or Min of three or more inputs: each output element's gradient is shared by the inputs equal to it.
private func extremeBackward<T: GradientFloat>(_ folds: [BroadcastFold], _: T.Type) -> (BackwardPass) throws -> Void {
    { pass in
        guard let dy = pass.outputGradient(0), let first = folds.first else { return }
        let count = first.count
        let g: UnsafeMutablePointer<T> = try gradientElements(dy, count, "output gradient")
        let y: UnsafeMutablePointer<T> = try gradientElements(pass.outputs[0], count, "output")
        let inputs: [UnsafeMutablePointer<T>] = try folds.indices.map {
            try gradientElements(try pass.input($0), folds[$0].counts[1], "input \($0)")
        }
        // How many inputs hold each output element.
        var ties = [T](repeating: 0, count: count)
        ties.withUnsafeMutableBufferPointer { buffer in
            guard let c = buffer.baseAddress else { return }
            for (k, fold) in folds.enumerated() {
                let x = inputs[k]
                let sx = fold.innerStride(1)
                fold.fold(onto: 0, c, count: count) { base, o, n in
                    let (cp, xp, yp) = (base + o[0], x + o[1], y + o[0])
                    if sx == 0 {
                        let v = xp[0]
                        for i in 0..<n { cp[i] += v == yp[i] ? 1 : 0 }
                    } else {
                        for i in 0..<n { cp[i] += xp[i] == yp[i] ? 1 : 0 }
                    }
                }
            }
        }
        for (k, fold) in folds.enumerated() {
            guard let dx = pass.inputGradient(k) else { continue }
            let t: UnsafeMutablePointer<T> = try gradientElements(dx, fold.counts[1], "gradient of input \(k)")
            let x = inputs[k]
            let sx = fold.innerStride(1)
            ties.withUnsafeBufferPointer { buffer in
                guard let c = buffer.baseAddress else { return }
                fold.fold(onto: 1, t, count: dx.count) { base, o, n in
                    let (tp, gp, xp, yp, cp) = (base + o[1], g + o[0], x + o[1], y + o[0], c + o[0])
                    if sx == 0 {
                        let v = xp[0]
                        foldRun(tp, kept: false, n) { v == yp[$0] ? gp[$0] / cp[$0] : 0 }
                    } else {
                        foldRun(tp, kept: true, n) { xp[$0] == yp[$0] ? gp[$0] / cp[$0] : 0 }
                    }
                }
            }
        }
    }
}

// MARK: - Where

/// Where: the gradient goes to X where the condition holds and to Y elsewhere (slots: 0 the output, 1 the
/// condition, 2 X, 3 Y).
@Sendable func whereGradient(_ request: KernelRequest) throws -> any GradientKernel {
    let dtype = try gradientType(try request.input(1).dtype, request)
    let output = try onlyOutput(request).shape
    let fold = BroadcastFold(
        shape: output,
        operands: [output, try request.input(0).shape, try request.input(1).shape, try request.input(2).shape])
    let body: (BackwardPass) throws -> Void
    switch dtype {
    case .float32: body = whereBackward(fold, Float.self)
    default: body = whereBackward(fold, Double.self)
    }
    return ElementwiseBackward(reads: [0], output: false, body)
}

private func whereBackward<T: GradientFloat>(_ fold: BroadcastFold, _: T.Type) -> (BackwardPass) throws -> Void {
    let sc = fold.innerStride(1)
    return { pass in
        guard let dy = pass.outputGradient(0) else { return }
        let g: UnsafeMutablePointer<T> = try gradientElements(dy, fold.count, "output gradient")
        let condition = try pass.input(0)
        guard condition.dtype == .bool, condition.count == fold.counts[1] else {
            throw AidgeError.shapeMismatch(
                "backward: Where condition planned as \(fold.counts[1]) bool elements, got \(condition.dtype) "
                    + "of shape \(condition.shape)")
        }
        let c = condition.pointer(as: UInt8.self)
        for (slot, selected) in [(2, true), (3, false)] {
            guard let dx = pass.inputGradient(slot - 1) else { continue }
            let t: UnsafeMutablePointer<T> = try gradientElements(
                dx, fold.counts[slot], "gradient of input \(slot - 1)")
            let kept = fold.innerStride(slot) != 0
            fold.fold(onto: slot, t, count: dx.count) { base, o, n in
                let (tp, gp, cp) = (base + o[slot], g + o[0], c + o[1])
                if sc == 0 {
                    if (cp[0] != 0) == selected { foldRun(tp, kept: kept, n) { gp[$0] } }
                } else if selected {
                    foldRun(tp, kept: kept, n) { cp[$0] != 0 ? gp[$0] : 0 }
                } else {
                    foldRun(tp, kept: kept, n) { cp[$0] != 0 ? 0 : gp[$0] }
                }
            }
        }
    }
}

// MARK: - Unary math

struct NegDerivative: UnaryDerivative {
    var readsInput: Bool { false }
    var readsOutput: Bool { false }
    @inline(__always) func term<T: GradientFloat>(_ g: T, x: T, y: T) -> T { -g }
}

/// sgn(x): 0 at 0.
struct AbsDerivative: UnaryDerivative {
    var readsOutput: Bool { false }
    @inline(__always) func term<T: GradientFloat>(_ g: T, x: T, y: T) -> T { x > 0 ? g : x < 0 ? -g : 0 }
}

struct SqrtDerivative: UnaryDerivative {
    var readsInput: Bool { false }
    @inline(__always) func term<T: GradientFloat>(_ g: T, x: T, y: T) -> T { g / (2 * y) }
}

struct ReciprocalDerivative: UnaryDerivative {
    var readsInput: Bool { false }
    @inline(__always) func term<T: GradientFloat>(_ g: T, x: T, y: T) -> T { -g * (y * y) }
}

struct ExpDerivative: UnaryDerivative {
    var readsInput: Bool { false }
    @inline(__always) func term<T: GradientFloat>(_ g: T, x: T, y: T) -> T { g * y }
}

struct LogDerivative: UnaryDerivative {
    var readsOutput: Bool { false }
    @inline(__always) func term<T: GradientFloat>(_ g: T, x: T, y: T) -> T { g / x }
}

/// 2/√π e^(-x²).
struct ErfDerivative: VectorUnaryDerivative {
    var readsOutput: Bool { false }
    static let twoOverRootPi = 1.128_379_167_095_512_573_9
    @inline(__always) func term<T: GradientFloat>(_ g: T, x: T, y: T) -> T {
        T(Self.twoOverRootPi) * T.mathExp(-(x * x)) * g
    }
    @inline(__always) func vector(_ g: SIMD8<Float>, x: SIMD8<Float>, y: SIMD8<Float>) -> SIMD8<Float> {
        Float(Self.twoOverRootPi) * VectorMath.exp(-(x * x)) * g
    }
}

struct SinDerivative: UnaryDerivative {
    var readsOutput: Bool { false }
    @inline(__always) func term<T: GradientFloat>(_ g: T, x: T, y: T) -> T { g * T.mathCos(x) }
}

struct CosDerivative: UnaryDerivative {
    var readsOutput: Bool { false }
    @inline(__always) func term<T: GradientFloat>(_ g: T, x: T, y: T) -> T { g * -T.mathSin(x) }
}
