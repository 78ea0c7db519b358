import AidgeCore

/// bfloat16 through float32: an operator whose CPU kernel does not take bfloat16 runs its float32 kernel on
/// widened copies of its bfloat16 inputs, and its float32 results are rounded back to bfloat16 (as bfloat16
/// arithmetic is done on processors without it).
enum BFloat16Fallback {
    /// Wraps every CPU factory of `registry`: a factory that refuses bfloat16 falls back to its float32 kernel.
    static func install(_ registry: KernelRegistry) {
        for type in registry.types(backend: CPUBackend.name) {
            guard let factory = registry.factory(type, backend: CPUBackend.name) else { continue }
            registry.register(type, backend: CPUBackend.name) { request in
                do {
                    return try factory(request)
                } catch AidgeError.unsupportedType(let message) {
                    guard let widened = widened(request) else { throw AidgeError.unsupportedType(message) }
                    return try WidenedKernel(request: request, inner: try factory(widened))
                }
            }
        }
    }

    /// `request` with every bfloat16 value as float32, or nil when it has none.
    private static func widened(_ request: KernelRequest) -> KernelRequest? {
        let usesBFloat16 =
            request.inputs.contains { $0?.dtype == .bfloat16 } || request.outputs.contains { $0.dtype == .bfloat16 }
        guard usesBFloat16 else { return nil }
        func widen(_ info: ValueInfo) -> ValueInfo {
            guard info.dtype == .bfloat16 else { return info }
            return ValueInfo(dtype: .float32, shape: info.shape, value: info.value?.cast(to: .float32))
        }
        return KernelRequest(
            op: request.op, nodeName: request.nodeName, inputs: request.inputs.map { $0.map(widen) },
            outputs: request.outputs.map(widen))
    }
}

/// Runs a float32 kernel for a bfloat16 node through float32 copies made when the kernel is built.
private final class WidenedKernel: Kernel {
    let inner: any Kernel
    /// The float32 copy of each bfloat16 input and output (nil: passed as it is).
    let inputCopies: [Tensor?]
    let outputCopies: [Tensor?]

    init(request: KernelRequest, inner: any Kernel) throws {
        self.inner = inner
        inputCopies = request.inputs.map { info in
            info.flatMap { $0.dtype == .bfloat16 ? Tensor(zeros: $0.shape, dtype: .float32) : nil }
        }
        outputCopies = request.outputs.map { $0.dtype == .bfloat16 ? Tensor(zeros: $0.shape, dtype: .float32) : nil }
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        var widenedInputs = inputs
        for (i, copy) in inputCopies.enumerated() {
            guard let copy, i < inputs.count, let input = inputs[i] else { continue }
            guard input.count == copy.count else {
                throw AidgeError.shapeMismatch("input \(i) does not have the \(copy.count) elements it was planned for")
            }
            let source = input.pointer(as: BFloat16.self)
            let target = copy.pointer(as: Float.self)
            for k in 0..<copy.count { target[k] = source[k].floatValue }
            widenedInputs[i] = copy
        }
        let widenedOutputs = zip(outputs, outputCopies).map { output, copy in copy ?? output }
        try inner.run(widenedInputs, widenedOutputs)
        for (output, copy) in zip(outputs, outputCopies) {
            guard let copy else { continue }
            let source = copy.pointer(as: Float.self)
            let target = output.pointer(as: BFloat16.self)
            for k in 0..<copy.count { target[k] = BFloat16(source[k]) }
        }
    }
}
