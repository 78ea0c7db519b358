import AidgeCore

/// Element-wise kernels: broadcasting arithmetic, comparisons and logic, Where, and unary math.
func registerElementwiseKernels(_ registry: KernelRegistry) {
    let arithmetic: [(String, ArithmeticKind)] = [("Add", .add), ("Sub", .sub), ("Mul", .mul), ("Div", .div)]
    for (type, kind) in arithmetic {
        registry.register(type, backend: "cpu") {
            try makeKernel(BinaryArithmetic(kind: kind), $0, bitwiseIntegers: kind != .div)
        }
    }
    let variadic: [(String, ArithmeticKind)] = [("Sum", .add), ("Min", .min), ("Max", .max), ("Mean", .mean)]
    for (type, kind) in variadic {
        registry.register(type, backend: "cpu") {
            try makeKernel(VariadicArithmetic(kind: kind), $0, bitwiseIntegers: kind == .add)
        }
    }
    registry.register("Pow", backend: "cpu", makePowKernel)
    registry.register("Mod", backend: "cpu") { request in
        let fmod = try request.attributes.int("fmod", default: 0) == 1
        return try makeKernel(ModFamily(fmod: fmod), request)
    }
    let bitwise: [(String, BitwiseFamily.Kind)] = [("BitwiseAnd", .and), ("BitwiseOr", .or), ("BitwiseXor", .xor)]
    for (type, kind) in bitwise {
        registry.register(type, backend: "cpu") { try makeKernel(BitwiseFamily(kind: kind), $0, bitwiseIntegers: true) }
    }
    registry.register("BitShift", backend: "cpu") { request in
        try makeKernel(BitShiftFamily(left: try request.attributes.string("direction") == "LEFT"), request)
    }
    let comparisons: [(String, ComparisonKind)] = [
        ("Equal", .equal), ("Less", .less), ("Greater", .greater), ("LessOrEqual", .lessOrEqual),
        ("GreaterOrEqual", .greaterOrEqual),
    ]
    for (type, kind) in comparisons {
        registry.register(type, backend: "cpu") { request in
            let dtype = try request.input(0).dtype
            switch (kind, dtype) {
            case (.equal, .bool): return try binaryKernel(LogicOp(kind: .equal), request)
            case (.equal, .bfloat16): return try binaryKernel(BFloat16Equal(), request)
            // Equal strings have equal handles (`StringElement`).
            case (.equal, .string): return try makeKernel(Comparison(kind: .equal), request, dtype: .int64)
            default: return try makeKernel(Comparison(kind: kind), request, bitwiseIntegers: kind == .equal)
            }
        }
    }
    let logic: [(String, LogicOp.Kind)] = [("And", .and), ("Or", .or), ("Xor", .xor)]
    for (type, kind) in logic {
        registry.register(type, backend: "cpu") { try binaryKernel(LogicOp(kind: kind), $0) }
    }
    registry.register("Where", backend: "cpu", makeWhereKernel)
    registry.register("Not", backend: "cpu") { request in
        guard try request.input(0).dtype == .bool else { throw request.unsupportedType(try request.input(0).dtype) }
        return try unaryKernel(NotOp(), request)
    }
    let unary: [(String, UnaryMath.Kind)] = [
        ("Neg", .neg), ("Abs", .abs), ("Sign", .sign), ("Floor", .floor), ("Ceil", .ceil), ("Round", .round),
        ("Sqrt", .sqrt), ("Reciprocal", .reciprocal), ("Exp", .exp), ("Log", .log), ("Erf", .erf), ("Sin", .sin),
        ("Cos", .cos), ("BitwiseNot", .bitwiseNot), ("IsNaN", .isNaN),
    ]
    for (type, kind) in unary {
        registry.register(type, backend: "cpu") { try makeKernel(UnaryMath(kind: kind), $0) }
    }
    registry.register("IsInf", backend: "cpu") { request in
        let negative = try request.attributes.int("detect_negative", default: 1) != 0
        let positive = try request.attributes.int("detect_positive", default: 1) != 0
        return try makeKernel(UnaryMath(kind: .isInf(negative: negative, positive: positive)), request)
    }
    registerTrigonometryKernels(registry)
}

// MARK: - Arithmetic

