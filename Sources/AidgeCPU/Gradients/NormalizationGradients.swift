import AidgeCore

/// Backward (and training forward) of the normalisations: BatchNormalization, LayerNormalization,
/// InstanceNormalization; and Dropout's (`DropoutGradient.swift`).
func registerNormalizationGradients(_ registry: KernelRegistry) {
    registry.registerGradient("BatchNormalization", backend: "cpu") { request in try BatchNormGradient(request) }
    registry.registerGradient("LayerNormalization", backend: "cpu") { request in try LayerNormGradient(request) }
    registry.registerGradient("InstanceNormalization", backend: "cpu") { request in
        try InstanceNormGradient(request)
    }
    registerDropoutGradient(registry)
}

/// The gradient floats with SIMD lanes: the statistics loops below run 8 lanes at a time.
protocol NormalizationFloat: GradientFloat, SIMDScalar {}
extension Float: NormalizationFloat {}
extension Double: NormalizationFloat {}

// MARK: Vector loops

@inline(__always) private func load8<T: NormalizationFloat>(_ p: UnsafePointer<T>) -> SIMD8<T> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<T>.self)
}

@inline(__always) private func store8<T: NormalizationFloat>(_ v: SIMD8<T>, _ p: UnsafeMutablePointer<T>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<T>.self)
}

/// Σ p[i] over `n` elements (four vector accumulators).
@inline(__always)
private func vectorSum<T: NormalizationFloat>(_ p: UnsafePointer<T>, _ n: Int) -> T {
    var a0 = SIMD8<T>(), a1 = SIMD8<T>(), a2 = SIMD8<T>(), a3 = SIMD8<T>()
    var i = 0
    while i + 32 <= n {
        a0 += load8(p + i)
        a1 += load8(p + i + 8)
        a2 += load8(p + i + 16)
        a3 += load8(p + i + 24)
        i += 32
    }
    while i + 8 <= n {
        a0 += load8(p + i)
        i += 8
    }
    var s = ((a0 + a1) + (a2 + a3)).sum()
    while i < n {
        s += p[i]
        i += 1
    }
    return s
}

/// Σ (p[i] - mean)² over `n` elements.
@inline(__always)
private func squaredDeviations<T: NormalizationFloat>(_ p: UnsafePointer<T>, _ n: Int, _ mean: T) -> T {
    let m = SIMD8<T>(repeating: mean)
    var a0 = SIMD8<T>(), a1 = SIMD8<T>()
    var i = 0
    while i + 16 <= n {
        let d0 = load8(p + i) - m
        let d1 = load8(p + i + 8) - m
        a0.addProduct(d0, d0)
        a1.addProduct(d1, d1)
        i += 16
    }
    while i + 8 <= n {
        let d = load8(p + i) - m
        a0.addProduct(d, d)
        i += 8
    }
    var s = (a0 + a1).sum()
    while i < n {
        let d = p[i] - mean
        s += d * d
        i += 1
    }
    return s
}

/// (Σ dy[i], Σ dy[i]·(x[i] - mean)) over `n` elements.
@inline(__always)
private func gradientSums<T: NormalizationFloat>(
    _ dy: UnsafePointer<T>, _ x: UnsafePointer<T>, _ n: Int, _ mean: T
) -> (T, T) {
    let m = SIMD8<T>(repeating: mean)
    var s0 = SIMD8<T>(), s1 = SIMD8<T>(), p0 = SIMD8<T>(), p1 = SIMD8<T>()
    var i = 0
    while i + 16 <= n {
        let g0 = load8(dy + i)
        let g1 = load8(dy + i + 8)
        s0 += g0
        s1 += g1
        p0.addProduct(g0, load8(x + i) - m)
        p1.addProduct(g1, load8(x + i + 8) - m)
        i += 16
    }
    while i + 8 <= n {
        let g = load8(dy + i)
        s0 += g
        p0.addProduct(g, load8(x + i) - m)
        i += 8
    }
    var s = (s0 + s1).sum()
    var p = (p0 + p1).sum()
    while i < n {
        s += dy[i]
        p += dy[i] * (x[i] - mean)
        i += 1
    }
    return (s, p)
}

