import AidgeCore

/// The backward of an element-wise operator: each differentiable input's gradient is an expression of the inputs
/// (`a`, `b`, `c`, read through their broadcast strides), the output `y` and its gradient `g`, evaluated over the
/// output's shape and added into the input's gradient, summed over the dimensions broadcasting expanded.
final class ElementwiseGradientKernel: GradientKernel {
    private let cuda: CUDADevice
    /// Per input: the kernel that adds (same shape) or writes (broadcast, then `reduce`) its gradient term.
    private let terms: [(function: OpaquePointer?, reduce: BroadcastReduction?)?]
    private let count: Int
    private let shape: [Int]
    private let broadcastStrides: [[Int]]
    private let output: ValueInfo
    private let name: String

    init(_ request: KernelRequest, _ expressions: [Int: String]) throws {
        cuda = try CUDABackend.device()
        name = "\(request.op.type) (node \(request.nodeName))"
        output = request.outputs[0]
        count = output.count
        shape = output.shape
        let inputs = request.inputs.compactMap { $0 }
        guard inputs.count == request.inputs.count, inputs.count <= 3, shape.count <= maxKernelRank else {
            throw AidgeError.unsupported("\(name): no CUDA backward for this form")
        }
        let target = request.outputs[0].shape
        broadcastStrides = inputs.map { ElementwiseKernel.broadcastStrides(of: $0.shape, to: target) }
        let out = try ElementType.of(output.dtype, for: request.op.type)
        let c = out.compute
        var terms: [(OpaquePointer?, BroadcastReduction?)?] = []
        for (k, input) in inputs.enumerated() {
            guard let text = expressions[k] else {
                terms.append(nil)
                continue
            }
            let element = try ElementType.of(input.dtype, for: request.op.type)
            guard element.isFloatingPoint else {
                terms.append(nil)
                continue
            }
            var body = text
            for function in ["exp", "log", "sqrt", "tanh", "erf", "fabs"] {
                body = body.replacing("@\(function)(", with: c == "double" ? "\(function)(" : "\(function)f(")
            }
            body = body.replacing("COMPUTE", with: c)
            let same = input.shape == output.shape
            var loads: [String] = []
            var parameters: [String] = []
            for (j, other) in inputs.enumerated() {
                let type = try ElementType.of(other.dtype, for: request.op.type)
                parameters.append("const \(type.stored)* __restrict__ in\(j)")
                let letter = ["a", "b", "c"][j]
                loads.append("\(c) \(letter) = (\(c))\(type.load("in\(j)[strided_offset(i, rank, shape, s\(j))]"));")
            }
            let store = same
                ? "t[i] = \(element.store("(\(c))\(element.load("t[i]")) + (\(body))"))"
                : "t[i] = \(out.store("(\(body))"))"
            let source = indexingSource + """
                extern "C" __global__ void gradient(\(parameters.joined(separator: ", ")),
                        const \(out.stored)* __restrict__ out, const \(out.stored)* __restrict__ dy,
                        \(same ? element.stored : out.stored)* t, i64 count, int rank, dims shape, dims s0, dims s1, dims s2) {
                    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < count; i += (i64)gridDim.x * blockDim.x) {
                        \(loads.joined(separator: "\n                "))
                        \(c) y = (\(c))\(out.load("out[i]"));
                        \(c) g = (\(c))\(out.load("dy[i]"));
                        \(store);
                    }
                }
                """
            terms.append((try cuda.function("gradient", in: source), same ? nil : try BroadcastReduction(cuda, from: output, to: input)))
        }
        self.terms = terms
    }

    func backward(_ pass: BackwardPass) throws {
        guard let dy = pass.outputGradient(0) else { return }
        try cuda.makeCurrent()
        let inputs = try (0..<broadcastStrides.count).map { try pass.input($0) }
        for (k, term) in terms.enumerated() {
            guard let term, let target = pass.inputGradient(k) else { continue }
            // A broadcast input's term is written over the output's shape first, then summed into its gradient.
            let scratch = term.reduce == nil ? nil : try CUDABackend.memory().allocate(byteCount: output.count * output.dtype.byteSize)
            let destination = try scratch.map { try Tensor(storage: $0, dtype: output.dtype, shape: output.shape) } ?? target
            var arguments = inputs.map(KernelArgument.tensor)
            arguments += [.tensor(pass.outputs[0]), .tensor(dy), .tensor(destination), .int64(Int64(count)),
                          .int32(Int32(shape.count)), .dims(shape)]
            for j in 0..<3 { arguments.append(.dims(j < broadcastStrides.count ? broadcastStrides[j] : [])) }
            try cuda.launch(term.function, grid: (cuda.blocks(for: count), 1, 1), block: (256, 1, 1), arguments, name: name)
            try term.reduce?.run(on: cuda, destination, into: target)
        }
    }
}

