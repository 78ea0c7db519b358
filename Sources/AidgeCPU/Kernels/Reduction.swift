import AidgeCore

#if canImport(Glibc)
import Glibc
#endif

/// Kernels of the reductions: ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2,
/// ReduceSumSquare, ReduceLogSum, ReduceLogSumExp, ArgMax and ArgMin, on float32, float64, int32 and int64.
///
/// The input is seen as `[outer, reduced, inner]`: the reduced axes are merged into one block (when they are not
/// contiguous, the input is first gathered so that they are). `inner == 1` reduces contiguous rows with SIMD
/// lanes and pairwise summation; `inner > 1` accumulates whole rows, with compensated (Kahan) sums for floats.
func registerReductionKernels(_ registry: KernelRegistry) {
    for type in Reductions.reduceTypes {
        registry.register(type, backend: "cpu") { request in try makeReduceKernel(request) }
    }
    for type in ["ArgMax", "ArgMin"] {
        registry.register(type, backend: "cpu") { request in try makeArgReduceKernel(request) }
    }
    for (type, product) in [("CumSum", false), ("CumProd", true)] {
        registry.register(type, backend: "cpu") { request in
            try makeKernel(
                Cumulative(
                    product: product, exclusive: try request.attributes.int("exclusive", default: 0) == 1,
                    reverse: try request.attributes.int("reverse", default: 0) == 1, shape: try request.input(0).shape),
                request)
        }
    }
}

// MARK: Element types

/// An element type the reduction kernels compute on, with its SIMD arithmetic (wrapping for integers).
protocol ReductionElement: TensorElement, SIMDScalar, Comparable, Hashable, Codable {
    static var reduceZero: Self { get }
    static var reduceOne: Self { get }
    /// -infinity, or the smallest integer.
    static var reduceLowest: Self { get }
    /// +infinity, or the largest integer.
    static var reduceHighest: Self { get }
    static func reducePlus(_ a: Self, _ b: Self) -> Self
    static func reducePlus(_ a: SIMD8<Self>, _ b: SIMD8<Self>) -> SIMD8<Self>
    static func reduceTimes(_ a: Self, _ b: Self) -> Self
    static func reduceTimes(_ a: SIMD8<Self>, _ b: SIMD8<Self>) -> SIMD8<Self>
    /// Maximum and minimum propagate NaN, like NumPy's reductions.
    static func reduceMax(_ a: Self, _ b: Self) -> Self
    static func reduceMax(_ a: SIMD8<Self>, _ b: SIMD8<Self>) -> SIMD8<Self>
    static func reduceMin(_ a: Self, _ b: Self) -> Self
    static func reduceMin(_ a: SIMD8<Self>, _ b: SIMD8<Self>) -> SIMD8<Self>
    static func reduceAbs(_ a: Self) -> Self
    static func reduceAbs(_ a: SIMD8<Self>) -> SIMD8<Self>
    /// `s += y`, compensated by `c` (Kahan) for floating point.
    static func compensatedAdd(_ s: inout SIMD8<Self>, _ c: inout SIMD8<Self>, _ y: SIMD8<Self>)
    static func compensatedAdd(_ s: inout Self, _ c: inout Self, _ y: Self)
    /// `sum / count` (0 for an integer mean of nothing).
    static func reduceMean(_ sum: Self, count: Int) -> Self
    /// Square root and natural logarithm (floating point only; integers are left as they are).
    static func reduceSqrt(_ a: Self) -> Self
    static func reduceLog(_ a: Self) -> Self
    var reduceIsNaN: Bool { get }
}

extension ReductionElement where Self: BinaryFloatingPoint {
    @inline(__always) static var reduceZero: Self { 0 }
    @inline(__always) static var reduceOne: Self { 1 }
    @inline(__always) static var reduceLowest: Self { -.infinity }
    @inline(__always) static var reduceHighest: Self { .infinity }
    @inline(__always) static func reducePlus(_ a: Self, _ b: Self) -> Self { a + b }
    @inline(__always) static func reducePlus(_ a: SIMD8<Self>, _ b: SIMD8<Self>) -> SIMD8<Self> { a + b }
    @inline(__always) static func reduceTimes(_ a: Self, _ b: Self) -> Self { a * b }
    @inline(__always) static func reduceTimes(_ a: SIMD8<Self>, _ b: SIMD8<Self>) -> SIMD8<Self> { a * b }
    @inline(__always) static func reduceMax(_ a: Self, _ b: Self) -> Self { a > b || a.isNaN ? a : b }
    @inline(__always) static func reduceMax(_ a: SIMD8<Self>, _ b: SIMD8<Self>) -> SIMD8<Self> {
        b.replacing(with: a, where: (a .> b) .| (a .!= a))
    }
    @inline(__always) static func reduceMin(_ a: Self, _ b: Self) -> Self { a < b || a.isNaN ? a : b }
    @inline(__always) static func reduceMin(_ a: SIMD8<Self>, _ b: SIMD8<Self>) -> SIMD8<Self> {
        b.replacing(with: a, where: (a .< b) .| (a .!= a))
    }
    @inline(__always) static func reduceAbs(_ a: Self) -> Self { Swift.abs(a) }
    @inline(__always) static func reduceAbs(_ a: SIMD8<Self>) -> SIMD8<Self> {
        a.replacing(with: -a, where: a .< 0)
    }
    @inline(__always) static func compensatedAdd(_ s: inout SIMD8<Self>, _ c: inout SIMD8<Self>, _ y: SIMD8<Self>) {
        let v = y - c
        let t = s + v
        c = (t - s) - v
        s = t
    }
    @inline(__always) static func compensatedAdd(_ s: inout Self, _ c: inout Self, _ y: Self) {
        let v = y - c
        let t = s + v
        c = (t - s) - v
        s = t
    }
    @inline(__always) static func reduceMean(_ sum: Self, count: Int) -> Self { sum / Self(count) }
    @inline(__always) static func reduceSqrt(_ a: Self) -> Self { a.squareRoot() }
    @inline(__always) var reduceIsNaN: Bool { isNaN }
}

