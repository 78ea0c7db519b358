/// AVX-512 kernels, compiled in their own module with AVX-512 enabled: only called after the processor was
/// checked (`Processor.supportsAVX512`), so the rest of the CPU backend keeps running on AVX2 machines.

/// What happens to a 6x32 tile of `alpha * A * B` when it is written into C (see the CPU backend's
/// `GEMMEpilogue`, which this mirrors with plain values).
public struct TileEpilogue {
    public var alpha: Float
    /// C already holds a partial sum to add to.
    public var addOld: Bool
    /// The last K block: add the biases and clamp.
    public var last: Bool
    /// Bias per row of the tile (6 values) and per column (32 values), already offset to the tile.
    public var rowBias: UnsafePointer<Float>?
    public var colBias: UnsafePointer<Float>?
    public var clamps: Bool
    public var lower: Float
    public var upper: Float

    @inlinable
    public init(
        alpha: Float, addOld: Bool, last: Bool, rowBias: UnsafePointer<Float>?, colBias: UnsafePointer<Float>?,
        clamps: Bool, lower: Float, upper: Float
    ) {
        self.alpha = alpha
        self.addOld = addOld
        self.last = last
        self.rowBias = rowBias
        self.colBias = colBias
        self.clamps = clamps
        self.lower = lower
        self.upper = upper
    }
}

/// A 6x32 tile: 12 SIMD16 accumulators, A's `kc` groups of 6 floats broadcast against two adjacent packed
/// B panels (`b0`, `b1`: `kc` groups of 16 floats each), so it reads the same packing as the 6x16 AVX2 kernel.
/// Packing pads A and B with zeros, so a partial tile (`rows` < 6 or `cols` < 32) is computed whole into `edge`
/// (192 floats) and only its valid part is written.
@inline(never)
public func microKernel6x32(
    _ kc: Int, _ a: UnsafePointer<Float>, _ b0: UnsafePointer<Float>, _ b1: UnsafePointer<Float>,
    _ c: UnsafeMutablePointer<Float>, _ ldc: Int, rows: Int, cols: Int, edge: UnsafeMutablePointer<Float>,
    _ ep: TileEpilogue
) {
    var c00 = SIMD16<Float>(), c01 = SIMD16<Float>(), c10 = SIMD16<Float>(), c11 = SIMD16<Float>()
    var c20 = SIMD16<Float>(), c21 = SIMD16<Float>(), c30 = SIMD16<Float>(), c31 = SIMD16<Float>()
    var c40 = SIMD16<Float>(), c41 = SIMD16<Float>(), c50 = SIMD16<Float>(), c51 = SIMD16<Float>()
    var pa = a
    var p0 = UnsafeRawPointer(b0)
    var p1 = UnsafeRawPointer(b1)
    for _ in 0..<kc {
        let v0 = p0.loadUnaligned(as: SIMD16<Float>.self)
        let v1 = p1.loadUnaligned(as: SIMD16<Float>.self)
        var av = SIMD16<Float>(repeating: pa[0])
        c00 = c00.addingProduct(av, v0)
        c01 = c01.addingProduct(av, v1)
        av = SIMD16<Float>(repeating: pa[1])
        c10 = c10.addingProduct(av, v0)
        c11 = c11.addingProduct(av, v1)
        av = SIMD16<Float>(repeating: pa[2])
        c20 = c20.addingProduct(av, v0)
        c21 = c21.addingProduct(av, v1)
        av = SIMD16<Float>(repeating: pa[3])
        c30 = c30.addingProduct(av, v0)
        c31 = c31.addingProduct(av, v1)
        av = SIMD16<Float>(repeating: pa[4])
        c40 = c40.addingProduct(av, v0)
        c41 = c41.addingProduct(av, v1)
        av = SIMD16<Float>(repeating: pa[5])
        c50 = c50.addingProduct(av, v0)
        c51 = c51.addingProduct(av, v1)
        pa += 6
        p0 += 64
        p1 += 64
    }
    if rows == 6 && cols == 32 {
        store(c00, c01, c, 0, ep)
        store(c10, c11, c + ldc, 1, ep)
        store(c20, c21, c + 2 &* ldc, 2, ep)
        store(c30, c31, c + 3 &* ldc, 3, ep)
        store(c40, c41, c + 4 &* ldc, 4, ep)
        store(c50, c51, c + 5 &* ldc, 5, ep)
        return
    }
    let e = UnsafeMutableRawPointer(edge)
    e.storeBytes(of: c00, toByteOffset: 0, as: SIMD16<Float>.self)
    e.storeBytes(of: c01, toByteOffset: 64, as: SIMD16<Float>.self)
    e.storeBytes(of: c10, toByteOffset: 128, as: SIMD16<Float>.self)
    e.storeBytes(of: c11, toByteOffset: 192, as: SIMD16<Float>.self)
    e.storeBytes(of: c20, toByteOffset: 256, as: SIMD16<Float>.self)
    e.storeBytes(of: c21, toByteOffset: 320, as: SIMD16<Float>.self)
    e.storeBytes(of: c30, toByteOffset: 384, as: SIMD16<Float>.self)
    e.storeBytes(of: c31, toByteOffset: 448, as: SIMD16<Float>.self)
    e.storeBytes(of: c40, toByteOffset: 512, as: SIMD16<Float>.self)
    e.storeBytes(of: c41, toByteOffset: 576, as: SIMD16<Float>.self)
    e.storeBytes(of: c50, toByteOffset: 640, as: SIMD16<Float>.self)
    e.storeBytes(of: c51, toByteOffset: 704, as: SIMD16<Float>.self)
    storeEdge(edge, c, ldc, rows: rows, cols: cols, ep)
}

