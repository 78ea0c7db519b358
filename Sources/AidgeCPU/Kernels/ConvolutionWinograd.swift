import AidgeCore
import Synchronization

/// 3x3 stride-1 float32 convolution by Winograd's F(2x2, 3x3): 2.25 times fewer multiply-adds than im2col.
///
/// Each 2x2 block of outputs (a tile) comes from a 4x4 input patch. With the transforms
/// `U = G g Gᵀ` (weights, once), `V = Bᵀ d B` (input patches) and `Y = Aᵀ M A` (outputs), the convolution becomes
/// 16 independent products `M[ξ] = U[ξ] (out x in channels) x V[ξ] (in channels x tiles)`, run on the packed GEMM.
/// Tiles are processed in blocks small enough for V and M to stay in L2; the transforms work on 8 horizontally
/// adjacent tiles at a time over a zero-bordered copy of the input. Constant weights are transformed once; weights
/// that may change (training) once per run. A batch of at least two images per thread is spread by whole images,
/// each on one thread; smaller batches split every step of an image over the threads.
final class WinogradConvKernel: Kernel {
    private let g: ConvGeometry
    private let s: ConvShape3D
    private let cin: Int
    private let cout: Int
    /// Tiles per column and per row, and in all.
    private let tilesH: Int
    private let tilesW: Int
    private let tiles: Int
    /// Tiles per block; row stride of V and M (a block plus slack for 8-wide stores).
    private let block: Int
    private let stride: Int
    /// The zero-bordered input plane: `padH x padW`, input at (`s.ph`, `s.pw`).
    private let padH: Int
    private let padW: Int
    private let copiedRows: Int
    private let copiedCols: Int
    /// U for constant weights (nil: transformed at every run).
    private let constantU: AlignedBuffer?
    /// Weights given as the forward convolution's (`cout` and `cin` swapped, kernel rotated by 180 degrees):
    /// this kernel then computes that convolution's input gradient.
    private let transposedWeights: Bool
    /// Whether outputs are added to what the output holds (gradients accumulate).
    private let accumulate: Bool
    private let bias: AlignedBuffer?
    private let clamp: LaneClamp

    static func applies(_ g: ConvGeometry, _ s: ConvShape3D) -> Bool {
        g.group == 1 && s.d == 1 && s.kd == 1 && s.od == 1 && s.kh == 3 && s.kw == 3 && s.sh == 1
            && s.sw == 1 && s.dh == 1 && s.dw == 1 && g.inChannels >= 16 && g.outChannels >= 16 && s.oh >= 4
            && s.ow >= 4
    }

    /// `transposedWeights` and `accumulate`: see the properties; the backward of Conv sets both.
    init(
        _ request: KernelRequest, _ geometry: ConvGeometry, _ shape: ConvShape3D, transposedWeights: Bool = false,
        accumulate: Bool = false
    ) throws {
        self.transposedWeights = transposedWeights
        self.accumulate = accumulate
        g = geometry
        s = shape
        cin = geometry.inChannels
        let activation = try FusedActivation(request.attributes)
        clamp = LaneClamp(lower: activation.lower, upper: activation.upper)
        cout = geometry.outChannels
        tilesH = (shape.oh + 1) / 2
        tilesW = (shape.ow + 1) / 2
        tiles = tilesH * tilesW
        let target = ConvolutionTuning.winogradBlockFloats / (16 * (cin + cout))
        block = min(GEMMBlocking.roundUp(tiles, 16), max(16, target / 16 * 16))
        stride = block + 8
        padH = 2 * tilesH + 2
        // A chunk of 8 tiles may start at the last tile of a row and read 16 + 2 columns past its origin.
        padW = 2 * tilesW + 32
        copiedRows = max(0, min(shape.h, padH - shape.ph))
        copiedCols = max(0, min(shape.w, padW - shape.pw))
        if let w = try request.input(1).value {
            let u = AlignedBuffer(count: Self.uFloats(cout: cout, cin: cin))
            Self.transformWeights(
                w.pointer(as: Float.self), cout: cout, cin: cin, transposed: transposedWeights, into: u.pointer)
            constantU = u
        } else {
            constantU = nil
        }
        if request.inputs.count > 2, let b = request.inputs[2]?.value {
            let buffer = AlignedBuffer(count: cout)
            buffer.pointer.update(from: b.pointer(as: Float.self), count: cout)
            bias = buffer
        } else {
            bias = nil
        }
        ScratchPool.shared.reserve(floats: scratchFloats(threads: Parallel.threads))
    }

