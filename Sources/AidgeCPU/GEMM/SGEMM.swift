import AidgeCPUAVX512
import AidgeCore
import Synchronization

/// The packed float32 GEMM: C (M x N, row stride `ldc`) = epilogue(alpha * A * B).
///
/// A and B are `GEMMOperand`s (prepacked weights, strided matrices packed on the fly, or an im2col packer), so
/// the loops are specialised for each combination. Work is split over threads in M and/or N by whole panels;
/// each thread packs what it needs into its own part of a shared scratch buffer.
enum SGEMM {
    /// Whether full 6x32 tiles use the AVX-512 kernel: set from the processor; tests switch it off to cover the
    /// AVX2 kernels on every tile.
    static let wideTiles = Atomic<Bool>(Processor.supportsAVX512)

    /// Below this many multiply-adds one thread does all the work.
    static let parallelThreshold = 1 << 18

    /// Floats of scratch a call with `threads` threads needs.
    static func scratchFloats(threads: Int) -> Int { max(threads, 1) * GEMMBlocking.scratchPerThread }

    /// Computes C = epilogue(alpha * A * B) for an M x K operand `a` and a K x N operand `b`.
    static func multiply<A: GEMMOperand, B: GEMMOperand>(
        m: Int, n: Int, k: Int, a: A, b: B, c: UnsafeMutablePointer<Float>, ldc: Int,
        epilogue: GEMMEpilogue = GEMMEpilogue(), threads: Int = Parallel.threads
    ) {
        if m <= 0 || n <= 0 { return }
        if k <= 0 {
            fillWithoutProduct(m: m, n: n, c: c, ldc: ldc, epilogue)
            return
        }
        let (tm, tn) = split(m: m, n: n, k: k, threads: threads, aPacked: a.isPrepacked, bPacked: b.isPrepacked)
        let slots = tm * tn
        ScratchPool.shared.with(floats: scratchFloats(threads: slots)) { scratch in
            if slots == 1 {
                block(rows: 0..<m, cols: 0..<n, k: k, a: a, b: b, c: c, ldc: ldc, epilogue, scratch: scratch)
                return
            }
            let mPanels = (m + GEMMBlocking.mr - 1) / GEMMBlocking.mr
            let nPanels = (n + GEMMBlocking.nr - 1) / GEMMBlocking.nr
            Parallel.forEach(slots) { range in
                for t in range {
                    let i = t / tn
                    let j = t % tn
                    let r0 = mPanels * i / tm * GEMMBlocking.mr
                    let r1 = min(m, mPanels * (i + 1) / tm * GEMMBlocking.mr)
                    let c0 = nPanels * j / tn * GEMMBlocking.nr
                    let c1 = min(n, nPanels * (j + 1) / tn * GEMMBlocking.nr)
                    if r0 >= r1 || c0 >= c1 { continue }
                    block(
                        rows: r0..<r1, cols: c0..<c1, k: k, a: a, b: b, c: c, ldc: ldc, epilogue,
                        scratch: scratch + t * GEMMBlocking.scratchPerThread)
                }
            }
        }
    }

    /// Single-threaded product into the sub-block `rows x cols` of C, with explicit scratch
    /// (`GEMMBlocking.scratchPerThread` floats, 64-byte aligned).
    static func multiplySingle<A: GEMMOperand, B: GEMMOperand>(
        m: Int, n: Int, k: Int, a: A, b: B, c: UnsafeMutablePointer<Float>, ldc: Int,
        epilogue: GEMMEpilogue, scratch: UnsafeMutablePointer<Float>
    ) {
        if m <= 0 || n <= 0 { return }
        if k <= 0 {
            fillWithoutProduct(m: m, n: n, c: c, ldc: ldc, epilogue)
            return
        }
        block(rows: 0..<m, cols: 0..<n, k: k, a: a, b: b, c: c, ldc: ldc, epilogue, scratch: scratch)
    }

    /// How to cut the work over threads: `tm` parts of M times `tn` parts of N, from a rough cost model
    /// (tiles computed by the busiest thread, plus packing that each thread repeats).
    static func split(m: Int, n: Int, k: Int, threads: Int, aPacked: Bool, bPacked: Bool) -> (Int, Int) {
        let t = max(threads, 1)
        if t == 1 || m * n * k < parallelThreshold { return (1, 1) }
        let mPanels = (m + GEMMBlocking.mr - 1) / GEMMBlocking.mr
        let nPanels = (n + GEMMBlocking.nr - 1) / GEMMBlocking.nr
        let packCost = 8  // one packed element costs about as much as 8 multiply-adds
        var best = (1, 1)
        var bestCost = Int.max
        for tm in 1...t where t % tm == 0 {
            let tn = t / tm
            if tm > mPanels || tn > nPanels { continue }
            // The busiest thread's tiles, in half tiles (a last panel of at most 8 columns costs half).
            var rowPanels = 0
            for i in 0..<tm { rowPanels = max(rowPanels, mPanels * (i + 1) / tm - mPanels * i / tm) }
            var colHalves = 0
            var colPanels = 0
            for j in 0..<tn {
                let c0 = nPanels * j / tn * GEMMBlocking.nr
                let c1 = min(n, nPanels * (j + 1) / tn * GEMMBlocking.nr)
                let full = (c1 - c0) / GEMMBlocking.nr
                let rest = (c1 - c0) % GEMMBlocking.nr
                colHalves = max(colHalves, 2 * full + (rest == 0 ? 0 : rest <= 8 ? 1 : 2))
                colPanels = max(colPanels, (c1 - c0 + GEMMBlocking.nr - 1) / GEMMBlocking.nr)
            }
            var cost = rowPanels * colHalves * GEMMBlocking.mr * GEMMBlocking.nr / 2 * k
            if !aPacked { cost += rowPanels * GEMMBlocking.mr * k * packCost }
            if !bPacked { cost += colPanels * GEMMBlocking.nr * k * packCost }
            if cost < bestCost {
                bestCost = cost
                best = (tm, tn)
            }
        }
        return best
    }

