import AidgeCore

/// Kernels of the data operators: Identity, Dropout, Constant, ConstantOfShape, Cast, CastLike, Shape, Size
/// and Range.
func registerDataKernels(_ registry: KernelRegistry) {
    for type in ["Identity", "Dropout", "BitCast"] {
        registry.register(type, backend: "cpu") { _ in CopyKernel() }
    }

    // Constant, Shape and Size are computed by inference (the planner skips them); their kernels write the same
    // values, for callers that run them anyway.
    registry.register("Constant", backend: "cpu") { request in
        ValueKernel(try OperatorSchema.constantAttributeValue(request.attributes))
    }
    for type in ["Shape", "Size"] {
        registry.register(type, backend: "cpu") { request in
            guard let value = request.outputs.first?.value else {
                throw AidgeError.invalidModel("\(type) output was not computed by inference")
            }
            return ValueKernel(value)
        }
    }

    registry.register("ConstantOfShape", backend: "cpu") { request in
        let value = request.attributes.has("value") ? try request.attributes.tensor("value").contiguous() : Tensor(scalar: Float(0))
        guard value.count == 1 else {
            throw AidgeError.invalidModel("attribute 'value' must hold one element, it holds \(value.count)")
        }
        return FillKernel(value)
    }

    for type in ["Cast", "CastLike"] {
        registry.register(type, backend: "cpu") { request in
            let mode = try request.attributes.string("round_mode", default: "up")
            guard let rounding = Float8E8M0.Rounding(rawValue: mode) else {
                throw AidgeError.invalidArgument("Cast round_mode '\(mode)' is not up, down or nearest")
            }
            return CastKernel(
                from: try request.input(0).dtype, to: request.outputs[0].dtype,
                saturate: try request.attributes.int("saturate", default: 1) != 0, rounding: rounding)
        }
    }

    registry.register("EyeLike", backend: "cpu") { request in
        let dtype = request.outputs[0].dtype
        let shape = request.outputs[0].shape
        let one = Tensor(scalar: Float(1)).cast(to: dtype)
        let k = try request.attributes.int("k", default: 0)
        return ClosureKernel { _, outputs in
            let y = try firstOutput(outputs)
            y.rawPointer.initializeMemory(as: UInt8.self, repeating: 0, count: y.byteCount)
            let size = dtype.byteSize
            for row in 0..<shape[0] {
                let column = row + k
                guard column >= 0, column < shape[1] else { continue }
                (y.rawPointer + (row * shape[1] + column) * size).copyMemory(from: one.rawPointer, byteCount: size)
            }
        }
    }

    registry.register("Range", backend: "cpu") { request in
        let dtype = try request.input(0).dtype
        guard OperatorSchema.numericTypes.contains(dtype) else { throw request.unsupportedType(dtype) }
        return RangeKernel(dtype)
    }
}

/// Writes a tensor known when the kernel is made.
final class ValueKernel: Kernel {
    let value: Tensor

    init(_ value: Tensor) { self.value = value.contiguous() }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard let y = outputs.first, y.byteCount == value.byteCount, y.dtype == value.dtype else {
            throw AidgeError.shapeMismatch("the output does not have the dtype and shape of the value \(value.shape)")
        }
        parallelCopy(y.rawPointer, value.rawPointer, y.byteCount)
    }
}

/// ConstantOfShape: every element of the output is the one element of `value`.
final class FillKernel: Kernel {
    let value: Tensor

    init(_ value: Tensor) { self.value = value }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard let y = outputs.first, y.dtype == value.dtype else {
            throw AidgeError.unsupportedType("the output does not have the dtype \(value.dtype) of the value")
        }
        switch value.dtype.byteSize {
        case 1: fill(y, UInt8.self)
        case 2: fill(y, UInt16.self)
        case 4: fill(y, UInt32.self)
        default: fill(y, UInt64.self)
        }
    }

    private func fill<T>(_ y: Tensor, _: T.Type) {
        let v = value.pointer(as: T.self).pointee
        let d = y.pointer(as: T.self)
        Parallel.forEach(y.count, grain: 1 << 18) { range in
            (d + range.lowerBound).update(repeating: v, count: range.count)
        }
    }
}

/// Cast and CastLike: NumPy `astype` conversion (a copy when the dtypes are equal).
final class CastKernel: Kernel {
    let from: DType
    let to: DType
    /// Whether values out of an 8-bit float's range become its largest value (ONNX's default) rather than
    /// infinity or NaN.
    let saturate: Bool
    /// How a value becomes float8 e8m0 (between two powers of two).
    let rounding: Float8E8M0.Rounding

