import AidgeCore

/// QuantizeLinear and DequantizeLinear kernels, with ONNX's arithmetic: the division x / scale in the input's
/// precision, rounding half to even and clamping for integer outputs, a saturating (or not) cast for 8-bit floats
/// (whose zero point is not added), (x - zero point) · scale in float32 for dequantisation.
func registerQuantizationKernels(_ registry: KernelRegistry) {
    registry.register("QuantizeLinear", backend: "cpu") { try makeKernel(QuantizeFamily(), $0) }
    registry.register("DequantizeLinear", backend: "cpu") { try DequantizeKernel($0) }
    registry.register("MatMulInteger", backend: "cpu") { request in
        let product = try IntegerMatMul(a: try request.input(0).shape, b: try request.input(1).shape)
        return ClosureKernel { inputs, outputs in
            let y = try firstOutput(outputs).pointer(as: Int32.self)
            try product.run(
                try presentInput(inputs, 0), zeroA: inputs.count > 2 ? inputs[2] : nil,
                try presentInput(inputs, 1), zeroB: inputs.count > 3 ? inputs[3] : nil
            ) { i, c in y[i] = c }
        }
    }
    registry.register("QLinearMatMul", backend: "cpu") { request in
        let product = try IntegerMatMul(a: try request.input(0).shape, b: try request.input(3).shape)
        let output = request.outputs[0].dtype
        let range: ClosedRange<Double> = output == .int8 ? -128...127 : 0...255
        return ClosureKernel { inputs, outputs in
            let scales = try [1, 4, 6].map { try presentInput(inputs, $0) }
            // ONNX computes a_scale · b_scale / y_scale in the scales' precision.
            let multiplier: Double
            if scales[0].dtype == .float16 {
                let s = scales.map { $0.pointer(as: Float16.self).pointee }
                multiplier = Double(s[0] * s[1] / s[2])
            } else {
                let s = scales.map { $0.doubles()[0] }
                multiplier = Double(Float(s[0]) * Float(s[1]) / Float(s[2]))
            }
            let zero = try presentInput(inputs, 7).doubles()[0]
            let y = try firstOutput(outputs)
            let bytes = y.pointer(as: UInt8.self)
            try product.run(
                try presentInput(inputs, 0), zeroA: inputs[2], try presentInput(inputs, 3), zeroB: inputs[5]
            ) { i, c in
                let v = min(max((Double(c) * multiplier + zero).rounded(.toNearestOrEven), range.lowerBound), range.upperBound)
                bytes[i] = output == .int8 ? UInt8(bitPattern: Int8(v)) : UInt8(v)
            }
        }
    }
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

/// The int32 matmul of 8-bit operands shifted by per-tensor zero points, with NumPy's batch broadcasting; hands each
/// output element to a closure that stores it.
private struct IntegerMatMul {
    let shape: OperatorSchema.MatMulShape

    init(a: [Int], b: [Int]) throws { shape = try OperatorSchema.matMulShape(a, b) }

    func run(_ a: Tensor, zeroA: Tensor?, _ b: Tensor, zeroB: Tensor?, store: (Int, Int32) -> Void) throws {
        let (m, k, n) = (shape.m, shape.k, shape.n)
        let za = Int32(zeroA?.integers().first ?? 0)
        let zb = Int32(zeroB?.integers().first ?? 0)
        let left = Self.widened(a)
        let right = Self.widened(b)
        let batchStrides = ShapeUtil.contiguousStrides(shape.batch)
        for batch in 0..<ShapeUtil.count(shape.batch) {
            let offsetA = Self.offset(batch, shape.batch, batchStrides, shape.batchA) * m * k
            let offsetB = Self.offset(batch, shape.batch, batchStrides, shape.batchB) * k * n
            for i in 0..<m {
                for j in 0..<n {
                    var c: Int32 = 0
                    for p in 0..<k { c &+= (left[offsetA + i * k + p] &- za) &* (right[offsetB + p * n + j] &- zb) }
                    store((batch * m + i) * n + j, c)
                }
            }
        }
    }

    private static func widened(_ t: Tensor) -> [Int32] {
        t.dtype == .int8
            ? (0..<t.count).map { Int32(t.pointer(as: Int8.self)[$0]) }
            : (0..<t.count).map { Int32(t.pointer(as: UInt8.self)[$0]) }
    }

    /// The index into an operand's batch (`own`, right-aligned, size-1 dimensions broadcast) of output batch `i`.
    private static func offset(_ i: Int, _ batch: [Int], _ strides: [Int], _ own: [Int]) -> Int {
        var index = 0
        let shift = batch.count - own.count
        for (d, size) in own.enumerated() {
            let coordinate = (i / strides[d + shift]) % batch[d + shift]
            index = index * size + (size == 1 ? 0 : coordinate)
        }
        return index
    }
}
