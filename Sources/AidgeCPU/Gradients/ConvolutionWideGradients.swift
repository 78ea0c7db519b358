import AidgeCore

/// The column matrix of a unit-stride convolution in "wide" coordinates, for backward without im2col.
///
/// Each channel of the image is copied into a zero-bordered volume (`depth x rows x cols`) that every window
/// reaches. Output position (od, oh, ow) is numbered `(od * rows + oh) * cols + ow` (the wide index; numbers
/// with ow or oh past the output are junk positions). With unit strides, the column matrix row of channel c and
/// tap (kd, kh, kw) is then the contiguous run of the bordered volume starting at `c * volume + tap offset`:
/// copying it is one block copy per row, and adding a row back (col2im) one long vector add. dY is laid out
/// wide too, zero at the junk positions, so that they add nothing to any product.
struct WideConvolution {
    let s: ConvShape3D
    /// The bordered volume of one channel; the input sits at (pd, ph, pw).
    let depth: Int, rows: Int, cols: Int
    /// The input's extent copied into it (windows never reach what lies past the bordered volume).
    let copiedDepth: Int, copiedRows: Int, copiedCols: Int
    /// Wide indices 0..<positions cover every output position.
    let positions: Int
    /// The row length of wide matrices: `positions` rounded up to whole 32-column GEMM tiles (the tiles past the
    /// edge of a matrix take a slow path), the extra columns zero.
    let span: Int
    /// Offset of each tap's first element in the bordered volume.
    let taps: [Int]

    var volume: Int { depth * rows * cols }

    /// The wide form applies to unit strides (dilations and pads are free).
    static func applies(_ s: ConvShape3D) -> Bool { s.sd == 1 && s.sh == 1 && s.sw == 1 }

    init(_ s: ConvShape3D) {
        self.s = s
        depth = (s.od - 1) + (s.kd - 1) * s.dd + 1
        rows = (s.oh - 1) + (s.kh - 1) * s.dh + 1
        cols = (s.ow - 1) + (s.kw - 1) * s.dw + 1
        copiedDepth = max(0, min(s.d, depth - s.pd))
        copiedRows = max(0, min(s.h, rows - s.ph))
        copiedCols = max(0, min(s.w, cols - s.pw))
        positions = ((s.od - 1) * rows + (s.oh - 1)) * cols + s.ow
        span = (positions + 31) / 32 * 32
        var taps: [Int] = []
        for kd in 0..<s.kd {
            for kh in 0..<s.kh {
                for kw in 0..<s.kw { taps.append((kd * s.dd * rows + kh * s.dh) * cols + kw * s.dw) }
            }
        }
        self.taps = taps
    }

    /// Elements of `channels` bordered volumes and the zeros after them that rows read up to `span` meet.
    func borderedCount(channels: Int) -> Int { channels * volume + span }

    /// Copies `channels` image channels (each `s.inputSpatial`) into bordered volumes at `dst` (zero elsewhere,
    /// `borderedCount` elements).
    func border<T: GradientFloat>(_ x: UnsafePointer<T>, channels: Int, into dst: UnsafeMutablePointer<T>) {
        dst.update(repeating: 0, count: borderedCount(channels: channels))
        for c in 0..<channels {
            for z in 0..<copiedDepth {
                for r in 0..<copiedRows {
                    let src = x + c * s.inputSpatial + (z * s.h + r) * s.w
                    let to = dst + c * volume + ((z + s.pd) * rows + r + s.ph) * cols + s.pw
                    to.update(from: src, count: copiedCols)
                }
            }
        }
    }

    /// Adds the image part of bordered volumes `src` back into `channels` image channels at `x`.
    func unborder<T: GradientFloat>(_ src: UnsafePointer<T>, channels: Int, into x: UnsafeMutablePointer<T>) {
        for c in 0..<channels {
            for z in 0..<copiedDepth {
                for r in 0..<copiedRows {
                    let from = src + c * volume + ((z + s.pd) * rows + r + s.ph) * cols + s.pw
                    let to = x + c * s.inputSpatial + (z * s.h + r) * s.w
                    for i in 0..<copiedCols { to[i] += from[i] }
                }
            }
        }
    }

    /// Lays out `count` output channels of dY (each `s.outputSpatial`) wide at `dst` (`count x span`).
    func widen<T: GradientFloat>(_ dy: UnsafePointer<T>, channels count: Int, into dst: UnsafeMutablePointer<T>) {
        dst.update(repeating: 0, count: count * span)
        for m in 0..<count {
            for z in 0..<s.od {
                for r in 0..<s.oh {
                    (dst + m * span + (z * rows + r) * cols)
                        .update(from: dy + m * s.outputSpatial + (z * s.oh + r) * s.ow, count: s.ow)
                }
            }
        }
    }

    /// The wide column matrix (`channels * taps x span`) of bordered volumes `bordered`.
    func columns<T: GradientFloat>(_ bordered: UnsafePointer<T>, channels: Int, into cols: UnsafeMutablePointer<T>) {
        var r = 0
        for c in 0..<channels {
            for offset in taps {
                let row = cols + r * span
                row.update(from: bordered + c * volume + offset, count: positions)
                (row + positions).update(repeating: 0, count: span - positions)
                r += 1
            }
        }
    }