/// Writes the valid `rows x cols` part of a tile held in `edge` (rows of 32) with the epilogue.
@inline(never)
private func storeEdge(
    _ edge: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, rows: Int, cols: Int,
    _ ep: TileEpilogue
) {
    for r in 0..<rows {
        let p = c + r &* ldc
        let e = edge + r &* 32
        for j in 0..<cols {
            var v = e[j] * ep.alpha
            if ep.addOld { v += p[j] }
            if ep.last {
                if let rb = ep.rowBias { v += rb[r] }
                if let cb = ep.colBias { v += cb[j] }
                if ep.clamps { v = v < ep.lower ? ep.lower : v > ep.upper ? ep.upper : v }
            }
            p[j] = v
        }
    }
}

/// Writes one 32-wide row of a tile with the epilogue.
@inline(__always)
private func store(
    _ v0: SIMD16<Float>, _ v1: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>, _ r: Int, _ ep: TileEpilogue
) {
    let raw = UnsafeMutableRawPointer(p)
    var x0 = v0
    var x1 = v1
    if ep.alpha != 1 {
        x0 *= SIMD16(repeating: ep.alpha)
        x1 *= SIMD16(repeating: ep.alpha)
    }
    if ep.addOld {
        x0 += raw.loadUnaligned(as: SIMD16<Float>.self)
        x1 += raw.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
    }
    if ep.last {
        if let rb = ep.rowBias {
            let s = SIMD16<Float>(repeating: rb[r])
            x0 += s
            x1 += s
        }
        if let cb = ep.colBias {
            x0 += UnsafeRawPointer(cb).loadUnaligned(as: SIMD16<Float>.self)
            x1 += UnsafeRawPointer(cb).loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
        }
        if ep.clamps {
            // Two compares and blends: NaN stays NaN, as ONNX Relu and Clip give.
            let lo = SIMD16<Float>(repeating: ep.lower)
            let hi = SIMD16<Float>(repeating: ep.upper)
            x0 = x0.replacing(with: lo, where: x0 .< lo)
            x0 = x0.replacing(with: hi, where: x0 .> hi)
            x1 = x1.replacing(with: lo, where: x1 .< lo)
            x1 = x1.replacing(with: hi, where: x1 .> hi)
        }
    }
    raw.storeBytes(of: x0, as: SIMD16<Float>.self)
    raw.storeBytes(of: x1, toByteOffset: 64, as: SIMD16<Float>.self)
}