extension ReductionElement where Self: FixedWidthInteger {
    @inline(__always) static var reduceZero: Self { 0 }
    @inline(__always) static var reduceOne: Self { 1 }
    @inline(__always) static var reduceLowest: Self { .min }
    @inline(__always) static var reduceHighest: Self { .max }
    @inline(__always) static func reducePlus(_ a: Self, _ b: Self) -> Self { a &+ b }
    @inline(__always) static func reducePlus(_ a: SIMD8<Self>, _ b: SIMD8<Self>) -> SIMD8<Self> { a &+ b }
    @inline(__always) static func reduceTimes(_ a: Self, _ b: Self) -> Self { a &* b }
    @inline(__always) static func reduceTimes(_ a: SIMD8<Self>, _ b: SIMD8<Self>) -> SIMD8<Self> { a &* b }
    @inline(__always) static func reduceMax(_ a: Self, _ b: Self) -> Self { Swift.max(a, b) }
    @inline(__always) static func reduceMax(_ a: SIMD8<Self>, _ b: SIMD8<Self>) -> SIMD8<Self> { pointwiseMax(a, b) }
    @inline(__always) static func reduceMin(_ a: Self, _ b: Self) -> Self { Swift.min(a, b) }
    @inline(__always) static func reduceMin(_ a: SIMD8<Self>, _ b: SIMD8<Self>) -> SIMD8<Self> { pointwiseMin(a, b) }
    @inline(__always) static func reduceAbs(_ a: Self) -> Self { a < 0 ? 0 &- a : a }
    @inline(__always) static func reduceAbs(_ a: SIMD8<Self>) -> SIMD8<Self> {
        a.replacing(with: SIMD8<Self>(repeating: 0) &- a, where: a .< 0)
    }
    @inline(__always) static func compensatedAdd(_ s: inout SIMD8<Self>, _ c: inout SIMD8<Self>, _ y: SIMD8<Self>) {
        s = s &+ y
    }
    @inline(__always) static func compensatedAdd(_ s: inout Self, _ c: inout Self, _ y: Self) { s = s &+ y }
    @inline(__always) static func reduceMean(_ sum: Self, count: Int) -> Self { count > 0 ? sum / Self(count) : 0 }
    @inline(__always) static func reduceSqrt(_ a: Self) -> Self { a }
    @inline(__always) static func reduceLog(_ a: Self) -> Self { a }
    @inline(__always) var reduceIsNaN: Bool { false }
}