    /// Floats of the 16 packed U[ξ].
    private static func uFloats(cout: Int, cin: Int) -> Int { 16 * PackedInPlaceA.floats(rows: cout, cols: cin) }

    /// Floats of U[ξ] in row-major order before packing.
    private static func rawUFloats(cout: Int, cin: Int) -> Int { 16 * cout * cin }

    /// The GEMM operand U[ξ], packed at `base`.
    private func packedU(_ base: UnsafePointer<Float>, _ xi: Int) -> PackedInPlaceA {
        PackedInPlaceA(packedAt: base + xi * PackedInPlaceA.floats(rows: cout, cols: cin), rows: cout)
    }

    /// U[ξ] (cout x cin) = (G g Gᵀ)[ξ] for every pair of channels, G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1], packed
    /// into `dst` (`uFloats` floats; the raw transform goes through its own buffer first).
    private static func transformWeights(
        _ w: UnsafePointer<Float>, cout: Int, cin: Int, transposed: Bool, into dst: UnsafeMutablePointer<Float>
    ) {
        let raw = AlignedBuffer(count: rawUFloats(cout: cout, cin: cin))
        transformWeights(w, cout: cout, cin: cin, transposed: transposed, raw: raw.pointer, into: dst)
    }

    /// `transformWeights` with the raw transform in `raw` (`rawUFloats` floats).
    private static func transformWeights(
        _ w: UnsafePointer<Float>, cout: Int, cin: Int, transposed: Bool, raw u: UnsafeMutablePointer<Float>,
        into dst: UnsafeMutablePointer<Float>
    ) {
        for oc in 0..<cout {
            for ic in 0..<cin {
                // The 3x3 kernel g of (oc, ic); transposed: W[ic][oc] rotated by 180 degrees.
                var k = SIMD16<Float>()
                let source = w + (transposed ? ic * cout + oc : oc * cin + ic) * 9
                for i in 0..<9 { k[i] = source[transposed ? 8 - i : i] }
                // t = G g (4 x 3), then t Gᵀ (4 x 4), row by row.
                for r in 0..<4 {
                    var t = (Float(0), Float(0), Float(0))
                    for c in 0..<3 {
                        let g0 = k[c], g1 = k[3 + c], g2 = k[6 + c]
                        let v: Float =
                            r == 0 ? g0 : r == 1 ? 0.5 * (g0 + g1 + g2) : r == 2 ? 0.5 * (g0 - g1 + g2) : g2
                        if c == 0 { t.0 = v } else if c == 1 { t.1 = v } else { t.2 = v }
                    }
                    let base = u + (r * 4 * cout + oc) * cin + ic
                    let step = cout * cin
                    base[0] = t.0
                    base[step] = 0.5 * (t.0 + t.1 + t.2)
                    base[2 * step] = 0.5 * (t.0 - t.1 + t.2)
                    base[3 * step] = t.2
                }
            }
        }
        for xi in 0..<16 {
            _ = PackedInPlaceA(
                packing: StridedMatrix(base: u + xi * cout * cin, rowStride: cin, colStride: 1), rows: cout, cols: cin,
                into: dst + xi * PackedInPlaceA.floats(rows: cout, cols: cin))
        }
    }

    private var paddedFloats: Int { cin * padH * padW }
    private var vFloats: Int { 16 * cin * stride }
    private var mFloats: Int { 16 * cout * stride }
    /// One image's working set: the bordered input, V and M.
    private var imageFloats: Int { GEMMBlocking.roundUp(paddedFloats + vFloats + mFloats, 16) }
    /// U transformed at run time (weights that may change), raw then packed.
    private var runtimeUFloats: Int {
        constantU == nil
            ? GEMMBlocking.roundUp(Self.uFloats(cout: cout, cin: cin) + Self.rawUFloats(cout: cout, cin: cin), 16) : 0
    }