/// `dx[i] += g · dy[i] + k · x[i] + c` over `n` elements: the input gradient of a normalisation, in one pass.
@inline(__always)
private func addGradient<T: NormalizationFloat>(
    _ dx: UnsafeMutablePointer<T>, _ dy: UnsafePointer<T>, _ x: UnsafePointer<T>, _ n: Int, _ g: T, _ k: T, _ c: T
) {
    let vg = SIMD8<T>(repeating: g)
    let vk = SIMD8<T>(repeating: k)
    let vc = SIMD8<T>(repeating: c)
    var i = 0
    while i + 8 <= n {
        store8(load8(dx + i) + vc.addingProduct(load8(dy + i), vg).addingProduct(load8(x + i), vk), dx + i)
        i += 8
    }
    while i < n {
        dx[i] += c + dy[i] * g + x[i] * k
        i += 1
    }
}

/// `dx[i] += g · dy[i]` over `n` elements.
@inline(__always)
private func addScaled<T: NormalizationFloat>(_ dx: UnsafeMutablePointer<T>, _ dy: UnsafePointer<T>, _ n: Int, _ g: T) {
    let vg = SIMD8<T>(repeating: g)
    var i = 0
    while i + 8 <= n {
        store8(load8(dx + i).addingProduct(load8(dy + i), vg), dx + i)
        i += 8
    }
    while i < n {
        dx[i] += dy[i] * g
        i += 1
    }
}

/// (Σ dy[i]·s[i], Σ dy[i]·s[i]·(x[i] - mean)) over `n` elements: LayerNormalization's sums, `s` its scale.
@inline(__always)
private func scaledGradientSums<T: NormalizationFloat>(
    _ dy: UnsafePointer<T>, _ s: UnsafePointer<T>, _ x: UnsafePointer<T>, _ n: Int, _ mean: T
) -> (T, T) {
    let m = SIMD8<T>(repeating: mean)
    var a = SIMD8<T>(), b = SIMD8<T>()
    var i = 0
    while i + 8 <= n {
        let g = load8(dy + i) * load8(s + i)
        a += g
        b.addProduct(g, load8(x + i) - m)
        i += 8
    }
    var sumG = a.sum()
    var sumGXc = b.sum()
    while i < n {
        let g = dy[i] * s[i]
        sumG += g
        sumGXc += g * (x[i] - mean)
        i += 1
    }
    return (sumG, sumGXc)
}

/// `dx[i] += inverse · s[i] · dy[i] + k · x[i] + c` over `n` elements (no `dy`: zero).
@inline(__always)
private func addScaledGradient<T: NormalizationFloat>(
    _ dx: UnsafeMutablePointer<T>, _ dy: UnsafePointer<T>?, _ s: UnsafePointer<T>, _ x: UnsafePointer<T>, _ n: Int,
    _ inverse: T, _ k: T, _ c: T
) {
    let vi = SIMD8<T>(repeating: inverse)
    let vk = SIMD8<T>(repeating: k)
    let vc = SIMD8<T>(repeating: c)
    var i = 0
    while i + 8 <= n {
        var v = vc.addingProduct(load8(x + i), vk)
        if let dy { v.addProduct(load8(dy + i) * load8(s + i), vi) }
        store8(load8(dx + i) + v, dx + i)
        i += 8
    }
    while i < n {
        dx[i] += c + k * x[i] + (dy.map { inverse * s[i] * $0[i] } ?? 0)
        i += 1
    }
}

/// `sum[i] += dy[i] · (x[i] - mean) · inverse` over `n` elements.
@inline(__always)
private func addNormalizedProduct<T: NormalizationFloat>(
    _ sum: UnsafeMutablePointer<T>, _ dy: UnsafePointer<T>, _ x: UnsafePointer<T>, _ n: Int, _ mean: T, _ inverse: T
) {
    let m = SIMD8<T>(repeating: mean)
    let vi = SIMD8<T>(repeating: inverse)
    var i = 0
    while i + 8 <= n {
        store8(load8(sum + i).addingProduct(load8(dy + i), (load8(x + i) - m) * vi), sum + i)
        i += 8
    }
    while i < n {
        sum[i] += dy[i] * (x[i] - mean) * inverse
        i += 1
    }
}