    init(from: DType, to: DType, saturate: Bool = true, rounding: Float8E8M0.Rounding = .up) {
        self.from = from
        self.to = to
        self.saturate = saturate
        self.rounding = rounding
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard let x = inputs.first ?? nil, let y = outputs.first, x.count == y.count else {
            throw AidgeError.invalidModel("Cast needs an input and an output of one shape")
        }
        guard x.dtype == from, y.dtype == to else {
            throw AidgeError.unsupportedType("Cast planned \(from) to \(to), got \(x.dtype) to \(y.dtype)")
        }
        if from == to {
            parallelCopy(y.rawPointer, x.rawPointer, y.byteCount)
            return
        }
        let src = x.rawPointer
        let dst = y.rawPointer
        let fromSize = from.byteSize
        let toSize = to.byteSize
        let from = self.from
        let to = self.to
        if to == .float8E8M0 && (!saturate || rounding != .up) {
            // From the float32 value, as ONNX defines the e8m0 conversion.
            let wide = x.cast(to: .float32)
            let w = wide.pointer(as: Float.self)
            let d = dst.assumingMemoryBound(to: Float8E8M0.self)
            for i in 0..<x.count { d[i] = Float8E8M0(w[i], rounding: rounding, saturate: saturate) }
            return
        }
        if !saturate, let encode = MiniFloats.encoder(to, saturate: false) {
            let wide = x.cast(to: .float64)
            let w = wide.pointer(as: Double.self)
            let d = dst.assumingMemoryBound(to: UInt8.self)
            for i in 0..<x.count { d[i] = encode(w[i]) }
            return
        }
        Parallel.forEach(x.count, grain: 1 << 15) { range in
            castElements(
                UnsafeRawPointer(src + range.lowerBound * fromSize), from, dst + range.lowerBound * toSize, to,
                range.count)
        }
    }
}

/// Range: `out[i] = start + i * delta` (computed in double for floating types, in int64 for integers).
final class RangeKernel: Kernel {
    let dtype: DType

    init(_ dtype: DType) { self.dtype = dtype }

    private struct Fill: DTypeVisitor {
        let start: Tensor, delta: Tensor, out: Tensor
        func visit<T: TensorElement>(_: T.Type) throws {
            let d = out.pointer(as: T.self)
            let n = out.count
            switch (start.pointer(as: T.self).pointee.scalarValue, delta.pointer(as: T.self).pointee.scalarValue) {
            case (.float(let s), .float(let step)):
                // Accumulated in the element type, as ONNX Runtime does.
                if T.self == Float.self {
                    accumulate(d, n, Float(s), Float(step))
                } else if T.self == Double.self {
                    accumulate(d, n, s, step)
                } else {
                    var v = s
                    for i in 0..<n {
                        let e = T(scalar: .float(v))
                        d[i] = e
                        v = e.doubleValue + step
                    }
                }
            case (let s, let step):
                let s = Self.integer(s)
                let step = Self.integer(step)
                for i in 0..<n { d[i] = T(scalar: .signed(s &+ Int64(i) &* step)) }
            }
        }

        private func accumulate<T, F: BinaryFloatingPoint>(_ d: UnsafeMutablePointer<T>, _ n: Int, _ start: F, _ step: F) {
            d.withMemoryRebound(to: F.self, capacity: n) { d in
                var v = start
                for i in 0..<n {
                    d[i] = v
                    v += step
                }
            }
        }

        static func integer(_ v: ScalarValue) -> Int64 {
            switch v {
            case .signed(let x): return x
            case .unsigned(let x): return Int64(truncatingIfNeeded: x)
            case .float(let x): return abs(x) < 9e18 ? Int64(x.rounded(.towardZero)) : 0
            case .bool(let x): return x ? 1 : 0
            }
        }
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard inputs.count >= 3, let start = inputs[0], let delta = inputs[2], let y = outputs.first,
            start.count == 1, delta.count == 1
        else {
            throw AidgeError.invalidModel("Range needs scalar start, limit and delta inputs")
        }
        guard start.dtype == dtype, delta.dtype == dtype, y.dtype == dtype else {
            throw AidgeError.unsupportedType("Range planned for \(dtype), got \(start.dtype)")
        }
        try dtype.visit(Fill(start: start, delta: delta, out: y))
    }
}
