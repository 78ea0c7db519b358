import AidgeCore

/// One element-wise computation: an expression of the inputs `a`, `b`, `c` (loaded in their compute types)
/// whose result is stored in the output's type. `@name(` calls a math function in the compute precision
/// (`expf` in float, `exp` in double).
struct ElementwiseExpression {
    let text: String
    /// The type the expression is computed in; nil: the first input's.
    var compute: DType?

    init(_ text: String, compute: DType? = nil) {
        self.text = text
        self.compute = compute
    }
}

/// A float literal in kernel source, exact in float (its bits when it has no finite decimal form).
func floatLiteral(_ value: Float) -> String {
    value.isFinite ? "\(value)f" : "__uint_as_float(\(value.bitPattern)u)"
}

/// An element-wise kernel with NumPy broadcasting: one thread per output element in a grid-stride loop; an
/// input of the output's shape is read at the same index, any other through its broadcast strides.
final class ElementwiseKernel: Kernel {
    private let cuda: CUDADevice
    private let function: OpaquePointer?
    private let count: Int
    private let shape: [Int]
    private let broadcastStrides: [[Int]?]
    private let name: String

    init(_ request: KernelRequest, _ expression: ElementwiseExpression) throws {
        cuda = try CUDABackend.device()
        let output = request.outputs[0]
        count = output.count
        shape = output.shape
        name = "\(request.op.type) (node \(request.nodeName))"
        // Absent optional inputs (Clip's bounds) are skipped: the letters name the present ones in order.
        let inputs = request.inputs.compactMap { $0 }
        guard inputs.count <= 3 else {
            throw AidgeError.unsupported("\(request.op.type) on CUDA takes at most 3 inputs, got \(inputs.count)")
        }
        guard output.shape.count <= maxKernelRank else {
            throw AidgeError.unsupported("\(request.op.type) on CUDA takes at most \(maxKernelRank) dimensions")
        }
        broadcastStrides = inputs.map { input in
            input.shape == output.shape ? nil : Self.broadcastStrides(of: input.shape, to: output.shape)
        }
        let types = try inputs.map { try ElementType.of($0.dtype, for: request.op.type) }
        let out = try ElementType.of(output.dtype, for: request.op.type)
        let compute = try ElementType.of(expression.compute ?? inputs.first?.dtype ?? output.dtype, for: request.op.type)
        let isDouble = compute.compute == "double"
        var body = expression.text
        for function in ["exp", "log", "sqrt", "tanh", "erf", "sin", "cos", "floor", "ceil", "nearbyint", "fabs",
                         "pow", "fmax", "fmin", "log1p", "expm1", "fmod", "copysign", "trunc", "tan", "asin", "acos",
                         "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "rint"] {
            body = body.replacing("@\(function)(", with: isDouble ? "\(function)(" : "\(function)f(")
        }
        body = body.replacing("COMPUTE", with: compute.compute)
        let letters = ["a", "b", "c"]
        var parameters: [String] = []
        var loads: [String] = []
        for (k, type) in types.enumerated() {
            parameters.append("const \(type.stored)* __restrict__ in\(k)")
            let at = broadcastStrides[k] == nil ? "i" : "strided_offset(i, rank, shape, s\(k))"
            loads.append("\(compute.compute) \(letters[k]) = (\(compute.compute))\(type.load("in\(k)[\(at)]"));")
        }
        let source = indexingSource + """
            extern "C" __global__ void elementwise(\(parameters.joined(separator: ", ")),
                    \(out.stored)* __restrict__ out, i64 count, int rank, dims shape, dims s0, dims s1, dims s2) {
                for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < count; i += (i64)gridDim.x * blockDim.x) {
                    \(loads.joined(separator: "\n            "))
                    out[i] = \(out.store("(\(body))"));
                }
            }
            """
        function = try cuda.function("elementwise", in: source)
    }

    /// Strides (in elements) that read `shape` as if broadcast to `target`: 0 along broadcast dimensions.
    static func broadcastStrides(of shape: [Int], to target: [Int]) -> [Int] {
        let aligned = [Int](repeating: 1, count: target.count - shape.count) + shape
        let strides = ShapeUtil.contiguousStrides(aligned)
        return zip(aligned, strides).map { $0 == 1 ? 0 : $1 }
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard count > 0 else { return }
        try cuda.makeCurrent()
        let present = inputs.compactMap { $0 }
        guard present.count == broadcastStrides.count else { throw AidgeError.invalidArgument("\(name): missing input") }
        var arguments = present.map(KernelArgument.tensor)
        arguments += [.tensor(outputs[0]), .int64(Int64(count)), .int32(Int32(shape.count)), .dims(shape)]
        for k in 0..<3 { arguments.append(.dims(k < broadcastStrides.count ? broadcastStrides[k] ?? [] : [])) }
        try cuda.launch(
            function, grid: (cuda.blocks(for: count), 1, 1), block: (256, 1, 1), arguments, name: name)
    }
}