/// Element `i` of a float32 or float64 tensor.
@inline(__always)
private func element<T: NormalizationFloat>(_ t: Tensor, _ i: Int, as: T.Type) -> T {
    t.dtype == .float64 ? T(t.pointer(as: Double.self)[i]) : T(t.pointer(as: Float.self)[i])
}

/// A run's tensor, checked against the element count and dtype the kernel was built for.
private func checked(_ t: Tensor?, _ count: Int, _ dtype: DType, _ what: String) throws -> Tensor {
    guard let t, t.count == count, t.dtype == dtype else {
        throw AidgeError.shapeMismatch("\(what) does not match the shape and dtype the kernel was planned for")
    }
    return t
}

/// The (N, C, spatial) layout of a BatchNormalization or InstanceNormalization input (`channelLayout`, shared
/// with the inference kernels); training needs the channel axis to be there.
private func trainingChannelLayout(_ shape: [Int], _ type: String) throws -> (batch: Int, channels: Int, spatial: Int) {
    guard shape.count >= 2 else {
        throw AidgeError.shapeMismatch("\(type) needs an input of rank >= 2, got shape \(shape)")
    }
    return channelLayout(shape)
}

/// Checks that the parameters of a normalisation have the input's dtype (the gradients are computed in it).
private func checkParameterTypes(_ request: KernelRequest, _ indices: ClosedRange<Int>, _ dtype: DType) throws {
    for i in indices where i < request.inputs.count {
        if let p = request.inputs[i], p.dtype != dtype {
            throw AidgeError.unsupportedType(
                "\(request.op.type) (node \(request.nodeName)): training needs input \(i) in the input's dtype "
                    + "\(dtype), got \(p.dtype)")
        }
    }
}

// MARK: BatchNormalization

/// BatchNormalization in training mode: the statistics of each channel over (N, spatial), the output normalised
/// with the biased variance, the running statistics updated in place (`inputs[3]`, `inputs[4]`, declared as
/// state by the schema) and written to the optional outputs 1 and 2.
///
/// The update follows ONNX, `running = running · momentum + batch · (1 - momentum)` (momentum 0.9 by default),
/// with the UNBIASED batch variance (n / (n - 1)) for the running variance, as PyTorch does: a model exported
/// from PyTorch carries `momentum = 1 - torch_momentum`, and its running statistics then follow PyTorch's.
/// Running statistics that are constants (known when planning) are read, never written.
///
/// In evaluation mode the forward uses the running statistics and backward is the affine one, unless the node
/// has `training_mode = 1`: it then uses the batch's statistics in any mode, and outside a training plan outputs
/// the running statistics as ONNX defines them (population variance) without updating them in place. The saved
/// mean and inverse standard deviation are the ones the forward used, so backward never reads the running
/// statistics (updated in place by then). No gradient flows from the running statistics outputs (state, as in PyTorch).
final class BatchNormGradient: GradientKernel {
    let dtype: DType
    let batch: Int
    let channels: Int
    let spatial: Int
    let epsilon: Double
    let momentum: Double
    let constantStatistics: Bool
    /// `training_mode = 1`: the batch's statistics in every mode.
    let batchStatistics: Bool

    init(_ request: KernelRequest) throws {
        let x = try request.input(0)
        dtype = try gradientType(x.dtype, request)
        (batch, channels, spatial) = try trainingChannelLayout(x.shape, "BatchNormalization")
        epsilon = Double(try request.attributes.float("epsilon", default: 1e-5))
        momentum = Double(try request.attributes.float("momentum", default: 0.9))
        try checkParameterTypes(request, 1...4, dtype)
        constantStatistics = (3...4).contains { request.inputs.count > $0 && request.inputs[$0]?.value != nil }
        batchStatistics = try request.attributes.int("training_mode", default: 0) != 0
    }

