import AidgeCore

#if canImport(Glibc)
import Glibc
#endif

/// Softmax and LogSoftmax (opset 13) along one axis, numerically stable: the maximum along the axis is subtracted
/// before exponentiating.
///
/// The tensor is seen as `outer x n x inner` with `n` the axis length. With `inner == 1` (the last axis) each row is
/// contiguous and processed 8 lanes at a time; otherwise blocks of up to 128 neighbouring columns are processed
/// together, row by row along the axis (contiguous runs, the running maxima and sums in a small stack buffer).
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
            let width = softmaxBlock
            let blocks = (inner + width - 1) / width
            Parallel.forEach(g.outer * blocks, grain: max(1, ElementCost.vector / (n * min(inner, width)))) { units in
                withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 2 * width / 8) { scratch in
                    guard let base = scratch.baseAddress else { return }
                    for u in units {
                        let (b, block) = u.quotientAndRemainder(dividingBy: blocks)
                        let start = b * n * inner + block * width
                        softmaxColumns(
                            x + start, o + start, n, inner, min(width, inner - block * width), base, log: log)
                    }
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

/// Columns per block when the axis is not the last one: the maxima and sums of a block take 1 KiB of stack.
private let softmaxBlock = 128

/// `width <= softmaxBlock` neighbouring columns of `n > 0` elements each, rows `inner` apart; `scratch` holds
/// `2 * softmaxBlock / 8` vectors.
@inline(__always)
private func softmaxColumns(
    _ x: UnsafePointer<Float>, _ o: UnsafeMutablePointer<Float>, _ n: Int, _ inner: Int, _ width: Int,
    _ scratch: UnsafeMutablePointer<SIMD8<Float>>, log: Bool
) {
    let full = width / 8
    let rest = width - full * 8
    let vectors = rest > 0 ? full + 1 : full
    let m = scratch
    let s = scratch + softmaxBlock / 8
    @inline(__always) func load(_ p: UnsafePointer<Float>, _ v: Int) -> SIMD8<Float> {
        v < full ? load8(p + 8 * v) : loadPartial8(p + 8 * v, rest)
    }
    @inline(__always) func store(_ value: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ v: Int) {
        if v < full { store8(value, p + 8 * v) } else { storePartial8(value, p + 8 * v, rest) }
    }
    for v in 0..<vectors { m[v] = load(x, v) }
    for a in 1..<max(n, 1) {
        let row = x + a * inner
        for v in 0..<vectors {
            let value = load(row, v)
            m[v] = m[v].replacing(with: value, where: value .> m[v])
        }
    }
    for v in 0..<vectors { s[v] = SIMD8() }
    for a in 0..<n {
        let row = x + a * inner
        let out = o + a * inner
        for v in 0..<vectors {
            let e = VectorMath.exp(load(row, v) - m[v])
            if !log { store(e, out, v) }
            s[v] += e
        }
    }
    if log {
        for v in 0..<vectors {
            var shift = SIMD8<Float>()
            for j in 0..<8 { shift[j] = logf(s[v][j]) }
            s[v] = shift
        }
        for a in 0..<n {
            let row = x + a * inner
            let out = o + a * inner
            for v in 0..<vectors { store(load(row, v) - m[v] - s[v], out, v) }
        }
    } else {
        for v in 0..<vectors { s[v] = 1 / s[v] }
        for a in 0..<n {
            let out = o + a * inner
            for v in 0..<vectors { store(load(out, v) * s[v], out, v) }
        }
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
