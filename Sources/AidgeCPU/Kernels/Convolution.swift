import AidgeCore

func registerConvolutionKernels(_ registry: KernelRegistry) {
    registry.register("Conv", backend: "cpu") { request in
        let geometry = try ConvGeometry(request.attributes, request.inputs)
        guard let shape = ConvShape3D(geometry.window, channels: geometry.inChannels / geometry.group) else {
            throw AidgeError.unsupported("Conv (node \(request.nodeName)) supports 1 to 3 spatial dimensions")
        }
        switch geometry.dtype {
        case .float32:
            if DepthwiseConvKernel.applies(geometry, shape) {
                return try DepthwiseConvKernel(request, geometry, shape)
            }
            if WinogradConvKernel.applies(geometry, shape) {
                return try WinogradConvKernel(request, geometry, shape)
            }
            return try ConvF32Kernel(request, geometry, shape)
        case .float64:
            return ConvLoopKernel(geometry, shape, try FusedActivation(request.attributes))
        default:
            throw request.unsupportedType(geometry.dtype)
        }
    }
    registry.register("ConvTranspose", backend: "cpu") { request in
        let geometry = try ConvTransposeGeometry(request.attributes, request.inputs)
        guard let shape = ConvShape3D(geometry.window, channels: geometry.inChannels / geometry.group) else {
            throw AidgeError.unsupported("ConvTranspose (node \(request.nodeName)) supports 1 to 3 spatial dimensions")
        }
        switch geometry.dtype {
        case .float32: return try ConvTransposeF32Kernel(request, geometry, shape)
        default: throw request.unsupportedType(geometry.dtype)
        }
    }
}

/// Whether a float32 convolution gives whole images to the threads (at least two images each, handed out one by
/// one), rather than splitting the work of each image over them.
func spreadsWholeImages(batch: Int, threads: Int) -> Bool { threads > 1 && batch >= 2 * threads }

/// A Relu or Clip fused into a kernel's output pass, given by ONNX Runtime's FusedConv attributes on the node:
/// `activation` ("Relu" or "Clip") and, for Clip, `activation_params` = [min, max]. Absent: no activation.
struct FusedActivation: Sendable {
    var lower: Float? = nil
    var upper: Float? = nil

    init() {}

    init(_ attributes: Attributes) throws {
        guard attributes.has("activation") else { return }
        let kind = try attributes.string("activation")
        switch kind {
        case "Relu":
            lower = 0
        case "Clip":
            let params = try attributes.floats("activation_params", default: [])
            guard params.count == 2 else {
                throw AidgeError.invalidModel(
                    "fused Clip needs activation_params = [min, max], got \(params.count) values")
            }
            lower = params[0]
            upper = params[1]
        default:
            throw AidgeError.unsupported("fused activation '\(kind)' (supported: Relu, Clip)")
        }
    }

    var isActive: Bool { lower != nil || upper != nil }
    var lo: Float { lower ?? -.infinity }
    var hi: Float { upper ?? .infinity }
}

/// float32 convolution as GEMM, per image and group: C (out channels x output positions, written straight into
/// the NCHW output) = W (out channels x channels * kernel volume, packed once when constant) x columns.
/// The columns are packed from the image on the fly (`Im2colB`), or read in place for a 1x1 stride-1 unpadded
/// convolution. The bias is added in the GEMM's output pass.
final class ConvF32Kernel: Kernel {
    private let g: ConvGeometry
    private let s: ConvShape3D
    /// Output channels per group, and columns of W (channels per group x kernel volume).
    private let mg: Int
    private let kg: Int
    private let pointwise: Bool
    private let packedW: [PackedMatrix]
    private let bias: AlignedBuffer?
    private let activation: FusedActivation