enum ArithmeticKind { case add, sub, mul, div, min, max, mean }

struct AddOp<T: ArithmeticElement>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { T.arithAdd(a, b) }
}
struct SubOp<T: ArithmeticElement>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { T.arithSubtract(a, b) }
}
struct MulOp<T: ArithmeticElement>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { T.arithMultiply(a, b) }
}
struct DivOp<T: ArithmeticElement>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { T.arithDivide(a, b) }
}
struct MinOp<T: ArithmeticElement>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { T.arithMinimum(a, b) }
}
struct MaxOp<T: ArithmeticElement>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { T.arithMaximum(a, b) }
}

struct AddF: VectorBinaryOp {
    @inline(__always) func vector(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> { a + b }
}
struct SubF: VectorBinaryOp {
    @inline(__always) func vector(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> { a - b }
}
struct MulF: VectorBinaryOp {
    @inline(__always) func vector(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> { a * b }
}
struct DivF: VectorBinaryOp {
    @inline(__always) func vector(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> { a / b }
}
/// Minimum and maximum propagate NaN, like NumPy's `minimum` / `maximum`.
struct MinF: VectorBinaryOp {
    @inline(__always) func vector(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
        VectorMath.select((a .< b) .| (a .!= a), a, b)
    }
}
struct MaxF: VectorBinaryOp {
    @inline(__always) func vector(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
        VectorMath.select((a .> b) .| (a .!= a), a, b)
    }
}

/// Add, Sub, Mul, Div on every numeric type.
struct BinaryArithmetic: KernelFamily {
    let kind: ArithmeticKind

    func float32(_ request: KernelRequest) throws -> any Kernel {
        switch kind {
        case .add: return try binaryKernel(AddF(), request)
        case .sub: return try binaryKernel(SubF(), request)
        case .mul: return try binaryKernel(MulF(), request)
        case .div: return try binaryKernel(DivF(), request)
        case .min: return try binaryKernel(MinF(), request)
        case .max: return try binaryKernel(MaxF(), request)
        case .mean: throw AidgeError.unsupported("Mean is variadic")
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
        switch kind {
        case .add: return try binaryKernel(AddOp<T>(), request)
        case .sub: return try binaryKernel(SubOp<T>(), request)
        case .mul: return try binaryKernel(MulOp<T>(), request)
        case .div: return try binaryKernel(DivOp<T>(), request)
        case .min: return try binaryKernel(MinOp<T>(), request)
        case .max: return try binaryKernel(MaxOp<T>(), request)
        case .mean: throw AidgeError.unsupported("Mean is variadic")
        }
    }
}

/// Sum, Min, Max, Mean over any number of inputs.
struct VariadicArithmetic: KernelFamily {
    let kind: ArithmeticKind

    func float32(_ request: KernelRequest) throws -> any Kernel {
        let n = Float(request.inputs.count)
        switch kind {
        case .add: return try variadicKernel(AddF(), request, finish: DivF?.none, finishValue: 0)
        case .min: return try variadicKernel(MinF(), request, finish: DivF?.none, finishValue: 0)
        case .max: return try variadicKernel(MaxF(), request, finish: DivF?.none, finishValue: 0)
        case .mean: return try variadicKernel(AddF(), request, finish: n == 1 ? nil : DivF(), finishValue: n)
        default: throw AidgeError.unsupported("\(kind) is not variadic")
        }
    }
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        if kind == .mean {
            let n = T(request.inputs.count)
            return try variadicKernel(AddOp<T>(), request, finish: n == 1 ? nil : DivOp<T>(), finishValue: n)
        }
        return try generic(T.self, request)
    }
    func integer<T: FixedWidthInteger & ArithmeticElement>(_ type: T.Type, _ request: KernelRequest) throws
        -> any Kernel
    {
        if kind == .mean { throw request.unsupportedType(T.dtype) }
        return try generic(T.self, request)
    }
    private func generic<T: ArithmeticElement>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let zero = T.arithZero
        switch kind {
        case .add: return try variadicKernel(AddOp<T>(), request, finish: DivOp<T>?.none, finishValue: zero)
        case .min: return try variadicKernel(MinOp<T>(), request, finish: DivOp<T>?.none, finishValue: zero)
        case .max: return try variadicKernel(MaxOp<T>(), request, finish: DivOp<T>?.none, finishValue: zero)
        default: throw AidgeError.unsupported("\(kind) is not variadic")
        }
    }
}

// MARK: - Pow

/// Float base, exponent converted to the base's type.
struct PowOp<T: MathFloat>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { T.mathPow(a, b) }
}


/// Integer base, integer exponent: exact power with wrapping; a negative exponent gives 1 / base^-e truncated
/// (0 unless the base is 1 or -1).
struct IntegerPowOp<T: FixedWidthInteger & ArithmeticElement>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ base: T, _ exponent: Int64) -> T {
        if exponent < 0 {
            if base == 1 { return 1 }
            if T.isSigned && base == 0 &- 1 { return exponent & 1 == 0 ? 1 : base }
            return 0
        }
        var result: T = 1
        var b = base
        var e = exponent
        while e > 0 {
            if e & 1 == 1 { result = result &* b }
            e >>= 1
            if e > 0 { b = b &* b }
        }
        return result
    }
}