    /// col2im: adds each row of the wide column matrix `cols` (`channels * taps x span`) into bordered volumes
    /// `bordered`.
    func addColumns<T: GradientFloat>(_ cols: UnsafePointer<T>, channels: Int, into bordered: UnsafeMutablePointer<T>) {
        var r = 0
        for c in 0..<channels {
            for offset in taps {
                let src = cols + r * span
                let dst = bordered + c * volume + offset
                for p in 0..<positions { dst[p] += src[p] }
                r += 1
            }
        }
    }
}

/// The float32 wide column matrix as the A operand of the packed GEMM, packed straight from the bordered image
/// (`channels * taps x span`; the columns from `positions` on read as zero): the weight gradient's GEMM without
/// a copy of the matrix.
struct WideColumnsA: GEMMOperand {
    let bordered: UnsafePointer<Float>
    let rows: Int
    let taps: Int
    let volume: Int
    let positions: Int
    /// The tap offsets, `taps` of them.
    let offsets: UnsafePointer<Int>

    /// Where row `r` (channel r / taps, tap r % taps) starts.
    @inline(__always)
    func rowPointer(_ r: Int) -> UnsafePointer<Float> { bordered + (r / taps) * volume + offsets[r % taps] }

    func panels(
        _ start: Int, _ size: Int, block: Int, k0: Int, kc: Int, scratch: UnsafeMutablePointer<Float>
    ) -> UnsafePointer<Float> {
        let mr = GEMMBlocking.mr
        let valid = max(0, min(kc, positions - k0))
        let panels = (size + mr - 1) / mr
        for p in 0..<panels {
            let r0 = start + p * mr
            let out = scratch + p * kc * mr
            if r0 + mr <= rows {
                let (s0, s1, s2) = (rowPointer(r0) + k0, rowPointer(r0 + 1) + k0, rowPointer(r0 + 2) + k0)
                let (s3, s4, s5) = (rowPointer(r0 + 3) + k0, rowPointer(r0 + 4) + k0, rowPointer(r0 + 5) + k0)
                for k in 0..<valid {
                    let o = out + k * mr
                    o[0] = s0[k]
                    o[1] = s1[k]
                    o[2] = s2[k]
                    o[3] = s3[k]
                    o[4] = s4[k]
                    o[5] = s5[k]
                }
            } else {
                for r in 0..<mr where r0 + r < rows {
                    let s = rowPointer(r0 + r) + k0
                    for k in 0..<valid { out[k * mr + r] = s[k] }
                }
                for r in 0..<mr where r0 + r >= rows {
                    for k in 0..<valid { out[k * mr + r] = 0 }
                }
            }
            if valid < kc { (out + valid * mr).update(repeating: 0, count: (kc - valid) * mr) }
        }
        return UnsafePointer(scratch)
    }
}

/// The float32 weight gradient of one image as direct dot products, for convolutions with few columns and
/// output channels (a first layer: one input channel): there a GEMM spends more on packing its operands than
/// on products. `partial[r][oc] += sum over p < span of cols[r][p] * dY_wide[oc][p]`, two column rows by four
/// channels at a time in vector registers; rows read past `positions` meet zeros in dY_wide.
func wideWeightDots(
    _ a: WideColumnsA, span: Int, dyWide: UnsafePointer<Float>, channels mg: Int,
    into partial: UnsafeMutablePointer<Float>
) {
    func load(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> {
        UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
    }
    var r = 0
    while r < a.rows {
        let pair = r + 1 < a.rows
        let x0 = a.rowPointer(r)
        let x1 = pair ? a.rowPointer(r + 1) : x0
        var oc = 0
        while oc < mg {
            let n = min(4, mg - oc)
            let d0 = dyWide + oc * span
            let d1 = n > 1 ? d0 + span : d0
            let d2 = n > 2 ? d0 + 2 * span : d0
            let d3 = n > 3 ? d0 + 3 * span : d0
            var a00 = SIMD8<Float>(), a01 = SIMD8<Float>(), a02 = SIMD8<Float>(), a03 = SIMD8<Float>()
            var a10 = SIMD8<Float>(), a11 = SIMD8<Float>(), a12 = SIMD8<Float>(), a13 = SIMD8<Float>()
            var p = 0
            while p < span {
                let u = load(x0, p)
                let v = load(x1, p)
                let g0 = load(d0, p)
                let g1 = load(d1, p)
                let g2 = load(d2, p)
                let g3 = load(d3, p)
                a00 = a00.addingProduct(u, g0)
                a01 = a01.addingProduct(u, g1)
                a02 = a02.addingProduct(u, g2)
                a03 = a03.addingProduct(u, g3)
                a10 = a10.addingProduct(v, g0)
                a11 = a11.addingProduct(v, g1)
                a12 = a12.addingProduct(v, g2)
                a13 = a13.addingProduct(v, g3)
                p += 8
            }
            let sums0 = SIMD4<Float>(a00.sum(), a01.sum(), a02.sum(), a03.sum())
            let sums1 = SIMD4<Float>(a10.sum(), a11.sum(), a12.sum(), a13.sum())
            for j in 0..<n {
                partial[r * mg + oc + j] += sums0[j]
                if pair { partial[(r + 1) * mg + oc + j] += sums1[j] }
            }
            oc += n
        }
        r += 2
    }
}
