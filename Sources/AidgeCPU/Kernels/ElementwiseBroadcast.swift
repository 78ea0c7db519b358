import AidgeCore

/// How the elements of up to three inputs line up with the output's under NumPy broadcasting.
///
/// Dimensions of size 1 are dropped and neighbouring dimensions merged wherever every operand allows it, so equal
/// shapes become one flat run, `[N,C,H,W] + [1,C,1,1]` becomes `N x C` runs of `H*W` against one value, and the
/// innermost run has stride 0 or 1 for each operand: the hot loops never compute an index per element.
struct BroadcastLayout {
    /// Elements of the output.
    let count: Int
    /// Length of the innermost run.
    let inner: Int
    /// Sizes of the merged outer dimensions, outermost first.
    let outer: [Int]
    /// For each of the three operand slots: its stride along each outer dimension (0 where it broadcasts).
    let strides: [[Int]]
    /// For each operand slot: 1 when it advances along the innermost run, 0 when it repeats one value there.
    let innerStrides: [Int]

    /// The layout of an output of shape `output` computed from inputs of shapes `inputs` (at most three, each
    /// broadcastable to `output`).
    init(output: [Int], inputs: [[Int]]) {
        let rank = output.count
        count = ShapeUtil.count(output)
        var operandStrides: [[Int]] = []
        for shape in inputs {
            let aligned = [Int](repeating: 1, count: max(rank - shape.count, 0)) + shape.suffix(rank)
            let contiguous = ShapeUtil.contiguousStrides(aligned)
            operandStrides.append((0..<rank).map { aligned[$0] == 1 ? 0 : contiguous[$0] })
        }
        while operandStrides.count < 3 { operandStrides.append([Int](repeating: 0, count: rank)) }
        // Merge from the innermost dimension outwards.
        var sizes: [Int] = []  // innermost first
        var merged: [[Int]] = [[], [], []]
        for d in stride(from: rank - 1, through: 0, by: -1) where output[d] != 1 {
            if let last = sizes.last,
                (0..<3).allSatisfy({ operandStrides[$0][d] == merged[$0][merged[$0].count - 1] * last })
            {
                sizes[sizes.count - 1] = last * output[d]
            } else {
                sizes.append(output[d])
                for k in 0..<3 { merged[k].append(operandStrides[k][d]) }
            }
        }
        if sizes.isEmpty {
            sizes = [1]
            merged = [[0], [0], [0]]
        }
        inner = sizes[0]
        innerStrides = merged.map { $0[0] }
        outer = Array(sizes.dropFirst().reversed())
        strides = merged.map { Array($0.dropFirst().reversed()) }
    }

    /// True when every operand is either the full output in order or a single value.
    var isFlat: Bool { outer.isEmpty }

    /// Calls `body(outputOffset, offset0, offset1, offset2, length)` for each innermost run of the output
    /// elements in `range`, in order; offsets are in elements. Not inlined: the closure is called once per run,
    /// and each element operation specialises only its inner loops.
    @inline(never)
    func forEachRun(_ range: Range<Int>, _ body: (Int, Int, Int, Int, Int) -> Void) {
        if range.isEmpty { return }
        let inner = self.inner
        let (is0, is1, is2) = (innerStrides[0], innerStrides[1], innerStrides[2])
        if outer.isEmpty {
            let start = range.lowerBound
            body(start, start * is0, start * is1, start * is2, range.count)
            return
        }
        let rankOuter = outer.count
        let s0 = strides[0]
        let s1 = strides[1]
        let s2 = strides[2]
        withUnsafeTemporaryAllocation(of: Int.self, capacity: rankOuter) { index in
            var position = range.lowerBound
            var row = position / inner
            var column = position - row * inner
            var (o0, o1, o2) = (0, 0, 0)
            for d in stride(from: rankOuter - 1, through: 0, by: -1) {
                let i = row % outer[d]
                row /= outer[d]
                index[d] = i
                o0 += i * s0[d]
                o1 += i * s1[d]
                o2 += i * s2[d]
            }
            let end = range.upperBound
            while true {
                let n = min(inner - column, end - position)
                body(position, o0 + column * is0, o1 + column * is1, o2 + column * is2, n)
                position += n
                if position >= end { return }
                column = 0
                var d = rankOuter - 1
                while d >= 0 {
                    index[d] += 1
                    o0 += s0[d]
                    o1 += s1[d]
                    o2 += s2[d]
                    if index[d] < outer[d] { break }
                    index[d] = 0
                    o0 -= outer[d] * s0[d]
                    o1 -= outer[d] * s1[d]
                    o2 -= outer[d] * s2[d]
                    d -= 1
                }
            }
        }
    }
}