/// Integer base, float exponent: computed in float64 and converted back (saturating; NaN gives 0).
struct IntegerFloatPowOp<T: FixedWidthInteger & ArithmeticElement>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ base: T, _ exponent: Double) -> T {
        T(converting: Double.mathPow(Double(base), exponent))
    }
}

/// A binary kernel whose input 1 is first converted to `B`'s dtype into scratch memory (Pow's exponent).
func convertingBinaryKernel<Op: BinaryElementOp>(_ op: Op, _ request: KernelRequest, grain: Int) throws -> any Kernel {
    let exponent = try request.input(1)
    if exponent.dtype == Op.B.dtype { return try binaryKernel(op, request, grain: grain) }
    let layout = BroadcastLayout(output: request.outputs[0].shape, inputs: [try request.input(0).shape, exponent.shape])
    let scratch = Tensor(zeros: exponent.shape, dtype: Op.B.dtype)
    return ClosureKernel { inputs, outputs in
        let a = try presentInput(inputs, 0)
        let b = try presentInput(inputs, 1)
        castElements(b.rawPointer, b.dtype, scratch.rawPointer, scratch.dtype, scratch.count)
        applyBinary(
            op, layout, a.pointer(as: Op.A.self), scratch.pointer(as: Op.B.self),
            try firstOutput(outputs).pointer(as: Op.Output.self), grain: grain)
    }
}

/// Pow: the base's dtype decides the arithmetic. A constant float exponent of 1, 2, 3, 0.5 or -1 (x^2 in
/// normalisations, x^3 in Gelu's tanh form) takes a vectorised path.
@Sendable func makePowKernel(_ request: KernelRequest) throws -> any Kernel {
    let base = try request.input(0)
    let exponent = try request.input(1)
    if let value = exponent.value, value.count == 1, base.dtype.isFloatingPoint,
        request.outputs[0].shape == base.shape, let e = value.doubles().first,
        let power = SmallPower(rawValue: e)
    {
        return try makeKernel(SmallPowerFamily(power: power), request)
    }
    return try makeKernel(PowFamily(), request)
}

/// Exponents with an exact or correctly rounded shortcut (x^3 rounds twice: within 1.5 ulp).
enum SmallPower: Double { case one = 1, square = 2, cube = 3, squareRoot = 0.5, reciprocal = -1 }

struct SmallPowerFamily: KernelFamily {
    let power: SmallPower
    func float32(_ request: KernelRequest) throws -> any Kernel {
        try unaryKernel(SmallPowerF(power: power), request)
    }
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        try unaryKernel(SmallPowerOp<T>(power: power), request)
    }
}

struct SmallPowerF: VectorUnaryOp {
    let power: SmallPower
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> {
        switch power {
        case .one: return x
        case .square: return x * x
        case .cube: return x * x * x
        // pow(-0, 0.5) = +0 and pow(-inf, 0.5) = +inf, unlike the square root.
        case .squareRoot: return (x.squareRoot() + 0).replacing(with: .infinity, where: x .== -.infinity)
        case .reciprocal: return 1 / x
        }
    }
    @inline(__always)
    func run(_ x: UnsafePointer<Float>, _ o: UnsafeMutablePointer<Float>, _ n: Int) {
        // One loop per power, so that the switch is outside the loop.
        switch power {
        case .one: SmallPowerF(power: .one).runVector(x, o, n)
        case .square: SmallPowerF(power: .square).runVector(x, o, n)
        case .cube: SmallPowerF(power: .cube).runVector(x, o, n)
        case .squareRoot: SmallPowerF(power: .squareRoot).runVector(x, o, n)
        case .reciprocal: SmallPowerF(power: .reciprocal).runVector(x, o, n)
        }
    }
}

