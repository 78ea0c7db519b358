import AidgeCore

/// ConvTranspose: per image and group, Y = col2im(W_g^T * X_g) + B, with W_g the group's C/group x (out channels
/// per group x kernel volume) block of W.
///
/// col2im's adjoint is im2col of dY, read as a convolution from the output back to the input positions (same
/// kernel, strides, dilations and pads): dcols = im2col(dY_g) (out channels per group x kernel volume, input
/// positions). Then dX_g += W_g * dcols, dW_g += X_g * dcols^T (summed over the batch in per-thread partial sums,
/// computed transposed) and dB += the sum of dY over the batch and positions.
final class ConvTransposeGradientKernel: GradientKernel {
    private let g: ConvTransposeGeometry
    /// The adjoint convolution: `channels` are output channels per group, `d/h/w` the output's spatial size,
    /// `od/oh/ow` the input's.
    private let adjoint: ConvShape3D
    private let dtype: DType
    /// Input channels per group, and rows of the column matrix (output channels per group x kernel volume).
    private let cg: Int
    private let rows: Int

    init(_ request: KernelRequest) throws {
        g = try ConvTransposeGeometry(request.attributes, request.inputs)
        guard let forward = ConvShape3D(g.window, channels: g.inChannels / g.group) else {
            throw AidgeError.unsupported("ConvTranspose (node \(request.nodeName)) supports 1 to 3 spatial dimensions")
        }
        dtype = try gradientType(g.dtype, request)
        cg = forward.channels
        var adjoint = forward
        adjoint.channels = g.outChannels / g.group
        (adjoint.d, adjoint.h, adjoint.w) = (forward.od, forward.oh, forward.ow)
        (adjoint.od, adjoint.oh, adjoint.ow) = (forward.d, forward.h, forward.w)
        self.adjoint = adjoint
        rows = adjoint.columnRows
        ScratchPool.shared.reserve(
            floats: convolutionBatchScratchFloats(
                batch: g.batch, scratch: rows * adjoint.outputSpatial, weightCount: g.inChannels * rows,
                dtype: dtype))
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
        let kernel: ConvTransposeGradientKernel
        let x: Tensor, w: Tensor, dy: Tensor
        let dx: Tensor?, dw: Tensor?, db: Tensor?

        func run<T: GradientFloat>(_: T.Type) {
            let k = kernel
            let gp = UnsafePointer(dy.pointer(as: T.self))
            if let db {
                biasGradient(
                    gp, db.pointer(as: T.self), batch: k.g.batch, channels: k.g.outChannels,
                    positions: k.adjoint.inputSpatial)
            }
            if dx == nil && dw == nil { return }
            k.columns(
                x: UnsafePointer(x.pointer(as: T.self)), w: UnsafePointer(w.pointer(as: T.self)), dy: gp,
                dx: dx?.pointer(as: T.self), dw: dw?.pointer(as: T.self))
        }
    }

    private func columns<T: GradientFloat>(
        x: UnsafePointer<T>, w: UnsafePointer<T>, dy: UnsafePointer<T>, dx: UnsafeMutablePointer<T>?,
        dw: UnsafeMutablePointer<T>?
    ) {
        let (g, s, cg, rows) = (self.g, self.adjoint, self.cg, self.rows)
        let positions = s.outputSpatial  // the input's
        let outPlane = s.inputSpatial  // the output's
        let mg = s.channels
        convolutionBatches(
            batch: g.batch, scratch: rows * positions, weights: dw,
            blocks: TransposedWeightBlocks(groups: g.group, rows: cg, cols: rows)
        ) { images, cols, dwPartial, threads in
            for n in images {
                for gi in 0..<g.group {
                    ConvColumns.im2col(dy + (n * g.outChannels + gi * mg) * outPlane, s, into: cols)
                    let xg = x + (n * g.inChannels + gi * cg) * positions
                    if let dwPartial {
                        // dW_g^T (rows x cg) += dcols (rows x P) * X_g^T.
                        gradientGEMM(
                            transB: true, m: rows, n: cg, k: positions, a: cols, lda: positions, b: xg,
                            ldb: positions, c: dwPartial + gi * rows * cg, ldc: cg, threads: threads)
                    }
                    if let dx {
                        // dX_g (cg x P) += W_g (cg x rows) * dcols.
                        gradientGEMM(
                            m: cg, n: positions, k: rows, a: w + gi * cg * rows, lda: rows, b: cols, ldb: positions,
                            c: dx + (n * g.inChannels + gi * cg) * positions, ldc: positions, threads: threads)
                    }
                }
            }
        }
    }
}