    var savedInfos: [ValueInfo] {
        [ValueInfo(dtype: dtype, shape: [channels]), ValueInfo(dtype: dtype, shape: [channels])]
    }
    var hasTrainingForward: Bool { true }
    func readsInput(_ index: Int) -> Bool { index <= 1 }
    func readsOutput(_ index: Int) -> Bool { false }

    func forward(_ inputs: [Tensor?], _ outputs: [Tensor], saved: [Tensor], training: Bool) throws {
        let count = batch * channels * spatial
        let x = try checked(inputs.first ?? nil, count, dtype, "BatchNormalization input")
        let parameters = try (1...4).map { i in
            try checked(i < inputs.count ? inputs[i] : nil, channels, dtype, "BatchNormalization input \(i)")
        }
        let y = try checked(outputs.first, count, dtype, "BatchNormalization output")
        let statistics = try outputs.dropFirst().prefix(2).map {
            try checked($0, channels, dtype, "BatchNormalization running statistics output")
        }
        guard saved.count == 2 else { throw AidgeError.invalidModel("BatchNormalization: missing saved statistics") }
        let mean = try checked(saved[0], channels, dtype, "BatchNormalization saved mean")
        let inverse = try checked(saved[1], channels, dtype, "BatchNormalization saved inverse deviation")
        if training && batch * spatial <= 1 {
            throw AidgeError.invalidArgument(
                "BatchNormalization in training mode needs more than one value per channel, got \(batch * spatial)")
        }
        let tensors = ForwardTensors(
            x: x, y: y, scale: parameters[0], bias: parameters[1], runningMean: parameters[2],
            runningVariance: parameters[3], mean: mean, inverse: inverse, statistics: statistics)
        switch dtype {
        case .float32: forward(tensors, training: training, Float.self)
        default: forward(tensors, training: training, Double.self)
        }
    }

    private struct ForwardTensors {
        let x: Tensor, y: Tensor, scale: Tensor, bias: Tensor, runningMean: Tensor, runningVariance: Tensor
        let mean: Tensor, inverse: Tensor
        let statistics: [Tensor]
    }

    /// `training`: the plan's mode (the running statistics follow the engine's rule and are updated in place).
    private func forward<T: NormalizationFloat>(_ t: ForwardTensors, training: Bool, _: T.Type) {
        let x = UnsafePointer(t.x.pointer(as: T.self))
        let y = t.y.pointer(as: T.self)
        let scale = t.scale.pointer(as: T.self)
        let bias = t.bias.pointer(as: T.self)
        let runningMean = t.runningMean.pointer(as: T.self)
        let runningVariance = t.runningVariance.pointer(as: T.self)
        let savedMean = t.mean.pointer(as: T.self)
        let savedInverse = t.inverse.pointer(as: T.self)
        let outMean = t.statistics.first?.pointer(as: T.self)
        let outVariance = t.statistics.count > 1 ? t.statistics[1].pointer(as: T.self) : nil
        let (batch, channels, spatial) = (self.batch, self.channels, self.spatial)
        let (epsilon, momentum, update) = (self.epsilon, self.momentum, training && !constantStatistics)
        let n = Double(batch * spatial)
        let useBatch = training || batchStatistics
        // The running variance moves toward the unbiased batch variance in training, the population one (ONNX)
        // for a training_mode node outside training.
        let correction = training ? n / (n - 1) : 1
        Parallel.forEach(channels, grain: max(1, (1 << 15) / max(batch * spatial, 1))) { range in
            for c in range {
                var mean: Double
                var variance: Double
                var newMean = Double(runningMean[c])
                var newVariance = Double(runningVariance[c])
                if useBatch {
                    var sum = 0.0
                    for b in 0..<batch { sum += Double(vectorSum(x + (b * channels + c) * spatial, spatial)) }
                    mean = sum / n
                    var squares = 0.0
                    for b in 0..<batch {
                        squares += Double(squaredDeviations(x + (b * channels + c) * spatial, spatial, T(mean)))
                    }
                    variance = squares / n
                    newMean = newMean * momentum + mean * (1 - momentum)
                    newVariance = newVariance * momentum + variance * correction * (1 - momentum)
                    if update {
                        runningMean[c] = T(newMean)
                        runningVariance[c] = T(newVariance)
                    }
                } else {
                    mean = newMean
                    variance = newVariance
                }
                let inverse = 1 / (variance + epsilon).squareRoot()
                let a = Double(scale[c]) * inverse
                let b = Double(bias[c]) - mean * a
                for k in 0..<batch {
                    let offset = (k * channels + c) * spatial
                    scaleShift(x + offset, y + offset, spatial, T(a), T(b))
                }
                savedMean[c] = T(mean)
                savedInverse[c] = T(inverse)
                outMean?[c] = T(newMean)
                outVariance?[c] = T(newVariance)
            }
        }
    }