// The SIMD selects are written per concrete type: through the generic extensions above they do not lower to
// vector instructions (lane-by-lane code, over ten times slower).
extension Float: ReductionElement {
    @inline(__always) static func reduceLog(_ a: Float) -> Float { logf(a) }
    @inline(__always) static func reduceMax(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
        b.replacing(with: a, where: (a .> b) .| (a .!= a))
    }
    @inline(__always) static func reduceMin(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
        b.replacing(with: a, where: (a .< b) .| (a .!= a))
    }
    @inline(__always) static func reduceAbs(_ a: SIMD8<Float>) -> SIMD8<Float> {
        unsafeBitCast(unsafeBitCast(a, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF, to: SIMD8<Float>.self)
    }
}
extension Double: ReductionElement {
    @inline(__always) static func reduceLog(_ a: Double) -> Double { log(a) }
    @inline(__always) static func reduceMax(_ a: SIMD8<Double>, _ b: SIMD8<Double>) -> SIMD8<Double> {
        b.replacing(with: a, where: (a .> b) .| (a .!= a))
    }
    @inline(__always) static func reduceMin(_ a: SIMD8<Double>, _ b: SIMD8<Double>) -> SIMD8<Double> {
        b.replacing(with: a, where: (a .< b) .| (a .!= a))
    }
    @inline(__always) static func reduceAbs(_ a: SIMD8<Double>) -> SIMD8<Double> {
        unsafeBitCast(unsafeBitCast(a, to: SIMD8<UInt64>.self) & 0x7FFF_FFFF_FFFF_FFFF, to: SIMD8<Double>.self)
    }
}
extension Float16: ReductionElement {
    @inline(__always) static func reduceLog(_ a: Float16) -> Float16 { Float16(logf(Float(a))) }
    @inline(__always) static func reduceMax(_ a: SIMD8<Float16>, _ b: SIMD8<Float16>) -> SIMD8<Float16> {
        b.replacing(with: a, where: (a .> b) .| (a .!= a))
    }
    @inline(__always) static func reduceMin(_ a: SIMD8<Float16>, _ b: SIMD8<Float16>) -> SIMD8<Float16> {
        b.replacing(with: a, where: (a .< b) .| (a .!= a))
    }
    @inline(__always) static func reduceAbs(_ a: SIMD8<Float16>) -> SIMD8<Float16> {
        unsafeBitCast(unsafeBitCast(a, to: SIMD8<UInt16>.self) & 0x7FFF, to: SIMD8<Float16>.self)
    }
}
extension Int32: ReductionElement {
    @inline(__always) static func reduceMax(_ a: SIMD8<Int32>, _ b: SIMD8<Int32>) -> SIMD8<Int32> {
        b.replacing(with: a, where: a .> b)
    }
    @inline(__always) static func reduceMin(_ a: SIMD8<Int32>, _ b: SIMD8<Int32>) -> SIMD8<Int32> {
        b.replacing(with: a, where: a .< b)
    }
    @inline(__always) static func reduceAbs(_ a: SIMD8<Int32>) -> SIMD8<Int32> {
        a.replacing(with: 0 &- a, where: a .< 0)
    }
}
extension Int64: ReductionElement {
    @inline(__always) static func reduceMax(_ a: SIMD8<Int64>, _ b: SIMD8<Int64>) -> SIMD8<Int64> {
        b.replacing(with: a, where: a .> b)
    }
    @inline(__always) static func reduceMin(_ a: SIMD8<Int64>, _ b: SIMD8<Int64>) -> SIMD8<Int64> {
        b.replacing(with: a, where: a .< b)
    }
    @inline(__always) static func reduceAbs(_ a: SIMD8<Int64>) -> SIMD8<Int64> {
        a.replacing(with: 0 &- a, where: a .< 0)
    }
}

// The 8-, 16- and unsigned integer types use the integer defaults above.
extension Int8: ReductionElement {}
extension Int16: ReductionElement {}
extension UInt8: ReductionElement {}
extension UInt16: ReductionElement {}
extension UInt32: ReductionElement {}
extension UInt64: ReductionElement {}

@inline(__always) private func loadVector<T: SIMDScalar>(_ p: UnsafePointer<T>) -> SIMD8<T> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<T>.self)
}

@inline(__always) private func storeVector<T: SIMDScalar>(_ v: SIMD8<T>, _ p: UnsafeMutablePointer<T>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<T>.self)
}

// MARK: Reducers

/// How elements are folded: `load` maps each input element (|x|, x²), `combine` folds two partial results.
private protocol Reducer {
    /// The reducer that folds partial results (sums of |x| or x² are folded further as plain sums).
    associatedtype Partial: Reducer
    static func identity<T: ReductionElement>(_: T.Type) -> T
    static func load<T: ReductionElement>(_ x: T) -> T
    static func load<T: ReductionElement>(_ x: SIMD8<T>) -> SIMD8<T>
    static func combine<T: ReductionElement>(_ a: T, _ b: T) -> T
    static func combine<T: ReductionElement>(_ a: SIMD8<T>, _ b: SIMD8<T>) -> SIMD8<T>
    /// Sums accumulate rows with compensation.
    static var isSum: Bool { get }
}

private protocol SumLikeReducer: Reducer {}
extension SumLikeReducer {
    @inline(__always) static func identity<T: ReductionElement>(_: T.Type) -> T { T.reduceZero }
    @inline(__always) static func combine<T: ReductionElement>(_ a: T, _ b: T) -> T { T.reducePlus(a, b) }
    @inline(__always) static func combine<T: ReductionElement>(_ a: SIMD8<T>, _ b: SIMD8<T>) -> SIMD8<T> {
        T.reducePlus(a, b)
    }
    static var isSum: Bool { true }
}

private enum SumReducer: SumLikeReducer {
    typealias Partial = SumReducer
    @inline(__always) static func load<T: ReductionElement>(_ x: T) -> T { x }
    @inline(__always) static func load<T: ReductionElement>(_ x: SIMD8<T>) -> SIMD8<T> { x }
}

private enum AbsSumReducer: SumLikeReducer {
    typealias Partial = SumReducer
    @inline(__always) static func load<T: ReductionElement>(_ x: T) -> T { T.reduceAbs(x) }
    @inline(__always) static func load<T: ReductionElement>(_ x: SIMD8<T>) -> SIMD8<T> { T.reduceAbs(x) }
}

private enum SquareSumReducer: SumLikeReducer {
    typealias Partial = SumReducer
    @inline(__always) static func load<T: ReductionElement>(_ x: T) -> T { T.reduceTimes(x, x) }
    @inline(__always) static func load<T: ReductionElement>(_ x: SIMD8<T>) -> SIMD8<T> { T.reduceTimes(x, x) }
}

