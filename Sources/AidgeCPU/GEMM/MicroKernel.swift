/// What happens to a tile of `alpha * A * B` when it is written into C.
///
/// C = alpha * A * B (+ C when `accumulate`) + rowBias[i] + colBias[j], then clamped to `lower...upper` when
/// `clamps` (a fused ReLU / ReLU6 / Clip). Biases and the clamp are applied once, after the last K block.
struct GEMMEpilogue {
    var alpha: Float = 1
    /// Adds to what C already holds (C was prefilled, e.g. with beta * C of ONNX Gemm).
    var accumulate = false
    var rowBias: UnsafePointer<Float>? = nil
    var colBias: UnsafePointer<Float>? = nil
    var clamps = false
    var lower: Float = -.infinity
    var upper: Float = .infinity

    init(
        alpha: Float = 1, accumulate: Bool = false, rowBias: UnsafePointer<Float>? = nil,
        colBias: UnsafePointer<Float>? = nil, lower: Float? = nil, upper: Float? = nil
    ) {
        self.alpha = alpha
        self.accumulate = accumulate
        self.rowBias = rowBias
        self.colBias = colBias
        self.clamps = lower != nil || upper != nil
        self.lower = lower ?? -.infinity
        self.upper = upper ?? .infinity
    }

    /// The final value of one element (scalar path of edge tiles and of K = 0).
    @inline(__always)
    func finish(_ product: Float, old: Float, row: Int, col: Int, addOld: Bool, last: Bool) -> Float {
        var v = product
        if addOld { v += old }
        if last {
            if let rowBias { v += rowBias[row] }
            if let colBias { v += colBias[col] }
            if clamps { v = clampScalar(v, lower, upper) }
        }
        return v
    }
}

/// `v` clamped to `lo...hi`; NaN stays NaN (as ONNX Relu and Clip give).
@inline(__always)
func clampScalar(_ v: Float, _ lo: Float, _ hi: Float) -> Float {
    v < lo ? lo : v > hi ? hi : v
}

/// Lane-wise `clampScalar`, as two compares and blends.
@inline(__always)
func clampLanes(_ v: SIMD8<Float>, _ lo: SIMD8<Float>, _ hi: SIMD8<Float>) -> SIMD8<Float> {
    let r = v.replacing(with: lo, where: v .< lo)
    return r.replacing(with: hi, where: r .> hi)
}

/// Where a tile lies and which K block produced it.
struct TileContext {
    /// Row and column of the tile's first element in the whole C (for the biases).
    var row: Int
    var col: Int
    /// C already holds a partial sum (not the first K block, or `accumulate`).
    var addOld: Bool
    /// The last K block: apply biases and clamp.
    var last: Bool
}


@inline(__always)
private func loadV8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always)
private func storeV8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}