    func backward(_ pass: BackwardPass) throws {
        guard let dy = pass.outputGradient(0) else { return }
        let dx = pass.inputGradient(0)
        let dScale = pass.inputGradient(1)
        let dBias = pass.inputGradient(2)
        guard dx != nil || dScale != nil || dBias != nil else { return }
        let count = batch * channels * spatial
        guard pass.saved.count == 2 else {
            throw AidgeError.invalidModel("BatchNormalization: missing saved statistics")
        }
        let tensors = BackwardTensors(
            x: try checked(try pass.input(0), count, dtype, "BatchNormalization input"),
            scale: try checked(try pass.input(1), channels, dtype, "BatchNormalization scale"),
            mean: try checked(pass.saved[0], channels, dtype, "BatchNormalization saved mean"),
            inverse: try checked(pass.saved[1], channels, dtype, "BatchNormalization saved inverse deviation"),
            dy: try checked(dy, count, dtype, "BatchNormalization output gradient"),
            dx: try dx.map { try checked($0, count, dtype, "BatchNormalization input gradient") },
            dScale: try dScale.map { try checked($0, channels, dtype, "BatchNormalization scale gradient") },
            dBias: try dBias.map { try checked($0, channels, dtype, "BatchNormalization B gradient") })
        switch dtype {
        case .float32: backward(tensors, training: pass.training || batchStatistics, Float.self)
        default: backward(tensors, training: pass.training || batchStatistics, Double.self)
        }
    }

    private struct BackwardTensors {
        let x: Tensor, scale: Tensor, mean: Tensor, inverse: Tensor, dy: Tensor
        let dx: Tensor?, dScale: Tensor?, dBias: Tensor?
    }

    /// Per channel, with `xc = x - mean`, `inv` the inverse deviation and `M` values per channel:
    /// dB += Σ dy, dscale += inv · Σ dy·xc, and in training
    /// dx += scale·inv · (dy - Σ dy / M - xc · inv² · Σ dy·xc / M) (the batch statistics depend on x);
    /// in evaluation dx += scale·inv · dy.
    private func backward<T: NormalizationFloat>(_ t: BackwardTensors, training: Bool, _: T.Type) {
        let x = UnsafePointer(t.x.pointer(as: T.self))
        let dy = UnsafePointer(t.dy.pointer(as: T.self))
        let scale = t.scale.pointer(as: T.self)
        let meanOf = t.mean.pointer(as: T.self)
        let inverseOf = t.inverse.pointer(as: T.self)
        let dx = t.dx?.pointer(as: T.self)
        let dScale = t.dScale?.pointer(as: T.self)
        let dBias = t.dBias?.pointer(as: T.self)
        let (batch, channels, spatial) = (self.batch, self.channels, self.spatial)
        let n = Double(batch * spatial)
        let needSums = dScale != nil || dBias != nil || (training && dx != nil)
        Parallel.forEach(channels, grain: max(1, (1 << 14) / max(batch * spatial, 1))) { range in
            for c in range {
                let mean = meanOf[c]
                let inverse = Double(inverseOf[c])
                var sumDy = 0.0
                var sumDyXc = 0.0
                if needSums {
                    for b in 0..<batch {
                        let offset = (b * channels + c) * spatial
                        let (s, p) = gradientSums(dy + offset, x + offset, spatial, mean)
                        sumDy += Double(s)
                        sumDyXc += Double(p)
                    }
                }
                dBias?[c] += T(sumDy)
                dScale?[c] += T(sumDyXc * inverse)
                guard let dx else { continue }
                let g = Double(scale[c]) * inverse
                if training {
                    let k = -g * inverse * inverse * sumDyXc / n
                    let constant = -g * sumDy / n - k * Double(mean)
                    for b in 0..<batch {
                        let offset = (b * channels + c) * spatial
                        addGradient(dx + offset, dy + offset, x + offset, spatial, T(g), T(k), T(constant))
                    }
                } else {
                    for b in 0..<batch {
                        let offset = (b * channels + c) * spatial
                        addScaled(dx + offset, dy + offset, spatial, T(g))
                    }
                }
            }
        }
    }
}

