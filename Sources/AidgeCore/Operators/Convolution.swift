/// Convolutions: Conv and ConvTranspose (1-D, 2-D, 3-D), with ONNX's attributes (latest opset form), and the
/// sliding-window geometry they share with pooling.
extension OperatorSchema {
    static let convolutionSchemas: [OperatorSchema] = [
        OperatorSchema("Conv", inputs: ["X", "W", "B"], minInputs: 2, infer: convInference),
        OperatorSchema("ConvTranspose", inputs: ["X", "W", "B"], minInputs: 2, infer: convTransposeInference),
        deformConvSchema,
        OperatorSchema("CausalConvWithState", inputs: ["input", "weight", "bias", "past_state"], minInputs: 2, outputs: 2) { attributes, inputs in
            let x = try inputs.required(0)
            let w = try inputs.required(1)
            try expect(x, in: [.float32, .float64, .float16], "CausalConvWithState input")
            guard x.shape.count == 3, w.shape.count == 3, w.shape[0] == x.shape[1], w.shape[1] == 1, w.shape[2] >= 1,
                w.dtype == x.dtype
            else {
                throw AidgeError.shapeMismatch(
                    "CausalConvWithState needs input (B, C, L) and weight (C, 1, K) of one dtype, got \(x.shape) and \(w.shape)")
            }
            let state = [x.shape[0], x.shape[1], w.shape[2] - 1]
            if let b = inputs.optional(2), b.shape != [x.shape[1]] || b.dtype != x.dtype {
                throw AidgeError.shapeMismatch("CausalConvWithState bias must be (C) = [\(x.shape[1])], got \(b.shape)")
            }
            if let p = inputs.optional(3), p.shape != state || p.dtype != x.dtype {
                throw AidgeError.shapeMismatch("CausalConvWithState past_state must be \(state), got \(p.shape)")
            }
            let activation = try attributes.string("activation", default: "none")
            guard ["none", "silu", "swish"].contains(activation) else {
                throw AidgeError.invalidModel("CausalConvWithState activation '\(activation)' is not one of none, silu, swish")
            }
            return [ValueInfo(dtype: x.dtype, shape: x.shape), ValueInfo(dtype: x.dtype, shape: state)]
        },
        OperatorSchema("Col2Im", inputs: ["input", "image_shape", "block_shape"]) { attributes, inputs in
            let x = try inputs.required(0)
            let geometry = try Col2ImGeometry(attributes: attributes, inputs: inputs)
            return [ValueInfo(dtype: x.dtype, shape: [x.shape[0], geometry.channels] + geometry.image)]
        },
    ]

    static let convInference: Inference = { attributes, inputs in
        let geometry = try ConvGeometry(attributes, inputs)
        return [ValueInfo(dtype: geometry.dtype, shape: geometry.outputShape)]
    }

    static let convTransposeInference: Inference = { attributes, inputs in
        let geometry = try ConvTransposeGeometry(attributes, inputs)
        return [ValueInfo(dtype: geometry.dtype, shape: geometry.outputShape)]
    }
}

/// Where a sliding window goes along each spatial axis: input and output sizes, kernel, strides, dilations and the
/// padding before and after (explicit, or derived from `auto_pad`).
public struct WindowGeometry: Sendable, Equatable {
    public var input: [Int]
    public var kernel: [Int]
    public var strides: [Int]
    public var dilations: [Int]
    public var padsBegin: [Int]
    public var padsEnd: [Int]
    public var output: [Int]

    public var rank: Int { input.count }

    /// Extent of the dilated kernel along axis `i`.
    public func extent(_ i: Int) -> Int { (kernel[i] - 1) * dilations[i] + 1 }