private protocol PlainReducer: Reducer {}
extension PlainReducer {
    @inline(__always) static func load<T: ReductionElement>(_ x: T) -> T { x }
    @inline(__always) static func load<T: ReductionElement>(_ x: SIMD8<T>) -> SIMD8<T> { x }
    static var isSum: Bool { false }
}

private enum MaxReducer: PlainReducer {
    typealias Partial = MaxReducer
    @inline(__always) static func identity<T: ReductionElement>(_: T.Type) -> T { T.reduceLowest }
    @inline(__always) static func combine<T: ReductionElement>(_ a: T, _ b: T) -> T { T.reduceMax(a, b) }
    @inline(__always) static func combine<T: ReductionElement>(_ a: SIMD8<T>, _ b: SIMD8<T>) -> SIMD8<T> {
        T.reduceMax(a, b)
    }
}

private enum MinReducer: PlainReducer {
    typealias Partial = MinReducer
    @inline(__always) static func identity<T: ReductionElement>(_: T.Type) -> T { T.reduceHighest }
    @inline(__always) static func combine<T: ReductionElement>(_ a: T, _ b: T) -> T { T.reduceMin(a, b) }
    @inline(__always) static func combine<T: ReductionElement>(_ a: SIMD8<T>, _ b: SIMD8<T>) -> SIMD8<T> {
        T.reduceMin(a, b)
    }
}

private enum ProdReducer: PlainReducer {
    typealias Partial = ProdReducer
    @inline(__always) static func identity<T: ReductionElement>(_: T.Type) -> T { T.reduceOne }
    @inline(__always) static func combine<T: ReductionElement>(_ a: T, _ b: T) -> T { T.reduceTimes(a, b) }
    @inline(__always) static func combine<T: ReductionElement>(_ a: SIMD8<T>, _ b: SIMD8<T>) -> SIMD8<T> {
        T.reduceTimes(a, b)
    }
}

/// Applied to each result once the fold is done.
private enum ReducePost {
    case none
    case mean(Int)
    case squareRoot
    case logarithm
}

// MARK: Folding loops

/// Folds the 8 lanes of `v` as a balanced tree.
@inline(__always)
private func horizontal<T: ReductionElement, R: Reducer>(_ v: SIMD8<T>, _: R.Type) -> T {
    let a = R.combine(R.combine(v[0], v[4]), R.combine(v[2], v[6]))
    let b = R.combine(R.combine(v[1], v[5]), R.combine(v[3], v[7]))
    return R.combine(a, b)
}

/// Folds a block of up to a few thousand contiguous elements in 32 SIMD lanes.
@inline(__always)
private func reduceBlock<T: ReductionElement, R: Reducer>(_ p: UnsafePointer<T>, _ n: Int, _: R.Type) -> T {
    let id = SIMD8<T>(repeating: R.identity(T.self))
    var a0 = id
    var a1 = id
    var a2 = id
    var a3 = id
    var i = 0
    while i + 32 <= n {
        a0 = R.combine(a0, R.load(loadVector(p + i)))
        a1 = R.combine(a1, R.load(loadVector(p + i + 8)))
        a2 = R.combine(a2, R.load(loadVector(p + i + 16)))
        a3 = R.combine(a3, R.load(loadVector(p + i + 24)))
        i += 32
    }
    while i + 8 <= n {
        a0 = R.combine(a0, R.load(loadVector(p + i)))
        i += 8
    }
    var r = horizontal(R.combine(R.combine(a0, a1), R.combine(a2, a3)), R.self)
    while i < n {
        r = R.combine(r, R.load(p[i]))
        i += 1
    }
    return r
}

/// Folds `n` contiguous elements: blocks of SIMD lanes combined pairwise (sums stay accurate on long rows).
private func reduceRow<T: ReductionElement, R: Reducer>(_ p: UnsafePointer<T>, _ n: Int, _: R.Type) -> T {
    if n <= 2048 { return reduceBlock(p, n, R.self) }
    let half = (n / 2) & ~31
    return R.combine(reduceRow(p, half, R.self), reduceRow(p + half, n - half, R.self))
}

/// `out[i] = fold over r of x[r * inner + i]` for `i` in `cols`: whole rows at a time; sums are compensated with
/// `comp` (same layout as `out`).
private func reduceColumns<T: ReductionElement, R: Reducer>(
    _ x: UnsafePointer<T>, _ out: UnsafeMutablePointer<T>, _ comp: UnsafeMutablePointer<T>, reduced: Int,
    inner: Int, cols: Range<Int>, _: R.Type
) {
    let lo = cols.lowerBound
    let hi = cols.upperBound
    let vectorEnd = lo + (hi - lo) / 8 * 8
    let id = R.identity(T.self)
    for i in lo..<hi { out[i] = id }
    if R.isSum {
        for i in lo..<hi { comp[i] = T.reduceZero }
        for r in 0..<reduced {
            let row = x + r * inner
            var i = lo
            while i < vectorEnd {
                var s = loadVector(out + i)
                var c = loadVector(comp + i)
                T.compensatedAdd(&s, &c, R.load(loadVector(row + i)))
                storeVector(s, out + i)
                storeVector(c, comp + i)
                i += 8
            }
            while i < hi {
                T.compensatedAdd(&out[i], &comp[i], R.load(row[i]))
                i += 1
            }
        }
    } else {
        for r in 0..<reduced {
            let row = x + r * inner
            var i = lo
            while i < vectorEnd {
                storeVector(R.combine(loadVector(out + i), R.load(loadVector(row + i))), out + i)
                i += 8
            }
            while i < hi {
                out[i] = R.combine(out[i], R.load(row[i]))
                i += 1
            }
        }
    }
}

