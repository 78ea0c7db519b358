import AidgeCore

/// A convolution's geometry with every case written as 3-D (a 1-D or 2-D convolution has leading sizes of 1).
struct ConvShape3D: Sendable {
    /// Channels of one group.
    var channels: Int
    var d: Int, h: Int, w: Int
    var kd: Int, kh: Int, kw: Int
    var sd: Int, sh: Int, sw: Int
    var dd: Int, dh: Int, dw: Int
    /// Padding before each axis (the end padding only shows in the output size).
    var pd: Int, ph: Int, pw: Int
    var od: Int, oh: Int, ow: Int

    /// `nil` for more than 3 spatial dimensions.
    init?(_ window: WindowGeometry, channels: Int) {
        let n = window.rank
        guard n >= 1 && n <= 3 else { return nil }
        func pick(_ a: [Int], _ fill: Int) -> [Int] { [Int](repeating: fill, count: 3 - n) + a }
        let input = pick(window.input, 1)
        let kernel = pick(window.kernel, 1)
        let strides = pick(window.strides, 1)
        let dilations = pick(window.dilations, 1)
        let pads = pick(window.padsBegin, 0)
        let output = pick(window.output, 1)
        self.channels = channels
        (d, h, w) = (input[0], input[1], input[2])
        (kd, kh, kw) = (kernel[0], kernel[1], kernel[2])
        (sd, sh, sw) = (strides[0], strides[1], strides[2])
        (dd, dh, dw) = (dilations[0], dilations[1], dilations[2])
        (pd, ph, pw) = (pads[0], pads[1], pads[2])
        (od, oh, ow) = (output[0], output[1], output[2])
    }

    var inputSpatial: Int { d * h * w }
    var outputSpatial: Int { od * oh * ow }
    var kernelVolume: Int { kd * kh * kw }
    /// Rows of the column matrix: channels x kernel volume.
    var columnRows: Int { channels * kernelVolume }
}

/// B operand of a convolution as a GEMM: the column matrix (channels x kernel volume) x (output positions) of
/// one image and group, packed straight from the input image into `nr`-column panels (no im2col buffer).
struct Im2colB: GEMMOperand {
    /// First channel of the group in this image.
    let x: UnsafePointer<Float>
    let s: ConvShape3D

    @inline(__always)
    func panels(
        _ start: Int, _ size: Int, block: Int, k0: Int, kc: Int, scratch: UnsafeMutablePointer<Float>
    ) -> UnsafePointer<Float> {
        pack(start, size, k0: k0, kc: kc, into: scratch)
        return UnsafePointer(scratch)
    }

