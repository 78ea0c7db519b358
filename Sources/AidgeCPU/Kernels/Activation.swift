import AidgeCore

/// Activation kernels: element-wise non-linearities, Clip, PRelu; Softmax and LogSoftmax live in
/// `ActivationSoftmax.swift`.
func registerActivationKernels(_ registry: KernelRegistry) {
    let simple: [(String, Activation.Kind)] = [
        ("Relu", .relu), ("Sigmoid", .sigmoid), ("Tanh", .tanh), ("HardSwish", .hardSwish), ("Softplus", .softplus),
    ]
    for (type, kind) in simple {
        registry.register(type, backend: "cpu") { try makeKernel(Activation(kind: kind), $0) }
    }
    registry.register("LeakyRelu", backend: "cpu") { request in
        let alpha = try request.attributes.float("alpha", default: 0.01)
        return try makeKernel(Activation(kind: .leakyRelu, alpha: alpha), request)
    }
    registry.register("HardSigmoid", backend: "cpu") { request in
        let alpha = try request.attributes.float("alpha", default: 0.2)
        let beta = try request.attributes.float("beta", default: 0.5)
        return try makeKernel(Activation(kind: .hardSigmoid, alpha: alpha, beta: beta), request)
    }
    registry.register("Elu", backend: "cpu") { request in
        let alpha = try request.attributes.float("alpha", default: 1)
        return try makeKernel(Activation(kind: .elu, alpha: alpha), request)
    }
    registry.register("Selu", backend: "cpu") { request in
        let alpha = try request.attributes.float("alpha", default: 1.673_263_192_176_818_847_656_25)
        let gamma = try request.attributes.float("gamma", default: 1.050_701_022_148_132_324_218_75)
        return try makeKernel(Activation(kind: .selu, alpha: alpha, beta: gamma), request)
    }
    registry.register("Softsign", backend: "cpu") { try makeKernel(Activation(kind: .softsign), $0) }
    registry.register("Mish", backend: "cpu") { try makeKernel(Activation(kind: .mish), $0) }
    registry.register("ThresholdedRelu", backend: "cpu") { request in
        let alpha = try request.attributes.float("alpha", default: 1)
        return try makeKernel(Activation(kind: .thresholdedRelu, alpha: alpha), request)
    }
    registry.register("Celu", backend: "cpu") { request in
        let alpha = try request.attributes.float("alpha", default: 1)
        guard alpha != 0 else { throw AidgeError.invalidModel("Celu alpha must not be 0") }
        return try makeKernel(Activation(kind: .celu, alpha: alpha), request)
    }
    registry.register("Swish", backend: "cpu") { request in
        let alpha = try request.attributes.float("alpha", default: 1)
        return try makeKernel(Activation(kind: .swish, alpha: alpha), request)
    }
    registry.register("Shrink", backend: "cpu") { request in
        let lambd = try request.attributes.float("lambd", default: 0.5)
        let bias = try request.attributes.float("bias", default: 0)
        return try makeKernel(Activation(kind: .shrink, alpha: lambd, beta: bias), request)
    }
    registry.register("Gelu", backend: "cpu") { request in
        let approximate = try request.attributes.string("approximate", default: "none")
        switch approximate {
        case "none": return try makeKernel(Activation(kind: .gelu), request)
        case "tanh": return try makeKernel(Activation(kind: .geluTanh), request)
        default: throw AidgeError.invalidModel("Gelu attribute 'approximate' must be \"none\" or \"tanh\"")
        }
    }
    registry.register("Clip", backend: "cpu") { try makeKernel(ClipFamily(), $0) }
    registry.register("PRelu", backend: "cpu") { try makeKernel(PReluFamily(), $0) }
    registry.register("Softmax", backend: "cpu") { try makeSoftmaxKernel($0, log: false) }
    registry.register("LogSoftmax", backend: "cpu") { try makeSoftmaxKernel($0, log: true) }
    registry.register("Hardmax", backend: "cpu") { try makeKernel(HardmaxFamily(), $0) }
    registry.register("SwiGLU", backend: "cpu") { request in
        try makeKernel(SwiGLUFamily(alpha: try request.attributes.float("alpha", default: 1)), request)
    }
}

// MARK: - Element-wise activations

struct Activation: KernelFamily {
    enum Kind {
        case relu, leakyRelu, sigmoid, tanh, hardSigmoid, hardSwish, gelu, geluTanh, elu, selu, softplus
        case softsign, thresholdedRelu, celu, mish, swish, shrink
    }
    let kind: Kind
    var alpha: Float = 0
    var beta: Float = 0

