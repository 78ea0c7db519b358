#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Weight initialisation (Aidge's fillers) for floating-point tensors, written in place.
///
/// Fans follow the weight layout `[out, in, kernel...]`: fan-in = in x kernel, fan-out = out x kernel.
public enum Filler {
    /// Which fan scales a filler's variance.
    public enum Fan: String, Sendable {
        case fanIn = "FAN_IN"
        case fanOut = "FAN_OUT"
        case average = "FAN_AVG"
    }

    public static func constant(_ tensor: Tensor, value: Double) throws {
        try write(tensor) { _ in value }
    }

    public static func uniform<G: RandomNumberGenerator>(_ tensor: Tensor, min: Double, max: Double, using g: inout G) throws {
        guard min <= max else { throw AidgeError.invalidArgument("uniform filler: min \(min) > max \(max)") }
        try write(tensor) { _ in min == max ? min : Double.random(in: min..<max, using: &g) }
    }

    public static func normal<G: RandomNumberGenerator>(_ tensor: Tensor, mean: Double, stdDev: Double, using g: inout G) throws {
        guard stdDev >= 0 else { throw AidgeError.invalidArgument("normal filler: negative standard deviation \(stdDev)") }
        try write(tensor) { _ in mean + stdDev * standardNormal(using: &g) }
    }

    /// He: normal with variance `2 · scaling / fan`, around `meanNorm`.
    public static func he<G: RandomNumberGenerator>(
        _ tensor: Tensor, fan: Fan = .fanIn, meanNorm: Double = 0, scaling: Double = 1, using g: inout G
    ) throws {
        let n = try fanValue(tensor, fan)
        try normal(tensor, mean: meanNorm, stdDev: (2 * scaling / n).squareRoot(), using: &g)
    }

    /// Xavier (Glorot) uniform: bounds `±sqrt(3 · scaling / fan)` (FAN_AVG gives Glorot's `6 / (in + out)`).
    public static func xavierUniform<G: RandomNumberGenerator>(
        _ tensor: Tensor, scaling: Double = 1, fan: Fan = .fanIn, using g: inout G
    ) throws {
        let n = try fanValue(tensor, fan)
        let bound = (3 * scaling / n).squareRoot()
        try uniform(tensor, min: -bound, max: bound, using: &g)
    }

    /// Fan-in, fan-out or their mean for a weight of shape `[out, in, kernel...]`.
    public static func fanValue(_ tensor: Tensor, _ fan: Fan) throws -> Double {
        guard tensor.rank >= 2 else {
            throw AidgeError.invalidArgument("a fan needs a weight of rank 2 or more, got shape \(tensor.shape)")
        }
        let kernel = tensor.shape.dropFirst(2).reduce(1, *)
        let fanIn = Double(tensor.shape[1] * kernel)
        let fanOut = Double(tensor.shape[0] * kernel)
        switch fan {
        case .fanIn: return max(fanIn, 1)
        case .fanOut: return max(fanOut, 1)
        case .average: return max((fanIn + fanOut) / 2, 1)
        }
    }

    /// A standard normal sample (Box-Muller).
    public static func standardNormal<G: RandomNumberGenerator>(using g: inout G) -> Double {
        let u = Double.random(in: Double.ulpOfOne..<1, using: &g)
        let v = Double.random(in: 0..<1, using: &g)
        return (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v)
    }

    /// Writes `value(i)` into every element, in C order.
    private static func write(_ tensor: Tensor, _ value: (Int) -> Double) throws {
        guard !tensor.storage.isReadOnly else { throw AidgeError.invalidArgument("the tensor is read-only") }
        var values = [Double](repeating: 0, count: tensor.count)
        for i in values.indices { values[i] = value(i) }
        let source = try Tensor(values, shape: tensor.shape)
        switch tensor.dtype {
        case .float32, .float64, .float16, .bfloat16: copyElements(from: source.cast(to: tensor.dtype), to: tensor)
        default: throw AidgeError.unsupportedType("fillers write floating-point tensors, not \(tensor.dtype)")
        }
    }
}

/// A seeded generator (SplitMix64) for reproducible initialisation.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
