import AidgeCore

/// Backward of the activations: element-wise non-linearities, Clip, PRelu, Softmax and LogSoftmax. Formulas,
/// and the side a kink's gradient takes, follow PyTorch's autograd.
func registerActivationGradients(_ registry: KernelRegistry) {
    registry.registerGradient("Relu", backend: "cpu") { UnaryGradientKernel(ReluDerivative(), try floatInput($0)) }
    registry.registerGradient("LeakyRelu", backend: "cpu") { request in
        let alpha = try request.attributes.float("alpha", default: 0.01)
        return UnaryGradientKernel(LeakyReluDerivative(alpha: alpha), try floatInput(request))
    }
    registry.registerGradient("Sigmoid", backend: "cpu") {
        UnaryGradientKernel(SigmoidDerivative(), try floatInput($0))
    }
    registry.registerGradient("Tanh", backend: "cpu") { UnaryGradientKernel(TanhDerivative(), try floatInput($0)) }
    registry.registerGradient("HardSigmoid", backend: "cpu") { request in
        let alpha = try request.attributes.float("alpha", default: 0.2)
        return UnaryGradientKernel(HardSigmoidDerivative(alpha: alpha), try floatInput(request))
    }
    registry.registerGradient("HardSwish", backend: "cpu") {
        UnaryGradientKernel(HardSwishDerivative(), try floatInput($0))
    }
    registry.registerGradient("Gelu", backend: "cpu") { request in
        let dtype = try floatInput(request)
        switch try request.attributes.string("approximate", default: "none") {
        case "none": return UnaryGradientKernel(GeluDerivative(), dtype)
        case "tanh": return UnaryGradientKernel(GeluTanhDerivative(), dtype)
        case let other:
            throw AidgeError.invalidModel("Gelu attribute 'approximate' must be \"none\" or \"tanh\", got \"\(other)\"")
        }
    }
    registry.registerGradient("Elu", backend: "cpu") { request in
        let alpha = try request.attributes.float("alpha", default: 1)
        return UnaryGradientKernel(EluDerivative(alpha: alpha, gamma: 1), try floatInput(request))
    }
    registry.registerGradient("Selu", backend: "cpu") { request in
        // The defaults are the forward kernel's (float32 roundings of ONNX's constants).
        let alpha = try request.attributes.float("alpha", default: 1.673_263_192_176_818_847_656_25)
        let gamma = try request.attributes.float("gamma", default: 1.050_701_022_148_132_324_218_75)
        return UnaryGradientKernel(EluDerivative(alpha: alpha, gamma: gamma), try floatInput(request))
    }
    registry.registerGradient("Softplus", backend: "cpu") {
        UnaryGradientKernel(SoftplusDerivative(), try floatInput($0))
    }
    registry.registerGradient("Clip", backend: "cpu", clipGradient)
    registry.registerGradient("PRelu", backend: "cpu") { try binaryGradient(PReluPartials(), $0) }
    registry.registerGradient("Softmax", backend: "cpu") { try softmaxGradient($0, log: false) }
    registry.registerGradient("LogSoftmax", backend: "cpu") { try softmaxGradient($0, log: true) }
}

// MARK: - Element-wise functions

/// The gradient term `g · f'(x)` of an element-wise function `y = f(x)`, from the output gradient `g`, the input
/// and the output (written as PyTorch writes it, for the same rounding).
protocol UnaryDerivative {
    /// Whether the term reads the input.
    var readsInput: Bool { get }
    /// Whether the term reads the output.
    var readsOutput: Bool { get }
    func term<T: GradientFloat>(_ g: T, x: T, y: T) -> T
}

extension UnaryDerivative {
    var readsInput: Bool { true }
    var readsOutput: Bool { true }
}

/// A derivative with an 8-lane float32 form, for terms that call exp, tanh or erf (scalar libm calls otherwise).
protocol VectorUnaryDerivative: UnaryDerivative {
    func vector(_ g: SIMD8<Float>, x: SIMD8<Float>, y: SIMD8<Float>) -> SIMD8<Float>
}

/// `dx += term(dy, x, y)` for an element-wise function of one input.
///
/// Not generic: its work is a closure made in a generic initialiser, which runs code specialised for the
/// derivative (the `GradientKernel` witness of a generic class would run its unspecialised form).
final class UnaryGradientKernel: GradientKernel {
    private let body: (BackwardPass) throws -> Void
    private let readsX: Bool
    private let readsY: Bool