/// The element-wise operators, by ONNX type: each an expression, with its attributes read when a kernel is
/// made.
func registerElementwiseKernels(_ registry: KernelRegistry) {
    func register(_ type: String, _ expression: @escaping @Sendable (KernelRequest) throws -> ElementwiseExpression) {
        registry.register(type, backend: CUDABackend.name) { request in
            try ElementwiseKernel(request, try expression(request))
        }
    }
    func fixed(_ type: String, _ text: String) { register(type) { _ in ElementwiseExpression(text) } }
    // Arithmetic, comparisons and logic.
    fixed("Add", "a + b")
    fixed("Sub", "a - b")
    fixed("Mul", "a * b")
    fixed("Div", "a / b")
    fixed("Pow", "(COMPUTE)@pow(a, b)")
    fixed("Equal", "a == b")
    fixed("Less", "a < b")
    fixed("Greater", "a > b")
    fixed("LessOrEqual", "a <= b")
    fixed("GreaterOrEqual", "a >= b")
    fixed("And", "a && b")
    fixed("Or", "a || b")
    fixed("Xor", "a != b")
    fixed("Not", "!a")
    register("Where") { ElementwiseExpression("a ? b : c", compute: try $0.input(1).dtype) }
    // The variadic ones, for 1 to 3 inputs.
    let variadic: [(String, @Sendable (String, String) -> String, @Sendable (String, Int) -> String)] = [
        ("Sum", { "\($0) + \($1)" }, { e, _ in e }), ("Mean", { "\($0) + \($1)" }, { "(\($0)) / \($1)" }),
        ("Max", { "((\($1) > \($0) || \($1) != \($1)) ? \($1) : \($0))" }, { e, _ in e }),
        ("Min", { "((\($1) < \($0) || \($1) != \($1)) ? \($1) : \($0))" }, { e, _ in e }),
    ]
    for (type, combine, finish) in variadic {
        register(type) { request in
            let count = request.inputs.count
            guard (1...3).contains(count) else {
                throw AidgeError.unsupported("\(type) on CUDA takes 1 to 3 inputs, got \(count)")
            }
            let text = ["b", "c"].prefix(count - 1).reduce("a") { combine($0, $1) }
            return ElementwiseExpression(finish(text, count))
        }
    }
    register("Mod") { request in
        let fmod = try request.attributes.int("fmod", default: 0) == 1
        let dtype = try request.input(0).dtype
        if dtype.isFloatingPoint {
            // Without fmod, NumPy's mod: the divisor's sign, a zero remainder signed like it.
            return ElementwiseExpression(
                fmod ? "@fmod(a, b)" : "(@fmod(a, b) == 0 ? (b < 0 ? -(COMPUTE)0 : (COMPUTE)0) : "
                    + "(((@fmod(a, b) < 0) != (b < 0)) ? @fmod(a, b) + b : @fmod(a, b)))")
        }
        // Integers: C's remainder has the dividend's sign; without fmod the result takes the divisor's.
        return ElementwiseExpression(
            fmod ? "(b == 0 ? a - a : a % b)" : "(b == 0 ? a - a : ((a % b != 0 && ((a % b < 0) != (b < 0))) ? a % b + b : a % b))")
    }
    fixed("PRelu", "a < 0 ? a * b : a")
    // Unary math.
    for (type, text) in [
        ("Neg", "-a"), ("Abs", "a < 0 ? -a : a"), ("Sign", "(COMPUTE)((a > 0) - (a < 0))"), ("Floor", "@floor(a)"),
        ("Ceil", "@ceil(a)"), ("Round", "@nearbyint(a)"), ("Sqrt", "@sqrt(a)"), ("Reciprocal", "1 / a"),
        ("Exp", "@exp(a)"), ("Log", "@log(a)"), ("Erf", "@erf(a)"), ("Sin", "@sin(a)"), ("Cos", "@cos(a)"),
        ("Tan", "@tan(a)"), ("Asin", "@asin(a)"), ("Acos", "@acos(a)"), ("Atan", "@atan(a)"), ("Sinh", "@sinh(a)"),
        ("Cosh", "@cosh(a)"), ("Asinh", "@asinh(a)"), ("Acosh", "@acosh(a)"), ("Atanh", "@atanh(a)"),
        ("IsNaN", "a != a"),
        // Activations.
        ("Relu", "a > 0 ? a : (COMPUTE)0"), ("Sigmoid", "1 / (1 + @exp(-a))"), ("Tanh", "@tanh(a)"),
        ("HardSwish", "a * @fmin(@fmax(a / 6 + (COMPUTE)0.5, (COMPUTE)0), (COMPUTE)1)"),
        ("Softplus", "a > 20 ? a : @log1p(@exp(a))"), ("Softsign", "a / (1 + (a < 0 ? -a : a))"),
        ("Mish", "a * @tanh(a > 20 ? a : @log1p(@exp(a)))"), ("Identity", "a"),
    ] {
        fixed(type, text)
    }
    register("Gelu") { request in
        switch try request.attributes.string("approximate", default: "none") {
        case "none": return ElementwiseExpression("(COMPUTE)0.5 * a * (1 + @erf(a * (COMPUTE)0.70710678118654752))")
        case "tanh":
            return ElementwiseExpression(
                "(COMPUTE)0.5 * a * (1 + @tanh((COMPUTE)0.79788456080286536 * (a + (COMPUTE)0.044715 * a * a * a)))")
        default: throw AidgeError.invalidModel("Gelu attribute 'approximate' must be \"none\" or \"tanh\"")
        }
    }
    register("LeakyRelu") { request in
        let alpha = floatLiteral(try request.attributes.float("alpha", default: 0.01))
        return ElementwiseExpression("a < 0 ? a * (COMPUTE)\(alpha) : a")
    }
    register("Elu") { request in
        let alpha = floatLiteral(try request.attributes.float("alpha", default: 1))
        return ElementwiseExpression("a < 0 ? (COMPUTE)\(alpha) * @expm1(a) : a")
    }
    register("HardSigmoid") { request in
        let alpha = floatLiteral(try request.attributes.float("alpha", default: 0.2))
        let beta = floatLiteral(try request.attributes.float("beta", default: 0.5))
        return ElementwiseExpression("@fmin(@fmax((COMPUTE)\(alpha) * a + (COMPUTE)\(beta), (COMPUTE)0), (COMPUTE)1)")
    }
    register("Clip") { request in
        // The bounds are tensors (absent ones are skipped): b is the first present, c the second.
        let present = (1..<3).map { $0 < request.inputs.count && request.inputs[$0] != nil }
        var text = "a"
        if present[0] { text = "(\(text) < b ? b : \(text))" }
        if present[1] { let high = present[0] ? "c" : "b"; text = "(\(text) > \(high) ? \(high) : \(text))" }
        return ElementwiseExpression(text)
    }
    register("Cast") { request in
        let to = request.outputs[0].dtype
        guard to != .string, try request.input(0).dtype != .string else {
            throw AidgeError.unsupportedType("Cast to or from string runs on the CPU backend only")
        }
        // Computed in the target's compute type, so the store converts once. Floats saturate into integers and
        // NaN gives 0, as on the CPU (`saturatingInteger`).
        let target = try ElementType.of(to, for: "Cast")
        let from = try request.input(0).dtype
        // The range as integer literals, compared in double (where the largest may round up: clamp first).
        let limits: [DType: (String, String)] = [
            .int8: ("-128", "127"), .int16: ("-32768", "32767"), .int32: ("-2147483647 - 1", "2147483647"),
            .int64: ("-9223372036854775807ll - 1", "9223372036854775807ll"), .uint8: ("0", "255"),
            .uint16: ("0", "65535"), .uint32: ("0", "4294967295u"), .uint64: ("0", "18446744073709551615ull"),
        ]
        guard from.isFloatingPoint, let (low, high) = limits[to] else {
            return ElementwiseExpression("(\(target.compute))a", compute: from)
        }
        let t = target.stored
        return ElementwiseExpression(
            "a != a ? (\(t))0 : ((double)a <= (double)(\(low)) ? (\(t))(\(low)) : ((double)a >= (double)(\(high)) ? "
                + "(\(t))(\(high)) : (\(t))a))", compute: from)
    }
}