/// Elements per parallel chunk for element-wise work of a given cost (each chunk is tens of microseconds).
enum ElementCost {
    /// A few instructions per element (add, max, compare): memory bound.
    static let cheap = 1 << 16
    /// A vectorised polynomial per element (exp, tanh, sigmoid).
    static let vector = 1 << 14
    /// A scalar libm call per element (erf, sin, pow).
    static let scalar = 1 << 12
}

// MARK: - SIMD helpers

@inline(__always) func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always) func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}

/// The first `n` (< 8) elements at `p`, the other lanes zero.
@inline(__always) func loadPartial8(_ p: UnsafePointer<Float>, _ n: Int) -> SIMD8<Float> {
    var v = SIMD8<Float>()
    for j in 0..<n { v[j] = p[j] }
    return v
}

@inline(__always) func storePartial8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
    for j in 0..<n { p[j] = v[j] }
}

// MARK: - Binary operations

/// An element-wise function of two values, applied to runs of elements.
protocol BinaryElementOp {
    associatedtype A: TensorElement
    associatedtype B: TensorElement
    associatedtype Output: TensorElement
    func callAsFunction(_ a: A, _ b: B) -> Output
    /// Writes `o[i] = f(a[i * sa], b[i * sb])` for `i < n`; `sa` and `sb` are 0 or 1.
    func run(
        _ a: UnsafePointer<A>, _ sa: Int, _ b: UnsafePointer<B>, _ sb: Int, _ o: UnsafeMutablePointer<Output>,
        _ n: Int)
}

extension BinaryElementOp {
    @inline(__always)
    func run(
        _ a: UnsafePointer<A>, _ sa: Int, _ b: UnsafePointer<B>, _ sb: Int, _ o: UnsafeMutablePointer<Output>,
        _ n: Int
    ) {
        switch (sa, sb) {
        case (1, 1): for i in 0..<n { o[i] = self(a[i], b[i]) }
        case (1, _):
            let y = b[0]
            for i in 0..<n { o[i] = self(a[i], y) }
        case (_, 1):
            let x = a[0]
            for i in 0..<n { o[i] = self(x, b[i]) }
        default:
            let v = self(a[0], b[0])
            for i in 0..<n { o[i] = v }
        }
    }
}

/// A float32 binary function with an 8-lane form: runs are processed 8 elements at a time.
protocol VectorBinaryOp: BinaryElementOp where A == Float, B == Float, Output == Float {
    func vector(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float>
}

extension VectorBinaryOp {
    @inline(__always)
    func callAsFunction(_ a: Float, _ b: Float) -> Float {
        vector(SIMD8(repeating: a), SIMD8(repeating: b))[0]
    }

    @inline(__always)
    func run(
        _ a: UnsafePointer<Float>, _ sa: Int, _ b: UnsafePointer<Float>, _ sb: Int, _ o: UnsafeMutablePointer<Float>,
        _ n: Int
    ) {
        let body = n & ~7
        let rest = n - body
        switch (sa, sb) {
        case (1, 1):
            var i = 0
            while i < body {
                store8(vector(load8(a + i), load8(b + i)), o + i)
                i += 8
            }
            if rest > 0 { storePartial8(vector(loadPartial8(a + body, rest), loadPartial8(b + body, rest)), o + body, rest) }
        case (1, _):
            let y = SIMD8<Float>(repeating: b[0])
            var i = 0
            while i < body {
                store8(vector(load8(a + i), y), o + i)
                i += 8
            }
            if rest > 0 { storePartial8(vector(loadPartial8(a + body, rest), y), o + body, rest) }
        case (_, 1):
            let x = SIMD8<Float>(repeating: a[0])
            var i = 0
            while i < body {
                store8(vector(x, load8(b + i)), o + i)
                i += 8
            }
            if rest > 0 { storePartial8(vector(x, loadPartial8(b + body, rest)), o + body, rest) }
        default:
            let v = vector(SIMD8(repeating: a[0]), SIMD8(repeating: b[0]))
            var i = 0
            while i < body {
                store8(v, o + i)
                i += 8
            }
            storePartial8(v, o + body, rest)
        }
    }
}

/// A kernel whose work is a closure made by a generic factory.
///
/// Factories are generic over the element operation; a closure made inside a specialised factory runs fully
/// specialised code, whereas the `Kernel` witness of a generic class would run its unspecialised form.
final class ClosureKernel: Kernel {
    let body: ([Tensor?], [Tensor]) throws -> Void

