import AidgeCore

/// Backward of the convolutions, Conv and ConvTranspose (1-D to 3-D, any pads, strides, dilations and groups).
func registerConvolutionGradients(_ registry: KernelRegistry) {
    registry.registerGradient("Conv", backend: "cpu") { request in try ConvGradientKernel(request) }
    registry.registerGradient("ConvTranspose", backend: "cpu") { request in try ConvTransposeGradientKernel(request) }
}

/// Conv: per image and group, Y = W (out channels x columns) * cols, cols the image's column matrix.
///
/// dW += dY * cols^T, summed over the batch in per-thread partial sums and computed transposed (cols as the long
/// A operand, the few output channels as B); dX += col2im(W^T * dY); dB += the sum of dY over the batch and
/// positions. Unit strides read the column matrix in wide coordinates (`WideConvolution`: block copies instead
/// of im2col); a 1x1 stride-1 unpadded convolution uses the image as its own column matrix; a depthwise one (one
/// input channel per group) runs direct loops instead of GEMMs of one row.
final class ConvGradientKernel: GradientKernel {
    private let g: ConvGeometry
    private let s: ConvShape3D
    private let dtype: DType
    /// Output channels per group, and columns of W (channels per group x kernel volume).
    private let mg: Int
    private let kg: Int
    private let pointwise: Bool
    private let depthwise: DepthwiseConvGradient?
    /// Unit strides: the column matrix in wide coordinates, copied by rows instead of im2col.
    private let wide: WideConvolution?
    /// A 3x3 stride-1 float32 convolution's input gradient as the Winograd convolution of dY with the rotated,
    /// transposed weights (2.25 times fewer multiply-adds than W^T * dY and col2im).
    private let winogradInputGradient: WinogradConvKernel?

    init(_ request: KernelRequest) throws {
        g = try ConvGeometry(request.attributes, request.inputs)
        guard let shape = ConvShape3D(g.window, channels: g.inChannels / g.group) else {
            throw AidgeError.unsupported("Conv (node \(request.nodeName)) supports 1 to 3 spatial dimensions")
        }
        guard !request.attributes.has("activation") else {
            throw AidgeError.unsupported("Conv (node \(request.nodeName)) with a fused activation has no backward")
        }
        s = shape
        dtype = try gradientType(g.dtype, request)
        mg = g.outChannels / g.group
        kg = shape.columnRows
        pointwise =
            shape.kernelVolume == 1 && shape.sd == 1 && shape.sh == 1 && shape.sw == 1 && shape.pd == 0
            && shape.ph == 0 && shape.pw == 0 && shape.outputSpatial == shape.inputSpatial
        depthwise = shape.channels == 1 && g.group > 1 ? DepthwiseConvGradient(g: g, s: shape) : nil
        wide = !pointwise && WideConvolution.applies(shape) ? WideConvolution(shape) : nil
        winogradInputGradient = try Self.winogradInputGradient(g, shape, dtype: dtype, node: request.nodeName)
        if depthwise == nil {
            ScratchPool.shared.reserve(
                floats: convolutionBatchScratchFloats(
                    batch: g.batch, scratch: scratchPerImage, weightCount: g.outChannels * kg, dtype: dtype))
        }
    }

    /// dX = Conv(dY, W rotated and transposed) with pads (2 - pad) on each side, where that is a Winograd
    /// convolution; nil elsewhere.
    private static func winogradInputGradient(
        _ g: ConvGeometry, _ s: ConvShape3D, dtype: DType, node: String
    ) throws -> WinogradConvKernel? {
        let window = g.window
        guard dtype == .float32, window.rank == 2, WinogradConvKernel.applies(g, s) else { return nil }
        let pads = [2 - window.padsBegin[0], 2 - window.padsBegin[1], 2 - window.padsEnd[0], 2 - window.padsEnd[1]]
        guard pads.allSatisfy({ $0 >= 0 }) else { return nil }
        let request = KernelRequest(
            op: Operator("Conv", attributes: ["pads": .ints(pads)]), nodeName: node,
            inputs: [
                ValueInfo(dtype: .float32, shape: [g.batch, g.outChannels] + window.output),
                ValueInfo(dtype: .float32, shape: [g.inChannels, g.outChannels, 3, 3]),
            ],
            outputs: [ValueInfo(dtype: .float32, shape: [g.batch, g.inChannels] + window.input)])
        let geometry = try ConvGeometry(request.attributes, request.inputs)
        guard geometry.window.output == window.input,
            let shape = ConvShape3D(geometry.window, channels: geometry.inChannels),
            WinogradConvKernel.applies(geometry, shape)
        else { return nil }
        return try WinogradConvKernel(request, geometry, shape, transposedWeights: true, accumulate: true)
    }

    /// Up to this many weight-gradient elements per group (columns x output channels), a float32 unit-stride
    /// convolution computes them as direct dot products rather than a GEMM whose operand packing would dominate.
    static let directWeightLimit = 1024

