import AidgeCore
import Synchronization

/// Dropout's training forward and backward on the device: each element is kept with probability `1 - ratio`
/// and scaled by `1 / (1 - ratio)`, the multiplier of each element saved for backward (`dx += dy · multiplier`),
/// the boolean mask written to output 1 when the node has it. The `training_mode` input overrides the plan's mode.
///
/// Random bits: each element hashes its index with the run's key (SplitMix64), so a launch's split into threads
/// does not change the mask; each run takes the next key of the node, from the `seed` attribute (the same masks
/// run after run) or a random seed. The masks are not the CPU backend's.
final class DropoutGradientKernel: GradientKernel {
    private let cuda: CUDADevice
    private let function: OpaquePointer?
    private let backwardFunction: OpaquePointer?
    private let count: Int
    private let dtype: DType
    private let shape: [Int]
    private let seed: UInt64
    private let runs = Atomic<UInt64>(0)

    init(_ request: KernelRequest) throws {
        cuda = try CUDABackend.device()
        let x = try request.input(0)
        guard x.dtype == .float32 || x.dtype == .float64 else {
            throw AidgeError.unsupportedType("Dropout training on CUDA takes float32 or float64, got \(x.dtype)")
        }
        dtype = x.dtype
        count = x.count
        shape = x.shape
        seed = request.attributes.has("seed")
            ? UInt64(bitPattern: Int64(try request.attributes.int("seed"))) : UInt64.random(in: .min ... .max)
        let t = dtype == .float32 ? "float" : "double"
        function = try cuda.function("dropout", in: """
            extern "C" __global__ void dropout(const \(t)* __restrict__ x, \(t)* __restrict__ y, \(t)* multiplier,
                    unsigned char* mask, i64 count, u64 key, double ratio, int drops) {
                double scale = ratio < 1 ? 1.0 / (1.0 - ratio) : 0.0;
                for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < count; i += (i64)gridDim.x * blockDim.x) {
                    u64 z = key + (u64)i * 0x9E3779B97F4A7C15ull;
                    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
                    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
                    z ^= z >> 31;
                    double u = (double)(z >> 11) * (1.0 / 9007199254740992.0);
                    bool keep = !drops || u >= ratio;
                    \(t) m = keep ? (\(t))(drops ? scale : 1.0) : (\(t))0;
                    multiplier[i] = m;
                    y[i] = x[i] * m;
                    if (mask) mask[i] = keep ? 1 : 0;
                }
            }
            """)
        backwardFunction = try cuda.function("dropout_backward", in: """
            extern "C" __global__ void dropout_backward(const \(t)* __restrict__ dy, const \(t)* __restrict__ multiplier,
                                                        \(t)* dx, i64 count) {
                for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < count; i += (i64)gridDim.x * blockDim.x) {
                    dx[i] += dy[i] * multiplier[i];
                }
            }
            """)
    }

    var savedInfos: [ValueInfo] { [ValueInfo(dtype: dtype, shape: shape)] }
    var hasTrainingForward: Bool { true }
    func readsInput(_ index: Int) -> Bool { false }
    func readsOutput(_ index: Int) -> Bool { false }

    func forward(_ inputs: [Tensor?], _ outputs: [Tensor], saved: [Tensor], training: Bool) throws {
        guard let x = inputs.first ?? nil, let multiplier = saved.first else {
            throw AidgeError.invalidModel("Dropout: missing input or saved multiplier")
        }
        let mask = outputs.count > 1 ? outputs[1] : nil
        if let mask, mask.count != count || mask.dtype != .bool {
            throw AidgeError.shapeMismatch("Dropout mask output must be bool of the input's shape")
        }
        let (drops, ratio) = try DropoutSettings.resolve(inputs, training: training)
        guard count > 0 else { return }
        // SplitMix64 of the seed and the run number: a fresh key per run.
        var key = seed &+ runs.add(1, ordering: .relaxed).newValue &* 0x9E37_79B9_7F4A_7C15
        key = (key ^ (key >> 30)) &* 0xBF58_476D_1CE4_E5B9
        key = (key ^ (key >> 27)) &* 0x94D0_49BB_1331_11EB
        try cuda.makeCurrent()
        try cuda.launch(
            function, grid: (cuda.blocks(for: count), 1, 1), block: (256, 1, 1),
            [.tensor(x), .tensor(outputs[0]), .tensor(multiplier), mask.map(KernelArgument.tensor) ?? .null,
             .int64(Int64(count)), .int64(Int64(bitPattern: key ^ (key >> 31))), .double(ratio), .int32(drops ? 1 : 0)],
            name: "Dropout training forward")
    }

    func backward(_ pass: BackwardPass) throws {
        guard let dy = pass.outputGradient(0), let dx = pass.inputGradient(0), let multiplier = pass.saved.first,
            count > 0
        else { return }
        try cuda.makeCurrent()
        try cuda.launch(
            backwardFunction, grid: (cuda.blocks(for: count), 1, 1), block: (256, 1, 1),
            [.tensor(dy), .tensor(multiplier), .tensor(dx), .int64(Int64(count))], name: "Dropout backward")
    }
}