    init<D: UnaryDerivative>(_ derivative: D, _ dtype: DType) {
        readsX = derivative.readsInput
        readsY = derivative.readsOutput
        body =
            dtype == .float32 ? unaryBackward(derivative, Float.self) : unaryBackward(derivative, Double.self)
    }

    init<D: VectorUnaryDerivative>(_ derivative: D, _ dtype: DType) {
        readsX = derivative.readsInput
        readsY = derivative.readsOutput
        body = dtype == .float32 ? vectorUnaryBackward(derivative) : unaryBackward(derivative, Double.self)
    }

    func readsInput(_ index: Int) -> Bool { index == 0 && readsX }
    func readsOutput(_ index: Int) -> Bool { index == 0 && readsY }
    func backward(_ pass: BackwardPass) throws { try body(pass) }
}

/// Pointers to the input gradient, output gradient, input and output of a unary backward (the output gradient
/// standing in for what the derivative does not read).
private func unaryOperands<T: GradientFloat>(
    _ pass: BackwardPass, _ dx: Tensor, _ dy: Tensor, readsX: Bool, readsY: Bool, _: T.Type
) throws -> (UnsafeMutablePointer<T>, UnsafeMutablePointer<T>, UnsafeMutablePointer<T>, UnsafeMutablePointer<T>) {
    let n = dx.count
    let d: UnsafeMutablePointer<T> = try gradientElements(dx, n, "input gradient")
    let g: UnsafeMutablePointer<T> = try gradientElements(dy, n, "output gradient")
    let x: UnsafeMutablePointer<T> = readsX ? try gradientElements(pass.input(0), n, "input") : g
    let y: UnsafeMutablePointer<T> = readsY ? try gradientElements(pass.outputs[0], n, "output") : g
    return (d, g, x, y)
}

/// Elements per parallel task of a unary backward (a libm call per element at most).
private let unaryGrain = 1 << 12

private func unaryBackward<D: UnaryDerivative, T: GradientFloat>(_ derivative: D, _: T.Type)
    -> (BackwardPass) throws -> Void
{
    { pass in
        guard let dx = pass.inputGradient(0), let dy = pass.outputGradient(0) else { return }
        let (d, g, x, y) = try unaryOperands(
            pass, dx, dy, readsX: derivative.readsInput, readsY: derivative.readsOutput, T.self)
        Parallel.forEach(dx.count, grain: unaryGrain) { range in
            for i in range { d[i] += derivative.term(g[i], x: x[i], y: y[i]) }
        }
    }
}

private func vectorUnaryBackward<D: VectorUnaryDerivative>(_ derivative: D) -> (BackwardPass) throws -> Void {
    { pass in
        guard let dx = pass.inputGradient(0), let dy = pass.outputGradient(0) else { return }
        let (d, g, x, y) = try unaryOperands(
            pass, dx, dy, readsX: derivative.readsInput, readsY: derivative.readsOutput, Float.self)
        Parallel.forEach(dx.count, grain: unaryGrain) { range in
            var i = range.lowerBound
            while i + 8 <= range.upperBound {
                store8(load8(d + i) + derivative.vector(load8(g + i), x: load8(x + i), y: load8(y + i)), d + i)
                i += 8
            }
            let rest = range.upperBound - i
            if rest > 0 {
                let term = derivative.vector(
                    loadPartial8(g + i, rest), x: loadPartial8(x + i, rest), y: loadPartial8(y + i, rest))
                storePartial8(loadPartial8(d + i, rest) + term, d + i, rest)
            }
        }
    }
}

/// Relu: the gradient passes where the output is positive.
struct ReluDerivative: UnaryDerivative {
    var readsInput: Bool { false }
    @inline(__always) func term<T: GradientFloat>(_ g: T, x: T, y: T) -> T { y > 0 ? g : 0 }
}

/// LeakyRelu: 1 for x > 0, alpha elsewhere (x = 0 included, as PyTorch).
struct LeakyReluDerivative: UnaryDerivative {
    let alpha: Float
    var readsOutput: Bool { false }
    @inline(__always) func term<T: GradientFloat>(_ g: T, x: T, y: T) -> T { x > 0 ? g : g * T(alpha) }
}

/// Sigmoid: y (1 - y), from the output alone.
struct SigmoidDerivative: UnaryDerivative {
    var readsInput: Bool { false }
    @inline(__always) func term<T: GradientFloat>(_ g: T, x: T, y: T) -> T { g * (1 - y) * y }
}