@inline(__always)
private func applyPost<T: ReductionElement>(_ post: ReducePost, _ y: UnsafeMutablePointer<T>, _ n: Int) {
    switch post {
    case .none: break
    case .mean(let count): for i in 0..<n { y[i] = T.reduceMean(y[i], count: count) }
    case .squareRoot: for i in 0..<n { y[i] = T.reduceSqrt(y[i]) }
    case .logarithm: for i in 0..<n { y[i] = T.reduceLog(y[i]) }
    }
}

// MARK: Specialisation

/// Runs a generic kernel through a closure made where its type is concrete: the `Kernel` witness of a generic
/// class would run its unspecialised form (SIMD code through type metadata, many times slower).
private final class SpecializedReduceKernel: Kernel {
    let body: ([Tensor?], [Tensor]) throws -> Void

    init(_ body: @escaping ([Tensor?], [Tensor]) throws -> Void) { self.body = body }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws { try body(inputs, outputs) }
}

@inline(__always)
private func specialized<K: Kernel>(_ kernel: K) -> any Kernel {
    SpecializedReduceKernel { try kernel.run($0, $1) }
}

// MARK: Layout

/// One fold of a `[outer, reduced, inner]` block.
private struct ReducePass {
    var outer: Int
    var reduced: Int
    var inner: Int
    var outputCount: Int { outer * inner }
}

/// A reduction as passes over `[outer, reduced, inner]` blocks: one when the reduced axes are one block (after
/// merging adjacent axes), else one per block of reduced axes, innermost first, each into scratch memory. A
/// kernel that needs `inner == 1` (`rowsOnly`) gathers the input instead so that the reduced axes come last.
private struct ReduceLayout {
    /// Elements folded into each output element.
    var reduced = 1
    var passes: [ReducePass] = []
    /// Dimensions and input strides of the permuted view (kept axes, then reduced axes) to copy into contiguous
    /// scratch first, for `rowsOnly` kernels.
    var gather: (shape: [Int], strides: [Int])? = nil

    init(shape: [Int], axes: [Int], rowsOnly: Bool) {
        let strides = ShapeUtil.contiguousStrides(shape)
        // Merge adjacent axes of the same kind, skipping size-1 axes.
        var groups: [(size: Int, stride: Int, reduced: Bool)] = []
        for (d, n) in shape.enumerated() where n != 1 {
            let r = axes.contains(d)
            if let last = groups.last, last.reduced == r, last.stride == n * strides[d] {
                groups[groups.count - 1] = (last.size * n, strides[d], r)
            } else {
                groups.append((n, strides[d], r))
            }
        }
        let kept = groups.filter { !$0.reduced }
        let folded = groups.filter { $0.reduced }
        let outer = kept.reduce(1) { $0 * $1.size }
        reduced = folded.reduce(1) { $0 * $1.size }
        if folded.isEmpty || (rowsOnly && groups.last?.reduced != true) || (rowsOnly && folded.count > 1) {
            if folded.count > 0 {
                let order = kept + folded
                gather = (order.map(\.size), order.map(\.stride))
            }
            passes = [ReducePass(outer: outer, reduced: reduced, inner: 1)]
            return
        }
        var sizes = groups.map(\.size)
        for j in groups.indices.reversed() where groups[j].reduced {
            let before = sizes[..<j].reduce(1, *)
            let after = sizes[(j + 1)...].reduce(1, *)
            passes.append(ReducePass(outer: before, reduced: sizes[j], inner: after))
            sizes[j] = 1
        }
    }
}

/// Copies the strided view (`shape`, `strides`) of `src` into contiguous `dst`.
private func gatherStrided<T>(_ src: UnsafePointer<T>, _ dst: UnsafeMutablePointer<T>, shape: [Int], strides: [Int]) {
    let rank = shape.count
    guard rank > 0 else {
        dst[0] = src[0]
        return
    }
    let n = shape[rank - 1]
    let s = strides[rank - 1]
    let rows = ShapeUtil.count(shape) / max(n, 1)
    withUnsafeTemporaryAllocation(of: Int.self, capacity: rank) { index in
        index.initialize(repeating: 0)
        var base = 0
        var out = dst
        for _ in 0..<rows {
            for t in 0..<n { out[t] = src[base + t * s] }
            out += n
            var k = rank - 2
            while k >= 0 {
                index[k] += 1
                base += strides[k]
                if index[k] < shape[k] { break }
                base -= index[k] * strides[k]
                index[k] = 0
                k -= 1
            }
        }
    }
}

