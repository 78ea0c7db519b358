import AidgeCore

/// QuantizeLinear and DequantizeLinear kernels, with ONNX's arithmetic: the division x / scale in the input's
/// precision, rounding half to even and clamping for integer outputs, a saturating (or not) cast for 8-bit floats
/// (whose zero point is not added), (x - zero point) · scale in float32 for dequantisation.
func registerQuantizationKernels(_ registry: KernelRegistry) {
    registry.register("QuantizeLinear", backend: "cpu") { try makeKernel(QuantizeFamily(), $0) }
    registry.register("DequantizeLinear", backend: "cpu") { try DequantizeKernel($0) }
    registry.register("DynamicQuantizeLinear", backend: "cpu") { _ in
        ClosureKernel { inputs, outputs in
            let x = try presentInput(inputs, 0)
            guard outputs.count == 3 else { throw AidgeError.invalidModel("DynamicQuantizeLinear has three outputs") }
            let p = x.pointer(as: Float.self)
            var (low, high): (Float, Float) = (0, 0)
            for i in 0..<x.count {
                low = min(low, p[i])
                high = max(high, p[i])
            }
            let scale = (high == low ? 1 : high - low) / 255
            let zero = min(max(-low / scale, 0), 255).rounded(.toNearestOrEven)
            let y = outputs[0].pointer(as: UInt8.self)
            for i in 0..<x.count {
                let q = (p[i] / scale).rounded(.toNearestOrEven) + zero
                y[i] = q.isNaN ? 0 : UInt8(min(max(q, 0), 255))  // NaN quantises to 0 (no trap on user data)
            }
            outputs[1].pointer(as: Float.self).pointee = scale
            outputs[2].pointer(as: UInt8.self).pointee = UInt8(zero)
        }
    }
}

/// The range of the integer quantised dtypes.
private func integerRange(_ dtype: DType) -> ClosedRange<Double>? {
    switch dtype {
    case .int8: return -128...127
    case .uint8: return 0...255
    case .int16: return -32768...32767
    case .uint16: return 0...65535
    case .int4: return -8...7
    case .uint4: return 0...15
    case .int2: return -2...1
    case .uint2: return 0...3
    default: return nil
    }
}

private struct QuantizeFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        try QuantizeKernel<T>(request)
    }
}

private final class QuantizeKernel<T: MathFloat>: Kernel {
    let layout: QuantizationLayout
    let output: DType
    let range: ClosedRange<Double>?
    let encode: (@Sendable (Double) -> UInt8)?
    let zeroPoints: Tensor
    let values: Tensor

    init(_ request: KernelRequest) throws {
        let x = try request.input(0)
        let scale = try request.input(1)
        guard scale.dtype == x.dtype else {
            throw AidgeError.unsupportedType("QuantizeLinear y_scale (\(scale.dtype)) must have x's dtype (\(x.dtype))")
        }
        layout = try QuantizationLayout(request.attributes, input: x.shape, scale: scale.shape)
        output = request.outputs[0].dtype
        range = integerRange(output)
        let saturate = try request.attributes.int("saturate", default: 1) != 0
        encode = output == .float4E2M1 ? nil : MiniFloats.encoder(output, saturate: saturate)
        zeroPoints = Tensor(zeros: [max(scale.count, 1)], dtype: .float64)
        values = Tensor(zeros: x.shape, dtype: .float64)
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let x = try presentInput(inputs, 0)
        let scale = try presentInput(inputs, 1).pointer(as: T.self)
        let y = try firstOutput(outputs)
        let zero = zeroPoints.pointer(as: Double.self)
        if let zp = inputs.count > 2 ? inputs[2] : nil {
            castElements(zp.rawPointer, zp.dtype, zeroPoints.rawPointer, .float64, zp.count)
        } else {
            zero.initialize(repeating: 0, count: zeroPoints.count)
        }
        let source = x.pointer(as: T.self)
        let v = values.pointer(as: Double.self)
        for i in 0..<x.count {
            let s = layout.scaleIndex(i)
            let q = Double(source[i] / scale[s])
            if let range {
                v[i] = min(max(q.rounded(.toNearestOrEven) + zero[s], range.lowerBound), range.upperBound)
            } else {
                v[i] = encode == nil ? q + zero[s] : q  // 8-bit floats take no zero point
            }
        }
        if let encode {
            let d = y.pointer(as: UInt8.self)
            for i in 0..<x.count { d[i] = encode(v[i]) }
        } else {
            castElements(values.rawPointer, .float64, y.rawPointer, output, x.count)
        }
    }
}

private final class DequantizeKernel: Kernel {
    let layout: QuantizationLayout
    let output: DType
    let inputs: Tensor
    let zeroPoints: Tensor
    let scales: Tensor

    init(_ request: KernelRequest) throws {
        let x = try request.input(0)
        let scale = try request.input(1)
        layout = try QuantizationLayout(request.attributes, input: x.shape, scale: scale.shape)
        output = request.outputs[0].dtype
        inputs = Tensor(zeros: x.shape, dtype: .float64)
        zeroPoints = Tensor(zeros: [max(scale.count, 1)], dtype: .float64)
        scales = Tensor(zeros: [max(scale.count, 1)], dtype: .float64)
    }

    func run(_ fed: [Tensor?], _ outputs: [Tensor]) throws {
        let x = try presentInput(fed, 0)
        let scale = try presentInput(fed, 1)
        let y = try firstOutput(outputs)
        castElements(x.rawPointer, x.dtype, inputs.rawPointer, .float64, x.count)
        castElements(scale.rawPointer, scale.dtype, scales.rawPointer, .float64, scale.count)
        let zero = zeroPoints.pointer(as: Double.self)
        // 8-bit floats have no zero point to subtract (ONNX requires it to be zero).
        if let zp = fed.count > 2 ? fed[2] : nil, !x.dtype.isFloatingPoint {
            castElements(zp.rawPointer, zp.dtype, zeroPoints.rawPointer, .float64, zp.count)
        } else {
            zero.initialize(repeating: 0, count: zeroPoints.count)
        }
        let v = inputs.pointer(as: Double.self)
        let s = scales.pointer(as: Double.self)
        for i in 0..<x.count {
            let k = layout.scaleIndex(i)
            v[i] = Double(Float(v[i] - zero[k]) * Float(s[k]))
        }
        castElements(inputs.rawPointer, .float64, y.rawPointer, output, x.count)
    }
}