    /// Scratch elements of one image part: the column matrix, or with `wide` the bordered image, dY laid out
    /// wide and the wide column matrix.
    private var scratchPerImage: Int {
        if pointwise { return 0 }
        if let wide { return wide.borderedCount(channels: s.channels) + (mg + kg) * wide.span }
        return kg * s.outputSpatial
    }

    // The bias gradient needs only dY; the output is not read.
    func readsInput(_ index: Int) -> Bool { index < 2 }
    func readsOutput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        guard let dy = pass.outputGradient(0) else { return }
        try dispatch(
            dtype,
            Body(
                kernel: self, x: try pass.input(0), w: try pass.input(1), dy: dy, dx: pass.inputGradient(0),
                dw: pass.inputGradient(1), db: pass.inputGradient(2)))
    }

    private struct Body: GradientBody {
        let kernel: ConvGradientKernel
        let x: Tensor, w: Tensor, dy: Tensor
        let dx: Tensor?, dw: Tensor?, db: Tensor?

        func run<T: GradientFloat>(_: T.Type) {
            let k = kernel
            let gp = UnsafePointer(dy.pointer(as: T.self))
            if let db {
                biasGradient(
                    gp, db.pointer(as: T.self), batch: k.g.batch, channels: k.g.outChannels,
                    positions: k.s.outputSpatial)
            }
            if dx == nil && dw == nil { return }
            let xp = UnsafePointer(x.pointer(as: T.self))
            let wp = UnsafePointer(w.pointer(as: T.self))
            if let depthwise = k.depthwise {
                depthwise.run(x: xp, w: wp, dy: gp, dx: dx?.pointer(as: T.self), dw: dw?.pointer(as: T.self))
            } else if let winograd = k.winogradInputGradient, let dx, T.self == Float.self {
                func float(_ p: UnsafePointer<T>) -> UnsafePointer<Float> {
                    UnsafeRawPointer(p).assumingMemoryBound(to: Float.self)
                }
                winograd.run(x: float(gp), weights: float(wp), bias: nil, y: dx.pointer(as: Float.self))
                if let dw { k.columns(x: xp, w: wp, dy: gp, dx: nil, dw: dw.pointer(as: T.self)) }
            } else {
                k.columns(x: xp, w: wp, dy: gp, dx: dx?.pointer(as: T.self), dw: dw?.pointer(as: T.self))
            }
        }
    }

    /// The GEMM path, over the batch split among threads.
    private func columns<T: GradientFloat>(
        x: UnsafePointer<T>, w: UnsafePointer<T>, dy: UnsafePointer<T>, dx: UnsafeMutablePointer<T>?,
        dw: UnsafeMutablePointer<T>?
    ) {
        let (g, s, mg, kg) = (self.g, self.s, self.mg, self.kg)
        let inPlane = s.inputSpatial
        let positions = s.outputSpatial
        let pointwise = self.pointwise
        let wide = self.wide
        // float32: each group's W^T packed once for the input-gradient GEMM of every image.
        let packedW: [PackedMatrix] =
            T.self == Float.self && dx != nil
            ? (0..<g.group).map { gi in
                PackedMatrix(
                    StridedMatrix(
                        base: UnsafeRawPointer(w + gi * mg * kg).assumingMemoryBound(to: Float.self), rowStride: 1,
                        colStride: kg), rows: kg, cols: mg, role: .a)
            } : []
        convolutionBatches(
            batch: g.batch, scratch: scratchPerImage, weights: dw,
            blocks: TransposedWeightBlocks(groups: g.group, rows: mg, cols: kg)
        ) { images, cols, dwPartial, threads in
            if let wide {
                for n in images {
                    for gi in 0..<g.group {
                        wideImage(
                            wide, x: x + (n * g.inChannels + gi * s.channels) * inPlane, w: w + gi * mg * kg,
                            dy: dy + (n * g.outChannels + gi * mg) * positions,
                            dx: dx.map { $0 + (n * g.inChannels + gi * s.channels) * inPlane },
                            dwPartial: dwPartial.map { $0 + gi * kg * mg },
                            packedW: gi < packedW.count ? packedW[gi] : nil, scratch: cols, threads: threads)
                    }
                }
                return
            }
            for n in images {
                for gi in 0..<g.group {
                    let xg = x + (n * g.inChannels + gi * s.channels) * inPlane
                    let dyg = dy + (n * g.outChannels + gi * mg) * positions
                    let wg = w + gi * mg * kg
                    if let dwPartial {
                        // dW_g^T (kg x mg) += cols (kg x P) * dY_g^T.
                        let a: UnsafePointer<T>
                        if pointwise {
                            a = xg
                        } else {
                            ConvColumns.im2col(xg, s, into: cols)
                            a = UnsafePointer(cols)
                        }
                        gradientGEMM(
                            transB: true, m: kg, n: mg, k: positions, a: a, lda: positions, b: dyg, ldb: positions,
                            c: dwPartial + gi * kg * mg, ldc: mg, threads: threads)
                    }
                    if let dx {
                        // dcols (kg x P) = W_g^T * dY_g, added back into the image.
                        let dxg = dx + (n * g.inChannels + gi * s.channels) * inPlane
                        let packed = gi < packedW.count ? packedW[gi] : nil
                        if pointwise {
                            transposedWeightProduct(
                                w: wg, packed: packed, dy: dyg, n: positions, accumulate: true, into: dxg,
                                threads: threads)
                        } else {
                            transposedWeightProduct(
                                w: wg, packed: packed, dy: dyg, n: positions, accumulate: false, into: cols,
                                threads: threads)
                            ConvColumns.col2im(UnsafePointer(cols), s, into: dxg)
                        }
                    }
                }
            }
        }
    }

    /// dcols (kg x n) = W_g^T * dY_g (mg x n, row stride n), or += when `accumulate`; float32 reads the W_g^T
    /// packed once per run.
    private func transposedWeightProduct<T: GradientFloat>(
        w: UnsafePointer<T>, packed: PackedMatrix?, dy: UnsafePointer<T>, n: Int, accumulate: Bool,
        into c: UnsafeMutablePointer<T>, threads: Int
    ) {
        if let packed, T.self == Float.self {
            let b = StridedMatrix(
                base: UnsafeRawPointer(dy).assumingMemoryBound(to: Float.self), rowStride: n, colStride: 1)
            SGEMM.multiply(
                m: kg, n: n, k: mg, a: PackedA(packed: packed), b: StridedB(matrix: b, cols: n),
                c: UnsafeMutableRawPointer(c).assumingMemoryBound(to: Float.self), ldc: n,
                epilogue: GEMMEpilogue(accumulate: accumulate), threads: threads)
        } else {
            gradientGEMM(
                transA: true, m: kg, n: n, k: mg, a: w, lda: kg, b: dy, ldb: n, accumulate: accumulate, c: c, ldc: n,
                threads: threads)
        }
    }

    /// One image and group of a unit-stride convolution, in wide coordinates (`WideConvolution`).
    private func wideImage<T: GradientFloat>(
        _ wide: WideConvolution, x: UnsafePointer<T>, w: UnsafePointer<T>, dy: UnsafePointer<T>,
        dx: UnsafeMutablePointer<T>?, dwPartial: UnsafeMutablePointer<T>?, packedW: PackedMatrix?,
        scratch: UnsafeMutablePointer<T>, threads: Int
    ) {
        let (mg, kg, cg) = (self.mg, self.kg, s.channels)
        let p = wide.span
        let bordered = scratch
        let dyWide = scratch + wide.borderedCount(channels: cg)
        let cols = dyWide + mg * p
        wide.widen(dy, channels: mg, into: dyWide)
        if let dwPartial {
            // dW_g^T (kg x mg) += cols (kg x P') * dY_wide^T.
            wide.border(x, channels: cg, into: bordered)
            if T.self == Float.self {
                // float32: cols packed for the GEMM straight from the bordered image.
                func float(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<Float> {
                    UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self)
                }
                wide.taps.withUnsafeBufferPointer { offsets in
                    guard let base = offsets.baseAddress else { return }
                    let a = WideColumnsA(
                        bordered: UnsafePointer(float(bordered)), rows: kg, taps: offsets.count, volume: wide.volume,
                        positions: wide.positions, offsets: base)
                    if kg * mg <= ConvGradientKernel.directWeightLimit {
                        wideWeightDots(
                            a, span: p, dyWide: UnsafePointer(float(dyWide)), channels: mg, into: float(dwPartial))
                        return
                    }
                    let b = StridedB(
                        matrix: StridedMatrix(base: UnsafePointer(float(dyWide)), rowStride: 1, colStride: p), cols: mg)
                    SGEMM.multiply(
                        m: kg, n: mg, k: p, a: a, b: b, c: float(dwPartial), ldc: mg,
                        epilogue: GEMMEpilogue(accumulate: true), threads: threads)
                }
            } else {
                wide.columns(UnsafePointer(bordered), channels: cg, into: cols)
                gradientGEMM(
                    transB: true, m: kg, n: mg, k: p, a: UnsafePointer(cols), lda: p, b: UnsafePointer(dyWide),
                    ldb: p, c: dwPartial, ldc: mg, threads: threads)
            }
        }
        if let dx {
            // dcols (kg x P') = W_g^T * dY_wide, added row by row into the bordered image, then into dX.
            transposedWeightProduct(
                w: w, packed: packedW, dy: UnsafePointer(dyWide), n: p, accumulate: false, into: cols, threads: threads)
            bordered.update(repeating: 0, count: cg * wide.volume)
            wide.addColumns(UnsafePointer(cols), channels: cg, into: bordered)
            wide.unborder(UnsafePointer(bordered), channels: cg, into: dx)
        }
    }
}