struct SmallPowerOp<T: MathFloat>: UnaryElementOp {
    let power: SmallPower
    @inline(__always) func callAsFunction(_ x: T) -> T {
        switch power {
        case .one: return x
        case .square: return x * x
        case .cube: return x * x * x
        case .squareRoot: return x == -.infinity ? .infinity : x.squareRoot() + 0
        case .reciprocal: return 1 / x
        }
    }
}

struct PowFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        try convertingBinaryKernel(PowOp<T>(), request, grain: ElementCost.scalar)
    }
    func integer<T: FixedWidthInteger & ArithmeticElement>(_ type: T.Type, _ request: KernelRequest) throws
        -> any Kernel
    {
        if try request.input(1).dtype.isFloatingPoint {
            return try convertingBinaryKernel(IntegerFloatPowOp<T>(), request, grain: ElementCost.scalar)
        }
        return try convertingBinaryKernel(IntegerPowOp<T>(), request, grain: ElementCost.scalar)
    }
}

// MARK: - Mod

/// Integer modulo with Python's sign rule (the result has the divisor's sign); 0 for a zero divisor.
struct FloorModOp<T: FixedWidthInteger & ArithmeticElement>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T {
        if b == 0 { return 0 }
        let r = a.remainderReportingOverflow(dividingBy: b).partialValue
        return r != 0 && (r < 0) != (b < 0) ? r &+ b : r
    }
}

/// Integer remainder with C's sign rule (the result has the dividend's sign); 0 for a zero divisor.
struct TruncModOp<T: FixedWidthInteger & ArithmeticElement>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T {
        b == 0 ? 0 : a.remainderReportingOverflow(dividingBy: b).partialValue
    }
}

struct FModOp<T: MathFloat>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> T { T.mathFmod(a, b) }
}

struct ModFamily: KernelFamily {
    let fmod: Bool
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        fmod
            ? try binaryKernel(FModOp<T>(), request, grain: ElementCost.scalar)
            : try binaryKernel(FloatFloorModOp<T>(), request, grain: ElementCost.scalar)
    }
    func integer<T: FixedWidthInteger & ArithmeticElement>(_ type: T.Type, _ request: KernelRequest) throws
        -> any Kernel
    {
        fmod ? try binaryKernel(TruncModOp<T>(), request) : try binaryKernel(FloorModOp<T>(), request)
    }
}

/// x mod y with the sign of y, as NumPy's `mod`: a zero remainder takes y's sign, y = 0 gives NaN.
struct FloatFloorModOp<T: MathFloat>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ x: T, _ y: T) -> T {
        let r = T.mathFmod(x, y)
        if r == 0 { return y < 0 ? -0.0 : 0 }
        return (r < 0) != (y < 0) ? r + y : r
    }
}

/// BitwiseAnd, BitwiseOr, BitwiseXor on integers, broadcast.
struct BitwiseFamily: KernelFamily {
    enum Kind { case and, or, xor }
    let kind: Kind
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        throw request.unsupportedType(T.dtype)
    }
    func integer<T: FixedWidthInteger & ArithmeticElement>(_ type: T.Type, _ request: KernelRequest) throws
        -> any Kernel
    {
        switch kind {
        case .and: return try binaryKernel(BitwiseAndOp<T>(), request)
        case .or: return try binaryKernel(BitwiseOrOp<T>(), request)
        case .xor: return try binaryKernel(BitwiseXorOp<T>(), request)
        }
    }
}

struct BitwiseAndOp<T: FixedWidthInteger & ArithmeticElement>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ x: T, _ y: T) -> T { x & y }
}
struct BitwiseOrOp<T: FixedWidthInteger & ArithmeticElement>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ x: T, _ y: T) -> T { x | y }
}
struct BitwiseXorOp<T: FixedWidthInteger & ArithmeticElement>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ x: T, _ y: T) -> T { x ^ y }
}

