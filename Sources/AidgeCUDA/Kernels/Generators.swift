import AidgeCore

/// ConstantOfShape: every element is the attribute's value (its bytes, copied as they are).
final class FillKernel: Kernel {
    private let cuda: CUDADevice
    private let function: OpaquePointer?
    private let bits: Int64

    init(_ request: KernelRequest) throws {
        cuda = try CUDABackend.device()
        let value = request.attributes.has("value") ? try request.attributes.tensor("value") : Tensor(scalar: Float(0))
        guard value.count == 1 else {
            throw AidgeError.invalidModel("attribute 'value' must hold one element, it holds \(value.count)")
        }
        let bytes = value.dtype.byteSize
        guard [1, 2, 4, 8].contains(bytes), value.dtype != .string else {
            throw AidgeError.unsupportedType("ConstantOfShape on CUDA: \(value.dtype)")
        }
        let host = try value.onHost().contiguous()
        var raw: Int64 = 0
        withUnsafeMutableBytes(of: &raw) { $0.copyMemory(from: UnsafeRawBufferPointer(start: host.rawPointer, count: bytes)) }
        bits = raw
        let type = ["", "unsigned char", "unsigned short", "", "unsigned int", "", "", "", "u64"][bytes]
        function = try cuda.function("fill", in: """
            extern "C" __global__ void fill(\(type)* __restrict__ y, i64 count, u64 bits) {
                for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < count; i += (i64)gridDim.x * blockDim.x) {
                    y[i] = (\(type))bits;
                }
            }
            """)
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let y = outputs[0]
        guard y.count > 0 else { return }
        try cuda.makeCurrent()
        try cuda.launch(
            function, grid: (cuda.blocks(for: y.count), 1, 1), block: (256, 1, 1),
            [.tensor(y), .int64(Int64(y.count)), .int64(bits)], name: "ConstantOfShape")
    }
}

/// Range: start, start + delta, ... accumulated in the element type by one thread, as the CPU (and ONNX Runtime)
/// do, so rounding matches; the outputs are short (their length is planned from the values).
final class RangeKernel: Kernel {
    private let cuda: CUDADevice
    private let function: OpaquePointer?

    init(_ request: KernelRequest) throws {
        cuda = try CUDABackend.device()
        let element = try ElementType.of(try request.input(0).dtype, for: "Range")
        function = try cuda.function("range", in: """
            extern "C" __global__ void range(const \(element.stored)* start, const \(element.stored)* delta,
                                             \(element.stored)* __restrict__ y, i64 count) {
                if (blockIdx.x != 0 || threadIdx.x != 0) return;
                \(element.stored) v = *start;
                for (i64 i = 0; i < count; ++i) {
                    y[i] = v;
                    v = \(element.store("(\(element.compute))v + (\(element.compute))(*delta)"));
                }
            }
            """)
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard inputs.count >= 3, let start = inputs[0], let delta = inputs[2] else {
            throw AidgeError.invalidArgument("Range is missing an input")
        }
        guard outputs[0].count > 0 else { return }
        try cuda.makeCurrent()
        try cuda.launch(
            function, grid: (1, 1, 1), block: (1, 1, 1),
            [.tensor(start), .tensor(delta), .tensor(outputs[0]), .int64(Int64(outputs[0].count))], name: "Range")
    }
}

func registerGeneratorKernels(_ registry: KernelRegistry) {
    registry.register("ConstantOfShape", backend: CUDABackend.name) { try FillKernel($0) }
    registry.register("Range", backend: CUDABackend.name) { try RangeKernel($0) }
}
