import AidgeCore

/// Kernels of Resize and Upsample.
///
/// Every axis is sampled independently (ONNX's interpolation is separable): for each output index of an axis,
/// a few input indices (clamped to the edges) and their weights, computed once when the kernel is made with the
/// coefficients of ONNX's reference implementation (nearest rounding, linear, cubic, antialiased filters).
/// `nearest` gathers every element in one pass from per-axis offset tables (any dtype); `linear` and `cubic`
/// resize one axis at a time (innermost first) on float32 and float64, whole rows with SIMD on outer axes.
func registerResizeKernels(_ registry: KernelRegistry) {
    for type in ["Resize", "Upsample"] {
        registry.register(type, backend: "cpu") { request in try makeResizeKernel(request) }
    }
}

/// Memory owned by a kernel, allocated when it is made.
private final class ResizeBuffer<T> {
    let pointer: UnsafeMutablePointer<T>
    let count: Int

    init(_ values: [T]) {
        count = values.count
        pointer = UnsafeMutablePointer<T>.allocate(capacity: max(values.count, 1))
        if !values.isEmpty { pointer.initialize(from: values, count: values.count) }
    }

    init(uninitialized count: Int) {
        self.count = count
        pointer = UnsafeMutablePointer<T>.allocate(capacity: max(count, 1))
    }

    deinit { pointer.deallocate() }
}

// MARK: Factory

private func makeResizeKernel(_ request: KernelRequest) throws -> any Kernel {
    let type = request.op.type
    let geometry = try ResizeGeometry(type: type, attributes: request.attributes, inputs: request.inputs)
    let x = try request.input(0)
    let rank = x.shape.count
    let taps = (0..<rank).map { ResizeAxisSampling(geometry, axis: $0) }
    let resized = (0..<rank).filter { !taps[$0].isIdentity(inputLength: x.shape[$0]) }
    if resized.isEmpty || ShapeUtil.count(geometry.outputShape) == 0 {
        return ResizeCopyKernel(x.dtype, inputCount: x.count, outputCount: ShapeUtil.count(geometry.outputShape))
    }
    if geometry.mode == .nearest {
        return try ResizeNearestKernel(geometry, taps, dtype: x.dtype)
    }
    switch x.dtype {
    case .float32: return specialized(ResizeInterpolateKernel<Float>(geometry, taps, axes: resized))
    case .float64: return specialized(ResizeInterpolateKernel<Double>(geometry, taps, axes: resized))
    default: throw request.unsupportedType(x.dtype)
    }
}

/// Runs a generic kernel through a closure made where its type is concrete (the `Kernel` witness of a generic
/// class would run its unspecialised form).
private final class SpecializedResizeKernel: Kernel {
    let body: ([Tensor?], [Tensor]) throws -> Void

    init(_ body: @escaping ([Tensor?], [Tensor]) throws -> Void) { self.body = body }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws { try body(inputs, outputs) }
}

@inline(__always)
private func specialized<K: Kernel>(_ kernel: K) -> any Kernel {
    SpecializedResizeKernel { try kernel.run($0, $1) }
}

/// Checks a resize kernel's input and output against its plan.
private func resizeTensors(_ inputs: [Tensor?], _ outputs: [Tensor], _ dtype: DType, _ inCount: Int, _ outCount: Int)
    throws -> (Tensor, Tensor)
{
    guard let x = inputs.first ?? nil, let y = outputs.first, x.dtype == dtype, y.dtype == dtype,
        x.count == inCount, y.count == outCount
    else {
        throw AidgeError.shapeMismatch("Resize got tensors that do not match its plan")
    }
    return (x, y)
}

/// Every axis unchanged (or an empty output): a copy.
private final class ResizeCopyKernel: Kernel {
    let dtype: DType
    let inputCount: Int
    let outputCount: Int

    init(_ dtype: DType, inputCount: Int, outputCount: Int) {
        self.dtype = dtype
        self.inputCount = inputCount
        self.outputCount = outputCount
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let (x, y) = try resizeTensors(inputs, outputs, dtype, inputCount, outputCount)
        if inputCount == outputCount {
            y.rawPointer.copyMemory(from: x.rawPointer, byteCount: outputCount * dtype.byteSize)
        }
    }
}

// MARK: Nearest

/// `nearest`: each output element copies one input element, found from per-axis offset tables.
private final class ResizeNearestKernel: Kernel {
    let dtype: DType
    let inputCount: Int
    let outputShape: [Int]
    /// Per axis, for each output index: the input offset (index times stride), or -1 outside the region.
    let offsets: ResizeBuffer<Int>
    let tableStart: [Int]
    let extrapolates: Bool
    /// `extrapolation_value` in the element type (its bytes).
    let fill: Tensor