    func float32(_ request: KernelRequest) throws -> any Kernel {
        let vector = ElementCost.vector
        switch kind {
        case .relu: return try unaryKernel(ReluF(), request)
        case .leakyRelu: return try unaryKernel(LeakyReluF(alpha: alpha), request)
        case .sigmoid: return try unaryKernel(SigmoidF(), request, grain: vector)
        case .tanh: return try unaryKernel(TanhF(), request, grain: vector)
        case .hardSigmoid: return try unaryKernel(HardSigmoidF(alpha: alpha, beta: beta), request)
        case .hardSwish: return try unaryKernel(HardSwishF(), request)
        case .geluTanh: return try unaryKernel(GeluTanhF(), request, grain: vector)
        case .gelu: return try unaryKernel(GeluF(), request, grain: ElementCost.vector)
        default: return try float(Float.self, request)
        }
    }

    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let scalar = ElementCost.scalar
        let (a, b) = (T(alpha), T(beta))
        switch kind {
        case .relu: return try unaryKernel(ReluOp<T>(), request)
        case .leakyRelu: return try unaryKernel(LeakyReluOp<T>(alpha: a), request)
        case .sigmoid: return try unaryKernel(SigmoidOp<T>(), request, grain: scalar)
        case .tanh: return try unaryKernel(TanhOp<T>(), request, grain: scalar)
        case .hardSigmoid: return try unaryKernel(HardSigmoidOp<T>(alpha: a, beta: b), request)
        case .hardSwish: return try unaryKernel(HardSwishOp<T>(), request)
        case .gelu: return try unaryKernel(GeluOp<T>(), request, grain: scalar)
        case .geluTanh: return try unaryKernel(GeluTanhOp<T>(), request, grain: scalar)
        case .elu: return try unaryKernel(EluOp<T>(alpha: a, gamma: 1), request, grain: scalar)
        case .selu: return try unaryKernel(EluOp<T>(alpha: a, gamma: b), request, grain: scalar)
        case .softplus: return try unaryKernel(SoftplusOp<T>(), request, grain: scalar)
        case .softsign: return try unaryKernel(SoftsignOp<T>(), request)
        case .thresholdedRelu: return try unaryKernel(ThresholdedReluOp<T>(alpha: a), request)
        case .celu: return try unaryKernel(CeluOp<T>(alpha: a), request, grain: scalar)
        case .mish: return try unaryKernel(MishOp<T>(), request, grain: scalar)
        case .swish: return try unaryKernel(SwishOp<T>(alpha: a), request, grain: scalar)
        case .shrink: return try unaryKernel(ShrinkOp<T>(lambd: a, bias: b), request)
        }
    }

    func integer<T: FixedWidthInteger & ArithmeticElement>(_ type: T.Type, _ request: KernelRequest) throws
        -> any Kernel
    {
        guard kind == .relu else { throw request.unsupportedType(T.dtype) }
        return try unaryKernel(IntegerReluOp<T>(), request)
    }
}

/// max(x, 0), NaN kept.
struct ReluF: VectorUnaryOp {
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> { x.replacing(with: 0, where: x .< 0) }
}
struct LeakyReluF: VectorUnaryOp {
    let alpha: Float
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> {
        VectorMath.select(x .< 0, x * alpha, x)
    }
}
struct SigmoidF: VectorUnaryOp {
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> { VectorMath.sigmoid(x) }
}
struct TanhF: VectorUnaryOp {
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> { VectorMath.tanh(x) }
}
/// Clamps to [0, 1], NaN kept.
@inline(__always) func clamp01(_ v: SIMD8<Float>) -> SIMD8<Float> {
    v.replacing(with: 0, where: v .< 0).replacing(with: 1, where: v .> 1)
}
struct HardSigmoidF: VectorUnaryOp {
    let alpha: Float
    let beta: Float
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> { clamp01(x * alpha + beta) }
}
/// x * HardSigmoid(x) with alpha = 1/6, beta = 0.5.
struct HardSwishF: VectorUnaryOp {
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> { x * clamp01(x * (1 / 6 as Float) + 0.5) }
}
/// 0.5 x (1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3): the sigmoid form keeps its relative
/// accuracy for negative x.
struct GeluTanhF: VectorUnaryOp {
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let u = x * (x * x * 0.044_715 + 1) * 0.797_884_560_802_865_4
        return x * VectorMath.sigmoid(u + u)
    }
}
/// x Phi(x) = 0.5 x erfc(-x / sqrt 2).
struct GeluF: VectorUnaryOp {
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> { VectorMath.gelu(x) }
}

