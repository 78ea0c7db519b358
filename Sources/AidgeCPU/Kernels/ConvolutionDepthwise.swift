import AidgeCore

/// Depthwise float32 convolution (group = input channels, 1-D or 2-D): a direct kernel per output plane.
///
/// Each input plane is first copied into a zero-bordered scratch plane (per thread, small enough for L1/L2), so
/// that every output, borders included, is computed by the same branch-free code: 8 outputs at a time along the
/// output width (stride 1 and 2; 3x3 unrolled with the weights in registers), scalar only for narrow outputs or
/// larger strides.
final class DepthwiseConvKernel: Kernel {
    private let g: ConvGeometry
    private let s: ConvShape3D
    /// Output channels per input channel.
    private let multiplier: Int
    /// The zero-bordered plane: `rows x cols`, the input placed at (`s.ph`, `s.pw`); rows/cols of the input copied.
    private let rows: Int
    private let cols: Int
    private let copiedRows: Int
    private let copiedCols: Int
    private let planeFloats: Int
    private let unrolled3x3: Bool
    private let clamp: LaneClamp

    static func applies(_ g: ConvGeometry, _ s: ConvShape3D) -> Bool {
        g.group == g.inChannels && g.group > 1 && s.channels == 1 && s.d == 1 && s.kd == 1 && s.od == 1
    }

    init(_ request: KernelRequest, _ geometry: ConvGeometry, _ shape: ConvShape3D) throws {
        g = geometry
        s = shape
        multiplier = geometry.outChannels / geometry.group
        let activation = try FusedActivation(request.attributes)
        clamp = LaneClamp(lower: activation.lower, upper: activation.upper)
        // Rows and columns the windows reach; a stride-2 vector reads one column past its last tap.
        rows = (shape.oh - 1) * shape.sh + (shape.kh - 1) * shape.dh + 1
        cols = (shape.ow - 1) * shape.sw + (shape.kw - 1) * shape.dw + 1 + (shape.sw == 2 ? 1 : 0)
        copiedRows = max(0, min(shape.h, rows - shape.ph))
        copiedCols = max(0, min(shape.w, cols - shape.pw))
        unrolled3x3 = shape.kh == 3 && shape.kw == 3 && shape.dh == 1 && shape.dw == 1 && shape.sw <= 2
        // Slack for vectors that read past the last row (narrow outputs, stride 2).
        planeFloats = rows * cols + 32
        ScratchPool.shared.reserve(floats: planeFloats * Parallel.threads)
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard inputs.count >= 2, let x = inputs[0], let w = inputs[1], let out = outputs.first else {
            throw AidgeError.invalidModel("Conv needs inputs X and W")
        }
        let xp = x.pointer(as: Float.self)
        let wp = w.pointer(as: Float.self)
        let yp = out.pointer(as: Float.self)
        let bp = inputs.count > 2 ? inputs[2]?.pointer(as: Float.self) : nil
        let planes = g.batch * g.outChannels
        let work = s.outputSpatial * s.kernelVolume
        let slots = max(1, min(Parallel.threads, planes, planes * work / 8192))
        let planeFloats = self.planeFloats
        ScratchPool.shared.with(floats: planeFloats * slots) { scratch in
            Parallel.forEach(slots) { range in
                for slot in range {
                    let padded = scratch + slot * planeFloats
                    padded.update(repeating: 0, count: planeFloats)
                    for plane in (planes * slot / slots)..<(planes * (slot + 1) / slots) {
                        let n = plane / g.outChannels
                        let oc = plane % g.outChannels
                        let ic = oc / multiplier
                        self.fill(padded, from: xp + (n * g.inChannels + ic) * s.inputSpatial)
                        self.plane(
                            x: padded, w: wp + oc * s.kernelVolume, bias: bp?[oc] ?? 0,
                            y: yp + plane * s.outputSpatial)
                    }
                }
            }
        }
    }

