import AidgeCore

/// Backward of a depthwise convolution (one input channel per group, any channel multiplier) with direct loops:
/// as GEMMs its products would have a single row.
///
/// Planes are small, so per-row bookkeeping would dominate: each input plane is copied into a zero-bordered
/// plane that every window reaches without bounds checks, and dY into a plane of the same width (zero past the
/// output's columns). With unit strides a tap is then one long dot product (dW) or one long axpy (dX) over the
/// whole plane. dW is computed per output channel (threads own disjoint channels and walk the batch), dX per
/// input plane (threads own disjoint planes).
struct DepthwiseConvGradient {
    let g: ConvGeometry
    let s: ConvShape3D
    /// The bordered plane: `rows x cols`, the input at (`s.ph`, `s.pw`); rows and columns of the input copied.
    private let rows: Int
    private let cols: Int
    private let copiedRows: Int
    private let copiedCols: Int
    /// Output channels per input channel.
    private let multiplier: Int
    /// The (input depth, output depth, kernel depth) triples a window joins (one for 1-D and 2-D), grouped by
    /// input depth.
    private let depths: [(input: Int, output: Int, kernel: Int)]

    init(g: ConvGeometry, s: ConvShape3D) {
        self.g = g
        self.s = s
        rows = (s.oh - 1) * s.sh + (s.kh - 1) * s.dh + 1
        cols = (s.ow - 1) * s.sw + (s.kw - 1) * s.dw + 1
        copiedRows = max(0, min(s.h, rows - s.ph))
        copiedCols = max(0, min(s.w, cols - s.pw))
        multiplier = g.outChannels / g.group
        var depths: [(input: Int, output: Int, kernel: Int)] = []
        for od in 0..<s.od {
            for kd in 0..<s.kd {
                let id = od * s.sd - s.pd + kd * s.dd
                if id >= 0 && id < s.d { depths.append((id, od, kd)) }
            }
        }
        depths.sort { $0.input < $1.input }
        self.depths = depths
    }

    /// Scratch elements one thread needs: a bordered input plane, a widened output plane, the taps' sums.
    private var scratchPerThread: Int { rows * cols + s.oh * cols + s.kernelVolume }

    func run<T: GradientFloat>(
        x: UnsafePointer<T>, w: UnsafePointer<T>, dy: UnsafePointer<T>, dx: UnsafeMutablePointer<T>?,
        dw: UnsafeMutablePointer<T>?
    ) {
        if let dw { weightGradient(x: x, dy: dy, dw: dw) }
        if let dx { inputGradient(w: w, dy: dy, dx: dx) }
    }

    /// Copies input plane `x` (h x w) inside the zero border of `padded` (rows x cols, zeroed where not copied).
    @inline(__always)
    private func fillInput<T: GradientFloat>(_ padded: UnsafeMutablePointer<T>, _ x: UnsafePointer<T>) {
        padded.update(repeating: 0, count: rows * cols)
        for r in 0..<copiedRows {
            (padded + (r + s.ph) * cols + s.pw).update(from: x + r * s.w, count: copiedCols)
        }
    }

    /// Copies output plane `dy` (oh x ow) into `wide` (oh x cols, zero past column ow).
    @inline(__always)
    private func fillOutput<T: GradientFloat>(_ wide: UnsafeMutablePointer<T>, _ dy: UnsafePointer<T>) {
        for r in 0..<s.oh {
            let row = wide + r * cols
            row.update(from: dy + r * s.ow, count: s.ow)
            if cols > s.ow { (row + s.ow).update(repeating: 0, count: cols - s.ow) }
        }
    }

    /// acc[tap] += sum over positions of dY * the input under the tap, for one plane pair.
    @inline(__always)
    private func accumulateTaps<T: GradientFloat>(
        _ xp: UnsafePointer<T>, _ gp: UnsafePointer<T>, into acc: UnsafeMutablePointer<T>
    ) {
        let s = self.s
        var tap = 0
        for kh in 0..<s.kh {
            for kw in 0..<s.kw {
                let offset = kh * s.dh * cols + kw * s.dw
                if s.sh == 1 && s.sw == 1 {
                    acc[tap] += dotProduct(gp, xp + offset, (s.oh - 1) * cols + s.ow)
                } else {
                    var total: T = 0
                    for oh in 0..<s.oh {
                        let grad = gp + oh * cols
                        let src = xp + oh * s.sh * cols + offset
                        if s.sw == 1 {
                            total += dotProduct(grad, src, s.ow)
                        } else {
                            for o in 0..<s.ow { total += grad[o] * src[o * s.sw] }
                        }
                    }
                    acc[tap] += total
                }
                tap += 1
            }
        }
    }

    /// dXpadded += W[oc][tap] * dY under each tap, for one plane pair.
    @inline(__always)
    private func scatterTaps<T: GradientFloat>(
        _ wc: UnsafePointer<T>, _ gp: UnsafePointer<T>, into xp: UnsafeMutablePointer<T>
    ) {
        let s = self.s
        var tap = 0
        for kh in 0..<s.kh {
            for kw in 0..<s.kw {
                let weight = wc[tap]
                tap += 1
                let offset = kh * s.dh * cols + kw * s.dw
                if s.sh == 1 && s.sw == 1 {
                    let dst = xp + offset
                    for p in 0..<((s.oh - 1) * cols + s.ow) { dst[p] += weight * gp[p] }
                } else {
                    for oh in 0..<s.oh {
                        let grad = gp + oh * cols
                        let dst = xp + oh * s.sh * cols + offset
                        if s.sw == 1 {
                            for o in 0..<s.ow { dst[o] += weight * grad[o] }
                        } else {
                            for o in 0..<s.ow { dst[o * s.sw] += weight * grad[o] }
                        }
                    }
                }
            }
        }
    }