/// The 6x16 register-blocked micro-kernel: 12 SIMD8 accumulators, one FMA per accumulator per k.
///
/// `a`: packed panel, `kc` groups of 6 floats; `b`: packed panel, `kc` groups of 16 floats (64-byte aligned).
/// Writes the `rows x cols` top-left part of the tile into `c` (row stride `ldc`); `edge` is a 96-float scratch
/// tile for partial tiles.
@inline(never)
func microKernel6x16(
    _ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, _ ldc: Int,
    rows: Int, cols: Int, edge: UnsafeMutablePointer<Float>, _ ep: GEMMEpilogue, _ tile: TileContext
) {
    var c00 = SIMD8<Float>(), c01 = SIMD8<Float>(), c10 = SIMD8<Float>(), c11 = SIMD8<Float>(), c20 = SIMD8<Float>(), c21 = SIMD8<Float>()
    var c30 = SIMD8<Float>(), c31 = SIMD8<Float>(), c40 = SIMD8<Float>(), c41 = SIMD8<Float>(), c50 = SIMD8<Float>(), c51 = SIMD8<Float>()
    var pa = a
    var pb = UnsafeRawPointer(b)
    for _ in 0..<kc {
        let b0 = pb.load(as: SIMD8<Float>.self)
        let b1 = pb.load(fromByteOffset: 32, as: SIMD8<Float>.self)
        var av = SIMD8<Float>(repeating: pa[0])
        c00 = c00.addingProduct(av, b0)
        c01 = c01.addingProduct(av, b1)
        av = SIMD8<Float>(repeating: pa[1])
        c10 = c10.addingProduct(av, b0)
        c11 = c11.addingProduct(av, b1)
        av = SIMD8<Float>(repeating: pa[2])
        c20 = c20.addingProduct(av, b0)
        c21 = c21.addingProduct(av, b1)
        av = SIMD8<Float>(repeating: pa[3])
        c30 = c30.addingProduct(av, b0)
        c31 = c31.addingProduct(av, b1)
        av = SIMD8<Float>(repeating: pa[4])
        c40 = c40.addingProduct(av, b0)
        c41 = c41.addingProduct(av, b1)
        av = SIMD8<Float>(repeating: pa[5])
        c50 = c50.addingProduct(av, b0)
        c51 = c51.addingProduct(av, b1)
        pa += 6
        pb += 64
    }
    if ep.alpha != 1 {
        let s = SIMD8<Float>(repeating: ep.alpha)
        c00 *= s; c01 *= s; c10 *= s; c11 *= s; c20 *= s; c21 *= s
        c30 *= s; c31 *= s; c40 *= s; c41 *= s; c50 *= s; c51 *= s
    }
    if rows == 6 && cols == 16 {
        storeRow(c00, c01, c, 0, ep, tile)
        storeRow(c10, c11, c + ldc, 1, ep, tile)
        storeRow(c20, c21, c + 2 * ldc, 2, ep, tile)
        storeRow(c30, c31, c + 3 * ldc, 3, ep, tile)
        storeRow(c40, c41, c + 4 * ldc, 4, ep, tile)
        storeRow(c50, c51, c + 5 * ldc, 5, ep, tile)
    } else {
        storeV8(c00, edge); storeV8(c01, edge + 8)
        storeV8(c10, edge + 16); storeV8(c11, edge + 24)
        storeV8(c20, edge + 32); storeV8(c21, edge + 40)
        storeV8(c30, edge + 48); storeV8(c31, edge + 56)
        storeV8(c40, edge + 64); storeV8(c41, edge + 72)
        storeV8(c50, edge + 80); storeV8(c51, edge + 88)
        storeEdge(edge, c, ldc, rows: rows, cols: cols, ep, tile)
    }
}

/// A 6x8 kernel for the last panel of B when it holds at most 8 columns (half the work of the 6x16 kernel).
/// Reads the first 8 floats of each 16-float group of the packed panel.
@inline(never)
func microKernel6x8(
    _ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, _ ldc: Int,
    rows: Int, cols: Int, edge: UnsafeMutablePointer<Float>, _ ep: GEMMEpilogue, _ tile: TileContext
) {
    var c0 = SIMD8<Float>(), c1 = SIMD8<Float>(), c2 = SIMD8<Float>()
    var c3 = SIMD8<Float>(), c4 = SIMD8<Float>(), c5 = SIMD8<Float>()
    var pa = a
    var pb = UnsafeRawPointer(b)
    for _ in 0..<kc {
        let b0 = pb.load(as: SIMD8<Float>.self)
        c0 = c0.addingProduct(SIMD8(repeating: pa[0]), b0)
        c1 = c1.addingProduct(SIMD8(repeating: pa[1]), b0)
        c2 = c2.addingProduct(SIMD8(repeating: pa[2]), b0)
        c3 = c3.addingProduct(SIMD8(repeating: pa[3]), b0)
        c4 = c4.addingProduct(SIMD8(repeating: pa[4]), b0)
        c5 = c5.addingProduct(SIMD8(repeating: pa[5]), b0)
        pa += 6
        pb += 64
    }
    if ep.alpha != 1 {
        let s = SIMD8<Float>(repeating: ep.alpha)
        c0 *= s; c1 *= s; c2 *= s; c3 *= s; c4 *= s; c5 *= s
    }
    storeV8(c0, edge); storeV8(c1, edge + 16); storeV8(c2, edge + 32)
    storeV8(c3, edge + 48); storeV8(c4, edge + 64); storeV8(c5, edge + 80)
    storeEdge(edge, c, ldc, rows: rows, cols: cols, ep, tile)
}

