import AidgeCore

/// GridSample in any number of spatial dimensions: every output point is a tensor-product interpolation (nearest,
/// linear or Keys cubic with a = -0.75) of X at the point the grid names, as PyTorch's `grid_sample` computes it.
func registerGridSampleKernels(_ registry: KernelRegistry) {
    registry.register("GridSample", backend: "cpu") { try makeKernel(GridSampleFamily(), $0) }
}

private struct GridSampleFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let x = try request.input(0)
        let gridInfo = try request.input(1)
        guard gridInfo.dtype == x.dtype else { throw request.unsupportedType(gridInfo.dtype) }
        let sampler = try GridSampler(
            attributes: request.attributes, inputShape: x.shape, outputShape: request.outputs[0].shape)
        return ClosureKernel { inputs, outputs in
            let data = try presentInput(inputs, 0).pointer(as: T.self)
            let grid = try presentInput(inputs, 1).pointer(as: T.self)
            let y = try firstOutput(outputs).pointer(as: T.self)
            Parallel.forEach(sampler.batches * sampler.points) { range in
                var coordinates = [Double](repeating: 0, count: sampler.rank)
                for item in range {
                    let n = item / sampler.points
                    let point = grid + item * sampler.rank
                    // The grid lists the last dimension's coordinate first.
                    for d in 0..<sampler.rank { coordinates[sampler.rank - 1 - d] = Double(point[d]) }
                    for c in 0..<sampler.channels {
                        let plane = data + (n * sampler.channels + c) * sampler.planeSize
                        let value = sampler.sample(coordinates) { Double(plane[$0]) }
                        y[(n * sampler.channels + c) * sampler.points + item % sampler.points] = T(value)
                    }
                }
            }
        }
    }
}

/// The geometry and rules of one GridSample node.
private struct GridSampler: Sendable {
    enum Mode { case nearest, linear, cubic }
    enum Padding { case zeros, border, reflection }

    let mode: Mode
    let padding: Padding
    let alignCorners: Bool
    let dims: [Int]
    let strides: [Int]
    let rank: Int
    let batches: Int
    let channels: Int
    let planeSize: Int
    let points: Int

    init(attributes: Attributes, inputShape: [Int], outputShape: [Int]) throws {
        switch try attributes.string("mode", default: "linear") {
        case "nearest": mode = .nearest
        case "cubic", "bicubic": mode = .cubic
        default: mode = .linear
        }
        switch try attributes.string("padding_mode", default: "zeros") {
        case "border": padding = .border
        case "reflection": padding = .reflection
        default: padding = .zeros
        }
        alignCorners = try attributes.int("align_corners", default: 0) != 0
        dims = Array(inputShape.dropFirst(2))
        rank = dims.count
        strides = ShapeUtil.contiguousStrides(dims)
        batches = inputShape[0]
        channels = inputShape[1]
        planeSize = ShapeUtil.count(dims)
        points = ShapeUtil.count(Array(outputShape.dropFirst(2)))
    }

    /// The interpolated value at normalised `coordinates` (first dimension first), reading X's plane by `pixel`.
    func sample(_ coordinates: [Double], pixel: (Int) -> Double) -> Double {
        var base = [Int](repeating: 0, count: rank)
        var weights = [[Double]](repeating: [], count: rank)
        for d in 0..<rank {
            let length = Double(dims[d])
            let n = coordinates[d]
            var x = alignCorners ? (n + 1) / 2 * (length - 1) : ((n + 1) * length - 1) / 2
            if mode == .nearest { x = x.rounded(.toNearestOrEven) }
            let (low, high) = bounds(d)
            if x < low || x > high {
                switch padding {
                case .border: x = min(max(x, 0), length - 1)
                case .reflection: x = reflect(x, low, high)
                case .zeros: break
                }
            }
            switch mode {
            case .nearest:
                base[d] = Int(x)  // truncation, as the reference's cast
                weights[d] = [1]
            case .linear:
                let x0 = x.rounded(.down)
                let t = x - x0
                base[d] = Int(x0)
                weights[d] = [1 - t, t]
            case .cubic:
                let x0 = x.rounded(.down)
                base[d] = Int(x0) - 1
                weights[d] = Self.cubicWeights(x - x0)
            }
        }
        // Sum over every combination of taps, the last dimension varying fastest.
        let taps = weights.map(\.count)
        var tap = [Int](repeating: 0, count: rank)
        var total = 0.0
        outer: while true {
            var weight = 1.0
            var offset = 0
            var inside = true
            for d in 0..<rank {
                weight *= weights[d][tap[d]]
                if let i = index(base[d] + tap[d], d) { offset += i * strides[d] } else { inside = false }
            }
            if inside { total += weight * pixel(offset) }
            var d = rank - 1
            while d >= 0 {
                tap[d] += 1
                if tap[d] < taps[d] { continue outer }
                tap[d] = 0
                d -= 1
            }
            break
        }
        return total
    }

    /// The range of coordinates inside the input: pixel edges, or pixel centres with aligned corners.
    private func bounds(_ d: Int) -> (Double, Double) {
        alignCorners ? (0, Double(dims[d] - 1)) : (-0.5, Double(dims[d]) - 0.5)
    }

    /// The element index read for integer position `i` along `d` (nil: outside, reads zero).
    private func index(_ i: Int, _ d: Int) -> Int? {
        let length = dims[d]
        switch padding {
        case .zeros: return i >= 0 && i < length ? i : nil
        case .border: return min(max(i, 0), length - 1)
        case .reflection:
            let (low, high) = bounds(d)
            return min(max(Int(reflect(Double(i), low, high)), 0), length - 1)
        }
    }

    /// Reflects `x` off the borders until it lies between them.
    private func reflect(_ x: Double, _ low: Double, _ high: Double) -> Double {
        let span = high - low
        guard span > 0 else { return low }
        if x < low {
            let dx = low - x
            let n = (dx / span).rounded(.towardZero)
            let r = dx - n * span
            return n.truncatingRemainder(dividingBy: 2) == 0 ? low + r : high - r
        }
        if x > high {
            let dx = x - high
            let n = (dx / span).rounded(.towardZero)
            let r = dx - n * span
            return n.truncatingRemainder(dividingBy: 2) == 0 ? high - r : low + r
        }
        return x
    }

    /// Keys' cubic convolution weights (a = -0.75) of the four taps around a point at fraction `t` past tap 1.
    private static func cubicWeights(_ t: Double) -> [Double] {
        let a = -0.75
        func near(_ s: Double) -> Double { ((a + 2) * s - (a + 3)) * s * s + 1 }
        func far(_ s: Double) -> Double { ((a * s - 5 * a) * s + 8 * a) * s - 4 * a }
        return [far(t + 1), near(t), near(1 - t), far(2 - t)]
    }
}