// MARK: Reduce kernels

/// Input and output sizes, the layout, and the reduction kind parsed from a request.
private struct ReduceSetup {
    let inputCount: Int
    let outputCount: Int
    let layout: ReduceLayout
    let dtype: DType

    init(_ request: KernelRequest, rowsOnly: Bool) throws {
        let x = try request.input(0)
        let type = request.op.type
        dtype = x.dtype
        inputCount = x.count
        outputCount = request.outputs.first?.count ?? 0
        let axes = try Reductions.axes(request.attributes, request.inputs, rank: x.shape.count, type: type)
        layout = ReduceLayout(shape: x.shape, axes: axes, rowsOnly: rowsOnly)
    }
}

private func makeReduceKernel(_ request: KernelRequest) throws -> any Kernel {
    let type = request.op.type
    let floatOnly = ["ReduceL2", "ReduceLogSum", "ReduceLogSumExp"].contains(type)
    let setup = try ReduceSetup(request, rowsOnly: type == "ReduceLogSumExp")
    let reduced = setup.layout.reduced
    let post: ReducePost
    switch type {
    case "ReduceMean": post = .mean(reduced)
    case "ReduceL2": post = .squareRoot
    case "ReduceLogSum": post = .logarithm
    default: post = .none
    }
    func make<T: ReductionElement>(_: T.Type) throws -> any Kernel {
        switch type {
        case "ReduceSum", "ReduceMean", "ReduceLogSum": return specialized(ReduceKernel<T, SumReducer>(setup, post))
        case "ReduceL1": return specialized(ReduceKernel<T, AbsSumReducer>(setup, post))
        case "ReduceL2", "ReduceSumSquare": return specialized(ReduceKernel<T, SquareSumReducer>(setup, post))
        case "ReduceMax": return specialized(ReduceKernel<T, MaxReducer>(setup, post))
        case "ReduceMin": return specialized(ReduceKernel<T, MinReducer>(setup, post))
        case "ReduceProd": return specialized(ReduceKernel<T, ProdReducer>(setup, post))
        default: throw AidgeError.unsupported("\(type) has no CPU kernel")
        }
    }
    switch setup.dtype {
    case .float32:
        return type == "ReduceLogSumExp" ? specialized(LogSumExpKernel<Float>(setup)) : try make(Float.self)
    case .float64:
        return type == "ReduceLogSumExp" ? specialized(LogSumExpKernel<Double>(setup)) : try make(Double.self)
    case .float16 where type != "ReduceLogSumExp": return try make(Float16.self)
    case .int32 where !floatOnly: return try make(Int32.self)
    case .int64 where !floatOnly: return try make(Int64.self)
    case .uint32 where !floatOnly: return try make(UInt32.self)
    case .uint64 where !floatOnly: return try make(UInt64.self)
    case .int8 where !floatOnly: return try make(Int8.self)
    case .int16 where !floatOnly: return try make(Int16.self)
    case .uint16 where !floatOnly: return try make(UInt16.self)
    // bool is 0 or 1 in a byte: its maximum and minimum are the bytes'.
    case .uint8 where !floatOnly, .bool where type == "ReduceMax" || type == "ReduceMin": return try make(UInt8.self)
    default: throw request.unsupportedType(setup.dtype)
    }
}

/// Checks the tensors a reduction kernel is given against its plan.
private func checkReduce<T>(_ inputs: [Tensor?], _ outputs: [Tensor], _ setup: ReduceSetup, _: T.Type) throws
    -> (UnsafePointer<T>, UnsafeMutablePointer<T>)
{
    guard let x = inputs.first ?? nil, let y = outputs.first else {
        throw AidgeError.invalidModel("a reduction needs one input and one output")
    }
    guard x.dtype == setup.dtype, y.dtype == setup.dtype, x.count == setup.inputCount,
        y.count == setup.outputCount
    else {
        throw AidgeError.shapeMismatch(
            "reduction planned for \(setup.inputCount) \(setup.dtype) elements into \(setup.outputCount), got "
                + "\(x.dtype) \(x.shape) into \(y.dtype) \(y.shape)")
    }
    return (UnsafePointer(x.pointer(as: T.self)), y.pointer(as: T.self))
}

/// Owned scratch memory of a kernel, allocated when the kernel is made.
private final class ReduceScratch<T> {
    let pointer: UnsafeMutablePointer<T>
    let count: Int

    init(_ count: Int) {
        self.count = count
        pointer = UnsafeMutablePointer<T>.allocate(capacity: max(count, 1))
    }

    deinit { pointer.deallocate() }
}

private final class ReduceKernel<T: ReductionElement, R: Reducer>: Kernel {
    let setup: ReduceSetup
    let layout: ReduceLayout
    let post: ReducePost
    /// Rows of the first pass split into this many parts when there are too few rows to spread over the cores.
    let splits: Int
    let partials: ReduceScratch<T>
    /// Kahan compensation of column sums (the layout of a pass's output).
    let compensation: ReduceScratch<T>
    /// Outputs of the passes before the last one, alternately.
    let intermediate: [ReduceScratch<T>]