/// Adds a tensor of a broadcast shape into a tensor of the shape that was broadcast, summing over the expanded
/// dimensions: one thread per target element.
struct BroadcastReduction {
    private let function: OpaquePointer?
    private let arguments: [KernelArgument]
    private let count: Int

    init(_ cuda: CUDADevice, from source: ValueInfo, to target: ValueInfo) throws {
        let aligned = [Int](repeating: 1, count: source.shape.count - target.shape.count) + target.shape
        let strides = ShapeUtil.contiguousStrides(source.shape)
        let kept = source.shape.indices.filter { aligned[$0] != 1 || source.shape[$0] == 1 }
        let folded = source.shape.indices.filter { aligned[$0] == 1 && source.shape[$0] != 1 }
        let element = try ElementType.of(target.dtype, for: "a gradient")
        let c = element.compute
        count = target.count
        function = try cuda.function("reduce_into", in: indexingSource + """
            extern "C" __global__ void reduce_into(const \(element.stored)* __restrict__ g, \(element.stored)* t, i64 count,
                    int kept_rank, dims kept_shape, dims kept_strides, i64 n, int folded_rank, dims folded_shape,
                    dims folded_strides) {
                for (i64 o = blockIdx.x * (i64)blockDim.x + threadIdx.x; o < count; o += (i64)gridDim.x * blockDim.x) {
                    i64 base = strided_offset(o, kept_rank, kept_shape, kept_strides);
                    \(c) acc = 0;
                    for (i64 r = 0; r < n; ++r) {
                        acc += (\(c))\(element.load("g[base + strided_offset(r, folded_rank, folded_shape, folded_strides)]"));
                    }
                    t[o] = \(element.store("(\(c))\(element.load("t[o]")) + acc"));
                }
            }
            """)
        arguments = [
            .int64(Int64(count)), .int32(Int32(kept.count)), .dims(kept.map { source.shape[$0] }),
            .dims(kept.map { strides[$0] }), .int64(Int64(folded.reduce(1) { $0 * source.shape[$1] })),
            .int32(Int32(folded.count)), .dims(folded.map { source.shape[$0] }), .dims(folded.map { strides[$0] }),
        ]
    }

    func run(on cuda: CUDADevice, _ gradient: Tensor, into target: Tensor) throws {
        guard count > 0 else { return }
        try cuda.launch(
            function, grid: (cuda.blocks(for: count), 1, 1), block: (256, 1, 1),
            [.tensor(gradient), .tensor(target)] + arguments, name: "a broadcast gradient's sum")
    }
}

/// The view operators' backward: the gradient's elements, unchanged, added into the input's.
final class ViewGradientKernel: GradientKernel {
    private let memory: CUDAMemory

    init() throws { memory = try CUDABackend.memory() }

    func backward(_ pass: BackwardPass) throws {
        guard let dy = pass.outputGradient(0), let target = pass.inputGradient(0) else { return }
        try memory.accumulate(try dy.contiguousOnDevice().reshaped(target.shape), into: target)
    }
}