// MARK: LayerNormalization

/// LayerNormalization: the statistics of each row (the dimensions from `axis` on) are computed again in
/// backward from the input (one pass; the Mean and InvStdDev outputs may be float32 for a float64 input).
/// Gradients of X (including through the Mean and InvStdDev outputs when they reach the loss), Scale and B
/// (summed over the rows, then over the dimensions they broadcast along).
final class LayerNormGradient: GradientKernel {
    let dtype: DType
    let geometry: LayerNormGeometry

    init(_ request: KernelRequest) throws {
        dtype = try gradientType(try request.input(0).dtype, request)
        geometry = try LayerNormGeometry(request)
        try checkParameterTypes(request, 1...2, dtype)
    }

    func readsInput(_ index: Int) -> Bool { index <= 1 }
    func readsOutput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        let dy = pass.outputGradient(0)
        let meanGradient = pass.outputGradient(1)
        let inverseGradient = pass.outputGradient(2)
        guard dy != nil || meanGradient != nil || inverseGradient != nil else { return }
        let (rows, count) = (geometry.rows, geometry.rows * geometry.width)
        let x = try checked(try pass.input(0), count, dtype, "LayerNormalization input")
        let scale = try checked(
            try pass.input(1), ShapeUtil.count(geometry.scaleShape), dtype, "LayerNormalization Scale")
        for g in [meanGradient, inverseGradient].compactMap({ $0 }) {
            guard g.count == rows, g.dtype == .float32 || g.dtype == .float64 else {
                throw AidgeError.shapeMismatch("LayerNormalization: a statistics gradient must hold one float per row")
            }
        }
        let tensors = Tensors(
            x: x, scale: scale,
            dy: try dy.map { try checked($0, count, dtype, "LayerNormalization output gradient") },
            meanGradient: meanGradient, inverseGradient: inverseGradient,
            dx: try pass.inputGradient(0).map { try checked($0, count, dtype, "LayerNormalization input gradient") },
            dScale: pass.inputGradient(1), dBias: geometry.biasShape == nil ? nil : pass.inputGradient(2))
        switch dtype {
        case .float32: try backward(tensors, Float.self)
        default: try backward(tensors, Double.self)
        }
    }

    private struct Tensors {
        let x: Tensor, scale: Tensor
        let dy: Tensor?, meanGradient: Tensor?, inverseGradient: Tensor?
        let dx: Tensor?, dScale: Tensor?, dBias: Tensor?
    }

    /// Per row, with `xc = x - mean`, `inv` the inverse deviation, `g = dy · scale` and `W` the row width:
    /// dx += inv · g - inv · Σ g / W - xc · inv³ · (Σ g·xc + dInvStdDev) / W + dMean / W.
    private func backward<T: NormalizationFloat>(_ t: Tensors, _: T.Type) throws {
        let (rows, width) = (geometry.rows, geometry.width)
        let x = UnsafePointer(t.x.pointer(as: T.self))
        let dy = t.dy.map { UnsafePointer($0.pointer(as: T.self)) }
        var scaleValues = [T](repeating: 0, count: width)
        scaleValues.withUnsafeMutableBufferPointer { buffer in
            guard let values = buffer.baseAddress else { return }
            geometry.expand(t.scale.pointer(as: T.self), geometry.scaleShape, into: values)
        }
        var statistics = [T](repeating: 0, count: 2 * rows)
        let epsilon = T(geometry.epsilon)
        let w = T(width)
        statistics.withUnsafeMutableBufferPointer { stats in
            scaleValues.withUnsafeBufferPointer { scaleBuffer in
                guard let stats = stats.baseAddress, let scale = scaleBuffer.baseAddress else { return }
                // Without an input gradient only the statistics are needed.
                Parallel.forEach(rows, grain: max(1, (1 << 13) / max(width, 1))) { range in
                    for r in range {
                        let xr = x + r * width
                        let mean = vectorSum(xr, width) / w
                        let inverse = 1 / (squaredDeviations(xr, width, mean) / w + epsilon).squareRoot()
                        stats[2 * r] = mean
                        stats[2 * r + 1] = inverse
                        guard let dxTensor = t.dx else { continue }
                        let dx = dxTensor.pointer(as: T.self) + r * width
                        let (sumG, sumGXc) =
                            dy.map { scaledGradientSums($0 + r * width, scale, xr, width, mean) } ?? (0, 0)
                        let dMean = t.meanGradient.map { element($0, r, as: T.self) } ?? 0
                        let dInverse = t.inverseGradient.map { element($0, r, as: T.self) } ?? 0
                        let k = -inverse * inverse * inverse * (sumGXc + dInverse) / w
                        let c = (dMean - inverse * sumG) / w - k * mean
                        addScaledGradient(dx, dy.map { $0 + r * width }, scale, xr, width, inverse, k, c)
                    }
                }
            }
        }
        guard let dy, t.dScale != nil || t.dBias != nil else { return }
        try parameterGradients(x, dy, statistics, t.dScale, t.dBias, T.self)
    }

    /// dScale += Σ_rows dy · xc · inv, dB += Σ_rows dy, each thread summing a block of rows into its own
    /// partial sums, then the partial sums added and reduced to the parameters' shapes.
    private func parameterGradients<T: NormalizationFloat>(
        _ x: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ statistics: [T], _ dScale: Tensor?, _ dBias: Tensor?,
        _: T.Type
    ) throws {
        let (rows, width, normalizedShape) = (geometry.rows, geometry.width, geometry.normalizedShape)
        let chunks = max(1, min(Parallel.threads, rows * width / (1 << 14), rows))
        var partial = [T](repeating: 0, count: chunks * 2 * width)
        let wantScale = dScale != nil
        let wantBias = dBias != nil
        partial.withUnsafeMutableBufferPointer { buffer in
            guard let sums = buffer.baseAddress else { return }
            statistics.withUnsafeBufferPointer { statsBuffer in
                guard let stats = statsBuffer.baseAddress else { return }
                Parallel.forEach(chunks, grain: 1) { range in
                    for chunk in range {
                        let scaleSum = sums + chunk * 2 * width
                        let biasSum = scaleSum + width
                        for r in (rows * chunk / chunks)..<(rows * (chunk + 1) / chunks) {
                            let xr = x + r * width
                            let dyr = dy + r * width
                            let mean = stats[2 * r]
                            let inverse = stats[2 * r + 1]
                            if wantScale { addNormalizedProduct(scaleSum, dyr, xr, width, mean, inverse) }
                            if wantBias { addScaled(biasSum, dyr, width, 1) }
                        }
                    }
                }
                for chunk in 1..<chunks {
                    for i in 0..<(2 * width) { sums[i] += sums[chunk * 2 * width + i] }
                }
            }
        }
        for (target, shape, offset) in [(dScale, geometry.scaleShape, 0), (dBias, geometry.biasShape ?? [], width)] {
            guard let target else { continue }
            guard target.dtype == dtype, target.shape == shape else {
                throw AidgeError.shapeMismatch("LayerNormalization: a parameter gradient does not match its input")
            }
            // The full-width sum, as a tensor of the normalised shape (with the parameter's leading 1s).
            let lead = [Int](repeating: 1, count: max(shape.count - normalizedShape.count, 0))
            let full = Tensor(zeros: lead + normalizedShape, dtype: dtype)
            let f = full.pointer(as: T.self)
            for i in 0..<width { f[i] = partial[offset + i] }
            accumulateReduced(full, into: target, T.self)
        }
    }
}

