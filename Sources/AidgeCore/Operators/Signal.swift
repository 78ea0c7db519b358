/// Signal processing: DFT and STFT (complex values as a trailing dimension of 2, real ones of 1), the Hann, Hamming
/// and Blackman windows, and MelWeightMatrix.

/// DFT's geometry: the transformed axis, the transform length, and the output shape.
public struct DFTGeometry: Sendable {
    public let axis: Int
    public let length: Int
    public let inverse: Bool
    public let onesided: Bool
    public let outputShape: [Int]

    public init(attributes: Attributes, inputs: [ValueInfo?]) throws {
        let x = try inputs.required(0)
        try OperatorSchema.expect(x, in: OperatorSchema.floatTypes, "DFT input")
        guard x.shape.count >= 2, x.shape.last == 1 || x.shape.last == 2 else {
            throw AidgeError.shapeMismatch("DFT input must end in a dimension of 1 (real) or 2 (complex), got \(x.shape)")
        }
        let rawAxis = inputs.optional(2) == nil ? -2 : try inputs.constant(2, "DFT axis").integers().first ?? -2
        axis = try ShapeUtil.axis(rawAxis, rank: x.shape.count, context: "DFT axis")
        guard axis < x.shape.count - 1 else {
            throw AidgeError.invalidModel("DFT axis \(rawAxis) names the real/imaginary dimension")
        }
        inverse = try attributes.int("inverse", default: 0) != 0
        onesided = try attributes.int("onesided", default: 0) != 0
        if inputs.optional(1) != nil {
            length = try inputs.constant(1, "DFT dft_length").integers().first ?? 0
        } else {
            length = inverse && onesided ? 2 * (x.shape[axis] - 1) : x.shape[axis]
        }
        guard length > 0 else { throw AidgeError.invalidModel("DFT length must be positive, got \(length)") }
        var shape = x.shape
        shape[axis] = !inverse && onesided ? length / 2 + 1 : length
        shape[shape.count - 1] = inverse && onesided ? 1 : 2
        outputShape = shape
    }
}

/// STFT's geometry: frames of `frameLength` samples every `step`, each transformed (one-sided by default).
public struct STFTGeometry: Sendable {
    public let frameLength: Int
    public let step: Int
    public let frames: Int
    public let bins: Int

    public init(attributes: Attributes, inputs: [ValueInfo?]) throws {
        let x = try inputs.required(0)
        try OperatorSchema.expect(x, in: OperatorSchema.floatTypes, "STFT signal")
        guard x.shape.count == 3, x.shape[2] == 1 || x.shape[2] == 2 else {
            throw AidgeError.shapeMismatch("STFT signal must be (batch, length, 1 or 2), got \(x.shape)")
        }
        step = try inputs.constant(1, "STFT frame_step").integers().first ?? 0
        let window = inputs.optional(2)
        if inputs.optional(3) != nil {
            frameLength = try inputs.constant(3, "STFT frame_length").integers().first ?? 0
        } else {
            frameLength = window?.count ?? x.shape[1]
        }
        guard step > 0, frameLength > 0, frameLength <= x.shape[1] else {
            throw AidgeError.invalidModel(
                "STFT needs a positive frame_step (\(step)) and a frame length (\(frameLength)) within the signal (\(x.shape[1]))")
        }
        if let window, window.shape != [frameLength] {
            throw AidgeError.shapeMismatch("STFT window of shape \(window.shape) must hold \(frameLength) values")
        }
        frames = 1 + (x.shape[1] - frameLength) / step
        bins = try attributes.int("onesided", default: 1) != 0 ? frameLength / 2 + 1 : frameLength
    }
}

extension OperatorSchema {
    static let signalSchemas: [OperatorSchema] =
        [
            OperatorSchema("DFT", inputs: ["input", "dft_length", "axis"], minInputs: 1) { attributes, inputs in
                let geometry = try DFTGeometry(attributes: attributes, inputs: inputs)
                return [ValueInfo(dtype: try inputs.required(0).dtype, shape: geometry.outputShape)]
            },
            OperatorSchema("STFT", inputs: ["signal", "frame_step", "window", "frame_length"], minInputs: 2) { attributes, inputs in
                let x = try inputs.required(0)
                let geometry = try STFTGeometry(attributes: attributes, inputs: inputs)
                return [ValueInfo(dtype: x.dtype, shape: [x.shape[0], geometry.frames, geometry.bins, 2])]
            },
            OperatorSchema(
                "MelWeightMatrix",
                inputs: ["num_mel_bins", "dft_length", "sample_rate", "lower_edge_hertz", "upper_edge_hertz"]
            ) { attributes, inputs in
                let bins = try inputs.constant(0, "MelWeightMatrix num_mel_bins").integers().first ?? 0
                let length = try inputs.constant(1, "MelWeightMatrix dft_length").integers().first ?? 0
                guard bins > 0, length > 0 else {
                    throw AidgeError.invalidModel("MelWeightMatrix needs positive num_mel_bins and dft_length")
                }
                return [ValueInfo(dtype: try outputType(attributes, "MelWeightMatrix"), shape: [length / 2 + 1, bins])]
            },
        ]
        + ["HannWindow", "HammingWindow", "BlackmanWindow"].map { type in
            OperatorSchema(type, inputs: ["size"]) { attributes, inputs in
                let size = try inputs.constant(0, "\(type) size").integers().first ?? -1
                guard size >= 0 else { throw AidgeError.invalidModel("\(type) size must not be negative") }
                return [ValueInfo(dtype: try outputType(attributes, type), shape: [size])]
            }
        }

    /// The float type named by `output_datatype` (default float32).
    private static func outputType(_ attributes: Attributes, _ type: String) throws -> DType {
        let code = try attributes.int("output_datatype", default: 1)
        guard let dtype = DType(onnx: code), floatTypes.contains(dtype) || dtype.isInteger else {
            throw AidgeError.unsupportedType("\(type) output_datatype \(code) is not a supported numeric type")
        }
        return dtype
    }
}