    /// Copies one input plane inside the zero border.
    @inline(__always)
    private func fill(_ padded: UnsafeMutablePointer<Float>, from x: UnsafePointer<Float>) {
        if copiedCols == 0 { return }
        for r in 0..<copiedRows {
            let src = x + r * s.w
            let dst = padded + (r + s.ph) * cols + s.pw
            var c = 0
            while c + 8 <= copiedCols {
                UnsafeMutableRawPointer(dst + c).storeBytes(
                    of: UnsafeRawPointer(src + c).loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
                c += 8
            }
            while c < copiedCols {
                dst[c] = src[c]
                c += 1
            }
        }
    }

    // Kept out of line (and the row kernels too): small functions keep every SIMD load and store inlined.
    @inline(never)
    private func plane(x: UnsafePointer<Float>, w: UnsafePointer<Float>, bias: Float, y: UnsafeMutablePointer<Float>) {
        let s = self.s
        let cols = self.cols
        let vectors = s.ow >= 8 && s.sw <= 2
        if vectors && unrolled3x3 {
            let geometry = PlaneGeometry(rowLength: cols, rowStep: s.sh * cols, outputs: s.ow, rows: s.oh)
            if s.sw == 1 {
                plane3x3(Stride1Window.self, x, w, bias, y, geometry, clamp)
            } else {
                plane3x3(Stride2Window.self, x, w, bias, y, geometry, clamp)
            }
            return
        }
        for oh in 0..<s.oh {
            let r = x + oh * s.sh * cols
            let row = y + oh * s.ow
            if vectors {
                var ow = 0
                while ow + 32 <= s.ow {
                    vector4(r, w, bias, ow, row)
                    ow += 32
                }
                while ow + 8 <= s.ow {
                    vector1(r, w, bias, ow, row)
                    ow += 8
                }
                // One vector ending at the row's end, rewriting a few outputs with the same values.
                if ow < s.ow { vector1(r, w, bias, s.ow - 8, row) }
            } else if s.sw <= 2 {
                // Fewer than 8 outputs: one vector, of which the first `ow` lanes are kept.
                let v = clamp.apply(vector1Value(r, w, bias, 0))
                for ow in 0..<s.ow { row[ow] = v[ow] }
            } else {
                for ow in 0..<s.ow {
                    var acc = bias
                    let p = r + ow * s.sw
                    for kh in 0..<s.kh {
                        let pr = p + kh * s.dh * cols
                        let wr = w + kh * s.kw
                        for kw in 0..<s.kw { acc += wr[kw] * pr[kw * s.dw] }
                    }
                    row[ow] = clamp.apply(acc)
                }
            }
        }
    }

    /// The 8 inputs under outputs `ow..<ow+8` (stride 1 or 2) from `p`.
    @inline(__always)
    private func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        if s.sw == 1 { return UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }
        return UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self).evenHalf
    }

    /// Outputs `ow..<ow+32` of an output row whose windows start at padded row `r`.
    @inline(__always)
    private func vector4(
        _ r: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ bias: Float, _ ow: Int, _ row: UnsafeMutablePointer<Float>
    ) {
        let s = self.s
        var a0 = SIMD8<Float>(repeating: bias)
        var a1 = a0, a2 = a0, a3 = a0
        let step = 8 &* s.sw
        for kh in 0..<s.kh {
            let pr = r + (kh &* s.dh &* cols &+ ow &* s.sw)
            let wr = w + kh &* s.kw
            for kw in 0..<s.kw {
                let wv = SIMD8<Float>(repeating: wr[kw])
                let p = pr + kw &* s.dw
                a0 = a0.addingProduct(wv, load(p))
                a1 = a1.addingProduct(wv, load(p + step))
                a2 = a2.addingProduct(wv, load(p + 2 &* step))
                a3 = a3.addingProduct(wv, load(p + 3 &* step))
            }
        }
        let o = UnsafeMutableRawPointer(row + ow)
        o.storeBytes(of: clamp.apply(a0), as: SIMD8<Float>.self)
        o.storeBytes(of: clamp.apply(a1), toByteOffset: 32, as: SIMD8<Float>.self)
        o.storeBytes(of: clamp.apply(a2), toByteOffset: 64, as: SIMD8<Float>.self)
        o.storeBytes(of: clamp.apply(a3), toByteOffset: 96, as: SIMD8<Float>.self)
    }

    /// Outputs `ow..<ow+8` of an output row whose windows start at padded row `r`.
    @inline(__always)
    private func vector1(
        _ r: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ bias: Float, _ ow: Int, _ row: UnsafeMutablePointer<Float>
    ) {
        UnsafeMutableRawPointer(row + ow).storeBytes(of: clamp.apply(vector1Value(r, w, bias, ow)), as: SIMD8<Float>.self)
    }

    @inline(__always)
    private func vector1Value(_ r: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ bias: Float, _ ow: Int) -> SIMD8<Float> {
        let s = self.s
        var a0 = SIMD8<Float>(repeating: bias)
        for kh in 0..<s.kh {
            let pr = r + (kh &* s.dh &* cols &+ ow &* s.sw)
            let wr = w + kh &* s.kw
            for kw in 0..<s.kw { a0 = a0.addingProduct(SIMD8(repeating: wr[kw]), load(pr + kw &* s.dw)) }
        }
        return a0
    }
}

/// Where the rows of a zero-bordered plane and of its output lie, for the 3x3 plane kernels.
struct PlaneGeometry {
    /// Floats per padded row, floats between the first rows of consecutive windows, outputs per row (at least 8),
    /// output rows.
    var rowLength: Int
    var rowStep: Int
    var outputs: Int
    var rows: Int
}