    /// Reads `strides`, `dilations`, `pads` and `auto_pad` from `attributes` for a window of `kernel` over
    /// `input`. `ceilMode` (pooling) rounds the output size up, dropping a last window that would start in the
    /// end padding. `what` names the operator in errors.
    public init(
        _ attributes: Attributes, input: [Int], kernel: [Int], ceilMode: Bool = false, dilations allowDilations: Bool = true,
        what: String
    ) throws {
        let n = input.count
        guard kernel.count == n else {
            throw AidgeError.shapeMismatch(
                "\(what): kernel_shape \(kernel) has \(kernel.count) dimensions, the input has \(n) spatial dimensions")
        }
        guard kernel.allSatisfy({ $0 >= 1 }) else {
            throw AidgeError.invalidModel("\(what): kernel_shape \(kernel) must be positive")
        }
        let strides = try attributes.ints("strides", default: [Int](repeating: 1, count: n))
        let dilations =
            allowDilations ? try attributes.ints("dilations", default: [Int](repeating: 1, count: n)) : [Int](repeating: 1, count: n)
        guard strides.count == n, strides.allSatisfy({ $0 >= 1 }) else {
            throw AidgeError.invalidModel("\(what): strides \(strides) must be \(n) positive integers")
        }
        guard dilations.count == n, dilations.allSatisfy({ $0 >= 1 }) else {
            throw AidgeError.invalidModel("\(what): dilations \(dilations) must be \(n) positive integers")
        }
        let autoPad = try attributes.string("auto_pad", default: "NOTSET")
        self.input = input
        self.kernel = kernel
        self.strides = strides
        self.dilations = dilations
        padsBegin = [Int](repeating: 0, count: n)
        padsEnd = [Int](repeating: 0, count: n)
        output = [Int](repeating: 0, count: n)
        switch autoPad {
        case "NOTSET":
            let pads = try attributes.ints("pads", default: [Int](repeating: 0, count: 2 * n))
            guard pads.count == 2 * n, pads.allSatisfy({ $0 >= 0 }) else {
                throw AidgeError.invalidModel("\(what): pads \(pads) must be \(2 * n) non-negative integers")
            }
            padsBegin = Array(pads[0..<n])
            padsEnd = Array(pads[n...])
            for i in 0..<n {
                let span = input[i] + padsBegin[i] + padsEnd[i] - extent(i)
                guard span >= 0 else {
                    throw AidgeError.shapeMismatch(
                        "\(what): the window (kernel \(kernel[i]), dilation \(dilations[i])) is larger than the "
                            + "padded input (\(input[i]) + pads \(padsBegin[i]) + \(padsEnd[i])) along spatial axis \(i)")
                }
                if ceilMode {
                    var out = (span + strides[i] - 1) / strides[i] + 1
                    // A last window starting in the end padding is dropped.
                    if (out - 1) * strides[i] >= input[i] + padsBegin[i] { out -= 1 }
                    output[i] = out
                } else {
                    output[i] = span / strides[i] + 1
                }
            }
        case "VALID":
            for i in 0..<n {
                let span = input[i] - extent(i)
                guard span >= 0 else {
                    throw AidgeError.shapeMismatch(
                        "\(what): the window (extent \(extent(i))) is larger than the input (\(input[i])) along spatial axis \(i)")
                }
                output[i] = span / strides[i] + 1
            }
        case "SAME_UPPER", "SAME_LOWER":
            for i in 0..<n {
                let out = (input[i] + strides[i] - 1) / strides[i]
                let total = max(0, (out - 1) * strides[i] + extent(i) - input[i])
                let small = total / 2
                padsBegin[i] = autoPad == "SAME_UPPER" ? small : total - small
                padsEnd[i] = total - padsBegin[i]
                output[i] = out
            }
        default:
            throw AidgeError.invalidModel(
                "\(what): auto_pad '\(autoPad)' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID")
        }
    }
}

/// The checked geometry of a Conv node: X (N x C x D1...), W (M x C/group x k1...), optional B (M).
public struct ConvGeometry: Sendable {
    public var dtype: DType
    public var batch: Int
    public var inChannels: Int
    public var outChannels: Int
    public var group: Int
    public var window: WindowGeometry
    public var hasBias: Bool