    init(_ body: @escaping ([Tensor?], [Tensor]) throws -> Void) { self.body = body }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws { try body(inputs, outputs) }
}

/// The output tensor of a one-output kernel.
@inline(__always)
func firstOutput(_ outputs: [Tensor]) throws -> Tensor {
    guard let out = outputs.first else { throw AidgeError.invalidModel("an element-wise kernel got no output tensor") }
    return out
}

/// Input `i`, which must be present.
@inline(__always)
func presentInput(_ inputs: [Tensor?], _ i: Int) throws -> Tensor {
    guard i < inputs.count, let t = inputs[i] else { throw AidgeError.invalidModel("input \(i) is missing") }
    return t
}

/// A kernel applying `op` to inputs 0 and 1 broadcast to the output's shape.
func binaryKernel<Op: BinaryElementOp>(
    _ op: Op, _ request: KernelRequest, grain: Int = ElementCost.cheap
) throws -> any Kernel {
    let layout = BroadcastLayout(
        output: request.outputs[0].shape, inputs: [try request.input(0).shape, try request.input(1).shape])
    return ClosureKernel { inputs, outputs in
        let a = try presentInput(inputs, 0)
        let b = try presentInput(inputs, 1)
        let o = try firstOutput(outputs)
        applyBinary(op, layout, a.pointer(as: Op.A.self), b.pointer(as: Op.B.self), o.pointer(as: Op.Output.self), grain: grain)
    }
}

/// Runs `op` over `layout` (operand slots 0 and 1), spread over cores.
func applyBinary<Op: BinaryElementOp>(
    _ op: Op, _ layout: BroadcastLayout, _ a: UnsafePointer<Op.A>, _ b: UnsafePointer<Op.B>,
    _ o: UnsafeMutablePointer<Op.Output>, grain: Int
) {
    let (sa, sb) = (layout.innerStrides[0], layout.innerStrides[1])
    Parallel.forEach(layout.count, grain: grain) { range in
        layout.forEachRun(range) { out, i0, i1, _, n in
            op.run(a + i0, sa, b + i1, sb, o + out, n)
        }
    }
}

/// A kernel folding `op` over any number of inputs broadcast together (Min, Max, Sum, Mean), then applying
/// `finish(output, finishValue)` in place when given (the mean's division); a single input is copied.
func variadicKernel<Op: BinaryElementOp, Finish: BinaryElementOp>(
    _ op: Op, _ request: KernelRequest, finish: Finish?, finishValue: Op.Output, grain: Int = ElementCost.cheap
) throws -> any Kernel
where Op.A == Op.Output, Op.B == Op.Output, Finish.A == Op.Output, Finish.B == Op.Output, Finish.Output == Op.Output {
    let output = request.outputs[0].shape
    let shapes = try request.inputs.indices.map { try request.input($0).shape }
    // Step 0 combines inputs 0 and 1 into the output; step k combines the output with input k + 1.
    var layouts: [BroadcastLayout] = []
    if shapes.count >= 2 {
        layouts.append(BroadcastLayout(output: output, inputs: [shapes[0], shapes[1]]))
        for shape in shapes.dropFirst(2) { layouts.append(BroadcastLayout(output: output, inputs: [output, shape])) }
    }
    let copyLayout = BroadcastLayout(output: output, inputs: [shapes.first ?? output, []])
    let finishLayout = BroadcastLayout(flat: ShapeUtil.count(output))
    let inputCount = shapes.count
    return ClosureKernel { inputs, outputs in
        let o = try firstOutput(outputs).pointer(as: Op.Output.self)
        let first = try presentInput(inputs, 0).pointer(as: Op.A.self)
        if inputCount == 1 {
            applyBinary(TakeFirst<Op.Output>(), copyLayout, first, first, o, grain: grain)
        } else {
            applyBinary(op, layouts[0], first, try presentInput(inputs, 1).pointer(as: Op.B.self), o, grain: grain)
            for k in 2..<max(inputCount, 2) {
                applyBinary(op, layouts[k - 1], o, try presentInput(inputs, k).pointer(as: Op.B.self), o, grain: grain)
            }
        }
        if let finish {
            withUnsafePointer(to: finishValue) { v in
                applyBinary(finish, finishLayout, o, v, o, grain: grain)
            }
        }
    }
}

extension BroadcastLayout {
    /// The layout of a contiguous output combined with a single value.
    init(flat count: Int) {
        self.count = count
        inner = max(count, 1)
        outer = []
        strides = [[], [], []]
        innerStrides = [1, 0, 0]
    }
}

/// `f(a, b) = a`: a broadcast copy.
struct TakeFirst<T: TensorElement>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { a }
}

// MARK: - Unary operations