/// Tanh: 1 - y², from the output alone.
struct TanhDerivative: UnaryDerivative {
    var readsInput: Bool { false }
    @inline(__always) func term<T: GradientFloat>(_ g: T, x: T, y: T) -> T { g * (1 - y * y) }
}

/// HardSigmoid: alpha strictly between the saturations (0 < y < 1 exactly where 0 < alpha x + beta < 1).
struct HardSigmoidDerivative: UnaryDerivative {
    let alpha: Float
    var readsInput: Bool { false }
    @inline(__always) func term<T: GradientFloat>(_ g: T, x: T, y: T) -> T { y > 0 && y < 1 ? g * T(alpha) : 0 }
}

/// HardSwish, PyTorch's hardswish_backward: 0 below -3, x/3 + 1/2 up to 3 (both ends included), 1 above.
struct HardSwishDerivative: UnaryDerivative {
    var readsOutput: Bool { false }
    @inline(__always) func term<T: GradientFloat>(_ g: T, x: T, y: T) -> T {
        x < -3 ? 0 : x <= 3 ? g * (x / 3 + 0.5) : g
    }
}

/// Gelu: Φ(x) + x φ(x), with Φ's lower tail from erfc so that it keeps its relative accuracy for negative x.
struct GeluDerivative: VectorUnaryDerivative {
    var readsOutput: Bool { false }
    static let rootHalf = 0.707_106_781_186_547_524_4
    static let inverseRootTwoPi = 0.398_942_280_401_432_677_9

    @inline(__always) func term<T: GradientFloat>(_ g: T, x: T, y: T) -> T {
        let d = Double(x)
        let cdf = 0.5 * Double.mathErfc(-d * Self.rootHalf)
        let pdf = Self.inverseRootTwoPi * Double.mathExp(-0.5 * d * d)
        return g * T(cdf + d * pdf)
    }

    @inline(__always) func vector(_ g: SIMD8<Float>, x: SIMD8<Float>, y: SIMD8<Float>) -> SIMD8<Float> {
        let a = VectorMath.clampAbove(VectorMath.magnitude(x), 32)
        let z = a * Float(Self.rootHalf)
        // x²/2 = hi + lo exactly: Φ(-|x|) = erfc(|x|/√2)/2 and φ(x) both need e^(-x²/2) without its rounding.
        let (hi, lo) = VectorMath.splitSquare(a, scale: 0.5)
        let (m, s1, s2) = VectorMath.erfcParts(z, squareHi: hi, squareLo: lo)
        let tail = 0.5 * m * s1 * s2
        let small = 0.5 + 0.5 * VectorMath.erfSmall(x * Float(Self.rootHalf))
        let cdf = VectorMath.select(z .< 0.5, small, VectorMath.select(x .< 0, tail, 1 - tail))
        let (e, t1, t2) = VectorMath.expParts(-hi, plus: -lo)
        let pdf = e * Float(Self.inverseRootTwoPi) * t1 * t2
        return g * (cdf + x * pdf)
    }
}

/// Gelu with the tanh approximation, PyTorch's gelu_backward formula.
struct GeluTanhDerivative: VectorUnaryDerivative {
    var readsOutput: Bool { false }
    static let beta = 0.797_884_560_802_865_4  // √(2/π)
    static let kappa = 0.044_715

    @inline(__always) func term<T: GradientFloat>(_ g: T, x: T, y: T) -> T {
        let (beta, kappa) = (T(Self.beta), T(Self.kappa))
        let square = x * x
        let t = T.mathTanh(beta * (x + kappa * square * x))
        let left = 0.5 * (1 + t)
        let right = 0.5 * x * (1 - t * t) * beta * (1 + 3 * kappa * square)
        return g * (left + right)
    }

    @inline(__always) func vector(_ g: SIMD8<Float>, x: SIMD8<Float>, y: SIMD8<Float>) -> SIMD8<Float> {
        let (beta, kappa) = (Float(Self.beta), Float(Self.kappa))
        let square = x * x
        let t = VectorMath.tanh(beta * (x + kappa * square * x))
        let left = 0.5 * (1 + t)
        let right = 0.5 * x * (1 - t * t) * beta * (1 + 3 * kappa * square)
        return g * (left + right)
    }
}

/// Elu (gamma = 1) and Selu: gamma alpha e^x for x <= 0, gamma above (from the input, for e^x's accuracy).
struct EluDerivative: VectorUnaryDerivative {
    let alpha: Float
    let gamma: Float
    var readsOutput: Bool { false }

