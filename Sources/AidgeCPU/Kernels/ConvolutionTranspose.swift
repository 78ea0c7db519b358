import AidgeCore

/// float32 ConvTranspose as GEMM + col2im, per image and group: columns (out channels x kernel volume, input
/// positions) = W^T (packed once when constant) x X, then each column is added into the output at the position
/// it reaches (stride, dilation, pads, output_padding), over an output first filled with the bias.
final class ConvTransposeF32Kernel: Kernel {
    private let g: ConvTransposeGeometry
    /// `channels` is the input channels per group; d/h/w the input size; od/oh/ow the output size; pads the crop.
    private let s: ConvShape3D
    /// Output channels per group, and rows of the column matrix (mg x kernel volume).
    private let mg: Int
    private let rows: Int
    private let packedW: [PackedMatrix]
    private let columns: AlignedBuffer

    init(_ request: KernelRequest, _ geometry: ConvTransposeGeometry, _ shape: ConvShape3D) throws {
        g = geometry
        s = shape
        mg = geometry.outChannels / geometry.group
        rows = mg * shape.kernelVolume
        if let w = try request.input(1).value {
            let p = w.pointer(as: Float.self)
            let cg = shape.channels
            let rows = self.rows
            packedW = (0..<geometry.group).map { gi in
                // W is (C, mg, k...): for group gi, A = W_g^T has element (r, c) at W[(gi * cg + c) * rows + r].
                PackedMatrix(
                    StridedMatrix(base: p + gi * cg * rows, rowStride: 1, colStride: rows), rows: rows, cols: cg,
                    role: .a)
            }
        } else {
            packedW = []
        }
        columns = AlignedBuffer(count: rows * shape.inputSpatial)
        ScratchPool.shared.reserve(floats: SGEMM.scratchFloats(threads: Parallel.threads))
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard inputs.count >= 2, let x = inputs[0], let w = inputs[1], let out = outputs.first else {
            throw AidgeError.invalidModel("ConvTranspose needs inputs X and W")
        }
        let xp = x.pointer(as: Float.self)
        let wp = w.pointer(as: Float.self)
        let yp = out.pointer(as: Float.self)
        let bp = inputs.count > 2 ? inputs[2]?.pointer(as: Float.self) : nil
        let cg = s.channels
        let inPlane = s.inputSpatial
        let cols = columns.pointer
        for n in 0..<g.batch {
            for gi in 0..<g.group {
                let xg = xp + (n * g.inChannels + gi * cg) * inPlane
                let b = StridedB(matrix: StridedMatrix(base: xg, rowStride: inPlane, colStride: 1), cols: inPlane)
                if gi < packedW.count {
                    SGEMM.multiply(m: rows, n: inPlane, k: cg, a: PackedA(packed: packedW[gi]), b: b, c: cols, ldc: inPlane)
                } else {
                    let a = StridedA(
                        matrix: StridedMatrix(base: wp + gi * cg * rows, rowStride: 1, colStride: rows), rows: rows)
                    SGEMM.multiply(m: rows, n: inPlane, k: cg, a: a, b: b, c: cols, ldc: inPlane)
                }
                let yg = yp + (n * g.outChannels + gi * mg) * s.outputSpatial
                let biasGroup = bp.map { $0 + gi * mg }
                Parallel.forEach(mg, grain: max(1, 8192 / max(1, rows / mg * inPlane))) { range in
                    for m in range { self.scatter(channel: m, cols: cols, y: yg, bias: biasGroup?[m] ?? 0) }
                }
            }
        }
    }

    /// col2im for one output channel of a group.
    @inline(__always)
    private func scatter(channel m: Int, cols: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, bias: Float) {
        let s = self.s
        let plane = y + m * s.outputSpatial
        plane.update(repeating: bias, count: s.outputSpatial)
        let inPlane = s.inputSpatial
        for kd in 0..<s.kd {
            for kh in 0..<s.kh {
                for kw in 0..<s.kw {
                    let r = ((m * s.kd + kd) * s.kh + kh) * s.kw + kw
                    let src = cols + r * inPlane
                    let offW = kw * s.dw - s.pw
                    // Input columns iw with 0 <= iw * sw + offW < ow.
                    let iwLo = offW >= 0 ? 0 : (-offW + s.sw - 1) / s.sw
                    let iwHi = s.ow - 1 - offW < 0 ? 0 : min(s.w, (s.ow - 1 - offW) / s.sw + 1)
                    if iwLo >= iwHi { continue }
                    for id in 0..<s.d {
                        let od = id * s.sd - s.pd + kd * s.dd
                        if od < 0 || od >= s.od { continue }
                        for ih in 0..<s.h {
                            let oh = ih * s.sh - s.ph + kh * s.dh
                            if oh < 0 || oh >= s.oh { continue }
                            let srow = src + (id * s.h + ih) * s.w
                            let drow = plane + (od * s.oh + oh) * s.ow + offW
                            if s.sw == 1 {
                                for iw in iwLo..<iwHi { drow[iw] += srow[iw] }
                            } else {
                                for iw in iwLo..<iwHi { drow[iw * s.sw] += srow[iw] }
                            }
                        }
                    }
                }
            }
        }
    }
}
