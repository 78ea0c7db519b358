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

    func pack(_ start: Int, _ size: Int, k0: Int, kc: Int, into dst: UnsafeMutablePointer<Float>) {
        let s = self.s
        let nr = GEMMBlocking.nr
        let end = min(start + size, s.outputSpatial)
        let panelCount = (size + nr - 1) / nr
        let plane = s.inputSpatial
        for p in 0..<panelCount {
            let c0 = start + p * nr
            let valid = max(0, min(nr, end - c0))
            let out = dst + p * kc * nr
            let ow0 = c0 % s.ow
            let rest = c0 / s.ow
            let oh0 = rest % s.oh
            let od0 = rest / s.oh
            var kw = k0 % s.kw
            var t = k0 / s.kw
            var kh = t % s.kh
            t /= s.kh
            var kd = t % s.kd
            var ci = t / s.kd
            for kk in 0..<kc {
                let row = out + kk * nr
                let chan = x + ci * plane
                let offD = kd * s.dd - s.pd
                let offH = kh * s.dh - s.ph
                let offW = kw * s.dw - s.pw
                var j = 0
                var ow = ow0
                var oh = oh0
                var od = od0
                while j < valid {
                    let len = min(valid - j, s.ow - ow)
                    let id = od * s.sd + offD
                    let ih = oh * s.sh + offH
                    let seg = row + j
                    if UInt(bitPattern: id) >= UInt(s.d) || UInt(bitPattern: ih) >= UInt(s.h) {
                        seg.update(repeating: 0, count: len)
                    } else {
                        let src = chan + (id * s.h + ih) * s.w
                        let iw0 = ow * s.sw + offW
                        if s.sw == 1 {
                            let lo = min(len, max(0, -iw0))
                            let hi = max(lo, min(len, s.w - iw0))
                            if lo == 0 && hi == 16 {
                                let raw = UnsafeRawPointer(src + iw0)
                                let r = UnsafeMutableRawPointer(seg)
                                r.storeBytes(of: raw.loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
                                r.storeBytes(
                                    of: raw.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self), toByteOffset: 32,
                                    as: SIMD8<Float>.self)
                            } else {
                                for q in 0..<lo { seg[q] = 0 }
                                for q in lo..<hi { seg[q] = src[iw0 + q] }
                                for q in hi..<len { seg[q] = 0 }
                            }
                        } else {
                            var iw = iw0
                            for q in 0..<len {
                                seg[q] = UInt(bitPattern: iw) < UInt(s.w) ? src[iw] : 0
                                iw += s.sw
                            }
                        }
                    }
                    j += len
                    ow = 0
                    oh += 1
                    if oh == s.oh {
                        oh = 0
                        od += 1
                    }
                }
                for q in valid..<nr { row[q] = 0 }
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
}