    public var outputShape: [Int] { [batch, outChannels] + window.output }

    public init(_ attributes: Attributes, _ inputs: [ValueInfo?]) throws {
        let x = try inputs.required(0)
        let w = try inputs.required(1)
        dtype = try OperatorSchema.sameDType(inputs)
        try OperatorSchema.expect(x, in: OperatorSchema.floatTypes, "X")
        let xs = ShapeUtil.text(x.shape)
        let ws = ShapeUtil.text(w.shape)
        guard x.shape.count >= 3 else {
            throw AidgeError.shapeMismatch("Conv input X must be N x C x spatial..., got shape \(xs)")
        }
        guard w.shape.count == x.shape.count else {
            throw AidgeError.shapeMismatch(
                "Conv weight W (shape \(ws)) must have the rank of the input X (shape \(xs))")
        }
        group = try attributes.int("group", default: 1)
        guard group >= 1 else { throw AidgeError.invalidModel("Conv group must be at least 1, got \(group)") }
        batch = x.shape[0]
        inChannels = x.shape[1]
        outChannels = w.shape[0]
        guard w.shape[1] * group == inChannels else {
            throw AidgeError.shapeMismatch(
                "Conv input X (shape \(xs)) has \(inChannels) channels but weight W (shape \(ws)) expects "
                    + "\(w.shape[1]) x group \(group) = \(w.shape[1] * group)")
        }
        guard outChannels % group == 0 else {
            throw AidgeError.shapeMismatch(
                "Conv weight W (shape \(ws)) has \(outChannels) output channels, not a multiple of group \(group)")
        }
        let kernel = Array(w.shape[2...])
        if attributes.has("kernel_shape") {
            let declared = try attributes.ints("kernel_shape")
            guard declared == kernel else {
                throw AidgeError.shapeMismatch(
                    "Conv kernel_shape \(declared) does not match the weight W (shape \(ws))")
            }
        }
        window = try WindowGeometry(attributes, input: Array(x.shape[2...]), kernel: kernel, what: "Conv")
        hasBias = false
        if let b = inputs.optional(2) {
            guard b.shape == [outChannels] else {
                throw AidgeError.shapeMismatch(
                    "Conv bias B (shape \(ShapeUtil.text(b.shape))) must have \(outChannels) elements, one per output "
                        + "channel of W (shape \(ws))")
            }
            hasBias = true
        }
    }
}

/// The checked geometry of a ConvTranspose node: X (N x C x D1...), W (C x M/group x k1...), optional B (M).
public struct ConvTransposeGeometry: Sendable {
    public var dtype: DType
    public var batch: Int
    public var inChannels: Int
    public var outChannels: Int
    public var group: Int
    /// `input` is X's spatial size, `output` the result's; `padsBegin`/`padsEnd` crop the full result.
    public var window: WindowGeometry
    public var outputPadding: [Int]
    public var hasBias: Bool

    public var outputShape: [Int] { [batch, outChannels] + window.output }