@inline(__always)
private func load8(at p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always)
private func load16(at p: UnsafePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}

/// The nine weights of a 3x3 filter, broadcast, and the bias.
struct Taps3x3 {
    let w0, w1, w2, w3, w4, w5, w6, w7, w8, bias: SIMD8<Float>

    init(_ w: UnsafePointer<Float>, bias: Float) {
        w0 = SIMD8(repeating: w[0]); w1 = SIMD8(repeating: w[1]); w2 = SIMD8(repeating: w[2])
        w3 = SIMD8(repeating: w[3]); w4 = SIMD8(repeating: w[4]); w5 = SIMD8(repeating: w[5])
        w6 = SIMD8(repeating: w[6]); w7 = SIMD8(repeating: w[7]); w8 = SIMD8(repeating: w[8])
        self.bias = SIMD8(repeating: bias)
    }
}

/// How 8 consecutive outputs of a 3x3 window read the three padded rows under them.
protocol Window3x3 {
    /// Columns of input per output.
    static var stride: Int { get }
    /// The 8 outputs whose windows start at `p0`, `p1`, `p2` (the three rows).
    static func eight(_ p0: UnsafePointer<Float>, _ p1: UnsafePointer<Float>, _ p2: UnsafePointer<Float>, _ t: Taps3x3)
        -> SIMD8<Float>
}

enum Stride1Window: Window3x3 {
    static var stride: Int { 1 }
    @inline(__always)
    static func eight(_ p0: UnsafePointer<Float>, _ p1: UnsafePointer<Float>, _ p2: UnsafePointer<Float>, _ t: Taps3x3)
        -> SIMD8<Float>
    {
        var a = t.bias.addingProduct(t.w0, load8(at: p0))
        var c = t.w3 * load8(at: p1)
        a = a.addingProduct(t.w1, load8(at: p0 + 1))
        c = c.addingProduct(t.w4, load8(at: p1 + 1))
        a = a.addingProduct(t.w2, load8(at: p0 + 2))
        c = c.addingProduct(t.w5, load8(at: p1 + 2))
        a = a.addingProduct(t.w6, load8(at: p2))
        c = c.addingProduct(t.w7, load8(at: p2 + 1))
        a = a.addingProduct(t.w8, load8(at: p2 + 2))
        return a + c
    }
}

/// Stride 2: the even and odd lanes of 16 inputs give kernel columns 0 and 1.
enum Stride2Window: Window3x3 {
    static var stride: Int { 2 }
    @inline(__always)
    static func eight(_ p0: UnsafePointer<Float>, _ p1: UnsafePointer<Float>, _ p2: UnsafePointer<Float>, _ t: Taps3x3)
        -> SIMD8<Float>
    {
        let v0 = load16(at: p0), v1 = load16(at: p1), v2 = load16(at: p2)
        var a = t.bias.addingProduct(t.w0, v0.evenHalf)
        var c = t.w3 * v1.evenHalf
        a = a.addingProduct(t.w1, v0.oddHalf)
        c = c.addingProduct(t.w4, v1.oddHalf)
        a = a.addingProduct(t.w2, load16(at: p0 + 2).evenHalf)
        c = c.addingProduct(t.w5, load16(at: p1 + 2).evenHalf)
        a = a.addingProduct(t.w6, v2.evenHalf)
        c = c.addingProduct(t.w7, v2.oddHalf)
        a = a.addingProduct(t.w8, load16(at: p2 + 2).evenHalf)
        return a + c
    }
}

/// A whole output plane of a 3x3 depthwise filter over a padded plane `x`, 8 outputs at a time with the nine
/// weights in registers. The last vector of a row ends at the row's end, rewriting a few outputs with the same
/// values, so every row runs the same code.
@inline(never)
private func plane3x3<W: Window3x3>(
    _: W.Type, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ bias: Float, _ y: UnsafeMutablePointer<Float>,
    _ g: PlaneGeometry, _ clamp: LaneClamp
) {
    let taps = Taps3x3(w, bias: bias)
    let last = g.outputs &- 8
    for oh in 0..<g.rows {
        let r = x + oh &* g.rowStep
        let row = y + oh &* g.outputs
        var ow = 0
        while true {
            let o = min(ow, last)
            let p0 = r + W.stride &* o
            let p1 = p0 + g.rowLength
            let v = W.eight(p0, p1, p1 + g.rowLength, taps)
            UnsafeMutableRawPointer(row + o).storeBytes(of: clamp.apply(v), as: SIMD8<Float>.self)
            if o == last { break }
            ow &+= 8
        }
    }
}
