/// For each output index of one axis: `count` input indices (clamped into the input) and weights, and whether
/// the output is extrapolated (tf_crop_and_resize writes `extrapolation_value` there): ONNX's reference
/// coefficients, shared by the forward and backward kernels of every backend.
public struct ResizeAxisSampling: Sendable {
    public var count: Int
    public var index: [Int]
    public var weight: [Double]
    public var extrapolated: [Bool]

    /// Whether sampling this axis changes nothing.
    public func isIdentity(inputLength: Int) -> Bool {
        let outputLength = extrapolated.count
        guard outputLength == inputLength, !extrapolated.contains(true) else { return false }
        for o in 0..<outputLength {
            var own = 0.0
            for k in 0..<count {
                let w = weight[o * count + k]
                if index[o * count + k] == o { own += w } else if w != 0 { return false }
            }
            if abs(own - 1) > 1e-12 { return false }
        }
        return true
    }

    /// Keys' cubic convolution kernel with coefficient `a`.
    private static func cubic(_ x: Double, _ a: Double) -> Double {
        let x = abs(x)
        if x <= 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
        return 0
    }

    /// The sampling of `axis`: the coordinate `x` splits into `left + ratio` with `ratio` in (0, 1]; tap `k`
    /// reads index `left + start + k`.
    public init(_ g: ResizeGeometry, axis: Int) {
        let inputLength = g.inputShape[axis]
        let outputLength = g.outputShape[axis]
        let s = min(g.scales[axis], 1)
        let a = g.cubicCoefficientA
        let start: Int
        switch g.mode {
        case .nearest:
            (start, count) = (0, 2)
        case .linear:
            let first = g.antialias ? Int((-1 / s).rounded(.down)) + 1 : 0
            (start, count) = (first, 2 - 2 * first)
        case .cubic:
            let first = g.antialias ? Int((-2 / s).rounded(.down)) + 1 : -1
            (start, count) = (first, 2 - 2 * first)
        }
        index = [Int](repeating: 0, count: outputLength * count)
        weight = [Double](repeating: 0, count: outputLength * count)
        extrapolated = [Bool](repeating: false, count: outputLength)
        var w = [Double](repeating: 0, count: count)
        for o in 0..<outputLength {
            let source = g.sourceCoordinate(o, axis: axis)
            extrapolated[o] = !source.isFinite || g.isExtrapolated(source, axis: axis)
            let x = source.isFinite ? min(max(source, -Double(1 << 40)), Double(1 << 40)) : 0
            let floorX = x.rounded(.down)
            let integral = floorX == x
            let ratio = integral ? 1 : x - floorX
            let left = Int(floorX) - (integral ? 1 : 0)
            switch g.mode {
            case .nearest:
                let up: Bool
                if integral {
                    up = true
                } else {
                    switch g.nearestMode {
                    case .roundPreferFloor: up = ratio > 0.5
                    case .roundPreferCeil: up = ratio >= 0.5
                    case .floor: up = false
                    case .ceil: up = true
                    }
                }
                w[0] = up ? 0 : 1
                w[1] = up ? 1 : 0
            case .linear:
                if g.antialias {
                    for k in 0..<count { w[k] = max(0, min(1, 1 - abs((Double(start + k) - ratio) * s))) }
                } else {
                    w[0] = 1 - ratio
                    w[1] = ratio
                }
            case .cubic:
                if g.antialias {
                    for k in 0..<count { w[k] = Self.cubic(s * (Double(start + k) - ratio), a) }
                } else {
                    w[0] = ((a * (ratio + 1) - 5 * a) * (ratio + 1) + 8 * a) * (ratio + 1) - 4 * a
                    w[1] = ((a + 2) * ratio - (a + 3)) * ratio * ratio + 1
                    w[2] = ((a + 2) * (1 - ratio) - (a + 3)) * (1 - ratio) * (1 - ratio) + 1
                    w[3] = ((a * (2 - ratio) - 5 * a) * (2 - ratio) + 8 * a) * (2 - ratio) - 4 * a
                }
            }
            if g.antialias {
                let total = w.reduce(0, +)
                if total != 0 { for k in 0..<count { w[k] /= total } }
            }
            if g.excludeOutside && g.mode != .nearest {
                for k in 0..<count where !(0..<inputLength).contains(left + start + k) { w[k] = 0 }
                let total = w.reduce(0, +)
                if total != 0 { for k in 0..<count { w[k] /= total } }
            }
            for k in 0..<count {
                index[o * count + k] = min(max(left + start + k, 0), max(inputLength - 1, 0))
                // Extrapolated outputs are a constant: no gradient flows back from them.
                weight[o * count + k] = extrapolated[o] ? 0 : w[k]
            }
        }
    }
}
