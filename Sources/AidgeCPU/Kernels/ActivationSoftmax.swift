import AidgeCore

#if canImport(Glibc)
import Glibc
#endif

/// Softmax and LogSoftmax (opset 13) along one axis, numerically stable: the maximum along the axis is subtracted
/// before exponentiating.
///
/// The tensor is seen as `outer x n x inner` with `n` the axis length. With `inner == 1` (the last axis) each row is
/// contiguous and processed 8 lanes at a time; otherwise 8 neighbouring columns are processed together, walking
/// the axis with stride `inner`.
func makeSoftmaxKernel(_ request: KernelRequest, log: Bool) throws -> any Kernel {
    let x = try request.input(0)
    let shape = x.shape.isEmpty ? [1] : x.shape
    let axis = try ShapeUtil.axis(try request.attributes.int("axis", default: -1), rank: shape.count)
    let geometry = SoftmaxGeometry(
        outer: ShapeUtil.count(Array(shape[..<axis])), n: shape[axis],
        inner: ShapeUtil.count(Array(shape[(axis + 1)...])), log: log)
    switch x.dtype {
    case .float32: return softmaxFloat32(geometry)
    case .float64: return softmaxGeneric(Double.self, geometry)
    case .float16: return softmaxGeneric(Float16.self, geometry)
    default: throw request.unsupportedType(x.dtype)
    }
}

struct SoftmaxGeometry {
    let outer: Int
    let n: Int
    let inner: Int
    let log: Bool
}

private func softmaxFloat32(_ g: SoftmaxGeometry) -> any Kernel {
    ClosureKernel { inputs, outputs in
        let x = try presentInput(inputs, 0).pointer(as: Float.self)
        let o = try firstOutput(outputs).pointer(as: Float.self)
        let (n, inner, log) = (g.n, g.inner, g.log)
        if n == 0 || g.outer == 0 || inner == 0 { return }
        if inner == 1 {
            Parallel.forEach(g.outer, grain: max(1, ElementCost.vector / n)) { rows in
                for r in rows { softmaxRow(x + r * n, o + r * n, n, log: log) }
            }
        } else {
            let blocks = (inner + 7) / 8
            Parallel.forEach(g.outer * blocks, grain: max(1, ElementCost.vector / (8 * n))) { units in
                for u in units {
                    let (b, block) = u.quotientAndRemainder(dividingBy: blocks)
                    let start = b * n * inner + block * 8
                    softmaxColumns(x + start, o + start, n, inner, min(8, inner - block * 8), log: log)
                }
            }
        }
    }
}

/// One contiguous row of `n > 0` elements.
@inline(__always)
private func softmaxRow(_ x: UnsafePointer<Float>, _ o: UnsafeMutablePointer<Float>, _ n: Int, log: Bool) {
    let body = n & ~7
    let rest = n - body
    var m8 = SIMD8<Float>(repeating: -.infinity)
    var i = 0
    while i < body {
        let v = load8(x + i)
        m8 = v.replacing(with: m8, where: .!(v .> m8))
        i += 8
    }
    var m = m8.max()
    for j in body..<n where x[j] > m { m = x[j] }
    let mv = SIMD8<Float>(repeating: m)
    var s8 = SIMD8<Float>()
    i = 0
    while i < body {
        let e = VectorMath.exp(load8(x + i) - mv)
        if !log { store8(e, o + i) }
        s8 += e
        i += 8
    }
    var sum = s8.sum()
    if rest > 0 {
        let e = VectorMath.exp(loadPartial8(x + body, rest) - mv)
        if !log { storePartial8(e, o + body, rest) }
        for j in 0..<rest { sum += e[j] }
    }
    if log {
        let shift = SIMD8<Float>(repeating: logf(sum))
        i = 0
        while i < body {
            store8(load8(x + i) - mv - shift, o + i)
            i += 8
        }
        if rest > 0 { storePartial8(loadPartial8(x + body, rest) - mv - shift, o + body, rest) }
    } else {
        let scale = SIMD8<Float>(repeating: 1 / sum)
        i = 0
        while i < body {
            store8(load8(o + i) * scale, o + i)
            i += 8
        }
        for j in body..<n { o[j] *= scale[0] }
    }
}

/// `width <= 8` neighbouring columns of `n > 0` elements each, `inner` apart.
@inline(__always)
private func softmaxColumns(
    _ x: UnsafePointer<Float>, _ o: UnsafeMutablePointer<Float>, _ n: Int, _ inner: Int, _ width: Int, log: Bool
) {
    @inline(__always) func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        width == 8 ? load8(p) : loadPartial8(p, width)
    }
    @inline(__always) func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        if width == 8 { store8(v, p) } else { storePartial8(v, p, width) }
    }
    var m = SIMD8<Float>(repeating: -.infinity)
    for a in 0..<n {
        let v = load(x + a * inner)
        m = v.replacing(with: m, where: .!(v .> m))
    }
    var s = SIMD8<Float>()
    for a in 0..<n {
        let e = VectorMath.exp(load(x + a * inner) - m)
        if !log { store(e, o + a * inner) }
        s += e
    }
    if log {
        var shift = SIMD8<Float>()
        for j in 0..<width { shift[j] = logf(s[j]) }
        for a in 0..<n { store(load(x + a * inner) - m - shift, o + a * inner) }
    } else {
        let scale = 1 / s
        for a in 0..<n { store(load(o + a * inner) * scale, o + a * inner) }
    }
}

/// float64 and float16: computed in float64, one (outer, inner) line at a time.
private func softmaxGeneric<T: MathFloat>(_: T.Type, _ g: SoftmaxGeometry) -> any Kernel {
    ClosureKernel { inputs, outputs in
        let x = try presentInput(inputs, 0).pointer(as: T.self)
        let o = try firstOutput(outputs).pointer(as: T.self)
        let (n, inner, log) = (g.n, g.inner, g.log)
        if n == 0 || g.outer == 0 || inner == 0 { return }
        Parallel.forEach(g.outer * inner, grain: max(1, ElementCost.scalar / n)) { lines in
            for line in lines {
                let (b, j) = line.quotientAndRemainder(dividingBy: inner)
                let xs = x + b * n * inner + j
                let os = o + b * n * inner + j
                var m = -Double.infinity
                for a in 0..<n where Double(xs[a * inner]) > m { m = Double(xs[a * inner]) }
                var sum = 0.0
                for a in 0..<n { sum += Double.mathExp(Double(xs[a * inner]) - m) }
                if log {
                    let shift = Double.mathLog(sum)
                    for a in 0..<n { os[a * inner] = T(Double(xs[a * inner]) - m - shift) }
                } else {
                    for a in 0..<n { os[a * inner] = T(Double.mathExp(Double(xs[a * inner]) - m) / sum) }
                }
            }
        }
    }
}