    /// The BLIS loops over one thread's block of C.
    @inline(__always)
    static func block<A: GEMMOperand, B: GEMMOperand>(
        rows: Range<Int>, cols: Range<Int>, k: Int, a: A, b: B, c: UnsafeMutablePointer<Float>, ldc: Int,
        _ ep: GEMMEpilogue, scratch: UnsafeMutablePointer<Float>
    ) {
        let mr = GEMMBlocking.mr
        let nr = GEMMBlocking.nr
        let bScratch = scratch
        let aScratch = scratch + GEMMBlocking.maxKC * GEMMBlocking.nc
        let edge = aScratch + GEMMBlocking.mc * GEMMBlocking.maxKC
        let kBlocks = GEMMBlocking.kBlockCount(k)
        let wide = wideTiles.load(ordering: .relaxed)
        var jc = cols.lowerBound
        while jc < cols.upperBound {
            let nc = min(GEMMBlocking.nc, cols.upperBound - jc)
            for kb in 0..<kBlocks {
                let (k0, kc) = GEMMBlocking.kBlock(kb, of: k)
                let bp = b.panels(jc, nc, block: kb, k0: k0, kc: kc, scratch: bScratch)
                let addOld = kb > 0 || ep.accumulate
                let last = kb == kBlocks - 1
                var ic = rows.lowerBound
                while ic < rows.upperBound {
                    let mc = min(GEMMBlocking.mc, rows.upperBound - ic)
                    let ap = a.panels(ic, mc, block: kb, k0: k0, kc: kc, scratch: aScratch)
                    let nPanels = (nc + nr - 1) / nr
                    let mPanels = (mc + mr - 1) / mr
                    var jr = 0
                    while jr < nPanels {
                        let bPanel = bp + jr * kc * nr
                        let col = jc + jr * nr
                        // Two panels side by side (the second possibly partial): tiles of at least 3 rows go to
                        // the AVX-512 6x32 kernel.
                        let pair = wide && nc - jr * nr > nr
                        for ir in 0..<mPanels {
                            let aPanel = ap + ir * kc * mr
                            let rowsHere = min(mr, mc - ir * mr)
                            let row = ic + ir * mr
                            let cTile = c + row * ldc + col
                            if pair && rowsHere >= 3 {
                                microKernel6x32(
                                    kc, aPanel, bPanel, bPanel + kc * nr, cTile, ldc, rows: rowsHere,
                                    cols: min(2 * nr, nc - jr * nr), edge: edge,
                                    TileEpilogue(
                                        alpha: ep.alpha, addOld: addOld, last: last, rowBias: ep.rowBias.map { $0 + row },
                                        colBias: ep.colBias.map { $0 + col }, clamps: ep.clamps, lower: ep.lower,
                                        upper: ep.upper))
                                continue
                            }
                            for half in 0..<(pair ? 2 : 1) {
                                let h = half * nr
                                narrowTile(
                                    kc, aPanel, bPanel + half * kc * nr, cTile + h, ldc, rows: rowsHere,
                                    cols: min(nr, nc - jr * nr - h), edge: edge, ep,
                                    TileContext(row: row, col: col + h, addOld: addOld, last: last))
                            }
                        }
                        jr += pair ? 2 : 1
                    }
                    ic += mc
                }
            }
            jc += nc
        }
    }

    /// One tile of at most 6x16 with the AVX2 kernels.
    @inline(__always)
    static func narrowTile(
        _ kc: Int, _ aPanel: UnsafePointer<Float>, _ bPanel: UnsafePointer<Float>, _ cTile: UnsafeMutablePointer<Float>,
        _ ldc: Int, rows: Int, cols: Int, edge: UnsafeMutablePointer<Float>, _ ep: GEMMEpilogue, _ tile: TileContext
    ) {
        if rows >= 3 && cols <= 8 {
            microKernel6x8(kc, aPanel, bPanel, cTile, ldc, rows: rows, cols: cols, edge: edge, ep, tile)
        } else if rows >= 3 {
            microKernel6x16(kc, aPanel, bPanel, cTile, ldc, rows: rows, cols: cols, edge: edge, ep, tile)
        } else {
            for r in 0..<rows {
                var t = tile
                t.row += r
                microKernel1x16(kc, aPanel + r, GEMMBlocking.mr, bPanel, cTile + r * ldc, cols: cols, edge: edge, ep, t)
            }
        }
    }

    /// C = epilogue(0) for K = 0.
    static func fillWithoutProduct(m: Int, n: Int, c: UnsafeMutablePointer<Float>, ldc: Int, _ ep: GEMMEpilogue) {
        for i in 0..<m {
            for j in 0..<n {
                let p = c + i * ldc + j
                p.pointee = ep.finish(0, old: p.pointee, row: i, col: j, addOld: ep.accumulate, last: true)
            }
        }
    }
}
