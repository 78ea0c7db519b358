import AidgeCore

/// The shape operators and Identity move bytes unchanged: a device-to-device copy (the planner elides most of
/// them by making the output a window of the input).
final class DeviceCopyKernel: Kernel {
    private let memory: CUDAMemory

    init() throws { memory = try CUDABackend.memory() }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard let input = inputs.first ?? nil else { throw AidgeError.invalidArgument("copy: missing input") }
        let output = outputs[0]
        try memory.copy(
            Tensor(storage: input.storage, dtype: output.dtype, shape: output.shape, offset: input.offset), into: output)
    }
}

/// Transpose: a strided read of the input in the permuted order.
final class TransposeKernel: Kernel {
    private let cuda: CUDADevice
    private let permutation: [Int]

    init(_ request: KernelRequest) throws {
        cuda = try CUDABackend.device()
        let x = try request.input(0)
        permutation = try OperatorSchema.transposePermutation(request.attributes, rank: x.shape.count)
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard let input = inputs.first ?? nil else { throw AidgeError.invalidArgument("Transpose: missing input") }
        try cuda.makeCurrent()
        try StridedCopy.run(on: cuda, from: try input.permuted(permutation), to: outputs[0])
    }
}

func registerDataMovementKernels(_ registry: KernelRegistry) {
    for type in ["Reshape", "Flatten", "Squeeze", "Unsqueeze", "Dropout"] {
        registry.register(type, backend: CUDABackend.name) { _ in try DeviceCopyKernel() }
    }
    registry.register("Transpose", backend: CUDABackend.name) { try TransposeKernel($0) }
}
