/// An operand of the packed GEMM: it hands the driver packed panels of one K block, either from memory packed
/// ahead of time (weights) or by packing into the thread's scratch.
///
/// For A (M x K) a panel is `mr` rows, stored k-major (`kc` groups of `mr`); for B (K x N) a panel is `nr` columns,
/// stored k-major (`kc` groups of `nr`). Rows or columns past the matrix's edge are zero.
protocol GEMMOperand {
    /// Panels covering rows (A) or columns (B) `start..<start+size` of K block `k0..<k0+kc` (number `block` of
    /// `GEMMBlocking.kBlocks`). `start` is a multiple of the panel width.
    func panels(
        _ start: Int, _ size: Int, block: Int, k0: Int, kc: Int, scratch: UnsafeMutablePointer<Float>
    ) -> UnsafePointer<Float>

    /// Whether the panels are already packed (then the driver never packs this operand).
    var isPrepacked: Bool { get }
}

extension GEMMOperand {
    var isPrepacked: Bool { false }
}

/// A matrix read in place: element (r, c) at `base[r * rowStride + c * colStride]` (a transposed view swaps them).
struct StridedMatrix {
    var base: UnsafePointer<Float>
    var rowStride: Int
    var colStride: Int
}

/// A (M x K) packed on the fly.
struct StridedA: GEMMOperand {
    var matrix: StridedMatrix
    var rows: Int

    @inline(__always)
    func panels(
        _ start: Int, _ size: Int, block: Int, k0: Int, kc: Int, scratch: UnsafeMutablePointer<Float>
    ) -> UnsafePointer<Float> {
        packAPanels(matrix, rows: rows, start, size, k0: k0, kc: kc, into: scratch)
        return UnsafePointer(scratch)
    }
}

/// B (K x N) packed on the fly.
struct StridedB: GEMMOperand {
    var matrix: StridedMatrix
    var cols: Int

    @inline(__always)
    func panels(
        _ start: Int, _ size: Int, block: Int, k0: Int, kc: Int, scratch: UnsafeMutablePointer<Float>
    ) -> UnsafePointer<Float> {
        packBPanels(matrix, cols: cols, start, size, k0: k0, kc: kc, into: scratch)
        return UnsafePointer(scratch)
    }
}

/// Packs rows `start..<start+size` (clipped to `rows`) and columns `k0..<k0+kc` of A into `mr`-row panels.
@inline(never)
func packAPanels(
    _ a: StridedMatrix, rows: Int, _ start: Int, _ size: Int, k0: Int, kc: Int,
    into dst: UnsafeMutablePointer<Float>
) {
    let mr = GEMMBlocking.mr
    let panels = (size + mr - 1) / mr
    for p in 0..<panels {
        let r0 = start + p * mr
        let valid = max(0, min(mr, min(start + size, rows) - r0))
        let out = dst + p * kc * mr
        if valid == mr && a.colStride == 1 {
            let s0 = a.base + r0 * a.rowStride + k0
            let s1 = s0 + a.rowStride
            let s2 = s1 + a.rowStride
            let s3 = s2 + a.rowStride
            let s4 = s3 + a.rowStride
            let s5 = s4 + a.rowStride
            for k in 0..<kc {
                let o = out + k * mr
                o[0] = s0[k]
                o[1] = s1[k]
                o[2] = s2[k]
                o[3] = s3[k]
                o[4] = s4[k]
                o[5] = s5[k]
            }
        } else if valid == mr && a.rowStride == 1 {
            // A transposed in memory: the 6 rows of a panel are adjacent.
            for k in 0..<kc {
                let s = a.base + r0 + (k0 + k) * a.colStride
                let o = out + k * mr
                for r in 0..<mr { o[r] = s[r] }
            }
        } else {
            for k in 0..<kc {
                let o = out + k * mr
                for r in 0..<mr {
                    o[r] = r < valid ? a.base[(r0 + r) * a.rowStride + (k0 + k) * a.colStride] : 0
                }
            }
        }
    }
}

/// Packs columns `start..<start+size` (clipped to `cols`) and rows `k0..<k0+kc` of B into `nr`-column panels.
@inline(never)
func packBPanels(
    _ b: StridedMatrix, cols: Int, _ start: Int, _ size: Int, k0: Int, kc: Int,
    into dst: UnsafeMutablePointer<Float>
) {
    let nr = GEMMBlocking.nr
    let panels = (size + nr - 1) / nr
    for p in 0..<panels {
        let c0 = start + p * nr
        let valid = max(0, min(nr, min(start + size, cols) - c0))
        let out = dst + p * kc * nr
        if valid == nr && b.colStride == 1 {
            var s = UnsafeRawPointer(b.base + k0 * b.rowStride + c0)
            let step = b.rowStride * MemoryLayout<Float>.stride
            var o = UnsafeMutableRawPointer(out)
            for _ in 0..<kc {
                o.storeBytes(of: s.loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
                o.storeBytes(of: s.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self), toByteOffset: 32, as: SIMD8<Float>.self)
                s += step
                o += 64
            }
        } else if b.colStride == 1 {
            for k in 0..<kc {
                let s = b.base + (k0 + k) * b.rowStride + c0
                let o = out + k * nr
                for j in 0..<nr { o[j] = j < valid ? s[j] : 0 }
            }
        } else {
            // B transposed in memory (ONNX Gemm transB): each column is contiguous along K.
            for k in 0..<kc {
                let o = out + k * nr
                for j in valid..<nr { o[j] = 0 }
            }
            for j in 0..<valid {
                let s = b.base + (c0 + j) * b.colStride + k0 * b.rowStride
                if b.rowStride == 1 {
                    for k in 0..<kc { out[k * nr + j] = s[k] }
                } else {
                    for k in 0..<kc { out[k * nr + j] = s[k * b.rowStride] }
                }
            }
        }
    }
}