/// Writes one full 16-wide row of a tile with the epilogue.
@inline(__always)
private func storeRow(
    _ v0: SIMD8<Float>, _ v1: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>, _ r: Int, _ ep: GEMMEpilogue, _ tile: TileContext
) {
    var x0 = v0
    var x1 = v1
    if tile.addOld {
        x0 += loadV8(p)
        x1 += loadV8(p + 8)
    }
    if tile.last {
        if let rb = ep.rowBias {
            let s = SIMD8<Float>(repeating: rb[tile.row + r])
            x0 += s
            x1 += s
        }
        if let cb = ep.colBias {
            x0 += loadV8(cb + tile.col)
            x1 += loadV8(cb + tile.col + 8)
        }
        if ep.clamps {
            let lo = SIMD8<Float>(repeating: ep.lower)
            let hi = SIMD8<Float>(repeating: ep.upper)
            x0 = clampLanes(x0, lo, hi)
            x1 = clampLanes(x1, lo, hi)
        }
    }
    storeV8(x0, p)
    storeV8(x1, p + 8)
}

/// Writes the valid part of a partial tile held in `edge` (6 rows of 16).
@inline(never)
func storeEdge(
    _ edge: UnsafeMutablePointer<Float>, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, rows: Int, cols: Int,
    _ ep: GEMMEpilogue, _ tile: TileContext
) {
    for r in 0..<rows {
        let p = c + r * ldc
        for j in 0..<cols {
            p[j] = ep.finish(
                edge[r * 16 + j], old: tile.addOld ? p[j] : 0, row: tile.row + r, col: tile.col + j,
                addOld: tile.addOld, last: tile.last)
        }
    }
}

/// A 1x16 kernel for matrices with fewer than 3 rows (GEMV-like products), one row of A at a time.
@inline(never)
func microKernel1x16(
    _ kc: Int, _ a: UnsafePointer<Float>, _ aStride: Int, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
    cols: Int, edge: UnsafeMutablePointer<Float>, _ ep: GEMMEpilogue, _ tile: TileContext
) {
    var c0 = SIMD8<Float>(), c1 = SIMD8<Float>(), d0 = SIMD8<Float>(), d1 = SIMD8<Float>()
    var pa = a
    var pb = UnsafeRawPointer(b)
    var k = 0
    while k + 2 <= kc {
        let a0 = SIMD8<Float>(repeating: pa[0])
        let a1 = SIMD8<Float>(repeating: pa[aStride])
        c0 = c0.addingProduct(a0, pb.load(as: SIMD8<Float>.self))
        c1 = c1.addingProduct(a0, pb.load(fromByteOffset: 32, as: SIMD8<Float>.self))
        d0 = d0.addingProduct(a1, pb.load(fromByteOffset: 64, as: SIMD8<Float>.self))
        d1 = d1.addingProduct(a1, pb.load(fromByteOffset: 96, as: SIMD8<Float>.self))
        pa += 2 * aStride
        pb += 128
        k += 2
    }
    if k < kc {
        let a0 = SIMD8<Float>(repeating: pa[0])
        c0 = c0.addingProduct(a0, pb.load(as: SIMD8<Float>.self))
        c1 = c1.addingProduct(a0, pb.load(fromByteOffset: 32, as: SIMD8<Float>.self))
    }
    c0 += d0
    c1 += d1
    if ep.alpha != 1 {
        let s = SIMD8<Float>(repeating: ep.alpha)
        c0 *= s
        c1 *= s
    }
    if cols == 16 {
        storeRow(c0, c1, c, 0, ep, tile)
    } else {
        storeV8(c0, edge)
        storeV8(c1, edge + 8)
        storeEdge(edge, c, 0, rows: 1, cols: cols, ep, tile)
    }
}

/// A fused activation's bounds, broadcast, for kernels that store 8 lanes at a time.
struct LaneClamp {
    let active: Bool
    let lo: SIMD8<Float>
    let hi: SIMD8<Float>
    let scalarLo: Float
    let scalarHi: Float

    init(lower: Float?, upper: Float?) {
        active = lower != nil || upper != nil
        scalarLo = lower ?? -.infinity
        scalarHi = upper ?? .infinity
        lo = SIMD8(repeating: scalarLo)
        hi = SIMD8(repeating: scalarHi)
    }

    @inline(__always) func apply(_ v: SIMD8<Float>) -> SIMD8<Float> { active ? clampLanes(v, lo, hi) : v }
    @inline(__always) func apply(_ v: Float) -> Float { active ? clampScalar(v, scalarLo, scalarHi) : v }
}