struct ReluOp<T: MathFloat>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { x < 0 ? 0 : x }
}
struct IntegerReluOp<T: FixedWidthInteger & ArithmeticElement>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { x < 0 ? 0 : x }
}
struct LeakyReluOp<T: MathFloat>: UnaryElementOp {
    let alpha: T
    @inline(__always) func callAsFunction(_ x: T) -> T { x < 0 ? alpha * x : x }
}
struct SigmoidOp<T: MathFloat>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T {
        if x >= 0 { return 1 / (1 + T.mathExp(-x)) }
        let e = T.mathExp(x)
        return e / (1 + e)
    }
}
struct TanhOp<T: MathFloat>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { T.mathTanh(x) }
}
@inline(__always) func clamp01<T: MathFloat>(_ v: T) -> T { v < 0 ? 0 : v > 1 ? 1 : v }
struct HardSigmoidOp<T: MathFloat>: UnaryElementOp {
    let alpha: T
    let beta: T
    @inline(__always) func callAsFunction(_ x: T) -> T { clamp01(alpha * x + beta) }
}
struct HardSwishOp<T: MathFloat>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { x * clamp01(x / 6 + 0.5) }
}
struct GeluOp<T: MathFloat>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T {
        if x.isInfinite { return x > 0 ? x : 0 }
        let d = Double(x)
        return T(0.5 * d * Double.mathErfc(-d * 0.707_106_781_186_547_524_4))
    }
}
struct GeluTanhOp<T: MathFloat>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T {
        let d = Double(x)
        let u = 0.797_884_560_802_865_4 * (d + 0.044_715 * d * d * d)
        return T(d * SigmoidOp<Double>()(2 * u))
    }
}
/// Elu (gamma = 1) and Selu: gamma * (x <= 0 ? alpha (e^x - 1) : x).
struct EluOp<T: MathFloat>: UnaryElementOp {
    let alpha: T
    let gamma: T
    @inline(__always) func callAsFunction(_ x: T) -> T { gamma * (x <= 0 ? alpha * T.mathExpm1(x) : x) }
}
/// log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|).
struct SoftplusOp<T: MathFloat>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T {
        x > 0 ? x + T.mathLog1p(T.mathExp(-x)) : T.mathLog1p(T.mathExp(x))
    }
}

/// x / (1 + |x|).
struct SoftsignOp<T: MathFloat>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { x / (1 + x.magnitude) }
}
/// x above alpha, else 0.
struct ThresholdedReluOp<T: MathFloat>: UnaryElementOp {
    let alpha: T
    @inline(__always) func callAsFunction(_ x: T) -> T { x > alpha ? x : 0 }
}
/// max(0, x) + min(0, alpha (e^(x / alpha) - 1)).
struct CeluOp<T: MathFloat>: UnaryElementOp {
    let alpha: T
    @inline(__always) func callAsFunction(_ x: T) -> T { x > 0 ? x : alpha * T.mathExpm1(x / alpha) }
}
/// x tanh(softplus(x)).
struct MishOp<T: MathFloat>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { x * T.mathTanh(SoftplusOp<T>()(x)) }
}
/// x sigmoid(alpha x).
struct SwishOp<T: MathFloat>: UnaryElementOp {
    let alpha: T
    @inline(__always) func callAsFunction(_ x: T) -> T { x / (1 + T.mathExp(-alpha * x)) }
}
/// x + bias below -lambd, x - bias above lambd, 0 between.
struct ShrinkOp<T: MathFloat>: UnaryElementOp {
    let lambd: T
    let bias: T
    @inline(__always) func callAsFunction(_ x: T) -> T { x < -lambd ? x + bias : x > lambd ? x - bias : 0 }
}

/// SwiGLU: the Swish gate of A times B (the gate rounded to the input's type first, as ONNX does).
struct SwiGLUFamily: KernelFamily {
    let alpha: Float
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        try binaryKernel(SwiGLUOp<T>(alpha: T(alpha)), request, grain: ElementCost.scalar)
    }
}
struct SwiGLUOp<T: MathFloat>: BinaryElementOp {
    let alpha: T
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { a * (1 / (1 + T.mathExp(-alpha * a))) * b }
}

// MARK: - Hardmax

/// Hardmax: 1 at the first largest element along `axis`, 0 elsewhere (NaN counts as largest, as in NumPy's argmax).
struct HardmaxFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let shape = request.outputs[0].shape
        let axis = try ShapeUtil.axis(try request.attributes.int("axis", default: -1), rank: max(shape.count, 1))
        let n = shape.isEmpty ? 1 : shape[axis]
        let inner = shape.isEmpty ? 1 : ShapeUtil.count(Array(shape[(axis + 1)...]))
        let outer = ShapeUtil.count(shape) / max(n * inner, 1)
        return ClosureKernel { inputs, outputs in
            let x = try presentInput(inputs, 0).pointer(as: T.self)
            let y = try firstOutput(outputs).pointer(as: T.self)
            Parallel.forEach(outer * inner, grain: max(1, 4096 / max(n, 1))) { range in
                for line in range {
                    let base = (line / inner) * n * inner + line % inner
                    var best = 0
                    for k in 0..<n {
                        let v = x[base + k * inner]
                        let top = x[base + best * inner]
                        if !top.isNaN && (v > top || v.isNaN) { best = k }
                        y[base + k * inner] = 0
                    }
                    if n > 0 { y[base + best * inner] = 1 }
                }
            }
        }
    }
}