    init(_ setup: ReduceSetup, _ post: ReducePost) {
        self.setup = setup
        self.post = post
        layout = setup.layout
        let passes = layout.passes
        let first = passes.first ?? ReducePass(outer: 1, reduced: 1, inner: 1)
        let threads = min(Parallel.threads, 16)
        splits =
            first.inner == 1 && first.outer < threads && first.reduced >= 1 << 16
            ? max(1, min(threads, first.reduced / (1 << 15))) : 1
        partials = ReduceScratch(splits > 1 ? first.outer * splits : 0)
        let columns = passes.filter { $0.inner > 1 }.map(\.outputCount).max() ?? 0
        compensation = ReduceScratch(R.isSum ? columns : 0)
        var sizes = [0, 0]
        for (i, p) in passes.enumerated().dropLast() { sizes[i % 2] = max(sizes[i % 2], p.outputCount) }
        intermediate = sizes.map { ReduceScratch($0) }
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let (x, y) = try checkReduce(inputs, outputs, setup, T.self)
        let count = setup.outputCount
        if count == 0 { return }
        if setup.inputCount == 0 {
            // Folding nothing gives the identity (0 for sums, -inf for max, ...).
            y.update(repeating: R.identity(T.self), count: count)
            applyPost(post, y, count)
            return
        }
        let passes = layout.passes
        var source = x
        for (i, pass) in passes.enumerated() {
            let destination = i == passes.count - 1 ? y : intermediate[i % 2].pointer
            if i == 0 {
                fold(source, destination, pass, splits: splits, R.self)
            } else {
                fold(source, destination, pass, splits: 1, R.Partial.self)
            }
            source = UnsafePointer(destination)
        }
        applyPost(post, y, count)
    }

    /// One pass: `y[o, i] = fold over r of x[o, r, i]`.
    @inline(__always)
    private func fold<Q: Reducer>(
        _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ pass: ReducePass, splits: Int, _: Q.Type
    ) {
        let (outer, reduced, inner) = (pass.outer, pass.reduced, pass.inner)
        if reduced == 1 {
            Parallel.forEach(pass.outputCount, grain: 1 << 16) { range in
                for i in range { y[i] = Q.load(x[i]) }
            }
        } else if inner == 1 && splits > 1 {
            let partial = partials.pointer
            Parallel.forEach(outer * splits, grain: 1) { range in
                for t in range {
                    let o = t / splits
                    let k = t % splits
                    let start = reduced * k / splits
                    let end = reduced * (k + 1) / splits
                    partial[t] = reduceRow(x + o * reduced + start, end - start, Q.self)
                }
            }
            for o in 0..<outer {
                var r = partial[o * splits]
                for k in 1..<splits { r = Q.combine(r, partial[o * splits + k]) }
                y[o] = r
            }
        } else if inner == 1 {
            Parallel.forEach(outer, grain: max(1, (1 << 15) / reduced)) { range in
                for o in range { y[o] = reduceRow(x + o * reduced, reduced, Q.self) }
            }
        } else {
            let width = min(inner, 1024)
            let chunks = (inner + width - 1) / width
            let comp = compensation.pointer
            Parallel.forEach(outer * chunks, grain: max(1, (1 << 15) / (reduced * width))) { range in
                for t in range {
                    let o = t / chunks
                    let c = t % chunks
                    let cols = (c * width)..<min((c + 1) * width, inner)
                    reduceColumns(
                        x + o * reduced * inner, y + o * inner, comp + o * inner, reduced: reduced, inner: inner,
                        cols: cols, Q.self)
                }
            }
        }
    }
}

/// ReduceLogSumExp: `m + log(sum(exp(x - m)))` per row, with `m` the row's maximum.
private final class LogSumExpKernel<T: ReductionElement & BinaryFloatingPoint>: Kernel {
    let setup: ReduceSetup
    let layout: ReduceLayout
    let gathered: ReduceScratch<T>

    init(_ setup: ReduceSetup) {
        self.setup = setup
        layout = setup.layout
        gathered = ReduceScratch(layout.gather != nil ? setup.inputCount : 0)
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let (input, y) = try checkReduce(inputs, outputs, setup, T.self)
        let count = setup.outputCount
        if count == 0 { return }
        if setup.inputCount == 0 {
            y.update(repeating: -.infinity, count: count)
            return
        }
        var x = input
        if let gather = layout.gather {
            gatherStrided(input, gathered.pointer, shape: gather.shape, strides: gather.strides)
            x = UnsafePointer(gathered.pointer)
        }
        let reduced = layout.reduced
        Parallel.forEach(layout.passes.first?.outer ?? 1, grain: max(1, (1 << 13) / reduced)) { range in
            for o in range {
                let row = x + o * reduced
                let m = reduceRow(row, reduced, MaxReducer.self)
                guard m.isFinite else {
                    y[o] = m
                    continue
                }
                let md = Double(m)
                var s = 0.0
                for r in 0..<reduced { s += exp(Double(row[r]) - md) }
                y[o] = T(md + log(s))
            }
        }
    }
}

