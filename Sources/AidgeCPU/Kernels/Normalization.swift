import AidgeCore

/// Kernels of the normalisations on float32 and float64: BatchNormalization (inference: `y = x * a[c] + b[c]`
/// with `a`, `b` folded from the parameters, once when they are constants), LayerNormalization and
/// InstanceNormalization (two-pass mean and variance per normalised row).
func registerNormalizationKernels(_ registry: KernelRegistry) {
    registry.register("BatchNormalization", backend: "cpu") { request in
        // training_mode = 1: the node normalises with the batch's statistics whatever the plan's mode.
        let batchStatistics = try request.attributes.int("training_mode", default: 0) != 0
        switch try request.input(0).dtype {
        case .float32 where batchStatistics: return specialized(try BatchStatisticsNormKernel<Float>(request))
        case .float64 where batchStatistics: return specialized(try BatchStatisticsNormKernel<Double>(request))
        case .float32: return specialized(try BatchNormKernel<Float>(request))
        case .float64: return specialized(try BatchNormKernel<Double>(request))
        case let other: throw request.unsupportedType(other)
        }
    }
    registry.register("LayerNormalization", backend: "cpu") { request in
        switch try request.input(0).dtype {
        case .float32: return specialized(try LayerNormKernel<Float>(request))
        case .float64: return specialized(try LayerNormKernel<Double>(request))
        case let other: throw request.unsupportedType(other)
        }
    }
    registry.register("LpNormalization", backend: "cpu") { try makeKernel(LpNormalizationFamily(), $0) }
    registry.register("RMSNormalization", backend: "cpu") { try makeKernel(RMSNormalizationFamily(), $0) }
    registry.register("InstanceNormalization", backend: "cpu") { request in
        switch try request.input(0).dtype {
        case .float32: return specialized(try InstanceNormKernel<Float>(request))
        case .float64: return specialized(try InstanceNormKernel<Double>(request))
        case let other: throw request.unsupportedType(other)
        }
    }
}

/// Runs a generic kernel through a closure made where its type is concrete (the `Kernel` witness of a generic
/// class would run its unspecialised form).
private final class SpecializedNormKernel: Kernel {
    let body: ([Tensor?], [Tensor]) throws -> Void

    init(_ body: @escaping ([Tensor?], [Tensor]) throws -> Void) { self.body = body }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws { try body(inputs, outputs) }
}

@inline(__always)
private func specialized<K: Kernel>(_ kernel: K) -> any Kernel {
    SpecializedNormKernel { try kernel.run($0, $1) }
}

private typealias NormElement = ReductionElement & BinaryFloatingPoint

@inline(__always) private func load8<T: SIMDScalar>(_ p: UnsafePointer<T>) -> SIMD8<T> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<T>.self)
}

@inline(__always) private func store8<T: SIMDScalar>(_ v: SIMD8<T>, _ p: UnsafeMutablePointer<T>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<T>.self)
}

/// Memory owned by a kernel, allocated when it is made (zero-filled).
private final class NormScratch<T: NormElement> {
    let pointer: UnsafeMutablePointer<T>
    let count: Int