    public init(_ attributes: Attributes, _ inputs: [ValueInfo?]) throws {
        let x = try inputs.required(0)
        let w = try inputs.required(1)
        dtype = try OperatorSchema.sameDType(inputs)
        try OperatorSchema.expect(x, in: OperatorSchema.floatTypes, "X")
        let xs = ShapeUtil.text(x.shape)
        let ws = ShapeUtil.text(w.shape)
        guard x.shape.count >= 3 else {
            throw AidgeError.shapeMismatch("ConvTranspose input X must be N x C x spatial..., got shape \(xs)")
        }
        guard w.shape.count == x.shape.count else {
            throw AidgeError.shapeMismatch(
                "ConvTranspose weight W (shape \(ws)) must have the rank of the input X (shape \(xs))")
        }
        group = try attributes.int("group", default: 1)
        guard group >= 1 else { throw AidgeError.invalidModel("ConvTranspose group must be at least 1, got \(group)") }
        batch = x.shape[0]
        inChannels = x.shape[1]
        guard w.shape[0] == inChannels, inChannels % group == 0 else {
            throw AidgeError.shapeMismatch(
                "ConvTranspose input X (shape \(xs)) has \(inChannels) channels but weight W (shape \(ws)) expects "
                    + "\(w.shape[0]) (a multiple of group \(group))")
        }
        outChannels = w.shape[1] * group
        let n = x.shape.count - 2
        let input = Array(x.shape[2...])
        let kernel = Array(w.shape[2...])
        if attributes.has("kernel_shape") {
            let declared = try attributes.ints("kernel_shape")
            guard declared == kernel else {
                throw AidgeError.shapeMismatch(
                    "ConvTranspose kernel_shape \(declared) does not match the weight W (shape \(ws))")
            }
        }
        let strides = try attributes.ints("strides", default: [Int](repeating: 1, count: n))
        let dilations = try attributes.ints("dilations", default: [Int](repeating: 1, count: n))
        outputPadding = try attributes.ints("output_padding", default: [Int](repeating: 0, count: n))
        guard strides.count == n, strides.allSatisfy({ $0 >= 1 }) else {
            throw AidgeError.invalidModel("ConvTranspose strides \(strides) must be \(n) positive integers")
        }
        guard dilations.count == n, dilations.allSatisfy({ $0 >= 1 }) else {
            throw AidgeError.invalidModel("ConvTranspose dilations \(dilations) must be \(n) positive integers")
        }
        guard outputPadding.count == n, outputPadding.allSatisfy({ $0 >= 0 }) else {
            throw AidgeError.invalidModel("ConvTranspose output_padding \(outputPadding) must be \(n) non-negative integers")
        }
        // The full (uncropped) output: stride * (in - 1) + output_padding + dilated kernel extent.
        var full = [Int](repeating: 0, count: n)
        for i in 0..<n {
            let extent = (kernel[i] - 1) * dilations[i] + 1
            full[i] = strides[i] * (input[i] - 1) + outputPadding[i] + extent
        }
        let autoPad = try attributes.string("auto_pad", default: "NOTSET")
        var padsBegin = [Int](repeating: 0, count: n)
        var padsEnd = [Int](repeating: 0, count: n)
        var target: [Int]? = nil
        if attributes.has("output_shape") {
            var shape = try attributes.ints("output_shape")
            if shape.count == n + 2 { shape = Array(shape[2...]) }
            guard shape.count == n else {
                throw AidgeError.invalidModel("ConvTranspose output_shape \(shape) must have \(n) spatial dimensions")
            }
            target = shape
        } else if autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" {
            target = (0..<n).map { input[$0] * strides[$0] }
        }
        if let target {
            for i in 0..<n {
                // A negative total extends the result past the full one (zeros plus the bias), as ONNX's
                // reference does; the halves are floored.
                let total = full[i] - target[i]
                let half = total >= 0 ? total / 2 : -((-total + 1) / 2)
                padsBegin[i] = autoPad == "SAME_UPPER" ? half : total - half
                padsEnd[i] = total - padsBegin[i]
            }
        } else if autoPad == "NOTSET" {
            let pads = try attributes.ints("pads", default: [Int](repeating: 0, count: 2 * n))
            guard pads.count == 2 * n, pads.allSatisfy({ $0 >= 0 }) else {
                throw AidgeError.invalidModel("ConvTranspose pads \(pads) must be \(2 * n) non-negative integers")
            }
            padsBegin = Array(pads[0..<n])
            padsEnd = Array(pads[n...])
        } else if autoPad != "VALID" {
            throw AidgeError.invalidModel(
                "ConvTranspose auto_pad '\(autoPad)' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID")
        }
        var output = [Int](repeating: 0, count: n)
        for i in 0..<n { output[i] = full[i] - padsBegin[i] - padsEnd[i] }
        guard output.allSatisfy({ $0 > 0 }) else {
            throw AidgeError.shapeMismatch("ConvTranspose output spatial size \(output) is empty after cropping by the pads")
        }
        window = WindowGeometry(
            input: input, kernel: kernel, strides: strides, dilations: dilations, padsBegin: padsBegin,
            padsEnd: padsEnd, output: output)
        hasBias = false
        if let b = inputs.optional(2) {
            guard b.shape == [outChannels] else {
                throw AidgeError.shapeMismatch(
                    "ConvTranspose bias B (shape \(ShapeUtil.text(b.shape))) must have \(outChannels) elements")
            }
            hasBias = true
        }
    }
}

