import AidgeCore

/// One convolution through cuDNN: descriptors made once per kernel, the algorithm cuDNN ranks first among those
/// whose workspace fits, and that workspace allocated once. Only symmetric padding (cuDNN has one pad per axis).
final class CuDNNConvolution {
    private let cudnn: CuDNN
    private let input: OpaquePointer?, filter: OpaquePointer?, convolution: OpaquePointer?, output: OpaquePointer?
    private let algorithm: Int32
    private let workspace: Storage?
    /// Whether cuDNN reads alpha and beta as doubles (double data).
    private let double: Bool

    /// nil when cuDNN is absent or cannot take this convolution (asymmetric pads, dtype).
    init?(_ cuda: CUDADevice, _ g: ConvGeometry) throws {
        guard CUDABackend.usesCuDNN, let (cudnn, handle) = try cuda.dnn(), let dataType = CuDNN.dataType(g.dtype),
            g.window.padsBegin == g.window.padsEnd
        else { return nil }
        self.cudnn = cudnn
        double = g.dtype == .float64
        func descriptor(_ create: (UnsafeMutablePointer<OpaquePointer?>) -> Int32, _ what: String) throws -> OpaquePointer? {
            var d: OpaquePointer?
            try cudnn.check(create(&d), "creating a \(what) descriptor")
            return d
        }
        input = try descriptor(cudnn.createTensor, "tensor")
        output = try descriptor(cudnn.createTensor, "tensor")
        filter = try descriptor(cudnn.createFilter, "filter")
        convolution = try descriptor(cudnn.createConvolution, "convolution")
        // cuDNN wants at least 2 spatial dimensions: a 1-D convolution is a 2-D one of height 1.
        let lift = g.window.rank == 1
        func spatial(_ v: [Int], _ one: Int) -> [Int32] { ((lift ? [one] : []) + v).map { Int32($0) } }
        let xShape = [Int32(g.batch), Int32(g.inChannels)] + spatial(g.window.input, 1)
        let yShape = [Int32(g.batch), Int32(g.outChannels)] + spatial(g.window.output, 1)
        let wShape = [Int32(g.outChannels), Int32(g.inChannels / g.group)] + spatial(g.window.kernel, 1)
        func strides(_ shape: [Int32]) -> [Int32] { ShapeUtil.contiguousStrides(shape.map { Int($0) }).map { Int32($0) } }
        try cudnn.check(cudnn.setTensor(input, dataType, Int32(xShape.count), xShape, strides(xShape)), "describing X")
        try cudnn.check(cudnn.setTensor(output, dataType, Int32(yShape.count), yShape, strides(yShape)), "describing Y")
        try cudnn.check(cudnn.setFilter(filter, dataType, 0, Int32(wShape.count), wShape), "describing W")
        let pads = spatial(g.window.padsBegin, 0), steps = spatial(g.window.strides, 1)
        let dilations = spatial(g.window.dilations, 1)
        let compute: Int32 = g.dtype == .float64 ? 1 : 0
        try cudnn.check(
            cudnn.setConvolution(convolution, Int32(pads.count), pads, steps, dilations, 1 /* cross-correlation */, compute),
            "describing the convolution")
        try cudnn.check(cudnn.setGroupCount(convolution, Int32(g.group)), "setting the group count")
        // float32 without TF32 unless allowed (FMA math); 16-bit floats on tensor cores.
        let math: Int32 = g.dtype == .float32 ? (CUDABackend.allowsTF32Convolutions ? 0 : 3) : 1
        try cudnn.check(cudnn.setMathType(convolution, math), "setting the math type")
        let wanted = 8
        var returned: Int32 = 0
        let perf = UnsafeMutableRawPointer.allocate(byteCount: wanted * CuDNN.perfSize, alignment: 8)
        defer { perf.deallocate() }
        try cudnn.check(
            cudnn.forwardAlgorithms(handle, input, filter, convolution, output, Int32(wanted), &returned, perf),
            "choosing an algorithm")
        let limit = 256 << 20
        var chosen: (algorithm: Int32, bytes: Int)?
        for k in 0..<min(Int(returned), wanted) {
            let entry = perf + k * CuDNN.perfSize
            let status = entry.load(fromByteOffset: 4, as: Int32.self)
            let bytes = entry.load(fromByteOffset: CuDNN.perfMemoryOffset, as: Int.self)
            if status == 0, bytes <= limit {
                chosen = (entry.load(as: Int32.self), bytes)
                break
            }
        }
        guard let chosen else { return nil }
        algorithm = chosen.algorithm
        var bytes = 0
        try cudnn.check(
            cudnn.forwardWorkspaceSize(handle, input, filter, convolution, output, algorithm, &bytes),
            "sizing the workspace")
        workspace = bytes > 0 ? try CUDABackend.memory().allocate(byteCount: bytes) : nil
    }

    /// alpha = 1 and beta = 0 in the precision cuDNN reads them.
    private func withScalars(_ body: (UnsafeRawPointer, UnsafeRawPointer) -> Int32) -> Int32 {
        if double {
            var alpha = 1.0, beta = 0.0
            return withUnsafePointer(to: &alpha) { a in withUnsafePointer(to: &beta) { b in body(a, b) } }
        }
        var alpha: Float = 1, beta: Float = 0
        return withUnsafePointer(to: &alpha) { a in withUnsafePointer(to: &beta) { b in body(a, b) } }
    }

    deinit {
        _ = cudnn.destroyTensor(input)
        _ = cudnn.destroyTensor(output)
        _ = cudnn.destroyFilter(filter)
        _ = cudnn.destroyConvolution(convolution)
    }

    /// y = conv(x, w), queued on the current stream.
    func run(on cuda: CUDADevice, x: Tensor, w: Tensor, y: Tensor) throws {
        guard let (cudnn, handle) = try cuda.dnn() else { throw AidgeError.device("cuDNN is no longer loaded") }
        let status = withScalars { alpha, beta in
            cudnn.forward(
                handle, alpha, input, x.rawPointer, filter, w.rawPointer, convolution, algorithm, workspace?.pointer,
                workspace?.byteCount ?? 0, beta, output, y.rawPointer)
        }
        try cudnn.check(status, "running a convolution")
    }
}