/// BitShift: a shift by a negative amount or by the bit width or more leaves only the sign fill (-1 for a right
/// shift of a negative number, 0 otherwise); a right shift of a signed number is arithmetic.
struct BitShiftFamily: KernelFamily {
    let left: Bool
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        throw request.unsupportedType(T.dtype)
    }
    func integer<T: FixedWidthInteger & ArithmeticElement>(_ type: T.Type, _ request: KernelRequest) throws
        -> any Kernel
    {
        left ? try binaryKernel(ShiftLeftOp<T>(), request) : try binaryKernel(ShiftRightOp<T>(), request)
    }
}

struct ShiftLeftOp<T: FixedWidthInteger & ArithmeticElement>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ x: T, _ y: T) -> T {
        y < 0 || y >= T(truncatingIfNeeded: T.bitWidth) ? 0 : x &<< y
    }
}

struct ShiftRightOp<T: FixedWidthInteger & ArithmeticElement>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ x: T, _ y: T) -> T {
        y < 0 || y >= T(truncatingIfNeeded: T.bitWidth) ? (x < 0 ? ~0 : 0) : x &>> y
    }
}

// MARK: - Comparisons and logic

enum ComparisonKind { case equal, less, greater, lessOrEqual, greaterOrEqual }

struct EqualOp<T: ArithmeticElement>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> Bool { a == b }
}
struct LessOp<T: ArithmeticElement>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> Bool { a < b }
}
struct GreaterOp<T: ArithmeticElement>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> Bool { a > b }
}
struct LessOrEqualOp<T: ArithmeticElement>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> Bool { a <= b }
}
struct GreaterOrEqualOp<T: ArithmeticElement>: BinaryElementOp {
    @inline(__always) func callAsFunction(_ a: T, _ b: T) -> Bool { a >= b }
}

/// bfloat16 equality by value (+0 equals -0, NaN equals nothing).
struct BFloat16Equal: BinaryElementOp {
    @inline(__always) func callAsFunction(_ a: BFloat16, _ b: BFloat16) -> Bool { a.floatValue == b.floatValue }
}

struct Comparison: KernelFamily {
    let kind: ComparisonKind
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        try generic(T.self, request)
    }
    func integer<T: FixedWidthInteger & ArithmeticElement>(_ type: T.Type, _ request: KernelRequest) throws
        -> any Kernel
    {
        try generic(T.self, request)
    }
    private func generic<T: ArithmeticElement>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        switch kind {
        case .equal: return try binaryKernel(EqualOp<T>(), request)
        case .less: return try binaryKernel(LessOp<T>(), request)
        case .greater: return try binaryKernel(GreaterOp<T>(), request)
        case .lessOrEqual: return try binaryKernel(LessOrEqualOp<T>(), request)
        case .greaterOrEqual: return try binaryKernel(GreaterOrEqualOp<T>(), request)
        }
    }
}

/// And, Or, Xor and bool equality, reading bool storage as bytes (any non-zero byte is true).
struct LogicOp: BinaryElementOp {
    enum Kind { case and, or, xor, equal }
    let kind: Kind
    @inline(__always) func callAsFunction(_ a: UInt8, _ b: UInt8) -> Bool {
        switch kind {
        case .and: return a != 0 && b != 0
        case .or: return a != 0 || b != 0
        case .xor: return (a != 0) != (b != 0)
        case .equal: return (a != 0) == (b != 0)
        }
    }
    @inline(__always)
    func run(
        _ a: UnsafePointer<UInt8>, _ sa: Int, _ b: UnsafePointer<UInt8>, _ sb: Int, _ o: UnsafeMutablePointer<Bool>,
        _ n: Int
    ) {
        // One loop per kind keeps each loop free of the switch.
        switch kind {
        case .and: logicRun(a, sa, b, sb, o, n) { $0 != 0 && $1 != 0 }
        case .or: logicRun(a, sa, b, sb, o, n) { $0 != 0 || $1 != 0 }
        case .xor: logicRun(a, sa, b, sb, o, n) { ($0 != 0) != ($1 != 0) }
        case .equal: logicRun(a, sa, b, sb, o, n) { ($0 != 0) == ($1 != 0) }
        }
    }
}