func registerElementwiseGradients(_ registry: KernelRegistry) {
    func register(_ type: String, _ expressions: @escaping @Sendable (KernelRequest) throws -> [Int: String]) {
        registry.registerGradient(type, backend: CUDABackend.name) { try ElementwiseGradientKernel($0, try expressions($0)) }
    }
    let fixed: [(String, [Int: String])] = [
        ("Add", [0: "g", 1: "g"]), ("Sub", [0: "g", 1: "-g"]), ("Mul", [0: "g * b", 1: "g * a"]),
        ("Div", [0: "g / b", 1: "-g * a / (b * b)"]), ("Neg", [0: "-g"]), ("Identity", [0: "g"]),
        ("Relu", [0: "a > 0 ? g : (COMPUTE)0"]), ("Sigmoid", [0: "g * y * (1 - y)"]), ("Tanh", [0: "g * (1 - y * y)"]),
        ("Exp", [0: "g * y"]), ("Log", [0: "g / a"]), ("Sqrt", [0: "g / (2 * y)"]), ("Reciprocal", [0: "-g * y * y"]),
        ("Abs", [0: "g * (COMPUTE)((a > 0) - (a < 0))"]), ("Erf", [0: "g * (COMPUTE)1.1283791670955126 * @exp(-a * a)"]),
        ("Softplus", [0: "g / (1 + @exp(-a))"]),
        ("Where", [1: "a != 0 ? g : (COMPUTE)0", 2: "a != 0 ? (COMPUTE)0 : g"]),
    ]
    for (type, expressions) in fixed { register(type) { _ in expressions } }
    register("LeakyRelu") { request in
        let alpha = floatLiteral(try request.attributes.float("alpha", default: 0.01))
        return [0: "a < 0 ? g * (COMPUTE)\(alpha) : g"]
    }
    register("Gelu") { request in
        switch try request.attributes.string("approximate", default: "none") {
        case "none":
            return [0: "g * ((COMPUTE)0.5 * (1 + @erf(a * (COMPUTE)0.70710678118654752)) + a * (COMPUTE)0.39894228040143268 * @exp((COMPUTE)-0.5 * a * a))"]
        default:
            return [0: "g * ((COMPUTE)0.5 * (1 + @tanh((COMPUTE)0.79788456080286536 * (a + (COMPUTE)0.044715 * a * a * a))) + (COMPUTE)0.5 * a * (1 - @tanh((COMPUTE)0.79788456080286536 * (a + (COMPUTE)0.044715 * a * a * a)) * @tanh((COMPUTE)0.79788456080286536 * (a + (COMPUTE)0.044715 * a * a * a))) * (COMPUTE)0.79788456080286536 * (1 + (COMPUTE)0.134145 * a * a))"]
        }
    }
    for type in ["Reshape", "Flatten", "Squeeze", "Unsqueeze"] {
        registry.registerGradient(type, backend: CUDABackend.name) { _ in try ViewGradientKernel() }
    }
    for type in ["Transpose", "Concat", "Expand"] {
        registry.registerGradient(type, backend: CUDABackend.name) { try MovementGradientKernel($0) }
    }
}

/// Transpose, Concat and Expand backward: the output gradient (or a window of it, or its sum over the broadcast
/// dimensions) added into each input's gradient.
final class MovementGradientKernel: GradientKernel {
    private let memory: CUDAMemory
    private let type: String
    private let permutation: [Int]
    private let axis: Int
    private let reduction: BroadcastReduction?

    init(_ request: KernelRequest) throws {
        memory = try CUDABackend.memory()
        type = request.op.type
        let rank = request.outputs[0].shape.count
        permutation = type == "Transpose"
            ? try OperatorSchema.transposePermutation(request.attributes, rank: try request.input(0).shape.count) : []
        axis = type == "Concat" ? try ShapeUtil.axis(try request.attributes.int("axis"), rank: rank) : 0
        reduction = type == "Expand"
            ? try BroadcastReduction(memory.cuda, from: request.outputs[0], to: try request.input(0)) : nil
    }

    func readsInput(_ index: Int) -> Bool { false }
    func readsOutput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        guard let dy = pass.outputGradient(0) else { return }
        switch type {
        case "Transpose":
            guard let dx = pass.inputGradient(0) else { return }
            var inverse = [Int](repeating: 0, count: permutation.count)
            for (k, p) in permutation.enumerated() { inverse[p] = k }
            try memory.accumulate(try dy.permuted(inverse), into: dx)
        case "Concat":
            var start = 0
            for k in pass.inputs.indices {
                guard let input = pass.inputs[k] else { continue }
                defer { start += input.shape[axis] }
                guard let dx = pass.inputGradient(k), input.count > 0 else { continue }
                let window = try Tensor(
                    storage: dy.storage, dtype: dy.dtype, shape: input.shape, strides: dy.strides,
                    offset: dy.offset + start * dy.strides[axis])
                try memory.accumulate(window, into: dx)
            }
        default:
            guard let dx = pass.inputGradient(0) else { return }
            try memory.cuda.makeCurrent()
            try reduction?.run(on: memory.cuda, dy, into: dx)
        }
    }
}