    init(_ g: ResizeGeometry, _ taps: [ResizeAxisSampling], dtype: DType) throws {
        self.dtype = dtype
        inputCount = ShapeUtil.count(g.inputShape)
        outputShape = g.outputShape
        let strides = ShapeUtil.contiguousStrides(g.inputShape)
        var table: [Int] = []
        var starts: [Int] = []
        var extrapolates = false
        for (d, t) in taps.enumerated() {
            starts.append(table.count)
            for o in 0..<g.outputShape[d] {
                // The tap of weight 1 (nearest has two taps, one of them chosen).
                let k = t.weight[o * t.count] == 1 ? 0 : 1
                if t.extrapolated[o] {
                    table.append(-1)
                    extrapolates = true
                } else {
                    table.append(t.index[o * t.count + k] * strides[d])
                }
            }
        }
        offsets = ResizeBuffer(table)
        tableStart = starts
        self.extrapolates = extrapolates
        fill = Tensor(scalar: g.extrapolationValue).cast(to: dtype)
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let (x, y) = try resizeTensors(inputs, outputs, dtype, inputCount, ShapeUtil.count(outputShape))
        switch dtype.byteSize {
        case 1: gather(x, y, UInt8.self)
        case 2: gather(x, y, UInt16.self)
        case 4: gather(x, y, UInt32.self)
        default: gather(x, y, UInt64.self)
        }
    }

    private func gather<E>(_ input: Tensor, _ output: Tensor, _: E.Type) {
        let x = UnsafePointer(input.pointer(as: E.self))
        let y = output.pointer(as: E.self)
        let value = fill.pointer(as: E.self).pointee
        let rank = outputShape.count
        let inner = outputShape[rank - 1]
        let rows = ShapeUtil.count(outputShape) / max(inner, 1)
        let table = UnsafePointer(offsets.pointer)
        let last = table + tableStart[rank - 1]
        let shape = outputShape
        let starts = tableStart
        let extrapolates = self.extrapolates
        Parallel.forEach(rows, grain: max(1, (1 << 14) / max(inner, 1))) { range in
            // Upsampling repeats rows: a row that reads the same input row as the one before is a copy of it.
            var previousBase = -1
            for row in range {
                var rest = row
                var base = 0
                var outside = false
                for d in stride(from: rank - 2, through: 0, by: -1) {
                    let o = rest % shape[d]
                    rest /= shape[d]
                    let offset = table[starts[d] + o]
                    if offset < 0 { outside = true }
                    base += offset
                }
                let dst = y + row * inner
                if outside {
                    dst.update(repeating: value, count: inner)
                    previousBase = -1
                    continue
                }
                if base == previousBase {
                    dst.update(from: dst - inner, count: inner)
                    continue
                }
                previousBase = base
                if extrapolates {
                    for j in 0..<inner {
                        let offset = last[j]
                        dst[j] = offset < 0 ? value : x[base + offset]
                    }
                } else {
                    let src = x + base
                    for j in 0..<inner { dst[j] = src[last[j]] }
                }
            }
        }
    }
}

// MARK: Linear and cubic

@inline(__always) private func resizeLoad<T: SIMDScalar>(_ p: UnsafePointer<T>) -> SIMD8<T> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<T>.self)
}

@inline(__always) private func resizeStore<T: SIMDScalar>(_ v: SIMD8<T>, _ p: UnsafeMutablePointer<T>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<T>.self)
}

/// Resizing of one axis of a `[outer, inLength, inner]` tensor into `[outer, outLength, inner]`.
private final class ResizePass<T: BinaryFloatingPoint & SIMDScalar> {
    let outer: Int
    let inLength: Int
    let outLength: Int
    let inner: Int
    let taps: Int
    let index: ResizeBuffer<Int>
    let weight: ResizeBuffer<T>
    let extrapolated: ResizeBuffer<Bool>
    let extrapolates: Bool
    let fill: T

    init(outer: Int, inLength: Int, inner: Int, _ t: ResizeAxisSampling, fill: Double) {
        self.outer = outer
        self.inLength = inLength
        self.outLength = t.extrapolated.count
        self.inner = inner
        taps = t.count
        index = ResizeBuffer(t.index)
        weight = ResizeBuffer(t.weight.map { T($0) })
        extrapolated = ResizeBuffer(t.extrapolated)
        extrapolates = t.extrapolated.contains(true)
        self.fill = T(fill)
    }

    var outputCount: Int { outer * outLength * inner }