    init(_ count: Int) {
        self.count = count
        pointer = UnsafeMutablePointer<T>.allocate(capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { pointer.deallocate() }
}

/// Element `i` of a float tensor of any floating dtype, as a Double.
@inline(__always)
func parameter(_ t: Tensor, _ i: Int) -> Double {
    switch t.dtype {
    case .float32: return Double(t.pointer(as: Float.self)[i])
    case .float64: return t.pointer(as: Double.self)[i]
    case .float16: return Double(t.pointer(as: Float16.self)[i])
    case .bfloat16: return Double(t.pointer(as: BFloat16.self)[i].floatValue)
    default: return .nan
    }
}

/// Input `i` of a kernel (nil when absent), checked against the element count it was planned for.
@inline(__always)
private func normInput(_ inputs: [Tensor?], _ i: Int, _ expected: Int?, _ type: String) throws -> Tensor? {
    let t = i < inputs.count ? inputs[i] : nil
    guard let expected else { return nil }
    guard let t, t.count == expected else {
        throw AidgeError.shapeMismatch("\(type) input \(i) does not have the \(expected) elements it was planned for")
    }
    guard t.dtype.isFloatingPoint else { throw AidgeError.unsupportedType("\(type) input \(i) has dtype \(t.dtype)") }
    return t
}

/// Mean and (population) variance of `n` contiguous elements: pairwise sum, then blocked squared deviations.
@inline(__always)
private func rowStatistics<T: NormElement>(_ p: UnsafePointer<T>, _ n: Int) -> (mean: T, variance: T) {
    guard n > 0 else { return (.nan, .nan) }
    let mean = rowSum(p, n) / T(n)
    let m = SIMD8<T>(repeating: mean)
    var total: T = 0
    var start = 0
    while start < n {
        let end = min(start + 2048, n)
        var a0 = SIMD8<T>()
        var a1 = SIMD8<T>()
        var a2 = SIMD8<T>()
        var a3 = SIMD8<T>()
        var i = start
        while i + 32 <= end {
            let d0 = load8(p + i) - m
            let d1 = load8(p + i + 8) - m
            let d2 = load8(p + i + 16) - m
            let d3 = load8(p + i + 24) - m
            a0.addProduct(d0, d0)
            a1.addProduct(d1, d1)
            a2.addProduct(d2, d2)
            a3.addProduct(d3, d3)
            i += 32
        }
        while i + 8 <= end {
            let d = load8(p + i) - m
            a0.addProduct(d, d)
            i += 8
        }
        var s = ((a0 + a1) + (a2 + a3)).sum()
        while i < end {
            let d = p[i] - mean
            s += d * d
            i += 1
        }
        total += s
        start = end
    }
    return (mean, total / T(n))
}

/// `y[i] = x[i] * a + b` over `n` elements: the affine step of every normalisation, inference and training.
@inline(__always)
func scaleShift<T: SIMDScalar & BinaryFloatingPoint>(
    _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ n: Int, _ a: T, _ b: T
) {
    let va = SIMD8<T>(repeating: a)
    let vb = SIMD8<T>(repeating: b)
    var i = 0
    while i + 8 <= n {
        store8(vb.addingProduct(load8(x + i), va), y + i)
        i += 8
    }
    while i < n {
        y[i] = b + x[i] * a
        i += 1
    }
}

/// (N, C, spatial size) of a BatchNormalization or InstanceNormalization input of shape (N, C, D1, ...), a
/// rank-1 input being one channel: the inference and the gradient kernels read the layout the same way.
func channelLayout(_ shape: [Int]) -> (batch: Int, channels: Int, spatial: Int) {
    (shape[0], shape.count > 1 ? shape[1] : 1, ShapeUtil.count(Array(shape.dropFirst(2))))
}

// MARK: BatchNormalization

private final class BatchNormKernel<T: NormElement>: Kernel {
    let batch: Int
    let channels: Int
    let spatial: Int
    let epsilon: Double
    /// Channels with few spatial elements: `a` and `b` are expanded to `channels * spatial` and applied per row
    /// of a sample.
    let expanded: Bool
    /// Whether `a` and `b` were folded when the kernel was made.
    let folded: Bool
    let a: NormScratch<T>
    let b: NormScratch<T>

    init(_ request: KernelRequest) throws {
        (batch, channels, spatial) = channelLayout(try request.input(0).shape)
        epsilon = Double(try request.attributes.float("epsilon", default: 1e-5))
        expanded = spatial < 16
        let size = expanded ? channels * spatial : channels
        a = NormScratch(size)
        b = NormScratch(size)
        let values = (1...4).map { request.inputs.count > $0 ? request.inputs[$0]?.value : nil }
        let known = values.compactMap { $0?.contiguous() }
        folded = known.count == 4
        if folded { fold(known[0], known[1], known[2], known[3]) }
    }

    /// `a = scale / sqrt(var + epsilon)`, `b = B - mean * a`, computed in double.
    private func fold(_ scale: Tensor, _ bias: Tensor, _ mean: Tensor, _ variance: Tensor) {
        let width = expanded ? spatial : 1
        for c in 0..<channels {
            let ac = parameter(scale, c) / (parameter(variance, c) + epsilon).squareRoot()
            let bc = parameter(bias, c) - parameter(mean, c) * ac
            for s in 0..<width {
                a.pointer[c * width + s] = T(ac)
                b.pointer[c * width + s] = T(bc)
            }
        }
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let count = batch * channels * spatial
        let type = "BatchNormalization"
        guard let input = try normInput(inputs, 0, count, type), input.dtype == T.dtype, let output = outputs.first,
            output.count == count, output.dtype == T.dtype
        else {
            throw AidgeError.shapeMismatch("BatchNormalization got tensors that do not match its plan")
        }
        if !folded, let scale = try normInput(inputs, 1, channels, type), let bias = try normInput(inputs, 2, channels, type),
            let mean = try normInput(inputs, 3, channels, type), let variance = try normInput(inputs, 4, channels, type)
        {
            fold(scale, bias, mean, variance)
        }
        // running_mean and running_var outputs (ONNX training graphs): inference leaves the statistics unchanged.
        for k in 1..<max(min(outputs.count, 3), 1) {
            guard let source = k + 2 < inputs.count ? inputs[k + 2] : nil, source.byteCount == outputs[k].byteCount,
                source.dtype == outputs[k].dtype
            else {
                throw AidgeError.shapeMismatch("BatchNormalization output \(k) does not match input \(k + 2)")
            }
            parallelCopy(outputs[k].rawPointer, source.rawPointer, source.byteCount)
        }
        let x = UnsafePointer(input.pointer(as: T.self))
        let y = output.pointer(as: T.self)
        let a = UnsafePointer(self.a.pointer)
        let b = UnsafePointer(self.b.pointer)
        let channels = self.channels
        let spatial = self.spatial
        if expanded {
            let row = channels * spatial
            Parallel.forEach(batch, grain: max(1, (1 << 15) / max(row, 1))) { range in
                for n in range {
                    let xr = x + n * row
                    let yr = y + n * row
                    var i = 0
                    while i + 8 <= row {
                        store8(load8(b + i).addingProduct(load8(xr + i), load8(a + i)), yr + i)
                        i += 8
                    }
                    while i < row {
                        yr[i] = b[i] + xr[i] * a[i]
                        i += 1
                    }
                }
            }
        } else {
            Parallel.forEach(batch * channels, grain: max(1, (1 << 15) / spatial)) { range in
                for r in range {
                    let c = r % channels
                    scaleShift(x + r * spatial, y + r * spatial, spatial, a[c], b[c])
                }
            }
        }
    }
}

// MARK: BatchNormalization with the batch's statistics

/// A node with `training_mode = 1` run by a plan that does not train: ONNX then normalises with the batch's
/// statistics (each channel's mean and population variance over N and the spatial axes) and outputs the running
/// statistics moved toward them, `input · momentum + batch · (1 - momentum)`; the inputs are left as they are.
private final class BatchStatisticsNormKernel<T: NormElement>: Kernel {
    let batch: Int
    let channels: Int
    let spatial: Int
    let epsilon: Double
    let momentum: Double

    init(_ request: KernelRequest) throws {
        (batch, channels, spatial) = channelLayout(try request.input(0).shape)
        epsilon = Double(try request.attributes.float("epsilon", default: 1e-5))
        momentum = Double(try request.attributes.float("momentum", default: 0.9))
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let count = batch * channels * spatial
        let type = "BatchNormalization"
        guard let input = try normInput(inputs, 0, count, type), input.dtype == T.dtype, let output = outputs.first,
            output.count == count, output.dtype == T.dtype, let scale = try normInput(inputs, 1, channels, type),
            let bias = try normInput(inputs, 2, channels, type), let mean = try normInput(inputs, 3, channels, type),
            let variance = try normInput(inputs, 4, channels, type)
        else {
            throw AidgeError.shapeMismatch("BatchNormalization got tensors that do not match its plan")
        }
        let running = Array(outputs.dropFirst().prefix(2))
        for (k, out) in running.enumerated() where out.count != channels || !out.dtype.isFloatingPoint {
            throw AidgeError.shapeMismatch("BatchNormalization output \(k + 1) must hold \(channels) floats")
        }
        let x = UnsafePointer(input.pointer(as: T.self))
        let y = output.pointer(as: T.self)
        let (batch, channels, spatial) = (self.batch, self.channels, self.spatial)
        let (epsilon, momentum) = (self.epsilon, self.momentum)
        let n = Double(batch * spatial)
        Parallel.forEach(channels, grain: max(1, (1 << 15) / max(batch * spatial, 1))) { range in
            for c in range {
                var sum = 0.0
                for b in 0..<batch {
                    let row = x + (b * channels + c) * spatial
                    for i in 0..<spatial { sum += Double(row[i]) }
                }
                let m = sum / n
                var squares = 0.0
                for b in 0..<batch {
                    let row = x + (b * channels + c) * spatial
                    for i in 0..<spatial {
                        let d = Double(row[i]) - m
                        squares += d * d
                    }
                }
                let v = squares / n
                let a = parameter(scale, c) / (v + epsilon).squareRoot()
                let shift = parameter(bias, c) - m * a
                for b in 0..<batch {
                    let offset = (b * channels + c) * spatial
                    scaleShift(x + offset, y + offset, spatial, T(a), T(shift))
                }
                if running.count > 0 { storeParameter(running[0], c, parameter(mean, c) * momentum + m * (1 - momentum)) }
                if running.count > 1 { storeParameter(running[1], c, parameter(variance, c) * momentum + v * (1 - momentum)) }
            }
        }
    }
}

/// Writes `value` to element `i` of a float tensor of any floating dtype (`parameter`'s inverse).
@inline(__always)
private func storeParameter(_ t: Tensor, _ i: Int, _ value: Double) {
    switch t.dtype {
    case .float32: t.pointer(as: Float.self)[i] = Float(value)
    case .float64: t.pointer(as: Double.self)[i] = value
    case .float16: t.pointer(as: Float16.self)[i] = Float16(value)
    case .bfloat16: t.pointer(as: BFloat16.self)[i] = BFloat16(Float(value))
    default: break
    }
}

// MARK: InstanceNormalization

private final class InstanceNormKernel<T: NormElement>: Kernel {
    let batch: Int
    let channels: Int
    let spatial: Int
    let epsilon: T

    init(_ request: KernelRequest) throws {
        (batch, channels, spatial) = channelLayout(try request.input(0).shape)
        epsilon = T(try request.attributes.float("epsilon", default: 1e-5))
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let count = batch * channels * spatial
        let type = "InstanceNormalization"
        guard let input = try normInput(inputs, 0, count, type), input.dtype == T.dtype,
            let scale = try normInput(inputs, 1, channels, type), let bias = try normInput(inputs, 2, channels, type),
            let output = outputs.first, output.count == count, output.dtype == T.dtype
        else {
            throw AidgeError.shapeMismatch("InstanceNormalization got tensors that do not match its plan")
        }
        let x = UnsafePointer(input.pointer(as: T.self))
        let y = output.pointer(as: T.self)
        let channels = self.channels
        let spatial = self.spatial
        let epsilon = self.epsilon
        Parallel.forEach(batch * channels, grain: max(1, (1 << 14) / max(spatial, 1))) { range in
            for r in range {
                let c = r % channels
                let (mean, variance) = rowStatistics(x + r * spatial, spatial)
                let a = T(parameter(scale, c)) / (variance + epsilon).squareRoot()
                let b = T(parameter(bias, c)) - mean * a
                scaleShift(x + r * spatial, y + r * spatial, spatial, a, b)
            }
        }
    }
}

// MARK: LayerNormalization

/// Writes element `i` of a float32 or float64 statistics output.
@inline(__always)
private func storeStatistic<T: NormElement>(_ t: Tensor, _ i: Int, _ v: T) {
    if t.dtype == .float64 {
        t.pointer(as: Double.self)[i] = Double(v)
    } else {
        t.pointer(as: Float.self)[i] = Float(v)
    }
}

/// How LayerNormalization splits its input into rows normalised on their own, and the shapes of its parameters:
/// read from the node the same way by the inference kernel and the gradient kernel.
struct LayerNormGeometry {
    let rows: Int
    let width: Int
    let epsilon: Double
    /// The input's dimensions from `axis` on, to which Scale and B broadcast.
    let normalizedShape: [Int]
    let scaleShape: [Int]
    let biasShape: [Int]?

    init(_ request: KernelRequest) throws {
        let x = try request.input(0)
        let axis = try Normalizations.layerAxis(request.attributes, rank: x.shape.count)
        normalizedShape = Array(x.shape[axis...])
        width = ShapeUtil.count(normalizedShape)
        rows = ShapeUtil.count(Array(x.shape[..<axis]))
        epsilon = Double(try request.attributes.float("epsilon", default: 1e-5))
        scaleShape = try request.input(1).shape
        biasShape = request.inputs.count > 2 ? request.inputs[2]?.shape : nil
    }

    /// `src` (of `shape`, broadcastable to the normalised shape) expanded into the `width` elements at `dst`.
    func expand<T>(_ src: UnsafePointer<T>, _ shape: [Int], into dst: UnsafeMutablePointer<T>) {
        let target = normalizedShape
        let shape = Array(shape.suffix(target.count))
        let offset = target.count - shape.count
        let strides = ShapeUtil.contiguousStrides(shape)
        for i in 0..<width {
            var rest = i
            var s = 0
            for d in stride(from: target.count - 1, through: 0, by: -1) {
                let c = rest % max(target[d], 1)
                rest /= max(target[d], 1)
                if d >= offset, shape[d - offset] != 1 { s += c * strides[d - offset] }
            }
            dst[i] = src[s]
        }
    }
}

private final class LayerNormKernel<T: NormElement>: Kernel {
    let geometry: LayerNormGeometry
    /// Scale and bias broadcast to the normalised shape (when they do not already have it); zeros for no bias.
    let scaleBuffer: NormScratch<T>
    let biasBuffer: NormScratch<T>

    init(_ request: KernelRequest) throws {
        geometry = try LayerNormGeometry(request)
        let width = geometry.width
        scaleBuffer = NormScratch(ShapeUtil.count(geometry.scaleShape) == width ? 0 : width)
        biasBuffer = NormScratch(geometry.biasShape.map { ShapeUtil.count($0) } == width ? 0 : width)
        for p in request.inputs.dropFirst() {
            if let p, p.dtype != T.dtype { throw request.unsupportedType(p.dtype) }
        }
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let (rows, width, scaleShape) = (geometry.rows, geometry.width, geometry.scaleShape)
        let count = rows * width
        let type = "LayerNormalization"
        guard let input = try normInput(inputs, 0, count, type), input.dtype == T.dtype,
            let scaleTensor = try normInput(inputs, 1, ShapeUtil.count(scaleShape), type), scaleTensor.dtype == T.dtype,
            let output = outputs.first, output.count == count, output.dtype == T.dtype
        else {
            throw AidgeError.shapeMismatch("LayerNormalization got tensors that do not match its plan")
        }
        var scale = UnsafePointer(scaleTensor.pointer(as: T.self))
        if scaleBuffer.count > 0 {
            geometry.expand(scale, scaleShape, into: scaleBuffer.pointer)
            scale = UnsafePointer(scaleBuffer.pointer)
        }
        var bias = UnsafePointer(biasBuffer.pointer)
        if let biasShape = geometry.biasShape,
            let biasTensor = try normInput(inputs, 2, ShapeUtil.count(biasShape), type)
        {
            guard biasTensor.dtype == T.dtype else {
                throw AidgeError.unsupportedType("LayerNormalization B has dtype \(biasTensor.dtype)")
            }
            if biasBuffer.count > 0 {
                geometry.expand(biasTensor.pointer(as: T.self), biasShape, into: biasBuffer.pointer)
            } else {
                bias = UnsafePointer(biasTensor.pointer(as: T.self))
            }
        }
        // Optional Mean and InvStdDev outputs (one value per row).
        for k in 1..<max(min(outputs.count, 3), 1) {
            guard outputs[k].count == rows, outputs[k].dtype == .float32 || outputs[k].dtype == .float64 else {
                throw AidgeError.shapeMismatch("LayerNormalization output \(k) must hold one float value per row")
            }
        }
        let meanOutput = outputs.count > 1 ? outputs[1] : nil
        let invOutput = outputs.count > 2 ? outputs[2] : nil
        let x = UnsafePointer(input.pointer(as: T.self))
        let y = output.pointer(as: T.self)
        let epsilon = T(geometry.epsilon)
        Parallel.forEach(rows, grain: max(1, (1 << 14) / max(width, 1))) { range in
            for r in range {
                let xr = x + r * width
                let yr = y + r * width
                let (mean, variance) = rowStatistics(xr, width)
                let inv = 1 / (variance + epsilon).squareRoot()
                let vm = SIMD8<T>(repeating: mean)
                let vi = SIMD8<T>(repeating: inv)
                var i = 0
                while i + 8 <= width {
                    store8(load8(bias + i).addingProduct((load8(xr + i) - vm) * vi, load8(scale + i)), yr + i)
                    i += 8
                }
                while i < width {
                    yr[i] = bias[i] + (xr[i] - mean) * inv * scale[i]
                    i += 1
                }
                if let meanOutput { storeStatistic(meanOutput, r, mean) }
                if let invOutput { storeStatistic(invOutput, r, inv) }
            }
        }
    }
}

/// LpNormalization: each line along `axis` divided by its L1 or L2 norm (a zero norm gives NaN, as 0 / 0 does).
private struct LpNormalizationFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let shape = request.outputs[0].shape
        let axis = try ShapeUtil.axis(try request.attributes.int("axis", default: -1), rank: max(shape.count, 1))
        let squares = try request.attributes.int("p", default: 2) == 2
        let n = shape.isEmpty ? 1 : shape[axis]
        let inner = shape.isEmpty ? 1 : ShapeUtil.count(Array(shape[(axis + 1)...]))
        let lines = ShapeUtil.count(shape) / max(n, 1)
        return ClosureKernel { inputs, outputs in
            let x = try presentInput(inputs, 0).pointer(as: T.self)
            let y = try firstOutput(outputs).pointer(as: T.self)
            Parallel.forEach(lines, grain: max(1, 8192 / max(n, 1))) { range in
                for line in range {
                    let base = (line / inner) * n * inner + line % inner
                    var norm: Double = 0
                    for k in 0..<n {
                        let v = Double(x[base + k * inner])
                        norm += squares ? v * v : abs(v)
                    }
                    // A zero line stays zero (ONNX's reference and ONNX Runtime), not 0/0.
                    let scale = norm == 0 ? 0 : 1 / (squares ? norm.squareRoot() : norm)
                    for k in 0..<n { y[base + k * inner] = T(Double(x[base + k * inner]) * scale) }
                }
            }
        }
    }
}