    @inline(__always) func term<T: GradientFloat>(_ g: T, x: T, y: T) -> T {
        x <= 0 ? g * (T(gamma) * T(alpha)) * T.mathExp(x) : g * T(gamma)
    }

    @inline(__always) func vector(_ g: SIMD8<Float>, x: SIMD8<Float>, y: SIMD8<Float>) -> SIMD8<Float> {
        VectorMath.select(x .<= 0, g * (gamma * alpha) * VectorMath.exp(x), g * gamma)
    }
}

/// Softplus: the sigmoid of x.
struct SoftplusDerivative: VectorUnaryDerivative {
    var readsOutput: Bool { false }

    @inline(__always) func term<T: GradientFloat>(_ g: T, x: T, y: T) -> T {
        if x >= 0 { return g / (1 + T.mathExp(-x)) }
        let e = T.mathExp(x)
        return g * e / (1 + e)
    }

    @inline(__always) func vector(_ g: SIMD8<Float>, x: SIMD8<Float>, y: SIMD8<Float>) -> SIMD8<Float> {
        g * VectorMath.sigmoid(x)
    }
}

// MARK: - PRelu and Clip

/// PRelu, PyTorch's rule: x > 0 passes the gradient, elsewhere it is scaled by the slope; the slope gets g x there.
struct PReluPartials: BinaryPartials {
    var reads: Set<Int> { [0, 1] }
    @inline(__always) func da<T: GradientFloat>(_ g: T, _ a: T, _ b: T, _ y: T) -> T { a > 0 ? g : b * g }
    @inline(__always) func db<T: GradientFloat>(_ g: T, _ a: T, _ b: T, _ y: T) -> T { a > 0 ? 0 : a * g }
}

/// Clip: the gradient passes where min <= x <= max (the bounds included, as torch.clamp); the bounds get none.
@Sendable func clipGradient(_ request: KernelRequest) throws -> any GradientKernel {
    let dtype = try floatInput(request)
    let body = dtype == .float32 ? clipBackward(Float.self) : clipBackward(Double.self)
    return ElementwiseBackward(reads: [0, 1, 2], output: false, body)
}

private func clipBackward<T: GradientFloat>(_: T.Type) -> (BackwardPass) throws -> Void {
    { pass in
        guard let dx = pass.inputGradient(0), let dy = pass.outputGradient(0) else { return }
        let n = dx.count
        let d: UnsafeMutablePointer<T> = try gradientElements(dx, n, "input gradient")
        let g: UnsafeMutablePointer<T> = try gradientElements(dy, n, "output gradient")
        let x: UnsafeMutablePointer<T> = try gradientElements(pass.input(0), n, "input")
        func bound(_ i: Int) throws -> T? {
            guard i < pass.inputs.count, let t = pass.inputs[i] else { return nil }
            return try firstElement(of: t, as: T.self)
        }
        let lo = try bound(1) ?? -.infinity
        let hi = try bound(2) ?? .infinity
        Parallel.forEach(n, grain: 1 << 14) { range in
            for i in range { d[i] += x[i] >= lo && x[i] <= hi ? g[i] : 0 }
        }
    }
}

// MARK: - Softmax and LogSoftmax

/// Softmax: dx = y (g - Σ g y); LogSoftmax: dx = g - e^y Σ g (sums along the axis). Both read the output only.
///
/// The tensor is seen as `outer x n x inner` with `n` the axis length: rows when `inner == 1`, else blocks of
/// neighbouring columns processed together (contiguous runs, the sums in a small stack buffer).
func softmaxGradient(_ request: KernelRequest, log: Bool) throws -> any GradientKernel {
    let dtype = try floatInput(request)
    let x = try request.input(0)
    let shape = x.shape.isEmpty ? [1] : x.shape
    let axis = try ShapeUtil.axis(try request.attributes.int("axis", default: -1), rank: shape.count)
    let geometry = SoftmaxGeometry(
        outer: ShapeUtil.count(Array(shape[..<axis])), n: shape[axis],
        inner: ShapeUtil.count(Array(shape[(axis + 1)...])), log: log)
    let body =
        dtype == .float32 ? softmaxBackward(geometry, Float.self) : softmaxBackward(geometry, Double.self)
    return ElementwiseBackward(reads: [], output: true, body)
}

/// Columns per block along a non-last axis.
private let softmaxColumns = 256