    init(_ request: KernelRequest, _ geometry: ConvGeometry, _ shape: ConvShape3D) throws {
        g = geometry
        s = shape
        activation = try FusedActivation(request.attributes)
        mg = geometry.outChannels / geometry.group
        kg = shape.columnRows
        pointwise =
            shape.kernelVolume == 1 && shape.sd == 1 && shape.sh == 1 && shape.sw == 1 && shape.pd == 0
            && shape.ph == 0 && shape.pw == 0 && shape.outputSpatial == shape.inputSpatial
        if let w = try request.input(1).value {
            let p = w.pointer(as: Float.self)
            let (mg, kg) = (mg, kg)
            packedW = (0..<geometry.group).map { gi in
                PackedMatrix(
                    StridedMatrix(base: p + gi * mg * kg, rowStride: kg, colStride: 1), rows: mg, cols: kg, role: .a)
            }
        } else {
            packedW = []
        }
        if request.inputs.count > 2, let b = request.inputs[2]?.value {
            let buffer = AlignedBuffer(count: geometry.outChannels)
            buffer.pointer.update(from: b.pointer(as: Float.self), count: geometry.outChannels)
            bias = buffer
        } else {
            bias = nil
        }
        ScratchPool.shared.reserve(floats: weightScratchFloats + SGEMM.scratchFloats(threads: Parallel.threads))
    }

    /// Scratch for W packed once per run (weights that are not constant), in `runByImage`.
    private var weightScratchFloats: Int {
        packedW.isEmpty ? GEMMBlocking.roundUp(g.group * PackedInPlaceA.floats(rows: mg, cols: kg), 16) : 0
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard inputs.count >= 2, let x = inputs[0], let w = inputs[1], let out = outputs.first else {
            throw AidgeError.invalidModel("Conv needs inputs X and W")
        }
        let xp = x.pointer(as: Float.self)
        let wp = w.pointer(as: Float.self)
        let yp = out.pointer(as: Float.self)
        var biasPointer: UnsafePointer<Float>? = bias.map { UnsafePointer($0.pointer) }
        if biasPointer == nil, inputs.count > 2, let b = inputs[2] {
            biasPointer = UnsafePointer(b.pointer(as: Float.self))
        }
        let threads = Parallel.threads
        if spreadsWholeImages(batch: g.batch, threads: threads) {
            runByImage(xp, wp, yp, biasPointer, threads: threads)
            return
        }
        let inPlane = s.inputSpatial
        let outPlane = s.outputSpatial
        for n in 0..<g.batch {
            for gi in 0..<g.group {
                let xg = xp + (n * g.inChannels + gi * s.channels) * inPlane
                let yg = yp + (n * g.outChannels + gi * mg) * outPlane
                let ep = GEMMEpilogue(
                    rowBias: biasPointer.map { $0 + gi * mg }, lower: activation.lower, upper: activation.upper)
                if gi < packedW.count {
                    product(PackedA(packed: packedW[gi]), xg, yg, ep)
                } else {
                    let a = StridedA(matrix: StridedMatrix(base: wp + gi * mg * kg, rowStride: kg, colStride: 1), rows: mg)
                    product(a, xg, yg, ep)
                }
            }
        }
    }

    /// Whole images per thread, handed out one by one, each GEMM on one thread: no synchronisation inside an
    /// image, and weights that are not constant are packed once per run instead of once per image.
    private func runByImage(
        _ xp: UnsafePointer<Float>, _ wp: UnsafePointer<Float>, _ yp: UnsafeMutablePointer<Float>,
        _ biasPointer: UnsafePointer<Float>?, threads: Int
    ) {
        let perGroup = PackedInPlaceA.floats(rows: mg, cols: kg)
        let weightFloats = weightScratchFloats
        ScratchPool.shared.with(floats: weightFloats + SGEMM.scratchFloats(threads: threads)) { scratch in
            if packedW.isEmpty {
                Parallel.forEach(g.group) { range in
                    for gi in range {
                        let w = StridedMatrix(base: wp + gi * self.mg * self.kg, rowStride: self.kg, colStride: 1)
                        _ = PackedInPlaceA(packing: w, rows: self.mg, cols: self.kg, into: scratch + gi * perGroup)
                    }
                }
            }
            Parallel.forEachItem(g.batch, slots: threads) { slot, n in
                let gemmScratch = scratch + weightFloats + slot * GEMMBlocking.scratchPerThread
                for gi in 0..<self.g.group {
                    let xg = xp + (n * self.g.inChannels + gi * self.s.channels) * self.s.inputSpatial
                    let yg = yp + (n * self.g.outChannels + gi * self.mg) * self.s.outputSpatial
                    let ep = GEMMEpilogue(
                        rowBias: biasPointer.map { $0 + gi * self.mg }, lower: self.activation.lower,
                        upper: self.activation.upper)
                    if gi < self.packedW.count {
                        self.product(PackedA(packed: self.packedW[gi]), xg, yg, ep, scratch: gemmScratch)
                    } else {
                        let a = PackedInPlaceA(packedAt: scratch + gi * perGroup, rows: self.mg)
                        self.product(a, xg, yg, ep, scratch: gemmScratch)
                    }
                }
            }
        }
    }