    private func weightGradient<T: GradientFloat>(
        x: UnsafePointer<T>, dy: UnsafePointer<T>, dw: UnsafeMutablePointer<T>
    ) {
        let (g, s) = (self.g, self.s)
        let taps = s.kh * s.kw
        let plane = s.h * s.w
        let outPlane = s.oh * s.ow
        let work = g.batch * max(depths.count, 1) * s.oh * cols * taps
        let scratch = scratchPerThread
        Parallel.forEach(g.outChannels, grain: max(1, (1 << 15) / max(work, 1))) { range in
            withScratch(scratch, T.self) { buffer in
                let xp = buffer
                let gp = buffer + rows * cols
                let acc = gp + s.oh * cols
                for oc in range {
                    acc.update(repeating: 0, count: s.kernelVolume)
                    let ic = oc / multiplier
                    for n in 0..<g.batch {
                        let xc = x + (n * g.inChannels + ic) * s.inputSpatial
                        let gc = dy + (n * g.outChannels + oc) * s.outputSpatial
                        var filled = -1
                        for depth in depths {
                            if depth.input != filled {
                                fillInput(xp, xc + depth.input * plane)
                                filled = depth.input
                            }
                            fillOutput(gp, gc + depth.output * outPlane)
                            accumulateTaps(UnsafePointer(xp), UnsafePointer(gp), into: acc + depth.kernel * taps)
                        }
                    }
                    for k in 0..<s.kernelVolume { dw[oc * s.kernelVolume + k] += acc[k] }
                }
            }
        }
    }

    private func inputGradient<T: GradientFloat>(
        w: UnsafePointer<T>, dy: UnsafePointer<T>, dx: UnsafeMutablePointer<T>
    ) {
        let (g, s) = (self.g, self.s)
        let taps = s.kh * s.kw
        let plane = s.h * s.w
        let outPlane = s.oh * s.ow
        let work = multiplier * max(depths.count, 1) * s.oh * cols * taps
        let scratch = scratchPerThread
        Parallel.forEach(g.batch * g.inChannels, grain: max(1, (1 << 15) / max(work, 1))) { range in
            withScratch(scratch, T.self) { buffer in
                let xp = buffer
                let gp = buffer + rows * cols
                for channel in range {
                    let n = channel / g.inChannels
                    let ic = channel % g.inChannels
                    var k = 0
                    while k < depths.count {
                        // All the triples of one input depth add into one bordered plane.
                        let id = depths[k].input
                        xp.update(repeating: 0, count: rows * cols)
                        while k < depths.count && depths[k].input == id {
                            let depth = depths[k]
                            for oc in ic * multiplier..<(ic + 1) * multiplier {
                                let gc = dy + (n * g.outChannels + oc) * s.outputSpatial
                                fillOutput(gp, gc + depth.output * outPlane)
                                scatterTaps(w + oc * s.kernelVolume + depth.kernel * taps, UnsafePointer(gp), into: xp)
                            }
                            k += 1
                        }
                        // The copied region back into dX (the border only ever read padding).
                        let xc = dx + channel * s.inputSpatial + id * plane
                        for r in 0..<copiedRows {
                            let src = xp + (r + s.ph) * cols + s.pw
                            let dst = xc + r * s.w
                            for c in 0..<copiedCols { dst[c] += src[c] }
                        }
                    }
                }
            }
        }
    }
}

/// Calls `body` with `count` elements of `T` of scratch from the shared pool.
@inline(__always)
func withScratch<T>(_ count: Int, _: T.Type, _ body: (UnsafeMutablePointer<T>) -> Void) {
    ScratchPool.shared.with(floats: convolutionScratchFloats(max(count, 1), T.self)) { raw in
        raw.withMemoryRebound(to: T.self, capacity: max(count, 1)) { body($0) }
    }
}

/// The dot product of two runs of `count` values, with independent partial sums (vector lanes for float32).
@inline(__always)
func dotProduct<T: GradientFloat>(_ a: UnsafePointer<T>, _ b: UnsafePointer<T>, _ count: Int) -> T {
    if T.self == Float.self {
        let x = UnsafeRawPointer(a)
        let y = UnsafeRawPointer(b)
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= count {
            s0 += x.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                * y.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            s1 += x.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<Float>.self)
                * y.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<Float>.self)
            i += 16
        }
        var total = (s0 + s1).sum()
        let xf = x.assumingMemoryBound(to: Float.self)
        let yf = y.assumingMemoryBound(to: Float.self)
        while i < count {
            total += xf[i] * yf[i]
            i += 1
        }
        return T(total)
    }
    var s0: T = 0, s1: T = 0, s2: T = 0, s3: T = 0
    var i = 0
    while i + 4 <= count {
        s0 += a[i] * b[i]
        s1 += a[i + 1] * b[i + 1]
        s2 += a[i + 2] * b[i + 2]
        s3 += a[i + 3] * b[i + 3]
        i += 4
    }
    while i < count {
        s0 += a[i] * b[i]
        i += 1
    }
    return (s0 + s1) + (s2 + s3)
}
