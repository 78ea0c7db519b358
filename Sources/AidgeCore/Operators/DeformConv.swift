/// DeformConv: a 2-D convolution whose every kernel tap reads X at its regular place moved by a learned offset
/// (bilinear, zero outside the image), optionally scaled by a mask; input channels share offsets per offset group.
extension OperatorSchema {
    static let deformConvSchema = OperatorSchema("DeformConv", inputs: ["X", "W", "offset", "B", "mask"], minInputs: 3) {
        attributes, inputs in
        let geometry = try DeformConvGeometry(attributes, inputs)
        return [ValueInfo(dtype: geometry.dtype, shape: geometry.outputShape)]
    }
}

/// The checked geometry of a DeformConv node: X (N, C, H, W), W (M, C/group, kH, kW), offset
/// (N, offset_group * kH * kW * 2, oH, oW), optional B (M) and mask (N, offset_group * kH * kW, oH, oW).
public struct DeformConvGeometry: Sendable {
    public var dtype: DType
    public var batch: Int
    public var inChannels: Int
    public var outChannels: Int
    public var group: Int
    public var offsetGroup: Int
    /// Spatial sizes (height, width), kernel, strides, dilations, begin pads and output.
    public var window: WindowGeometry

    public var outputShape: [Int] { [batch, outChannels] + window.output }
    /// Taps of the kernel (kH * kW).
    public var taps: Int { window.kernel[0] * window.kernel[1] }

    public init(_ attributes: Attributes, _ inputs: [ValueInfo?]) throws {
        let x = try inputs.required(0)
        let w = try inputs.required(1)
        let offset = try inputs.required(2)
        dtype = try OperatorSchema.sameDType(inputs)
        try OperatorSchema.expect(x, in: [.float32, .float64, .float16], "DeformConv X")
        let (xs, ws) = (ShapeUtil.text(x.shape), ShapeUtil.text(w.shape))
        // The standard allows N-D; ONNX's reference (and this kernel) define the 2-D case.
        guard x.shape.count == 4, w.shape.count == 4 else {
            throw AidgeError.unsupported(
                "DeformConv supports 2-D inputs: X (N, C, H, W) and W (M, C/group, kH, kW), got X \(xs) and W \(ws)")
        }
        group = try attributes.int("group", default: 1)
        offsetGroup = try attributes.int("offset_group", default: 1)
        guard group >= 1, offsetGroup >= 1 else {
            throw AidgeError.invalidModel("DeformConv group (\(group)) and offset_group (\(offsetGroup)) must be at least 1")
        }
        batch = x.shape[0]
        inChannels = x.shape[1]
        outChannels = w.shape[0]
        guard w.shape[1] * group == inChannels, outChannels % group == 0 else {
            throw AidgeError.shapeMismatch(
                "DeformConv input X \(xs) has \(inChannels) channels; weight W \(ws) needs C = W.shape[1] x group (\(group)) "
                    + "and a number of output channels that is a multiple of group")
        }
        guard inChannels % offsetGroup == 0 else {
            throw AidgeError.shapeMismatch(
                "DeformConv: X's \(inChannels) channels are not a multiple of offset_group \(offsetGroup)")
        }
        let kernel = Array(w.shape[2...])
        if attributes.has("kernel_shape") {
            let declared = try attributes.ints("kernel_shape")
            guard declared == kernel else {
                throw AidgeError.shapeMismatch("DeformConv kernel_shape \(declared) does not match the weight W \(ws)")
            }
        }
        window = try WindowGeometry(attributes, input: Array(x.shape[2...]), kernel: kernel, what: "DeformConv")
        let taps = kernel[0] * kernel[1]
        let expected = [batch, offsetGroup * taps * 2] + window.output
        guard offset.shape == expected else {
            throw AidgeError.shapeMismatch(
                "DeformConv offset must be (N, offset_group x kH x kW x 2, oH, oW) = \(ShapeUtil.text(expected)), got "
                    + ShapeUtil.text(offset.shape))
        }
        if let b = inputs.optional(3), b.shape != [outChannels] {
            throw AidgeError.shapeMismatch(
                "DeformConv bias B must have \(outChannels) elements, got shape \(ShapeUtil.text(b.shape))")
        }
        if let mask = inputs.optional(4) {
            let expectedMask = [batch, offsetGroup * taps] + window.output
            guard mask.shape == expectedMask else {
                throw AidgeError.shapeMismatch(
                    "DeformConv mask must be (N, offset_group x kH x kW, oH, oW) = \(ShapeUtil.text(expectedMask)), got "
                        + ShapeUtil.text(mask.shape))
            }
        }
    }
}