    private func scratchFloats(threads: Int) -> Int {
        if spreadsWholeImages(batch: g.batch, threads: threads) {
            return runtimeUFloats + threads * (imageFloats + GEMMBlocking.scratchPerThread)
        }
        return runtimeUFloats + imageFloats + SGEMM.scratchFloats(threads: threads)
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard let x = inputs.first ?? nil, let out = outputs.first else {
            throw AidgeError.invalidModel("Conv needs an input X")
        }
        var biasPointer: UnsafePointer<Float>? = bias.map { UnsafePointer($0.pointer) }
        if biasPointer == nil, inputs.count > 2, let b = inputs[2] {
            biasPointer = UnsafePointer(b.pointer(as: Float.self))
        }
        var weights: UnsafePointer<Float>?
        if constantU == nil {
            guard inputs.count > 1, let w = inputs[1] else { throw AidgeError.invalidModel("Conv needs an input W") }
            weights = UnsafePointer(w.pointer(as: Float.self))
        }
        run(x: x.pointer(as: Float.self), weights: weights, bias: biasPointer, y: out.pointer(as: Float.self))
    }

    /// The convolution of `x` into `y`; `weights` is read when they are not constant.
    func run(
        x xp: UnsafePointer<Float>, weights: UnsafePointer<Float>?, bias biasPointer: UnsafePointer<Float>?,
        y yp: UnsafeMutablePointer<Float>
    ) {
        let threads = max(1, min(Parallel.threads, 16))
        ScratchPool.shared.with(floats: scratchFloats(threads: threads)) { scratch in
            let u: UnsafePointer<Float>
            if let constantU {
                u = UnsafePointer(constantU.pointer)
            } else {
                guard let w = weights else { return }
                let packed = scratch + Self.rawUFloats(cout: cout, cin: cin)
                Self.transformWeights(w, cout: cout, cin: cin, transposed: transposedWeights, raw: scratch, into: packed)
                u = UnsafePointer(packed)
            }
            let work = scratch + runtimeUFloats
            if spreadsWholeImages(batch: g.batch, threads: threads) {
                let perSlot = imageFloats + GEMMBlocking.scratchPerThread
                Parallel.forEachItem(g.batch, slots: threads) { slot, n in
                    let mine = work + slot * perSlot
                    self.image(
                        xp + n * self.cin * self.s.inputSpatial, yp + n * self.cout * self.s.outputSpatial,
                        biasPointer, u: u, working: mine, gemmScratch: mine + self.imageFloats, threads: 1)
                }
            } else {
                for n in 0..<g.batch {
                    image(
                        xp + n * cin * s.inputSpatial, yp + n * cout * s.outputSpatial, biasPointer, u: u,
                        working: work, gemmScratch: work + imageFloats, threads: threads)
                }
            }
        }
    }

    /// One image: bordered copy, then per block of tiles the input transform, the 16 products and the output
    /// transform. With `threads` > 1 each step is split over the threads (`gemmScratch` holds one GEMM scratch
    /// per thread).
    private func image(
        _ xn: UnsafePointer<Float>, _ yn: UnsafeMutablePointer<Float>, _ biasPointer: UnsafePointer<Float>?,
        u: UnsafePointer<Float>, working: UnsafeMutablePointer<Float>, gemmScratch: UnsafeMutablePointer<Float>,
        threads: Int
    ) {
        let padded = working
        let v = padded + paddedFloats
        let m = v + vFloats
        let split = threads > 1
        Parallel.forEach(cin, grain: split ? max(1, 4096 / max(1, s.inputSpatial)) : cin) { range in
            for c in range { self.pad(xn + c * self.s.inputSpatial, into: padded + c * self.padH * self.padW) }
        }
        var b0 = 0
        while b0 < tiles {
            let count = min(block, tiles - b0)
            Parallel.forEach(cin, grain: split ? max(1, 2048 / max(1, count)) : cin) { range in
                for c in range { self.transformInput(padded + c * self.padH * self.padW, v + c * self.stride, b0, count) }
            }
            Parallel.forEach(threads) { range in
                for slot in range {
                    for xi in (16 * slot / threads)..<(16 * (slot + 1) / threads) {
                        let b = StridedB(
                            matrix: StridedMatrix(base: v + xi * self.cin * self.stride, rowStride: self.stride, colStride: 1),
                            cols: count)
                        SGEMM.multiplySingle(
                            m: self.cout, n: count, k: self.cin, a: self.packedU(u, xi), b: b,
                            c: m + xi * self.cout * self.stride, ldc: self.stride, epilogue: GEMMEpilogue(),
                            scratch: gemmScratch + slot * GEMMBlocking.scratchPerThread)
                    }
                }
            }
            Parallel.forEach(cout, grain: split ? max(1, 2048 / max(1, count)) : cout) { range in
                for oc in range {
                    self.transformOutput(m + oc * self.stride, yn + oc * self.s.outputSpatial, biasPointer?[oc] ?? 0, b0, count)
                }
            }
            b0 += count
        }
    }