private func softmaxBackward<T: GradientFloat>(_ geometry: SoftmaxGeometry, _: T.Type)
    -> (BackwardPass) throws -> Void
{
    let (outer, n, inner, log) = (geometry.outer, geometry.n, geometry.inner, geometry.log)
    return { pass in
        guard let dx = pass.inputGradient(0), let dy = pass.outputGradient(0) else { return }
        let count = outer * n * inner
        if count == 0 { return }
        let d: UnsafeMutablePointer<T> = try gradientElements(dx, count, "input gradient")
        let g: UnsafeMutablePointer<T> = try gradientElements(dy, count, "output gradient")
        let y: UnsafeMutablePointer<T> = try gradientElements(pass.outputs[0], count, "output")
        if inner == 1 {
            Parallel.forEach(outer, grain: max(1, (1 << 13) / n)) { rows in
                for r in rows {
                    let (dp, gp, yp) = (d + r * n, g + r * n, y + r * n)
                    if log {
                        var s = sumTerms(n) { gp[$0] }
                        withUnsafePointer(to: &s) { addLogSoftmaxRun(dp, gp, yp, $0, 0, n) }
                    } else {
                        let s = sumTerms(n) { gp[$0] * yp[$0] }
                        for i in 0..<n { dp[i] += yp[i] * (gp[i] - s) }
                    }
                }
            }
            return
        }
        let blocks = (inner + softmaxColumns - 1) / softmaxColumns
        Parallel.forEach(outer * blocks, grain: max(1, (1 << 13) / (n * min(inner, softmaxColumns)))) { units in
            withUnsafeTemporaryAllocation(of: T.self, capacity: softmaxColumns) { buffer in
                guard let sums = buffer.baseAddress else { return }
                for u in units {
                    let (o, block) = u.quotientAndRemainder(dividingBy: blocks)
                    let width = min(softmaxColumns, inner - block * softmaxColumns)
                    let start = o * n * inner + block * softmaxColumns
                    sums.update(repeating: 0, count: width)
                    for r in 0..<n {
                        let (gp, yp) = (g + start + r * inner, y + start + r * inner)
                        if log {
                            for c in 0..<width { sums[c] += gp[c] }
                        } else {
                            for c in 0..<width { sums[c] += gp[c] * yp[c] }
                        }
                    }
                    for r in 0..<n {
                        let row = start + r * inner
                        let (dp, gp, yp) = (d + row, g + row, y + row)
                        if log {
                            addLogSoftmaxRun(dp, gp, yp, sums, 1, width)
                        } else {
                            for c in 0..<width { dp[c] += yp[c] * (gp[c] - sums[c]) }
                        }
                    }
                }
            }
        }
    }
}

/// `d[i] += g[i] - e^y[i] · s[i · ss]` for `i < n` (`ss` 0: one sum for the run, 1: one per element), 8 lanes at
/// a time in float32.
@inline(__always)
private func addLogSoftmaxRun<T: GradientFloat>(
    _ d: UnsafeMutablePointer<T>, _ g: UnsafePointer<T>, _ y: UnsafePointer<T>, _ s: UnsafePointer<T>, _ ss: Int,
    _ n: Int
) {
    guard T.self == Float.self else {
        for i in 0..<n { d[i] += g[i] - T.mathExp(y[i]) * s[i * ss] }
        return
    }
    let (df, gf, yf, sf) = (
        UnsafeMutableRawPointer(d).assumingMemoryBound(to: Float.self),
        UnsafeRawPointer(g).assumingMemoryBound(to: Float.self),
        UnsafeRawPointer(y).assumingMemoryBound(to: Float.self),
        UnsafeRawPointer(s).assumingMemoryBound(to: Float.self)
    )
    func sums(_ i: Int, _ count: Int) -> SIMD8<Float> {
        ss == 0 ? SIMD8(repeating: sf[0]) : loadPartial8(sf + i, count)
    }
    var i = 0
    while i + 8 <= n {
        let v = load8(gf + i) - VectorMath.exp(load8(yf + i)) * (ss == 0 ? SIMD8(repeating: sf[0]) : load8(sf + i))
        store8(load8(df + i) + v, df + i)
        i += 8
    }
    if i < n {
        let rest = n - i
        let v = loadPartial8(gf + i, rest) - VectorMath.exp(loadPartial8(yf + i, rest)) * sums(i, rest)
        storePartial8(loadPartial8(df + i, rest) + v, df + i, rest)
    }
}