    /// One image and group's product: on all threads, or on the calling thread alone with `scratch`.
    @inline(__always)
    private func product<A: GEMMOperand>(
        _ a: A, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ ep: GEMMEpilogue,
        scratch: UnsafeMutablePointer<Float>? = nil
    ) {
        let n = s.outputSpatial
        if pointwise {
            let b = StridedB(matrix: StridedMatrix(base: x, rowStride: s.inputSpatial, colStride: 1), cols: n)
            multiply(a, b, y, ep, scratch)
        } else {
            multiply(a, Im2colB(x: x, s: s), y, ep, scratch)
        }
    }

    @inline(__always)
    private func multiply<A: GEMMOperand, B: GEMMOperand>(
        _ a: A, _ b: B, _ y: UnsafeMutablePointer<Float>, _ ep: GEMMEpilogue, _ scratch: UnsafeMutablePointer<Float>?
    ) {
        let n = s.outputSpatial
        if let scratch {
            SGEMM.multiplySingle(m: mg, n: n, k: kg, a: a, b: b, c: y, ldc: n, epilogue: ep, scratch: scratch)
        } else {
            SGEMM.multiply(m: mg, n: n, k: kg, a: a, b: b, c: y, ldc: n, epilogue: ep)
        }
    }
}

/// float64 convolution with direct loops (any group, stride, dilation, padding).
final class ConvLoopKernel: Kernel {
    private let g: ConvGeometry
    private let s: ConvShape3D
    private let activation: FusedActivation

    init(_ geometry: ConvGeometry, _ shape: ConvShape3D, _ activation: FusedActivation) {
        g = geometry
        s = shape
        self.activation = activation
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard inputs.count >= 2, let x = inputs[0], let w = inputs[1], let out = outputs.first else {
            throw AidgeError.invalidModel("Conv needs inputs X and W")
        }
        let xp = x.pointer(as: Double.self)
        let wp = w.pointer(as: Double.self)
        let yp = out.pointer(as: Double.self)
        let bp = inputs.count > 2 ? inputs[2]?.pointer(as: Double.self) : nil
        let s = self.s
        let mg = g.outChannels / g.group
        for n in 0..<g.batch {
            for oc in 0..<g.outChannels {
                let gi = oc / mg
                let y = yp + (n * g.outChannels + oc) * s.outputSpatial
                let wo = wp + oc * s.columnRows
                for od in 0..<s.od {
                    for oh in 0..<s.oh {
                        for ow in 0..<s.ow {
                            var acc = bp?[oc] ?? 0
                            for c in 0..<s.channels {
                                let xc = xp + (n * g.inChannels + gi * s.channels + c) * s.inputSpatial
                                for kd in 0..<s.kd {
                                    let id = od * s.sd - s.pd + kd * s.dd
                                    if id < 0 || id >= s.d { continue }
                                    for kh in 0..<s.kh {
                                        let ih = oh * s.sh - s.ph + kh * s.dh
                                        if ih < 0 || ih >= s.h { continue }
                                        for kw in 0..<s.kw {
                                            let iw = ow * s.sw - s.pw + kw * s.dw
                                            if iw < 0 || iw >= s.w { continue }
                                            acc += xc[(id * s.h + ih) * s.w + iw]
                                                * wo[((c * s.kd + kd) * s.kh + kh) * s.kw + kw]
                                        }
                                    }
                                }
                            }
                            if let lower = activation.lower, acc < Double(lower) { acc = Double(lower) }
                            if let upper = activation.upper, acc > Double(upper) { acc = Double(upper) }
                            y[(od * s.oh + oh) * s.ow + ow] = acc
                        }
                    }
                }
            }
        }
    }
}