    /// Copies one input plane into its zero-bordered plane.
    private func pad(_ x: UnsafePointer<Float>, into p: UnsafeMutablePointer<Float>) {
        let top = min(s.ph, padH)
        p.update(repeating: 0, count: top * padW)
        for r in 0..<copiedRows {
            let row = p + (r + s.ph) * padW
            row.update(repeating: 0, count: s.pw)
            (row + s.pw).update(from: x + r * s.w, count: copiedCols)
            (row + s.pw + copiedCols).update(repeating: 0, count: padW - s.pw - copiedCols)
        }
        let done = top + copiedRows
        if done < padH { (p + done * padW).update(repeating: 0, count: (padH - done) * padW) }
    }

    /// V[ξ][c][t - b0] = (Bᵀ d B)[ξ] for the tiles `b0..<b0+count` of one channel, Bᵀ = [1 0 -1 0; 0 1 1 0;
    /// 0 -1 1 0; 0 1 0 -1]. `v` is channel c's row of V[0]; V[ξ] rows are `cin * stride` apart.
    @inline(never)
    private func transformInput(_ p: UnsafePointer<Float>, _ v: UnsafeMutablePointer<Float>, _ b0: Int, _ count: Int) {
        let plane = cin * stride
        var t = b0
        let end = b0 + count
        while t < end {
            let th = t / tilesW
            let tw = t % tilesW
            let segment = min(tilesW - tw, end - t)
            var l = 0
            while l < segment {
                // Lanes past the segment compute garbage that the next segment (or the slack) overwrites.
                let base = p + (2 * th * padW + 2 * (tw + l))
                @inline(__always) func row(_ r: Int) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
                    let q = UnsafeRawPointer(base + r * padW)
                    let a = q.loadUnaligned(as: SIMD16<Float>.self)
                    let b = q.loadUnaligned(fromByteOffset: 8, as: SIMD16<Float>.self)
                    return (a.evenHalf, a.oddHalf, b.evenHalf, b.oddHalf)
                }
                let d0 = row(0), d1 = row(1), d2 = row(2), d3 = row(3)
                // Bᵀ d: combine rows.
                let r0 = (d0.0 - d2.0, d0.1 - d2.1, d0.2 - d2.2, d0.3 - d2.3)
                let r1 = (d1.0 + d2.0, d1.1 + d2.1, d1.2 + d2.2, d1.3 + d2.3)
                let r2 = (d2.0 - d1.0, d2.1 - d1.1, d2.2 - d1.2, d2.3 - d1.3)
                let r3 = (d1.0 - d3.0, d1.1 - d3.1, d1.2 - d3.2, d1.3 - d3.3)
                let o = v + (t - b0 + l)
                @inline(__always) func put(_ i: Int, _ r: (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>)) {
                    // (.) B: combine columns.
                    let q = o + (4 * i) * plane
                    UnsafeMutableRawPointer(q).storeBytes(of: r.0 - r.2, as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(q + plane).storeBytes(of: r.1 + r.2, as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(q + 2 * plane).storeBytes(of: r.2 - r.1, as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(q + 3 * plane).storeBytes(of: r.1 - r.3, as: SIMD8<Float>.self)
                }
                put(0, r0)
                put(1, r1)
                put(2, r2)
                put(3, r3)
                l += 8
            }
            t += segment
        }
    }

    /// Y = Aᵀ M A + bias for the tiles `b0..<b0+count` of one output channel, Aᵀ = [1 1 1 0; 0 1 -1 -1].
    /// `m` is the channel's row of M[0]; M[ξ] rows are `cout * stride` apart.
    @inline(never)
    private func transformOutput(
        _ m: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ bias: Float, _ b0: Int, _ count: Int
    ) {
        let plane = cout * stride
        let bv = SIMD8<Float>(repeating: bias)
        var t = b0
        let end = b0 + count
        while t < end {
            let th = t / tilesW
            let tw = t % tilesW
            let segment = min(tilesW - tw, end - t)
            var l = 0
            while l < segment {
                let q = m + (t - b0 + l)
                @inline(__always) func ld(_ xi: Int) -> SIMD8<Float> {
                    UnsafeRawPointer(q + xi * plane).loadUnaligned(as: SIMD8<Float>.self)
                }
                // Aᵀ M: combine rows.
                let s0 = (ld(0) + ld(4) + ld(8), ld(1) + ld(5) + ld(9), ld(2) + ld(6) + ld(10), ld(3) + ld(7) + ld(11))
                let s1 = (ld(4) - ld(8) - ld(12), ld(5) - ld(9) - ld(13), ld(6) - ld(10) - ld(14), ld(7) - ld(11) - ld(15))
                // (.) A: combine columns.
                let y00 = clamp.apply(s0.0 + s0.1 + s0.2 + bv)
                let y01 = clamp.apply(s0.1 - s0.2 - s0.3 + bv)
                let y10 = clamp.apply(s1.0 + s1.1 + s1.2 + bv)
                let y11 = clamp.apply(s1.1 - s1.2 - s1.3 + bv)
                let lanes = min(8, segment - l)
                let oh = 2 * th
                let ow = 2 * (tw + l)
                if lanes == 8 && oh + 1 < s.oh && ow + 16 <= s.ow {
                    var row0 = interleave(y00, y01)
                    var row1 = interleave(y10, y11)
                    let p0 = UnsafeMutableRawPointer(y + oh * s.ow + ow)
                    let p1 = UnsafeMutableRawPointer(y + (oh + 1) * s.ow + ow)
                    if accumulate {
                        row0 += p0.loadUnaligned(as: SIMD16<Float>.self)
                        row1 += p1.loadUnaligned(as: SIMD16<Float>.self)
                    }
                    p0.storeBytes(of: row0, as: SIMD16<Float>.self)
                    p1.storeBytes(of: row1, as: SIMD16<Float>.self)
                } else {
                    @inline(__always) func put(_ index: Int, _ value: Float) {
                        y[index] = accumulate ? y[index] + value : value
                    }
                    for k in 0..<lanes {
                        let c = ow + 2 * k
                        put(oh * s.ow + c, y00[k])
                        if c + 1 < s.ow { put(oh * s.ow + c + 1, y01[k]) }
                        if oh + 1 < s.oh {
                            put((oh + 1) * s.ow + c, y10[k])
                            if c + 1 < s.ow { put((oh + 1) * s.ow + c + 1, y11[k]) }
                        }
                    }
                }
                l += 8
            }
            t += segment
        }
    }
}

/// Tuning knobs of the convolution kernels (read when a plan is built).
public enum ConvolutionTuning {
    private static let blockFloats = Atomic<Int>(1 << 19)

    /// Floats of transformed input and output (V and M) that one block of Winograd tiles may hold; the default,
    /// 2 MiB, fits a core's L2 cache. Smaller values give more, smaller blocks.
    public static var winogradBlockFloats: Int {
        get { blockFloats.load(ordering: .relaxed) }
        set { blockFloats.store(max(newValue, 1), ordering: .relaxed) }
    }
}

/// Lanes `a0 b0 a1 b1 ... a7 b7`.
@inline(__always)
private func interleave(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD16<Float> {
    SIMD16(
        a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3], a[4], b[4], a[5], b[5], a[6], b[6], a[7], b[7])
}