/// An element-wise function of one value, applied to contiguous runs.
protocol UnaryElementOp {
    associatedtype Input: TensorElement
    associatedtype Output: TensorElement
    func callAsFunction(_ x: Input) -> Output
    /// Writes `o[i] = f(x[i])` for `i < n`.
    func run(_ x: UnsafePointer<Input>, _ o: UnsafeMutablePointer<Output>, _ n: Int)
}

extension UnaryElementOp {
    @inline(__always)
    func run(_ x: UnsafePointer<Input>, _ o: UnsafeMutablePointer<Output>, _ n: Int) {
        for i in 0..<n { o[i] = self(x[i]) }
    }
}

/// A float32 function with an 8-lane form.
protocol VectorUnaryOp: UnaryElementOp where Input == Float, Output == Float {
    func vector(_ x: SIMD8<Float>) -> SIMD8<Float>
}

extension VectorUnaryOp {
    @inline(__always)
    func callAsFunction(_ x: Float) -> Float { vector(SIMD8(repeating: x))[0] }

    @inline(__always)
    func run(_ x: UnsafePointer<Float>, _ o: UnsafeMutablePointer<Float>, _ n: Int) { runVector(x, o, n) }

    /// The 8-lane loop (for ops that define `run` themselves and still want it).
    @inline(__always)
    func runVector(_ x: UnsafePointer<Float>, _ o: UnsafeMutablePointer<Float>, _ n: Int) {
        let body = n & ~7
        var i = 0
        while i < body {
            store8(vector(load8(x + i)), o + i)
            i += 8
        }
        if body < n { storePartial8(vector(loadPartial8(x + body, n - body)), o + body, n - body) }
    }
}

/// A kernel applying `op` to every element of input 0.
func unaryKernel<Op: UnaryElementOp>(_ op: Op, _ request: KernelRequest, grain: Int = ElementCost.cheap) throws
    -> any Kernel
{
    let count = request.outputs[0].count
    return ClosureKernel { inputs, outputs in
        let x = try presentInput(inputs, 0).pointer(as: Op.Input.self)
        let o = try firstOutput(outputs).pointer(as: Op.Output.self)
        Parallel.forEach(count, grain: grain) { range in
            op.run(x + range.lowerBound, o + range.lowerBound, range.count)
        }
    }
}

// MARK: - Dispatch on the element type

/// The kernels of one operator for each element type it takes; `makeKernel` picks one by dtype.
///
/// Every method is called with a concrete type from `makeKernel`, so the kernels they build are specialised.
protocol KernelFamily {
    func float32(_ request: KernelRequest) throws -> any Kernel
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel
    func integer<T: FixedWidthInteger & ArithmeticElement>(_ type: T.Type, _ request: KernelRequest) throws
        -> any Kernel
}

extension KernelFamily {
    func float32(_ request: KernelRequest) throws -> any Kernel { try float(Float.self, request) }
    func integer<T: FixedWidthInteger & ArithmeticElement>(_ type: T.Type, _ request: KernelRequest) throws
        -> any Kernel
    {
        throw request.unsupportedType(T.dtype)
    }
}

/// The kernel of `family` for `dtype` (default: input 0's). With `bitwiseIntegers` (wrapping add, subtract,
/// multiply, equality), unsigned integers use the kernel of the signed type of their size: the bits are the same.
func makeKernel<F: KernelFamily>(
    _ family: F, _ request: KernelRequest, dtype: DType? = nil, bitwiseIntegers: Bool = false
) throws -> any Kernel {
    let dtype = try dtype ?? request.input(0).dtype
    if bitwiseIntegers {
        switch dtype {
        case .uint8: return try family.integer(Int8.self, request)
        case .uint16: return try family.integer(Int16.self, request)
        case .uint32: return try family.integer(Int32.self, request)
        case .uint64: return try family.integer(Int64.self, request)
        default: break
        }
    }
    switch dtype {
    case .float32: return try family.float32(request)
    case .float64: return try family.float(Double.self, request)
    case .float16: return try family.float(Float16.self, request)
    case .int8: return try family.integer(Int8.self, request)
    case .int16: return try family.integer(Int16.self, request)
    case .int32: return try family.integer(Int32.self, request)
    case .int64: return try family.integer(Int64.self, request)
    case .uint8: return try family.integer(UInt8.self, request)
    case .uint16: return try family.integer(UInt16.self, request)
    case .uint32: return try family.integer(UInt32.self, request)
    case .uint64: return try family.integer(UInt64.self, request)
    default: throw request.unsupportedType(dtype)  // bfloat16, bool, the low-precision storage types
    }
}