/// RMSNormalization: each row (the dimensions from `axis` on) scaled by the reciprocal of its root mean square
/// (computed in double), then by `scale`, broadcast to the input.
private struct RMSNormalizationFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let shape = request.outputs[0].shape
        let scaleShape = try request.input(1).shape
        let axis = try Normalizations.layerAxis(request.attributes, rank: max(shape.count, 1))
        let epsilon = Double(try request.attributes.float("epsilon", default: 1e-5))
        let n = ShapeUtil.count(Array(shape[min(axis, shape.count)...]))
        let rows = ShapeUtil.count(shape) / max(n, 1)
        // The scale's element for each output element, by NumPy broadcasting.
        let aligned = [Int](repeating: 1, count: shape.count - scaleShape.count) + scaleShape
        let contiguous = ShapeUtil.contiguousStrides(aligned)
        let strides = aligned.indices.map { aligned[$0] == 1 ? 0 : contiguous[$0] }
        let outputStrides = ShapeUtil.contiguousStrides(shape)
        // Usually the scale spans only the normalised dimensions: one row of indices serves every row.
        let perRow = strides.prefix(axis).allSatisfy { $0 == 0 }
        let scaleIndex: [Int] = (0..<(perRow ? n : ShapeUtil.count(shape))).map { e in
            var offset = 0
            for d in shape.indices { offset += (e / outputStrides[d]) % shape[d] * strides[d] }
            return offset
        }
        let rowStride = perRow ? 0 : n
        return ClosureKernel { inputs, outputs in
            let x = try presentInput(inputs, 0).pointer(as: T.self)
            let w = try presentInput(inputs, 1).pointer(as: T.self)
            let y = try firstOutput(outputs).pointer(as: T.self)
            Parallel.forEach(rows, grain: max(1, 8192 / max(n, 1))) { range in
                for row in range {
                    let base = row * n
                    var squares: Double = 0
                    for k in 0..<n { squares += Double(x[base + k]) * Double(x[base + k]) }
                    let r = 1 / (squares / Double(n) + epsilon).squareRoot()
                    let indices = row * rowStride
                    for k in 0..<n { y[base + k] = T(Double(x[base + k]) * r * Double(w[scaleIndex[indices + k]])) }
                }
            }
        }
    }
}
