import AidgeCore

/// ConvInteger and QLinearConv: the 8-bit operands, less their zero points, are widened to double (exact: every
/// product and sum of 8-bit values fits in its 53 bits) and convolved by the float64 Conv kernel; ConvInteger
/// returns the int32 sums, QLinearConv requantises them (adding the int32 bias, scaling by x_scale · w_scale /
/// y_scale, rounding half to even, adding y_zero_point and saturating).
func registerIntegerConvolutionKernels(_ registry: KernelRegistry) {
    registry.register("ConvInteger", backend: "cpu") { try IntegerConvolutionKernel($0, quantized: false) }
    registry.register("QLinearConv", backend: "cpu") { try IntegerConvolutionKernel($0, quantized: true) }
}

private final class IntegerConvolutionKernel: Kernel {
    let quantized: Bool
    let convolution: any Kernel
    let x: Tensor
    let w: Tensor
    let sums: Tensor
    let channels: Int
    let spatial: Int
    let node: String

    init(_ request: KernelRequest, quantized: Bool) throws {
        self.quantized = quantized
        let xInfo = try request.input(0)
        let wInfo = try request.input(quantized ? 3 : 1)
        for info in [xInfo, wInfo] where info.dtype != .uint8 && info.dtype != .int8 {
            throw request.unsupportedType(info.dtype)
        }
        let output = request.outputs[0].shape
        x = Tensor(zeros: xInfo.shape, dtype: .float64)
        w = Tensor(zeros: wInfo.shape, dtype: .float64)
        sums = Tensor(zeros: output, dtype: .float64)
        channels = wInfo.shape[0]
        spatial = ShapeUtil.count(Array(output.dropFirst(2)))
        node = request.nodeName
        let conv = KernelRequest(
            op: Operator("Conv", attributes: request.attributes), nodeName: request.nodeName,
            inputs: [ValueInfo(dtype: .float64, shape: xInfo.shape), ValueInfo(dtype: .float64, shape: wInfo.shape)],
            outputs: [ValueInfo(dtype: .float64, shape: output)])
        convolution = try KernelRegistry.shared.makeKernel(conv, backend: "cpu")
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let (xi, xzi, wi, wzi) = quantized ? (0, 2, 3, 5) : (0, 2, 1, 3)
        let xZero = try zeroPoints(inputs, xzi, count: 1)[0]
        let wZero = try zeroPoints(inputs, wzi, count: channels)
        widen(try presentInput(inputs, xi), into: x) { _ in xZero }
        let perChannel = w.count / max(channels, 1)
        widen(try presentInput(inputs, wi), into: w) { wZero[$0 / perChannel] }
        try convolution.run([x, w], [sums])
        let s = sums.pointer(as: Double.self)
        let y = try firstOutput(outputs)
        guard quantized else {
            let out = y.pointer(as: Int32.self)
            for i in 0..<sums.count { out[i] = Int32(exactly: s[i]) ?? (s[i] < 0 ? .min : .max) }
            return
        }
        // QLinearConv: x_scale 1, w_scale 4, y_scale 6, y_zero_point 7, bias 8.
        let xScale = try scalars(inputs, 1, count: 1)[0]
        let wScale = try scalars(inputs, 4, count: channels)
        let yScale = try scalars(inputs, 6, count: 1)[0]
        let yZero = try zeroPoints(inputs, 7, count: 1)[0]
        let bias = inputs.count > 8 ? inputs[8]?.doubles() : nil
        let (low, high): (Double, Double) = y.dtype == .uint8 ? (0, 255) : (-128, 127)
        for i in 0..<sums.count {
            let m = (i / max(spatial, 1)) % channels
            let real = (s[i] + (bias?[m] ?? 0)) * xScale * wScale[m] / yScale
            let q = min(max(real.rounded(.toNearestOrEven) + yZero, low), high)
            if y.dtype == .uint8 { y.pointer(as: UInt8.self)[i] = UInt8(q) } else { y.pointer(as: Int8.self)[i] = Int8(q) }
        }
    }

    /// Input `i` (a zero point: 0 when absent) as `count` values, one per channel or one broadcast.
    private func zeroPoints(_ inputs: [Tensor?], _ i: Int, count: Int) throws -> [Double] {
        guard i < inputs.count, inputs[i] != nil else { return Array(repeating: 0, count: count) }
        return try scalars(inputs, i, count: count)
    }

    private func scalars(_ inputs: [Tensor?], _ i: Int, count: Int) throws -> [Double] {
        let values = try presentInput(inputs, i).doubles()
        if values.count == 1 { return Array(repeating: values[0], count: count) }
        guard values.count == count, values.allSatisfy({ $0.isFinite }) else {
            throw AidgeError.shapeMismatch(
                "\(node): input \(i) must hold one value or one per output channel (\(count)), got \(values.count)")
        }
        return values
    }

    /// Writes `source` (8-bit) less `zero(i)` into the float64 `target`.
    private func widen(_ source: Tensor, into target: Tensor, zero: (Int) -> Double) {
        let out = target.pointer(as: Double.self)
        if source.dtype == .uint8 {
            let p = source.pointer(as: UInt8.self)
            for i in 0..<target.count { out[i] = Double(p[i]) - zero(i) }
        } else {
            let p = source.pointer(as: Int8.self)
            for i in 0..<target.count { out[i] = Double(p[i]) - zero(i) }
        }
    }
}