// MARK: - Clip

/// The first element of `tensor` converted to `T`.
func firstElement<T: TensorElement>(of tensor: Tensor, as: T.Type) throws -> T {
    guard tensor.count >= 1 else { throw AidgeError.shapeMismatch("expected a scalar, got an empty tensor") }
    if tensor.dtype == T.dtype { return tensor.pointer(as: T.self).pointee }
    return try tensor.dtype.visit(FirstElementReader<T>(pointer: UnsafeRawPointer(tensor.rawPointer)))
}

private struct FirstElementReader<T: TensorElement>: DTypeVisitor {
    let pointer: UnsafeRawPointer
    func visit<S: TensorElement>(_: S.Type) throws -> T {
        T(converting: pointer.assumingMemoryBound(to: S.self).pointee)
    }
}

/// min(max(x, lo), hi): NaN kept; when lo > hi every element becomes hi, as ONNX says.
struct ClipOp<T: ArithmeticElement>: UnaryElementOp {
    let lo: T
    let hi: T
    @inline(__always) func callAsFunction(_ x: T) -> T {
        let v = x < lo ? lo : x
        return v > hi ? hi : v
    }
}
struct ClipF: VectorUnaryOp {
    let lo: Float
    let hi: Float
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let v = x.replacing(with: lo, where: x .< lo)
        return v.replacing(with: hi, where: v .> hi)
    }
}

/// Clip reads its optional bounds when it runs (they may be computed by the graph).
struct ClipFamily: KernelFamily {
    func float32(_ request: KernelRequest) throws -> any Kernel {
        let count = request.outputs[0].count
        return ClosureKernel { inputs, outputs in
            let (lo, hi) = try clipBounds(inputs, Float.self)
            let op = ClipF(lo: lo, hi: hi)
            let x = try presentInput(inputs, 0).pointer(as: Float.self)
            let o = try firstOutput(outputs).pointer(as: Float.self)
            Parallel.forEach(count, grain: ElementCost.cheap) { op.run(x + $0.lowerBound, o + $0.lowerBound, $0.count) }
        }
    }
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        try generic(T.self, request)
    }
    func integer<T: FixedWidthInteger & ArithmeticElement>(_ type: T.Type, _ request: KernelRequest) throws
        -> any Kernel
    {
        try generic(T.self, request)
    }
    private func generic<T: ArithmeticElement>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let count = request.outputs[0].count
        return ClosureKernel { inputs, outputs in
            let (lo, hi) = try clipBounds(inputs, T.self)
            let op = ClipOp(lo: lo, hi: hi)
            let x = try presentInput(inputs, 0).pointer(as: T.self)
            let o = try firstOutput(outputs).pointer(as: T.self)
            Parallel.forEach(count, grain: ElementCost.cheap) { op.run(x + $0.lowerBound, o + $0.lowerBound, $0.count) }
        }
    }
}

private func clipBounds<T: ArithmeticElement>(_ inputs: [Tensor?], _: T.Type) throws -> (T, T) {
    let lo = try inputs.count > 1 ? inputs[1].map { try firstElement(of: $0, as: T.self) } : nil
    let hi = try inputs.count > 2 ? inputs[2].map { try firstElement(of: $0, as: T.self) } : nil
    return (lo ?? T.arithLowest, hi ?? T.arithHighest)
}

// MARK: - PRelu

struct PReluF: VectorBinaryOp {
    @inline(__always) func vector(_ x: SIMD8<Float>, _ slope: SIMD8<Float>) -> SIMD8<Float> {
        VectorMath.select(x .< 0, x * slope, x)
    }
}
struct PReluOp<T: ArithmeticElement>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ x: T, _ slope: T) -> T { x < T.arithZero ? T.arithMultiply(x, slope) : x }
}

struct PReluFamily: KernelFamily {
    func float32(_ request: KernelRequest) throws -> any Kernel { try binaryKernel(PReluF(), request) }
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        try binaryKernel(PReluOp<T>(), request)
    }
    func integer<T: FixedWidthInteger & ArithmeticElement>(_ type: T.Type, _ request: KernelRequest) throws
        -> any Kernel
    {
        try binaryKernel(PReluOp<T>(), request)
    }
}
