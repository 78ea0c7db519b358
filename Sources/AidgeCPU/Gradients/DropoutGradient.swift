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
/// Random bits: each element hashes its index with the run's key (`Bits`), so any split of the elements over
/// threads draws the same mask. Each run draws a new key from the kernel's
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
        generator = try nodeGenerator(request)
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
        let (drops, ratio) = try DropoutSettings.resolve(inputs, training: training)
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
        // Kept where the element's 31 random bits are >= ratio · 2^31 (2^31 keeps nothing).
        let bits = Bits(key: key, threshold: UInt32((ratio * 2_147_483_648).rounded(.up)))
        let keepNone = ratio >= 1
        let maskPointer = mask.map { $0.rawPointer.assumingMemoryBound(to: UInt8.self) }
        switch dtype {
        case .float32:
            drop(
                x.pointer(as: Float.self), y.pointer(as: Float.self), multiplier.pointer(as: Float.self), maskPointer,
                bits, scale: keepNone ? 0 : Float(1 / (1 - ratio)))
        default:
            drop(
                x.pointer(as: Double.self), y.pointer(as: Double.self), multiplier.pointer(as: Double.self), maskPointer,
                bits, scale: keepNone ? 0 : 1 / (1 - ratio))
        }
    }

    private func fill<T: GradientFloat>(_ p: UnsafeMutablePointer<T>, _ value: T) {
        Parallel.forEach(count, grain: 1 << 15) { range in
            for i in range { p[i] = value }
        }
    }

    /// The keep decision of each element: a counter-based hash (two rounds of Wellons' lowbias32, keyed by the
    /// run's 64-bit key) of the element's index, whose top 31 bits are compared with the threshold (in [0, 2^31])
    /// by the sign of their difference: arithmetic only, so 8 elements go through vector instructions at once
    /// (a vector unsigned comparison is split into lanes).
    struct Bits {
        let k0: UInt32, k1: UInt32
        let threshold: UInt32

        init(key: UInt64, threshold: UInt32) {
            k0 = UInt32(truncatingIfNeeded: key)
            k1 = UInt32(truncatingIfNeeded: key >> 32)
            self.threshold = threshold
        }

        @inline(__always)
        static func mix(_ value: SIMD8<UInt32>) -> SIMD8<UInt32> {
            var h = value
            h ^= h &>> 16
            h &*= 0x7FEB_352D
            h ^= h &>> 15
            h &*= 0x846C_A68B
            h ^= h &>> 16
            return h
        }

        /// 1 where element `start + lane` is kept, else 0.
        @inline(__always)
        func kept(_ start: Int) -> SIMD8<UInt32> {
            let index = SIMD8<UInt32>(repeating: UInt32(truncatingIfNeeded: start)) &+ SIMD8(0, 1, 2, 3, 4, 5, 6, 7)
            let high = UInt32(truncatingIfNeeded: start >> 32) &* 0x9E37_79B9
            let h = Self.mix(Self.mix(index ^ SIMD8(repeating: k0)) ^ SIMD8(repeating: k1 ^ high))
            return (((h &>> 1) &- SIMD8(repeating: threshold)) &>> 31) ^ SIMD8(repeating: 1)
        }
    }

    private func drop<T: GradientFloat & SIMDScalar>(
        _ x: UnsafeMutablePointer<T>, _ y: UnsafeMutablePointer<T>, _ multiplier: UnsafeMutablePointer<T>,
        _ mask: UnsafeMutablePointer<UInt8>?, _ bits: Bits, scale: T
    ) {
        let count = self.count
        let blocks = (count + 7) / 8
        let vs = SIMD8<T>(repeating: scale)
        Parallel.forEach(blocks, grain: 1 << 11) { range in
            for block in range {
                let i = block * 8
                let keep = bits.kept(i)
                let m = SIMD8<T>(keep) * vs
                if i + 8 <= count {
                    UnsafeMutableRawPointer(multiplier + i).storeBytes(of: m, as: SIMD8<T>.self)
                    let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<T>.self) * m
                    UnsafeMutableRawPointer(y + i).storeBytes(of: v, as: SIMD8<T>.self)
                    if let mask {
                        UnsafeMutableRawPointer(mask + i).storeBytes(
                            of: SIMD8<UInt8>(truncatingIfNeeded: keep), as: SIMD8<UInt8>.self)
                    }
                } else {
                    for l in 0..<(count - i) {
                        multiplier[i + l] = m[l]
                        y[i + l] = x[i + l] * m[l]
                        mask?[i + l] = UInt8(truncatingIfNeeded: keep[l])
                    }
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

    private func scale<T: GradientFloat>(
        _ dy: UnsafeMutablePointer<T>, _ m: UnsafeMutablePointer<T>, _ dx: UnsafeMutablePointer<T>
    ) {
        Parallel.forEach(count, grain: 1 << 14) { range in
            for i in range { dx[i] += dy[i] * m[i] }
        }
    }
}
