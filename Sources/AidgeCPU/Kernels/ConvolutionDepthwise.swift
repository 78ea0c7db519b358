import AidgeCore

/// Depthwise float32 convolution (group = input channels, 1-D or 2-D): a direct kernel per output plane,
/// vectorised along the output width (stride 1 and 2); the borders, where the window leaves the image, are
/// computed separately so the interior loop has no bounds checks.
final class DepthwiseConvKernel: Kernel {
    private let g: ConvGeometry
    private let s: ConvShape3D
    /// Output channels per input channel.
    private let multiplier: Int
    /// Output columns whose window lies inside the image horizontally: `owLo..<owHi`, and the vector bound.
    private let owLo: Int
    private let owHi: Int
    private let owHiVector: Int

    static func applies(_ g: ConvGeometry, _ s: ConvShape3D) -> Bool {
        g.group == g.inChannels && g.group > 1 && s.channels == 1 && s.d == 1 && s.kd == 1 && s.od == 1
    }

    init(_ request: KernelRequest, _ geometry: ConvGeometry, _ shape: ConvShape3D) throws {
        g = geometry
        s = shape
        multiplier = geometry.outChannels / geometry.group
        let reach = (shape.kw - 1) * shape.dw
        owLo = min(shape.ow, (shape.pw + shape.sw - 1) / shape.sw)
        func bound(_ last: Int) -> Int {
            // Outputs ow with ow * sw - pw + reach <= last.
            let top = last - reach + shape.pw
            return top < 0 ? 0 : min(shape.ow, top / shape.sw + 1)
        }
        owHi = max(owLo, bound(shape.w - 1))
        // A stride-2 vector reads 16 inputs for 8 outputs: one more than the last one used.
        owHiVector = shape.sw == 1 ? owHi : shape.sw == 2 ? max(owLo, bound(shape.w - 2)) : owLo
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
        Parallel.forEach(planes, grain: max(1, 16384 / max(work, 1))) { range in
            for plane in range {
                let n = plane / g.outChannels
                let oc = plane % g.outChannels
                let ic = oc / multiplier
                self.plane(
                    x: xp + (n * g.inChannels + ic) * s.inputSpatial, w: wp + oc * s.kernelVolume,
                    bias: bp?[oc] ?? 0, y: yp + plane * s.outputSpatial)
            }
        }
    }

    @inline(__always)
    private func plane(x: UnsafePointer<Float>, w: UnsafePointer<Float>, bias: Float, y: UnsafeMutablePointer<Float>) {
        let s = self.s
        for oh in 0..<s.oh {
            let ihBase = oh * s.sh - s.ph
            // Kernel rows inside the image: khLo..<khHi.
            let khLo = ihBase >= 0 ? 0 : min(s.kh, (-ihBase + s.dh - 1) / s.dh)
            let khHi = s.h - 1 - ihBase < 0 ? 0 : min(s.kh, (s.h - 1 - ihBase) / s.dh + 1)
            let row = y + oh * s.ow
            for ow in 0..<owLo { row[ow] = border(x, w, bias, ihBase, khLo, khHi, ow) }
            var ow = owLo
            if s.sw <= 2 && owHiVector - owLo >= 8 {
                let vkh = max(khLo, khHi)
                // Four independent accumulators hide the FMA latency.
                while ow + 32 <= owHiVector {
                    vector4(x, w, bias, ihBase, khLo, vkh, ow, row)
                    ow += 32
                }
                while ow + 8 <= owHiVector {
                    vector1(x, w, bias, ihBase, khLo, vkh, ow, row)
                    ow += 8
                }
                if ow < owHiVector {
                    // The last few interior outputs: one vector ending at the interior's end, overlapping outputs
                    // already written (they get the same values).
                    vector1(x, w, bias, ihBase, khLo, vkh, owHiVector - 8, row)
                    ow = owHiVector
                }
            }
            while ow < owHi {
                var acc = bias
                let iw0 = ow * s.sw - s.pw
                for kh in khLo..<max(khLo, khHi) {
                    let r = x + (ihBase + kh * s.dh) * s.w + iw0
                    let wr = w + kh * s.kw
                    for kw in 0..<s.kw { acc += wr[kw] * r[kw * s.dw] }
                }
                row[ow] = acc
                ow += 1
            }
            for ow in max(owHi, owLo)..<s.ow { row[ow] = border(x, w, bias, ihBase, khLo, khHi, ow) }
        }
    }

    /// Loads the 8 inputs under outputs `ow..<ow+8` for kernel column offset `p` (stride 1 or 2).
    @inline(__always)
    private func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        if s.sw == 1 { return UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }
        return UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self).evenHalf
    }

    /// Outputs `ow..<ow+32` of an output row, all inside the image horizontally.
    @inline(__always)
    private func vector4(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ bias: Float, _ ihBase: Int, _ khLo: Int, _ khHi: Int,
        _ ow: Int, _ row: UnsafeMutablePointer<Float>
    ) {
        let s = self.s
        var a0 = SIMD8<Float>(repeating: bias)
        var a1 = a0, a2 = a0, a3 = a0
        let step = 8 &* s.sw
        for kh in khLo..<khHi {
            let r = x + ((ihBase &+ kh &* s.dh) &* s.w &+ ow &* s.sw &- s.pw)
            let wr = w + kh &* s.kw
            for kw in 0..<s.kw {
                let wv = SIMD8<Float>(repeating: wr[kw])
                let p = r + kw &* s.dw
                a0 = a0.addingProduct(wv, load(p))
                a1 = a1.addingProduct(wv, load(p + step))
                a2 = a2.addingProduct(wv, load(p + 2 &* step))
                a3 = a3.addingProduct(wv, load(p + 3 &* step))
            }
        }
        let o = UnsafeMutableRawPointer(row + ow)
        o.storeBytes(of: a0, as: SIMD8<Float>.self)
        o.storeBytes(of: a1, toByteOffset: 32, as: SIMD8<Float>.self)
        o.storeBytes(of: a2, toByteOffset: 64, as: SIMD8<Float>.self)
        o.storeBytes(of: a3, toByteOffset: 96, as: SIMD8<Float>.self)
    }

    /// Outputs `ow..<ow+8` of an output row, all inside the image horizontally.
    @inline(__always)
    private func vector1(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ bias: Float, _ ihBase: Int, _ khLo: Int, _ khHi: Int,
        _ ow: Int, _ row: UnsafeMutablePointer<Float>
    ) {
        let s = self.s
        var a0 = SIMD8<Float>(repeating: bias)
        for kh in khLo..<khHi {
            let r = x + ((ihBase &+ kh &* s.dh) &* s.w &+ ow &* s.sw &- s.pw)
            let wr = w + kh &* s.kw
            for kw in 0..<s.kw { a0 = a0.addingProduct(SIMD8(repeating: wr[kw]), load(r + kw &* s.dw)) }
        }
        UnsafeMutableRawPointer(row + ow).storeBytes(of: a0, as: SIMD8<Float>.self)
    }

    /// One output whose window may leave the image horizontally.
    @inline(__always)
    private func border(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ bias: Float, _ ihBase: Int, _ khLo: Int, _ khHi: Int,
        _ ow: Int
    ) -> Float {
        var acc = bias
        let iw0 = ow * s.sw - s.pw
        for kh in khLo..<max(khLo, khHi) {
            let r = x + (ihBase + kh * s.dh) * s.w
            for kw in 0..<s.kw {
                let iw = iw0 + kw * s.dw
                if UInt(bitPattern: iw) < UInt(s.w) { acc += w[kh * s.kw + kw] * r[iw] }
            }
        }
        return acc
    }
}