    func run(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>) {
        let (outer, inLength, outLength, inner, taps) = (outer, inLength, outLength, inner, taps)
        let index = UnsafePointer(self.index.pointer)
        let weight = UnsafePointer(self.weight.pointer)
        let extrapolated = UnsafePointer(self.extrapolated.pointer)
        let extrapolates = self.extrapolates
        let fill = self.fill
        if inner == 1 {
            // The innermost axis: each output gathers a few neighbours of its row.
            Parallel.forEach(outer, grain: max(1, (1 << 13) / max(outLength * taps, 1))) { range in
                for r in range {
                    let src = x + r * inLength
                    let dst = y + r * outLength
                    if taps == 2 {
                        for o in 0..<outLength {
                            dst[o] = weight[2 * o] * src[index[2 * o]] + weight[2 * o + 1] * src[index[2 * o + 1]]
                        }
                    } else {
                        for o in 0..<outLength {
                            var acc: T = 0
                            for k in 0..<taps { acc += weight[o * taps + k] * src[index[o * taps + k]] }
                            dst[o] = acc
                        }
                    }
                    if extrapolates {
                        for o in 0..<outLength where extrapolated[o] { dst[o] = fill }
                    }
                }
            }
            return
        }
        // An outer axis: each output row is a weighted sum of a few input rows.
        let vectorEnd = inner / 8 * 8
        Parallel.forEach(outer * outLength, grain: max(1, (1 << 13) / max(inner * taps, 1))) { range in
            for t in range {
                let r = t / outLength
                let o = t % outLength
                let src = x + r * inLength * inner
                let dst = y + t * inner
                if extrapolates && extrapolated[o] {
                    dst.update(repeating: fill, count: inner)
                    continue
                }
                let first = src + index[o * taps] * inner
                let w0 = weight[o * taps]
                if taps == 2 {
                    let second = src + index[o * taps + 1] * inner
                    let w1 = weight[o * taps + 1]
                    let v0 = SIMD8<T>(repeating: w0)
                    let v1 = SIMD8<T>(repeating: w1)
                    var i = 0
                    while i < vectorEnd {
                        resizeStore((resizeLoad(first + i) * v0).addingProduct(resizeLoad(second + i), v1), dst + i)
                        i += 8
                    }
                    while i < inner {
                        dst[i] = w0 * first[i] + w1 * second[i]
                        i += 1
                    }
                    continue
                }
                let v0 = SIMD8<T>(repeating: w0)
                var i = 0
                while i < vectorEnd {
                    resizeStore(resizeLoad(first + i) * v0, dst + i)
                    i += 8
                }
                while i < inner {
                    dst[i] = w0 * first[i]
                    i += 1
                }
                for k in 1..<taps {
                    let w = weight[o * taps + k]
                    if w == 0 { continue }
                    let row = src + index[o * taps + k] * inner
                    let v = SIMD8<T>(repeating: w)
                    i = 0
                    while i < vectorEnd {
                        resizeStore(resizeLoad(dst + i).addingProduct(resizeLoad(row + i), v), dst + i)
                        i += 8
                    }
                    while i < inner {
                        dst[i] += w * row[i]
                        i += 1
                    }
                }
            }
        }
    }
}

/// `linear` and `cubic`: one pass per resized axis, innermost first, through two scratch buffers.
private final class ResizeInterpolateKernel<T: BinaryFloatingPoint & SIMDScalar>: Kernel {
    let inputCount: Int
    let outputCount: Int
    let passes: [ResizePass<T>]
    let buffers: [ResizeBuffer<T>]

    init(_ g: ResizeGeometry, _ taps: [ResizeAxisSampling], axes: [Int]) {
        inputCount = ShapeUtil.count(g.inputShape)
        outputCount = ShapeUtil.count(g.outputShape)
        var shape = g.inputShape
        var passes: [ResizePass<T>] = []
        for axis in axes.sorted(by: >) {
            let outer = ShapeUtil.count(Array(shape[..<axis]))
            let inner = ShapeUtil.count(Array(shape[(axis + 1)...]))
            passes.append(ResizePass(outer: outer, inLength: shape[axis], inner: inner, taps[axis], fill: g.extrapolationValue))
            shape[axis] = g.outputShape[axis]
        }
        self.passes = passes
        // Pass i writes buffer i % 2 (the last one writes the output).
        var sizes = [0, 0]
        for (i, p) in passes.enumerated().dropLast() { sizes[i % 2] = max(sizes[i % 2], p.outputCount) }
        buffers = sizes.map { ResizeBuffer(uninitialized: $0) }
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let dtype = T.self == Float.self ? DType.float32 : DType.float64
        let (x, y) = try resizeTensors(inputs, outputs, dtype, inputCount, outputCount)
        var source = UnsafePointer(x.pointer(as: T.self))
        for (i, pass) in passes.enumerated() {
            let destination = i == passes.count - 1 ? y.pointer(as: T.self) : buffers[i % 2].pointer
            pass.run(source, destination)
            source = UnsafePointer(destination)
        }
    }
}