    /// Packs rows `k0..<k0+kc` and columns `start..<start+size` of the column matrix. Each row (channel, kernel
    /// offset) is walked along output rows, where the input is a contiguous run (stride 1) or a strided one, and
    /// written in pieces that end at panel boundaries.
    @inline(never)
    func pack(_ start: Int, _ size: Int, k0: Int, kc: Int, into dst: UnsafeMutablePointer<Float>) {
        let s = self.s
        let nr = GEMMBlocking.nr
        let end = min(start + size, s.outputSpatial)
        let panelCount = (size + nr - 1) / nr
        let panelStride = kc &* nr
        // Columns past the matrix's end in the last panel are zero for every row.
        let padded = start + panelCount * nr
        if end < padded {
            for j in (end - start)..<(padded - start) {
                let d = dst + (j >> 4) &* panelStride + (j & 15)
                for kk in 0..<kc { d[kk &* nr] = 0 }
            }
        }
        if end <= start { return }
        let ow0 = start % s.ow
        let rest = start / s.ow
        let oh0 = rest % s.oh
        let od0 = rest / s.oh
        let plane = s.inputSpatial
        var kw = k0 % s.kw
        var t = k0 / s.kw
        var kh = t % s.kh
        t /= s.kh
        var kd = t % s.kd
        var ci = t / s.kd
        for kk in 0..<kc {
            let row = dst + kk &* nr
            let chan = x + ci &* plane
            let offD = kd &* s.dd &- s.pd
            let offH = kh &* s.dh &- s.ph
            let offW = kw &* s.dw &- s.pw
            // Output columns ow with 0 <= ow * sw + offW < w: lo..<hi.
            let lo = offW >= 0 ? 0 : min(s.ow, (-offW + s.sw - 1) / s.sw)
            let hi = s.w - 1 - offW < 0 ? 0 : max(lo, min(s.ow, (s.w - 1 - offW) / s.sw + 1))
            var j = 0
            var ow = ow0
            var oh = oh0
            var od = od0
            let total = end - start
            while j < total {
                let len = min(total - j, s.ow - ow)
                let id = od &* s.sd &+ offD
                let ih = oh &* s.sh &+ offH
                if UInt(bitPattern: id) >= UInt(s.d) || UInt(bitPattern: ih) >= UInt(s.h) {
                    zeroRun(row, j, len, panelStride)
                } else {
                    let src = chan + ((id &* s.h &+ ih) &* s.w &+ offW)
                    // Within this output row: zeros before `lo`, input from `lo` to `hi`, zeros after.
                    let a = min(max(lo - ow, 0), len)
                    let b = max(a, min(hi - ow, len))
                    if a > 0 { zeroRun(row, j, a, panelStride) }
                    if b > a {
                        if s.sw == 1 {
                            copyRun(row, j + a, b - a, panelStride, src + ow + a)
                        } else {
                            stridedRun(row, j + a, b - a, panelStride, src + (ow + a) &* s.sw, s.sw)
                        }
                    }
                    if len > b { zeroRun(row, j + b, len - b, panelStride) }
                }
                j += len
                ow = 0
                oh += 1
                if oh == s.oh {
                    oh = 0
                    od += 1
                }
            }
            kw += 1
            if kw == s.kw {
                kw = 0
                kh += 1
                if kh == s.kh {
                    kh = 0
                    kd += 1
                    if kd == s.kd {
                        kd = 0
                        ci += 1
                    }
                }
            }
        }
    }
}

/// Writes `count` zeros at columns `j...` of a packed row (`row` is the row in panel 0).
@inline(__always)
private func zeroRun(_ row: UnsafeMutablePointer<Float>, _ j: Int, _ count: Int, _ panelStride: Int) {
    var j = j
    var left = count
    while left > 0 {
        let o = j & 15
        let take = min(16 - o, left)
        (row + (j >> 4) &* panelStride + o).update(repeating: 0, count: take)
        j += take
        left -= take
    }
}

/// Copies `count` contiguous floats from `src` to columns `j...` of a packed row.
@inline(__always)
private func copyRun(
    _ row: UnsafeMutablePointer<Float>, _ j: Int, _ count: Int, _ panelStride: Int, _ src: UnsafePointer<Float>
) {
    var j = j
    var left = count
    var from = src
    while left > 0 {
        let o = j & 15
        let d = row + (j >> 4) &* panelStride + o
        if o == 0 && left >= 16 {
            let r = UnsafeRawPointer(from)
            let w = UnsafeMutableRawPointer(d)
            w.storeBytes(of: r.loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
            w.storeBytes(of: r.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self), toByteOffset: 32, as: SIMD8<Float>.self)
            j += 16
            left -= 16
            from += 16
            continue
        }
        let take = min(16 - o, left)
        var q = 0
        if take >= 8 {
            UnsafeMutableRawPointer(d).storeBytes(of: UnsafeRawPointer(from).loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
            q = 8
        }
        while q < take {
            d[q] = from[q]
            q += 1
        }
        j += take
        left -= take
        from += take
    }
}

/// Copies `count` floats `step` apart from `src` to columns `j...` of a packed row.
@inline(__always)
private func stridedRun(
    _ row: UnsafeMutablePointer<Float>, _ j: Int, _ count: Int, _ panelStride: Int, _ src: UnsafePointer<Float>,
    _ step: Int
) {
    var j = j
    var left = count
    var from = src
    while left > 0 {
        let o = j & 15
        let take = min(16 - o, left)
        let d = row + (j >> 4) &* panelStride + o
        for q in 0..<take { d[q] = from[q &* step] }
        j += take
        left -= take
        from += take &* step
    }
}
