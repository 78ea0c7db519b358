import AidgeCore

/// The column matrix of a convolution and its adjoint, for backward: `im2col` writes the (channels x kernel
/// volume) x (output positions) matrix of one image and group into a buffer (the weight gradient's GEMM needs it
/// transposed, which the forward's on-the-fly packer cannot give); `col2im` adds such a matrix back into the
/// image (the input gradient). ConvTranspose uses the same pair with input and output swapped.
///
/// Element ((c, kd, kh, kw), (od, oh, ow)) is image element (c, od * sd - pd + kd * dd, oh * sh - ph + kh * dh,
/// ow * sw - pw + kw * dw), zero where that falls outside the image.
enum ConvColumns {
    /// Output columns `ow` in `lo..<hi` read inside the image along the width for a tap at offset `offW`.
    @inline(__always)
    static func validColumns(_ s: ConvShape3D, offW: Int) -> (lo: Int, hi: Int) {
        let lo = offW >= 0 ? 0 : min(s.ow, (-offW + s.sw - 1) / s.sw)
        let hi = s.w - 1 - offW < 0 ? lo : max(lo, min(s.ow, (s.w - 1 - offW) / s.sw + 1))
        return (lo, hi)
    }

    /// Writes the column matrix of `x` (the group's first channel in one image) into `cols`
    /// (`s.columnRows x s.outputSpatial`, row-major).
    static func im2col<T: GradientFloat>(_ x: UnsafePointer<T>, _ s: ConvShape3D, into cols: UnsafeMutablePointer<T>) {
        let plane = s.inputSpatial
        let positions = s.outputSpatial
        var r = 0
        for c in 0..<s.channels {
            let xc = x + c * plane
            for kd in 0..<s.kd {
                for kh in 0..<s.kh {
                    for kw in 0..<s.kw {
                        let row = cols + r * positions
                        r += 1
                        let offW = kw * s.dw - s.pw
                        let (lo, hi) = validColumns(s, offW: offW)
                        for od in 0..<s.od {
                            let id = od * s.sd - s.pd + kd * s.dd
                            for oh in 0..<s.oh {
                                let ih = oh * s.sh - s.ph + kh * s.dh
                                let dst = row + (od * s.oh + oh) * s.ow
                                if id < 0 || id >= s.d || ih < 0 || ih >= s.h {
                                    dst.update(repeating: 0, count: s.ow)
                                    continue
                                }
                                let src = xc + (id * s.h + ih) * s.w + offW
                                if lo > 0 { dst.update(repeating: 0, count: lo) }
                                if s.sw == 1 {
                                    for o in lo..<hi { dst[o] = src[o] }
                                } else {
                                    for o in lo..<hi { dst[o] = src[o * s.sw] }
                                }
                                if hi < s.ow { (dst + hi).update(repeating: 0, count: s.ow - hi) }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds the column matrix `cols` into the image `x` (the group's first channel in one image): each image
    /// element gets the sum of the column entries that read it.
    static func col2im<T: GradientFloat>(_ cols: UnsafePointer<T>, _ s: ConvShape3D, into x: UnsafeMutablePointer<T>) {
        let plane = s.inputSpatial
        let positions = s.outputSpatial
        var r = 0
        for c in 0..<s.channels {
            let xc = x + c * plane
            for kd in 0..<s.kd {
                for kh in 0..<s.kh {
                    for kw in 0..<s.kw {
                        let row = cols + r * positions
                        r += 1
                        let offW = kw * s.dw - s.pw
                        let (lo, hi) = validColumns(s, offW: offW)
                        if lo >= hi { continue }
                        for od in 0..<s.od {
                            let id = od * s.sd - s.pd + kd * s.dd
                            if id < 0 || id >= s.d { continue }
                            for oh in 0..<s.oh {
                                let ih = oh * s.sh - s.ph + kh * s.dh
                                if ih < 0 || ih >= s.h { continue }
                                let src = row + (od * s.oh + oh) * s.ow
                                let dst = xc + (id * s.h + ih) * s.w + offW
                                if s.sw == 1 {
                                    for o in lo..<hi { dst[o] += src[o] }
                                } else {
                                    for o in lo..<hi { dst[o * s.sw] += src[o] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The weight gradient of a convolution as computed per thread: `groups` blocks of `rows x cols`, each stored
/// transposed (`cols x rows`) so that its GEMM has the long column matrix as the packed-in-place A operand and
/// the few output channels as a full-width B tile.
struct TransposedWeightBlocks {
    var groups: Int
    var rows: Int
    var cols: Int
    var count: Int { groups * rows * cols }
}

/// Runs the batch of a convolution's backward over threads, images handed out one by one:
/// `body(images, scratch, partial, threads)` with the `scratch` elements of the thread's slot (column matrices)
/// and, when `dw` is given, the slot's zeroed partial weight gradient (`TransposedWeightBlocks`) to add into. The
/// partials are added, transposed back, into `dw` at the end, so no two threads write one element.
///
/// With a single part (batch 1, one thread) the GEMMs inside get every thread (`threads`), else one each.
func convolutionBatches<T: GradientFloat>(
    batch: Int, scratch: Int, weights dw: UnsafeMutablePointer<T>?, blocks: TransposedWeightBlocks,
    _ body: (Range<Int>, UnsafeMutablePointer<T>, UnsafeMutablePointer<T>?, Int) -> Void
) {
    let threads = Parallel.threads
    let slots = max(1, min(threads, batch))
    let partial = dw == nil ? 0 : blocks.count
    // Each part's region starts on a 64-byte boundary.
    let perSlot = (scratch + partial + 15) / 16 * 16
    let elements = max(slots * perSlot, 1)
    ScratchPool.shared.with(floats: convolutionScratchFloats(elements, T.self)) { raw in
        raw.withMemoryRebound(to: T.self, capacity: elements) { base in
            if dw != nil {
                for slot in 0..<slots { (base + slot * perSlot + scratch).update(repeating: 0, count: partial) }
            }
            if slots == 1 {
                body(0..<batch, base, dw == nil ? nil : base + scratch, threads)
            } else {
                Parallel.forEachItem(batch, slots: slots) { slot, image in
                    let mine = base + slot * perSlot
                    body(image..<image + 1, mine, dw == nil ? nil : mine + scratch, 1)
                }
            }
            guard let dw else { return }
            // dW[g][i][j] += sum over parts of partial[g][j][i].
            let (rows, cols) = (blocks.rows, blocks.cols)
            Parallel.forEach(blocks.groups * rows, grain: max(1, 4096 / max(cols * slots, 1))) { range in
                for gi in range {
                    let (g, i) = gi.quotientAndRemainder(dividingBy: rows)
                    let out = dw + gi * cols
                    for slot in 0..<slots {
                        let p = base + slot * perSlot + scratch + g * rows * cols + i
                        for j in 0..<cols { out[j] += p[j * rows] }
                    }
                }
            }
        }
    }
}

/// Floats of pool scratch that hold `elements` values of `T`.
func convolutionScratchFloats<T>(_ elements: Int, _: T.Type) -> Int {
    (elements * MemoryLayout<T>.stride + 3) / 4
}

/// Scratch `convolutionBatches` takes for `scratch` elements per image part and a weight gradient of
/// `weightCount`, in floats: reserved when a kernel is built so a run does not allocate.
func convolutionBatchScratchFloats(batch: Int, scratch: Int, weightCount: Int, dtype: DType) -> Int {
    let slots = max(1, min(Parallel.threads, batch))
    let perSlot = (scratch + weightCount + 15) / 16 * 16
    return dtype == .float64
        ? convolutionScratchFloats(slots * perSlot, Double.self) : convolutionScratchFloats(slots * perSlot, Float.self)
}

/// Adds the sum over the batch and positions of `dy` (N x channels x positions) into `db` (channels).
func biasGradient<T: GradientFloat>(
    _ dy: UnsafePointer<T>, _ db: UnsafeMutablePointer<T>, batch: Int, channels: Int, positions: Int
) {
    Parallel.forEach(channels, grain: max(1, (1 << 14) / max(1, batch * positions))) { range in
        for c in range {
            var total: T = 0
            for n in 0..<batch { total += planeSum(dy + (n * channels + c) * positions, positions) }
            db[c] += total
        }
    }
}

/// The sum of `count` values, with independent partial sums (vector lanes for float32).
@inline(__always)
func planeSum<T: GradientFloat>(_ p: UnsafePointer<T>, _ count: Int) -> T {
    if T.self == Float.self {
        let x = UnsafeRawPointer(p)
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= count {
            s0 += x.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            s1 += x.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<Float>.self)
            i += 16
        }
        var total = (s0 + s1).sum()
        let f = x.assumingMemoryBound(to: Float.self)
        while i < count {
            total += f[i]
            i += 1
        }
        return T(total)
    }
    var s0: T = 0, s1: T = 0, s2: T = 0, s3: T = 0
    var i = 0
    while i + 4 <= count {
        s0 += p[i]
        s1 += p[i + 1]
        s2 += p[i + 2]
        s3 += p[i + 3]
        i += 4
    }
    while i < count {
        s0 += p[i]
        i += 1
    }
    return (s0 + s1) + (s2 + s3)
}