/// 64-byte aligned float memory owned by an object (packed weights, scratch).
final class AlignedBuffer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    init(count: Int) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        raw.initializeMemory(as: Float.self, repeating: 0, count: max(count, 1))
        pointer = raw.assumingMemoryBound(to: Float.self)
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }
}

/// A whole matrix packed once (weights): every K block, every panel.
///
/// Block `b` of K (`k0`, `kc`) starts at `k0 * paddedWidth`; panel `p` of it at `p * kc * panelWidth` after that.
final class PackedMatrix: @unchecked Sendable {
    /// A (M x K, `mr`-row panels) or B (K x N, `nr`-column panels).
    enum Role { case a, b }

    let role: Role
    let rows: Int
    let cols: Int
    let k: Int
    let paddedWidth: Int
    let buffer: AlignedBuffer

    /// Packs `matrix` (logical shape `rows x cols`) for its `role`.
    init(_ matrix: StridedMatrix, rows: Int, cols: Int, role: Role) {
        self.role = role
        self.rows = rows
        self.cols = cols
        switch role {
        case .a:
            k = cols
            paddedWidth = GEMMBlocking.roundUp(rows, GEMMBlocking.mr)
        case .b:
            k = rows
            paddedWidth = GEMMBlocking.roundUp(cols, GEMMBlocking.nr)
        }
        buffer = AlignedBuffer(count: paddedWidth * k)
        switch role {
        case .a: _ = PackedInPlaceA(packing: matrix, rows: rows, cols: cols, into: buffer.pointer)
        case .b:
            for block in 0..<GEMMBlocking.kBlockCount(k) {
                let (k0, kc) = GEMMBlocking.kBlock(block, of: k)
                packBPanels(matrix, cols: cols, 0, paddedWidth, k0: k0, kc: kc, into: buffer.pointer + k0 * paddedWidth)
            }
        }
    }

    @inline(__always)
    func panels(_ start: Int, k0: Int, kc: Int) -> UnsafePointer<Float> {
        UnsafePointer(buffer.pointer + k0 * paddedWidth + start * kc)
    }
}

/// A prepacked A operand.
struct PackedA: GEMMOperand {
    let packed: PackedMatrix
    var isPrepacked: Bool { true }

    @inline(__always)
    func panels(
        _ start: Int, _ size: Int, block: Int, k0: Int, kc: Int, scratch: UnsafeMutablePointer<Float>
    ) -> UnsafePointer<Float> {
        packed.panels(start, k0: k0, kc: kc)
    }
}

/// An A operand packed whole into memory the caller provides, in `PackedMatrix`'s layout: weights that may change
/// between runs, packed once per run and shared by every image and thread of it.
struct PackedInPlaceA: GEMMOperand {
    let base: UnsafePointer<Float>
    let paddedWidth: Int
    var isPrepacked: Bool { true }

    /// Floats that a packed `rows x cols` A takes.
    static func floats(rows: Int, cols: Int) -> Int { GEMMBlocking.roundUp(rows, GEMMBlocking.mr) * cols }

    /// Packs `matrix` (`rows x cols`) into `dst` (`floats(rows:cols:)` floats).
    init(packing matrix: StridedMatrix, rows: Int, cols: Int, into dst: UnsafeMutablePointer<Float>) {
        paddedWidth = GEMMBlocking.roundUp(rows, GEMMBlocking.mr)
        base = UnsafePointer(dst)
        for block in 0..<GEMMBlocking.kBlockCount(cols) {
            let (k0, kc) = GEMMBlocking.kBlock(block, of: cols)
            packAPanels(matrix, rows: rows, 0, paddedWidth, k0: k0, kc: kc, into: dst + k0 * paddedWidth)
        }
    }

    /// The operand already packed at `base` for `rows` rows.
    init(packedAt base: UnsafePointer<Float>, rows: Int) {
        self.base = base
        paddedWidth = GEMMBlocking.roundUp(rows, GEMMBlocking.mr)
    }

    @inline(__always)
    func panels(
        _ start: Int, _ size: Int, block: Int, k0: Int, kc: Int, scratch: UnsafeMutablePointer<Float>
    ) -> UnsafePointer<Float> {
        base + k0 * paddedWidth + start * kc
    }
}

/// A prepacked B operand.
struct PackedB: GEMMOperand {
    let packed: PackedMatrix
    var isPrepacked: Bool { true }

    @inline(__always)
    func panels(
        _ start: Int, _ size: Int, block: Int, k0: Int, kc: Int, scratch: UnsafeMutablePointer<Float>
    ) -> UnsafePointer<Float> {
        packed.panels(start, k0: k0, kc: kc)
    }
}
