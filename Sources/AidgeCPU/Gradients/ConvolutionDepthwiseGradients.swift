import AidgeCore

/// Backward of a depthwise convolution (one input channel per group, any channel multiplier) with direct loops:
/// as GEMMs its products would have a single row.
///
/// dW is computed per output channel (threads own disjoint channels and walk the whole batch), each tap summed
/// in a row of partial sums along the output width so the inner loop is element-wise (vectorised) rather than a
/// reduction; dX per input plane (threads own disjoint planes).
struct DepthwiseConvGradient {
    let g: ConvGeometry
    let s: ConvShape3D

    func run<T: GradientFloat>(
        x: UnsafePointer<T>, w: UnsafePointer<T>, dy: UnsafePointer<T>, dx: UnsafeMutablePointer<T>?,
        dw: UnsafeMutablePointer<T>?
    ) {
        if let dw { weightGradient(x: x, dy: dy, dw: dw) }
        if let dx { inputGradient(w: w, dy: dy, dx: dx) }
    }

    /// Calls `body(tap, offW, lo, hi, inputRow, outputRow)` for each tap and each output row whose input row is
    /// inside the image: output columns `lo..<hi` read input column `o * sw + offW`.
    @inline(__always)
    private func rows(_ body: (Int, Int, Int, Int, Int, Int) -> Void) {
        let s = self.s
        var tap = 0
        for kd in 0..<s.kd {
            for kh in 0..<s.kh {
                for kw in 0..<s.kw {
                    let offW = kw * s.dw - s.pw
                    let (lo, hi) = ConvColumns.validColumns(s, offW: offW)
                    if lo < hi {
                        for od in 0..<s.od {
                            let id = od * s.sd - s.pd + kd * s.dd
                            if id < 0 || id >= s.d { continue }
                            for oh in 0..<s.oh {
                                let ih = oh * s.sh - s.ph + kh * s.dh
                                if ih < 0 || ih >= s.h { continue }
                                body(tap, offW, lo, hi, (id * s.h + ih) * s.w, (od * s.oh + oh) * s.ow)
                            }
                        }
                    }
                    tap += 1
                }
            }
        }
    }

    private func weightGradient<T: GradientFloat>(x: UnsafePointer<T>, dy: UnsafePointer<T>, dw: UnsafeMutablePointer<T>) {
        let (g, s) = (self.g, self.s)
        let multiplier = g.outChannels / g.group
        let taps = s.kernelVolume
        let width = s.ow
        let work = g.batch * s.outputSpatial * taps
        Parallel.forEach(g.outChannels, grain: max(1, (1 << 15) / max(work, 1))) { range in
            var partial = [T](repeating: 0, count: taps * width)
            partial.withUnsafeMutableBufferPointer { buffer in
                guard let acc = buffer.baseAddress else { return }
                for oc in range {
                    acc.update(repeating: 0, count: taps * width)
                    let ic = oc / multiplier
                    for n in 0..<g.batch {
                        let xc = x + (n * g.inChannels + ic) * s.inputSpatial
                        let gc = dy + (n * g.outChannels + oc) * s.outputSpatial
                        rows { tap, offW, lo, hi, inRow, outRow in
                            let a = acc + tap * width
                            let src = xc + inRow + offW
                            let grad = gc + outRow
                            if s.sw == 1 {
                                for o in lo..<hi { a[o] += grad[o] * src[o] }
                            } else {
                                for o in lo..<hi { a[o] += grad[o] * src[o * s.sw] }
                            }
                        }
                    }
                    for tap in 0..<taps { dw[oc * taps + tap] += planeSum(acc + tap * width, width) }
                }
            }
        }
    }

    private func inputGradient<T: GradientFloat>(w: UnsafePointer<T>, dy: UnsafePointer<T>, dx: UnsafeMutablePointer<T>) {
        let (g, s) = (self.g, self.s)
        let multiplier = g.outChannels / g.group
        let taps = s.kernelVolume
        let work = multiplier * s.outputSpatial * taps
        Parallel.forEach(g.batch * g.inChannels, grain: max(1, (1 << 15) / max(work, 1))) { range in
            for plane in range {
                let n = plane / g.inChannels
                let ic = plane % g.inChannels
                let xc = dx + plane * s.inputSpatial
                for oc in ic * multiplier..<(ic + 1) * multiplier {
                    let gc = dy + (n * g.outChannels + oc) * s.outputSpatial
                    let wc = w + oc * taps
                    rows { tap, offW, lo, hi, inRow, outRow in
                        let weight = wc[tap]
                        let dst = xc + inRow + offW
                        let grad = gc + outRow
                        if s.sw == 1 {
                            for o in lo..<hi { dst[o] += weight * grad[o] }
                        } else {
                            for o in lo..<hi { dst[o * s.sw] += weight * grad[o] }
                        }
                    }
                }
            }
        }
    }
}