@inline(__always)
private func logicRun(
    _ a: UnsafePointer<UInt8>, _ sa: Int, _ b: UnsafePointer<UInt8>, _ sb: Int, _ o: UnsafeMutablePointer<Bool>,
    _ n: Int, _ f: (UInt8, UInt8) -> Bool
) {
    for i in 0..<n { o[i] = f(a[i &* sa], b[i &* sb]) }
}

struct NotOp: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: UInt8) -> Bool { x == 0 }
}

// MARK: - Where

/// Where: `condition ? X : Y` with the three inputs broadcast together; elements are copied as bit patterns.
@Sendable func makeWhereKernel(_ request: KernelRequest) throws -> any Kernel {
    switch try request.input(1).dtype.byteSize {
    case 1: return try whereKernel(UInt8.self, request)
    case 2: return try whereKernel(UInt16.self, request)
    case 4: return try whereKernel(UInt32.self, request)
    default: return try whereKernel(UInt64.self, request)
    }
}

private func whereKernel<T: FixedWidthInteger>(_: T.Type, _ request: KernelRequest) throws -> any Kernel {
    let layout = BroadcastLayout(
        output: request.outputs[0].shape,
        inputs: [try request.input(0).shape, try request.input(1).shape, try request.input(2).shape])
    let (sc, sx, sy) = (layout.innerStrides[0], layout.innerStrides[1], layout.innerStrides[2])
    return ClosureKernel { inputs, outputs in
        let c = try presentInput(inputs, 0).pointer(as: UInt8.self)
        let x = try presentInput(inputs, 1).pointer(as: T.self)
        let y = try presentInput(inputs, 2).pointer(as: T.self)
        let o = try firstOutput(outputs).pointer(as: T.self)
        Parallel.forEach(layout.count, grain: ElementCost.cheap) { range in
            layout.forEachRun(range) { out, i0, i1, i2, n in
                let (cp, xp, yp, op) = (c + i0, x + i1, y + i2, o + out)
                if sc == 0 {
                    // One condition for the whole run: a copy from one side.
                    let (src, s) = cp[0] != 0 ? (xp, sx) : (yp, sy)
                    if s == 1 {
                        op.update(from: src, count: n)
                    } else {
                        op.update(repeating: src[0], count: n)
                    }
                } else {
                    // One loop per stride pair, so that each vectorises.
                    switch (sx, sy) {
                    case (1, 1): for i in 0..<n { op[i] = cp[i] != 0 ? xp[i] : yp[i] }
                    case (1, _):
                        let v = yp[0]
                        for i in 0..<n { op[i] = cp[i] != 0 ? xp[i] : v }
                    case (_, 1):
                        let u = xp[0]
                        for i in 0..<n { op[i] = cp[i] != 0 ? u : yp[i] }
                    default:
                        let (u, v) = (xp[0], yp[0])
                        for i in 0..<n { op[i] = cp[i] != 0 ? u : v }
                    }
                }
            }
        }
    }
}

// MARK: - Unary math

struct UnaryMath: KernelFamily {
    enum Kind {
        case neg, abs, sign, floor, ceil, round, sqrt, reciprocal, exp, log, erf, sin, cos, bitwiseNot, isNaN
        case isInf(negative: Bool, positive: Bool)
    }
    let kind: Kind

