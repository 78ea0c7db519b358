import AidgeCore

/// Backward of Resize and Upsample, every mode the forward has (nearest with each rounding, linear, cubic,
/// antialiased filters, exclude_outside, tf_crop_and_resize).
///
/// The forward resizes one axis at a time, each output index a weighted sum of a few input indices: a sparse
/// matrix per axis. Backward applies the transposed matrices in the reverse order (outermost resized axis first):
/// each output element's gradient is added to its input taps with the same weights. Nearest is the case of one
/// tap of weight 1; extrapolated outputs (tf_crop_and_resize's constant) send nothing back. Work is split by
/// destination: rows before the axis, and ranges of the elements after it, each walking the axis in order.
func registerResizeGradients(_ registry: KernelRegistry) {
    for type in ["Resize", "Upsample"] {
        registry.registerGradient(type, backend: "cpu") { request in
            let x = try request.input(0)
            return try movementGradient(x.dtype, request) { dtype in
                let geometry = try ResizeGeometry(type: type, attributes: request.attributes, inputs: request.inputs)
                return ResizeGradientKernel(dtype, geometry)
            }
        }
    }
}

/// The transposed resizing of one axis: a `[outer, outLength, inner]` gradient added into `[outer, inLength,
/// inner]` with the forward's taps, the zero weights dropped.
struct ResizeGradientPass {
    let outer: Int
    let inLength: Int
    let outLength: Int
    let inner: Int
    /// Taps of output index o: `tapStart[o] ..< tapStart[o + 1]` in `index` and `weight`.
    let tapStart: [Int]
    let index: [Int]
    let weight: [Double]

    init(outer: Int, inLength: Int, inner: Int, _ sampling: ResizeAxisSampling) {
        self.outer = outer
        self.inLength = inLength
        self.inner = inner
        outLength = sampling.extrapolated.count
        var tapStart = [0]
        var index: [Int] = []
        var weight: [Double] = []
        for o in 0..<outLength {
            for k in 0..<sampling.count where sampling.weight[o * sampling.count + k] != 0 {
                index.append(sampling.index[o * sampling.count + k])
                weight.append(sampling.weight[o * sampling.count + k])
            }
            tapStart.append(index.count)
        }
        self.tapStart = tapStart
        self.index = index
        self.weight = weight
    }

    var inputCount: Int { outer * inLength * inner }

    /// `dst += Aᵀ src`.
    func run<T: GradientFloat>(_ src: UnsafePointer<T>, _ dst: UnsafeMutablePointer<T>) {
        let (outer, inLength, outLength, inner) = (outer, inLength, outLength, inner)
        let weights = weight.map { T($0) }
        let (ranges, length) = innerRanges(outer: outer, inner: inner)
        let work = max(1, (index.count + outLength) * length)
        tapStart.withUnsafeBufferPointer { tapStart in
            index.withUnsafeBufferPointer { index in
                weights.withUnsafeBufferPointer { weight in
                    Parallel.forEach(outer * ranges, grain: max(1, (1 << 14) / work)) { tasks in
                        for task in tasks {
                            let r = task / ranges
                            let c0 = (task % ranges) * length
                            let width = min(c0 + length, inner) - c0
                            if width <= 0 { continue }
                            let from = src + r * outLength * inner + c0
                            let to = dst + r * inLength * inner + c0
                            if inner == 1 {
                                for o in 0..<outLength {
                                    let g = from[o]
                                    for t in tapStart[o]..<tapStart[o + 1] { to[index[t]] += weight[t] * g }
                                }
                                continue
                            }
                            for o in 0..<outLength {
                                let row = from + o * inner
                                for t in tapStart[o]..<tapStart[o + 1] {
                                    let w = weight[t]
                                    let target = to + index[t] * inner
                                    for j in 0..<width { target[j] += w * row[j] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Resize and Upsample backward: the transposed passes of the resized axes, outermost first, through scratch
/// buffers made per call (the last pass adds into the input's gradient).
final class ResizeGradientKernel: GradientKernel {
    let dtype: DType
    let inputCount: Int
    let outputCount: Int
    /// In the order they run.
    let passes: [ResizeGradientPass]

    init(_ dtype: DType, _ g: ResizeGeometry) {
        self.dtype = dtype
        inputCount = ShapeUtil.count(g.inputShape)
        outputCount = ShapeUtil.count(g.outputShape)
        let rank = g.inputShape.count
        let samplings = (0..<rank).map { ResizeAxisSampling(g, axis: $0) }
        // The forward's shape before resizing `axis` (innermost first): axes after it resized, before it not.
        var passes: [ResizeGradientPass] = []
        for axis in 0..<rank where !samplings[axis].isIdentity(inputLength: g.inputShape[axis]) {
            let outer = ShapeUtil.count(Array(g.inputShape[..<axis]))
            let inner = ShapeUtil.count(Array(g.outputShape[(axis + 1)...]))
            passes.append(ResizeGradientPass(outer: outer, inLength: g.inputShape[axis], inner: inner, samplings[axis]))
        }
        self.passes = passes
    }

    func readsInput(_ index: Int) -> Bool { false }
    func readsOutput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        guard let dx = pass.inputGradient(0), let dy = pass.outputGradient(0) else { return }
        guard dx.count == inputCount, dy.count == outputCount else {
            throw AidgeError.shapeMismatch("Resize gradients do not have the planned shapes")
        }
        if inputCount == 0 || outputCount == 0 { return }
        try dispatch(dtype, Body(kernel: self, dx: dx, dy: dy))
    }

    private struct Body: GradientBody {
        let kernel: ResizeGradientKernel
        let dx: Tensor, dy: Tensor
        func run<T: GradientFloat>(_: T.Type) {
            let passes = kernel.passes
            let d = dx.pointer(as: T.self)
            var source = UnsafePointer(dy.pointer(as: T.self))
            if passes.isEmpty {
                addRows(d, dstRow: 0, source, srcRow: 0, rows: 1, length: dx.count)
                return
            }
            // The scratch buffer a pass reads is freed once it has run.
            var previous: UnsafeMutablePointer<T>? = nil
            for (i, pass) in passes.enumerated() {
                let target: UnsafeMutablePointer<T>
                if i == passes.count - 1 {
                    target = d
                } else {
                    target = .allocate(capacity: max(pass.inputCount, 1))
                    target.initialize(repeating: 0, count: pass.inputCount)
                }
                pass.run(source, target)
                previous?.deallocate()
                previous = i == passes.count - 1 ? nil : target
                source = UnsafePointer(target)
            }
        }
    }
}