extension WindowGeometry {
    /// A geometry given field by field.
    public init(
        input: [Int], kernel: [Int], strides: [Int], dilations: [Int], padsBegin: [Int], padsEnd: [Int], output: [Int]
    ) {
        self.input = input
        self.kernel = kernel
        self.strides = strides
        self.dilations = dilations
        self.padsBegin = padsBegin
        self.padsEnd = padsEnd
        self.output = output
    }
}

/// Col2Im's geometry: image and kernel sizes (known inputs), strides, pads, dilations, and the blocks along each
/// image dimension.
public struct Col2ImGeometry: Sendable {
    public let image: [Int]
    public let kernel: [Int]
    public let strides: [Int]
    public let pads: [Int]
    public let dilations: [Int]
    public let blocks: [Int]
    public let channels: Int

    public init(attributes: Attributes, inputs: [ValueInfo?]) throws {
        let x = try inputs.required(0)
        image = try inputs.constant(1, "Col2Im image_shape").integers()
        kernel = try inputs.constant(2, "Col2Im block_shape").integers()
        let rank = image.count
        strides = try attributes.ints("strides", default: Array(repeating: 1, count: rank))
        dilations = try attributes.ints("dilations", default: Array(repeating: 1, count: rank))
        let allPads = try attributes.ints("pads", default: Array(repeating: 0, count: 2 * rank))
        guard rank > 0, kernel.count == rank, strides.count == rank, dilations.count == rank, allPads.count == 2 * rank,
            image.allSatisfy({ $0 > 0 }), kernel.allSatisfy({ $0 > 0 }), strides.allSatisfy({ $0 > 0 }),
            dilations.allSatisfy({ $0 > 0 }), allPads.allSatisfy({ $0 >= 0 })
        else {
            throw AidgeError.invalidModel(
                "Col2Im needs positive image_shape \(image), block_shape \(kernel), strides \(strides) and dilations "
                    + "\(dilations) of one rank, and 2 x rank non-negative pads \(allPads)")
        }
        pads = Array(allPads.prefix(rank))
        let (image, kernel, strides, dilations) = (image, kernel, strides, dilations)
        let blocks: [Int] = (0..<rank).map { (d: Int) -> Int in
            let span: Int = dilations[d] * (kernel[d] - 1) + 1
            let padded: Int = image[d] + allPads[d] + allPads[d + rank]
            return (padded - span) / strides[d] + 1
        }
        self.blocks = blocks
        let kernelSize = ShapeUtil.count(kernel)
        guard x.shape.count == 3, x.shape[1] % kernelSize == 0, x.shape[2] == ShapeUtil.count(blocks),
            blocks.allSatisfy({ $0 > 0 })
        else {
            throw AidgeError.shapeMismatch(
                "Col2Im input of shape \(ShapeUtil.text(x.shape)) must be (N, C x \(kernelSize), \(ShapeUtil.count(blocks))) "
                    + "for blocks \(blocks)")
        }
        channels = x.shape[1] / kernelSize
    }
}