    func float32(_ request: KernelRequest) throws -> any Kernel {
        switch kind {
        case .neg: return try unaryKernel(NegF(), request)
        case .abs: return try unaryKernel(AbsF(), request)
        case .sqrt: return try unaryKernel(SqrtF(), request)
        case .reciprocal: return try unaryKernel(ReciprocalF(), request)
        case .exp: return try unaryKernel(ExpF(), request, grain: ElementCost.vector)
        case .erf: return try unaryKernel(ErfF(), request, grain: ElementCost.vector)
        default: return try float(Float.self, request)
        }
    }

    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let scalar = ElementCost.scalar
        switch kind {
        case .neg: return try unaryKernel(NegOp<T>(), request)
        case .abs: return try unaryKernel(AbsOp<T>(), request)
        case .sign: return try unaryKernel(SignOp<T>(), request)
        case .floor: return try unaryKernel(FloorOp<T>(), request)
        case .ceil: return try unaryKernel(CeilOp<T>(), request)
        case .round: return try unaryKernel(RoundOp<T>(), request)
        case .sqrt: return try unaryKernel(SqrtOp<T>(), request)
        case .reciprocal: return try unaryKernel(ReciprocalOp<T>(), request)
        case .exp: return try unaryKernel(ExpOp<T>(), request, grain: scalar)
        case .log: return try unaryKernel(LogOp<T>(), request, grain: scalar)
        case .erf: return try unaryKernel(ErfOp<T>(), request, grain: scalar)
        case .sin: return try unaryKernel(SinOp<T>(), request, grain: scalar)
        case .cos: return try unaryKernel(CosOp<T>(), request, grain: scalar)
        case .isNaN: return try unaryKernel(IsNaNOp<T>(), request)
        case .isInf(let negative, let positive):
            return try unaryKernel(IsInfOp<T>(negative: negative, positive: positive), request)
        case .bitwiseNot: throw request.unsupportedType(T.dtype)
        }
    }

    func integer<T: FixedWidthInteger & ArithmeticElement>(_ type: T.Type, _ request: KernelRequest) throws
        -> any Kernel
    {
        switch kind {
        case .neg: return try unaryKernel(IntegerNegOp<T>(), request)
        case .abs: return try unaryKernel(IntegerAbsOp<T>(), request)
        case .sign: return try unaryKernel(IntegerSignOp<T>(), request)
        case .bitwiseNot: return try unaryKernel(BitwiseNotOp<T>(), request)
        default: throw request.unsupportedType(T.dtype)
        }
    }
}

struct NegOp<T: MathFloat>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { -x }
}
struct AbsOp<T: MathFloat>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { x.magnitude }
}
/// 1, -1, or the input itself for zeros and NaN.
struct SignOp<T: MathFloat>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { x > 0 ? 1 : x < 0 ? -1 : x }
}
struct FloorOp<T: MathFloat>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { x.rounded(.down) }
}
struct CeilOp<T: MathFloat>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { x.rounded(.up) }
}
/// Halves round to even, as in ONNX and NumPy.
struct RoundOp<T: MathFloat>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { x.rounded(.toNearestOrEven) }
}
struct SqrtOp<T: MathFloat>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { x.squareRoot() }
}
struct ReciprocalOp<T: MathFloat>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { 1 / x }
}
struct ExpOp<T: MathFloat>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { T.mathExp(x) }
}
struct LogOp<T: MathFloat>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { T.mathLog(x) }
}
struct ErfOp<T: MathFloat>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { T.mathErf(x) }
}
struct SinOp<T: MathFloat>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { T.mathSin(x) }
}
struct CosOp<T: MathFloat>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { T.mathCos(x) }
}
struct IsNaNOp<T: MathFloat>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> Bool { x.isNaN }
}
struct IsInfOp<T: MathFloat>: UnaryElementOp {
    let negative: Bool
    let positive: Bool
    @inline(__always) func callAsFunction(_ x: T) -> Bool { x.isInfinite && (x < 0 ? negative : positive) }
}
struct BitwiseNotOp<T: FixedWidthInteger & ArithmeticElement>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { ~x }
}
/// Wrapping negation (the most negative value stays itself).
struct IntegerNegOp<T: FixedWidthInteger & ArithmeticElement>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { 0 &- x }
}
struct IntegerAbsOp<T: FixedWidthInteger & ArithmeticElement>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { x < 0 ? 0 &- x : x }
}
struct IntegerSignOp<T: FixedWidthInteger & ArithmeticElement>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { x > 0 ? 1 : x < 0 ? 0 &- 1 : 0 }
}

struct NegF: VectorUnaryOp {
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> { -x }
}
struct AbsF: VectorUnaryOp {
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> {
        unsafeBitCast(unsafeBitCast(x, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF, to: SIMD8<Float>.self)
    }
}
struct SqrtF: VectorUnaryOp {
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> { x.squareRoot() }
}
struct ReciprocalF: VectorUnaryOp {
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> { 1 / x }
}
struct ExpF: VectorUnaryOp {
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> { VectorMath.exp(x) }
}
struct ErfF: VectorUnaryOp {
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> { VectorMath.erf(x) }
}