// MARK: InstanceNormalization

/// InstanceNormalization: the statistics of each (image, channel) plane, computed again in backward; the
/// input gradient per plane, the parameters' per-plane sums added per channel afterwards.
final class InstanceNormGradient: GradientKernel {
    let dtype: DType
    let batch: Int
    let channels: Int
    let spatial: Int
    let epsilon: Double

    init(_ request: KernelRequest) throws {
        let x = try request.input(0)
        dtype = try gradientType(x.dtype, request)
        (batch, channels, spatial) = try trainingChannelLayout(x.shape, "InstanceNormalization")
        epsilon = Double(try request.attributes.float("epsilon", default: 1e-5))
        try checkParameterTypes(request, 1...2, dtype)
    }

    func readsInput(_ index: Int) -> Bool { index <= 1 }
    func readsOutput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        guard let dy = pass.outputGradient(0) else { return }
        let count = batch * channels * spatial
        let tensors = Tensors(
            x: try checked(try pass.input(0), count, dtype, "InstanceNormalization input"),
            scale: try checked(try pass.input(1), channels, dtype, "InstanceNormalization scale"),
            dy: try checked(dy, count, dtype, "InstanceNormalization output gradient"),
            dx: try pass.inputGradient(0).map { try checked($0, count, dtype, "InstanceNormalization input gradient") },
            dScale: try pass.inputGradient(1).map {
                try checked($0, channels, dtype, "InstanceNormalization scale gradient")
            },
            dBias: try pass.inputGradient(2).map { try checked($0, channels, dtype, "InstanceNormalization B gradient") })
        switch dtype {
        case .float32: backward(tensors, Float.self)
        default: backward(tensors, Double.self)
        }
    }

    private struct Tensors {
        let x: Tensor, scale: Tensor, dy: Tensor
        let dx: Tensor?, dScale: Tensor?, dBias: Tensor?
    }

    /// Per plane, as BatchNormalization's training backward over one plane.
    private func backward<T: NormalizationFloat>(_ t: Tensors, _: T.Type) {
        let (channels, spatial) = (self.channels, self.spatial)
        let planes = batch * channels
        let x = UnsafePointer(t.x.pointer(as: T.self))
        let dy = UnsafePointer(t.dy.pointer(as: T.self))
        let scale = t.scale.pointer(as: T.self)
        let dx = t.dx?.pointer(as: T.self)
        let epsilon = T(self.epsilon)
        let n = T(spatial)
        // Per plane: Σ dy and Σ dy · xc · inv.
        var sums = [T](repeating: 0, count: 2 * planes)
        sums.withUnsafeMutableBufferPointer { buffer in
            guard let sums = buffer.baseAddress else { return }
            Parallel.forEach(planes, grain: max(1, (1 << 13) / max(spatial, 1))) { range in
                for p in range {
                    let xp = x + p * spatial
                    let dyp = dy + p * spatial
                    let mean = vectorSum(xp, spatial) / n
                    let inverse = 1 / (squaredDeviations(xp, spatial, mean) / n + epsilon).squareRoot()
                    let (sumDy, sumDyXc) = gradientSums(dyp, xp, spatial, mean)
                    sums[2 * p] = sumDy
                    sums[2 * p + 1] = sumDyXc * inverse
                    guard let dx else { continue }
                    let g = scale[p % channels] * inverse
                    let k = -g * inverse * inverse * sumDyXc / n
                    addGradient(dx + p * spatial, dyp, xp, spatial, g, k, -g * sumDy / n - k * mean)
                }
            }
        }
        let dScale = t.dScale?.pointer(as: T.self)
        let dBias = t.dBias?.pointer(as: T.self)
        for p in 0..<planes {
            dBias?[p % channels] += sums[2 * p]
            dScale?[p % channels] += sums[2 * p + 1]
        }
    }
}