// MARK: ArgMax, ArgMin

/// Whether `v` replaces the best value so far.
private protocol ArgChoice {
    static func better<T: ReductionElement>(_ v: T, _ best: T) -> Bool
}

/// NaN counts as the largest and the smallest value (NumPy's rule): the first NaN wins.
private enum ArgMaxFirst: ArgChoice {
    @inline(__always) static func better<T: ReductionElement>(_ v: T, _ best: T) -> Bool {
        v > best || (v.reduceIsNaN && !best.reduceIsNaN)
    }
}
private enum ArgMaxLast: ArgChoice {
    @inline(__always) static func better<T: ReductionElement>(_ v: T, _ best: T) -> Bool {
        v >= best || (v.reduceIsNaN && !best.reduceIsNaN)
    }
}
private enum ArgMinFirst: ArgChoice {
    @inline(__always) static func better<T: ReductionElement>(_ v: T, _ best: T) -> Bool {
        v < best || (v.reduceIsNaN && !best.reduceIsNaN)
    }
}
private enum ArgMinLast: ArgChoice {
    @inline(__always) static func better<T: ReductionElement>(_ v: T, _ best: T) -> Bool {
        v <= best || (v.reduceIsNaN && !best.reduceIsNaN)
    }
}

private func makeArgReduceKernel(_ request: KernelRequest) throws -> any Kernel {
    let x = try request.input(0)
    let type = request.op.type
    let axis = try Reductions.argAxis(request.attributes, rank: x.shape.count, type: type)
    let last = try request.attributes.int("select_last_index", default: 0) != 0
    let isMax = type == "ArgMax"
    func make<T: ReductionElement>(_: T.Type) -> any Kernel {
        switch (isMax, last) {
        case (true, false): return specialized(ArgReduceKernel<T, ArgMaxFirst>(x.shape, axis))
        case (true, true): return specialized(ArgReduceKernel<T, ArgMaxLast>(x.shape, axis))
        case (false, false): return specialized(ArgReduceKernel<T, ArgMinFirst>(x.shape, axis))
        case (false, true): return specialized(ArgReduceKernel<T, ArgMinLast>(x.shape, axis))
        }
    }
    switch x.dtype {
    case .float32: return make(Float.self)
    case .float64: return make(Double.self)
    case .int32: return make(Int32.self)
    case .int64: return make(Int64.self)
    default: throw request.unsupportedType(x.dtype)
    }
}

private final class ArgReduceKernel<T: ReductionElement, C: ArgChoice>: Kernel {
    let outer: Int
    let reduced: Int
    let inner: Int
    /// The best value of each output element so far (when `inner > 1`).
    let best: ReduceScratch<T>

    init(_ shape: [Int], _ axis: Int) {
        outer = ShapeUtil.count(Array(shape[..<axis]))
        reduced = shape[axis]
        inner = ShapeUtil.count(Array(shape[(axis + 1)...]))
        best = ReduceScratch(inner > 1 ? outer * inner : 0)
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard let input = inputs.first ?? nil, let output = outputs.first, input.dtype == T.dtype,
            output.dtype == .int64, input.count == outer * reduced * inner, output.count == outer * inner
        else {
            throw AidgeError.shapeMismatch("ArgMax/ArgMin got tensors that do not match its plan")
        }
        let count = outer * inner
        if count == 0 { return }
        guard reduced > 0 else { throw AidgeError.shapeMismatch("ArgMax/ArgMin over an empty axis") }
        let x = UnsafePointer(input.pointer(as: T.self))
        let y = output.pointer(as: Int64.self)
        let reduced = self.reduced
        let inner = self.inner
        if inner == 1 {
            Parallel.forEach(outer, grain: max(1, (1 << 14) / reduced)) { range in
                for o in range {
                    let row = x + o * reduced
                    var b = row[0]
                    var index = 0
                    for r in 1..<max(reduced, 1) where C.better(row[r], b) {
                        b = row[r]
                        index = r
                    }
                    y[o] = Int64(index)
                }
            }
            return
        }
        let width = min(inner, 1024)
        let chunks = (inner + width - 1) / width
        let bestValues = best.pointer
        Parallel.forEach(outer * chunks, grain: max(1, (1 << 14) / (reduced * width))) { range in
            for t in range {
                let o = t / chunks
                let c = t % chunks
                let lo = c * width
                let hi = min(lo + width, inner)
                let block = x + o * reduced * inner
                let b = bestValues + o * inner
                let index = y + o * inner
                for i in lo..<hi {
                    b[i] = block[i]
                    index[i] = 0
                }
                for r in 1..<max(reduced, 1) {
                    let row = block + r * inner
                    for i in lo..<hi where C.better(row[i], b[i]) {
                        b[i] = row[i]
                        index[i] = Int64(r)
                    }
                }
            }
        }
    }
}

// MARK: Shared with the other kernel families

/// The sum of `n` contiguous elements (SIMD lanes, pairwise: accurate on long rows).
func rowSum<T: ReductionElement>(_ p: UnsafePointer<T>, _ n: Int) -> T { reduceRow(p, n, SumReducer.self) }
