import AidgeCore
import Synchronization

/// Dropout's training forward and backward.
func registerDropoutGradient(_ registry: KernelRegistry) {
    registry.registerGradient("Dropout", backend: "cpu") { request in try DropoutGradient(request) }
}

/// Dropout: in training, each element is kept with probability `1 - ratio` and scaled by `1 / (1 - ratio)`
/// (zeroed otherwise); in evaluation it is the identity. The `training_mode` input (bool), when given, overrides
/// the graph's mode; `ratio` (input 1) defaults to 0.5.
///
/// The forward saves the multiplier of each element (0 or `1 / (1 - ratio)`, 1 in evaluation), so backward is
/// `dx += dy · multiplier`, and writes the boolean mask to output 1 when the node has it.
///
/// Random bits: element pairs hash a counter (SplitMix64's finaliser of the run's key and the pair's index), so
/// any split of the elements over threads draws the same mask. Each run draws a new key from the kernel's
/// generator, seeded by the `seed` attribute (the same masks run after run, model after model) or at random.
final class DropoutGradient: GradientKernel {
    let dtype: DType
    let count: Int
    let shape: [Int]
    private let generator: Mutex<SeededGenerator>

    init(_ request: KernelRequest) throws {
        let x = try request.input(0)
        dtype = try gradientType(x.dtype, request)
        count = x.count
        shape = x.shape
        let seed: UInt64
        if request.attributes.has("seed") {
            seed = UInt64(bitPattern: Int64(try request.attributes.int("seed")))
        } else {
            var system = SystemRandomNumberGenerator()
            seed = system.next()
        }
        generator = Mutex(SeededGenerator(seed: seed))
    }

    var savedInfos: [ValueInfo] { [ValueInfo(dtype: dtype, shape: shape)] }
    var hasTrainingForward: Bool { true }
    func readsInput(_ index: Int) -> Bool { false }
    func readsOutput(_ index: Int) -> Bool { false }

    func forward(_ inputs: [Tensor?], _ outputs: [Tensor], saved: [Tensor], training: Bool) throws {
        guard let x = inputs.first ?? nil, x.count == count, x.dtype == dtype, let y = outputs.first,
            y.count == count, y.dtype == dtype, let multiplier = saved.first, multiplier.count == count
        else {
            throw AidgeError.shapeMismatch("Dropout got tensors that do not match its plan")
        }
        let mask = outputs.count > 1 ? outputs[1] : nil
        if let mask, mask.count != count || mask.dtype != .bool {
            throw AidgeError.shapeMismatch("Dropout mask output must be bool of the input's shape")
        }
        var drops = training
        if inputs.count > 2, let mode = inputs[2] {
            guard mode.count == 1, mode.dtype == .bool else {
                throw AidgeError.invalidArgument("Dropout training_mode must be one bool, got \(mode.dtype) \(mode.shape)")
            }
            drops = mode.rawPointer.load(as: UInt8.self) != 0
        }
        var ratio = 0.5
        if inputs.count > 1, let r = inputs[1] {
            guard r.count == 1 else { throw AidgeError.invalidArgument("Dropout ratio must be a scalar, got shape \(r.shape)") }
            switch r.dtype {
            case .float32: ratio = Double(r.pointer(as: Float.self)[0])
            case .float64: ratio = r.pointer(as: Double.self)[0]
            case .float16: ratio = Double(r.pointer(as: Float16.self)[0])
            case .bfloat16: ratio = Double(r.pointer(as: BFloat16.self)[0].floatValue)
            default: throw AidgeError.unsupportedType("Dropout ratio must be a float, got \(r.dtype)")
            }
        }
        guard ratio >= 0 && ratio <= 1 else {
            throw AidgeError.invalidArgument("Dropout ratio must be in [0, 1], got \(ratio)")
        }
        if !drops || ratio == 0 {
            parallelCopy(y.rawPointer, x.rawPointer, y.byteCount)
            switch dtype {
            case .float32: fill(multiplier.pointer(as: Float.self), 1)
            default: fill(multiplier.pointer(as: Double.self), 1)
            }
            mask?.rawPointer.initializeMemory(as: UInt8.self, repeating: 1, count: count)
            return
        }
        let key = generator.withLock { $0.next() }
        // Kept where the element's 32 random bits are >= ratio · 2^32 (ratio 1 keeps nothing).
        let threshold = UInt64((ratio * 4_294_967_296).rounded(.up))
        let maskPointer = mask.map { $0.rawPointer.assumingMemoryBound(to: UInt8.self) }
        switch dtype {
        case .float32:
            drop(x.pointer(as: Float.self), y.pointer(as: Float.self), multiplier.pointer(as: Float.self), maskPointer,
                 key: key, threshold: threshold, scale: Float(ratio < 1 ? 1 / (1 - ratio) : 0))
        default:
            drop(x.pointer(as: Double.self), y.pointer(as: Double.self), multiplier.pointer(as: Double.self), maskPointer,
                 key: key, threshold: threshold, scale: ratio < 1 ? 1 / (1 - ratio) : 0)
        }
    }

    private func fill<T: GradientFloat>(_ p: UnsafeMutablePointer<T>, _ value: T) {
        Parallel.forEach(count, grain: 1 << 15) { range in
            for i in range { p[i] = value }
        }
    }

    /// SplitMix64's output function: 64 well-mixed bits of `z`.
    @inline(__always)
    private static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    private func drop<T: GradientFloat>(
        _ x: UnsafeMutablePointer<T>, _ y: UnsafeMutablePointer<T>, _ multiplier: UnsafeMutablePointer<T>,
        _ mask: UnsafeMutablePointer<UInt8>?, key: UInt64, threshold: UInt64, scale: T
    ) {
        let pairs = (count + 1) / 2
        let count = self.count
        Parallel.forEach(pairs, grain: 1 << 13) { range in
            for pair in range {
                let bits = Self.mix(key &+ UInt64(pair) &* 0x9E37_79B9_7F4A_7C15)
                let i = 2 * pair
                let m0: T = (bits & 0xFFFF_FFFF) >= threshold ? scale : 0
                multiplier[i] = m0
                y[i] = x[i] * m0
                mask?[i] = m0 != 0 ? 1 : 0
                if i + 1 < count {
                    let m1: T = (bits >> 32) >= threshold ? scale : 0
                    multiplier[i + 1] = m1
                    y[i + 1] = x[i + 1] * m1
                    mask?[i + 1] = m1 != 0 ? 1 : 0
                }
            }
        }
    }

    func backward(_ pass: BackwardPass) throws {
        guard let dx = pass.inputGradient(0), let dy = pass.outputGradient(0) else { return }
        guard let multiplier = pass.saved.first, multiplier.count == count, dx.count == count, dy.count == count,
            dx.dtype == dtype, dy.dtype == dtype
        else {
            throw AidgeError.shapeMismatch("Dropout backward got tensors that do not match its plan")
        }
        switch dtype {
        case .float32: scale(dy.pointer(as: Float.self), multiplier.pointer(as: Float.self), dx.pointer(as: Float.self))
        default: scale(dy.pointer(as: Double.self), multiplier.pointer(as: Double.self), dx.pointer(as: Double.self))
        }
    }

    private func scale<T: GradientFloat>(_ dy: UnsafeMutablePointer<T>, _ m: UnsafeMutablePointer<T>, _ dx: UnsafeMutablePointer<T>) {
        Parallel.forEach(count, grain: 1 << 14) { range in
            for i in range { dx[i] += dy[i] * m[i] }
        }
    }
}
