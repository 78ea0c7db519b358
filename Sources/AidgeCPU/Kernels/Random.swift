import AidgeCore
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// RandomUniform(Like), RandomNormal(Like), Bernoulli and Multinomial. Each node has its own generator, seeded by
/// the `seed` attribute (the same values run after run, model after model) or at random; runs draw on.
func registerRandomKernels(_ registry: KernelRegistry) {
    for type in ["RandomUniform", "RandomUniformLike"] {
        registry.register(type, backend: "cpu") { request in
            let low = Double(try request.attributes.float("low", default: 0))
            let high = Double(try request.attributes.float("high", default: 1))
            guard low <= high else { throw AidgeError.invalidArgument("\(type) low \(low) is above high \(high)") }
            return try RandomKernel(request) { g, _ in low + (high - low) * Double.random(in: 0..<1, using: &g) }
        }
    }
    for type in ["RandomNormal", "RandomNormalLike"] {
        registry.register(type, backend: "cpu") { request in
            let mean = Double(try request.attributes.float("mean", default: 0))
            let scale = Double(try request.attributes.float("scale", default: 1))
            return try RandomKernel(request) { g, _ in mean + scale * Filler.standardNormal(using: &g) }
        }
    }
    registry.register("Bernoulli", backend: "cpu") { request in
        try RandomKernel(request) { g, p in
            guard p >= 0, p <= 1 else { throw AidgeError.invalidArgument("Bernoulli probability \(p) is outside [0, 1]") }
            return Double.random(in: 0..<1, using: &g) < p ? 1 : 0
        }
    }
    registry.register("Multinomial", backend: "cpu") { request in try MultinomialKernel(request) }
}

/// A node's generator (random operators, Dropout): seeded from the `seed` attribute (an integer for Dropout, a float
/// for the random operators, whose bits seed), else at random.
func nodeGenerator(_ request: KernelRequest) throws -> Mutex<SeededGenerator> {
    let seed: UInt64
    switch request.attributes["seed"] {
    case .int(let v)?: seed = UInt64(bitPattern: Int64(v))
    case .float(let v)?: seed = UInt64(v.bitPattern)
    case nil:
        var system = SystemRandomNumberGenerator()
        seed = system.next()
    default: throw AidgeError.invalidModel("attribute 'seed' must be a number")
    }
    return Mutex(SeededGenerator(seed: seed))
}

/// Draws each output element from `draw(generator, input element)` (0 for the generators without input) in
/// float64, then converts to the output dtype.
private final class RandomKernel: Kernel {
    let generator: Mutex<SeededGenerator>
    let draw: (inout SeededGenerator, Double) throws -> Double
    let scratch: Tensor
    /// Bernoulli's probabilities in float64 (nil for the generators without input).
    let probabilities: Tensor?

    init(_ request: KernelRequest, draw: @escaping (inout SeededGenerator, Double) throws -> Double) throws {
        generator = try nodeGenerator(request)
        self.draw = draw
        scratch = Tensor(zeros: request.outputs[0].shape, dtype: .float64)
        probabilities = request.op.type == "Bernoulli" ? Tensor(zeros: request.outputs[0].shape, dtype: .float64) : nil
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let y = try firstOutput(outputs)
        let values = scratch.pointer(as: Double.self)
        if let probabilities {
            let x = try presentInput(inputs, 0)
            castElements(x.rawPointer, x.dtype, probabilities.rawPointer, .float64, x.count)
        }
        let p = probabilities?.pointer(as: Double.self)
        try generator.withLock { g in
            for i in 0..<y.count { values[i] = try draw(&g, p?[i] ?? 0) }
        }
        castElements(scratch.rawPointer, .float64, y.rawPointer, y.dtype, y.count)
    }
}

/// Multinomial: `sample_size` class indices per batch row, drawn with probabilities softmax(row) (the input holds
/// unnormalised log-probabilities).
private final class MultinomialKernel: Kernel {
    let generator: Mutex<SeededGenerator>
    let cumulative: Tensor
    let logits: Tensor
    let drawn: Tensor

    init(_ request: KernelRequest) throws {
        generator = try nodeGenerator(request)
        let x = try request.input(0)
        cumulative = Tensor(zeros: [x.shape.last ?? 0], dtype: .float64)
        logits = Tensor(zeros: x.shape, dtype: .float64)
        drawn = Tensor(zeros: request.outputs[0].shape, dtype: .int64)
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let input = try presentInput(inputs, 0)
        castElements(input.rawPointer, input.dtype, logits.rawPointer, .float64, input.count)
        let x = logits
        let y = try firstOutput(outputs)
        let (batch, classes) = (x.shape[0], x.shape[1])
        let samples = y.shape[1]
        guard classes > 0 || samples == 0 else { throw AidgeError.invalidArgument("Multinomial of zero classes") }
        let logits = x.pointer(as: Double.self)
        let c = cumulative.pointer(as: Double.self)
        let d = drawn.pointer(as: Int64.self)
        try generator.withLock { g in
            for b in 0..<batch {
                let row = logits + b * classes
                var peak = -Double.infinity
                for k in 0..<classes { peak = max(peak, row[k]) }
                var total = 0.0
                for k in 0..<classes {
                    total += peak.isFinite ? exp(row[k] - peak) : 0
                    c[k] = total
                }
                guard total > 0, total.isFinite else {
                    throw AidgeError.invalidArgument("Multinomial row \(b) has no finite log-probability")
                }
                for s in 0..<samples {
                    let u = Double.random(in: 0..<1, using: &g) * total
                    var k = 0
                    while k < classes - 1 && c[k] <= u { k += 1 }
                    d[b * samples + s] = Int64(k)
                }
            }
        }
        castElements(drawn.rawPointer, .int64, y.rawPointer, y.dtype, y.count)
    }
}
