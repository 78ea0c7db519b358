import AidgeCore

/// float16 and bfloat16 through float32: an operator whose CPU kernel does not take a 16-bit float type runs its
/// float32 kernel on widened copies of those inputs, and its float32 results are rounded back (as 16-bit
/// arithmetic is done on processors without it).
enum HalfPrecisionFallback {
    static let types: Set<DType> = [.float16, .bfloat16]

    /// Wraps every CPU factory of `registry`: a factory that refuses a 16-bit float type falls back to float32.
    static func install(_ registry: KernelRegistry) {
        for type in registry.types(backend: CPUBackend.name) {
            guard let factory = registry.factory(type, backend: CPUBackend.name) else { continue }
            registry.register(type, backend: CPUBackend.name) { request in
                do {
                    return try factory(request)
                } catch AidgeError.unsupportedType(let message) {
                    guard let widened = widened(request) else { throw AidgeError.unsupportedType(message) }
                    return WidenedKernel(request: request, inner: try factory(widened))
                }
            }
        }
    }

    /// `request` with every 16-bit float value as float32, or nil when it has none.
    private static func widened(_ request: KernelRequest) -> KernelRequest? {
        let uses = request.inputs.contains { $0.map { types.contains($0.dtype) } ?? false }
            || request.outputs.contains { types.contains($0.dtype) }
        guard uses else { return nil }
        func widen(_ info: ValueInfo) -> ValueInfo {
            guard types.contains(info.dtype) else { return info }
            return ValueInfo(dtype: .float32, shape: info.shape, value: info.value?.cast(to: .float32))
        }
        return KernelRequest(
            op: request.op, nodeName: request.nodeName, inputs: request.inputs.map { $0.map(widen) },
            outputs: request.outputs.map(widen))
    }
}

/// Runs a float32 kernel for a node with 16-bit float values through float32 copies made when it is built.
private final class WidenedKernel: Kernel {
    let inner: any Kernel
    /// The float32 copy of each 16-bit input and output (nil: passed as it is).
    let inputCopies: [Tensor?]
    let outputCopies: [Tensor?]

    init(request: KernelRequest, inner: any Kernel) {
        self.inner = inner
        func copy(_ info: ValueInfo) -> Tensor? {
            HalfPrecisionFallback.types.contains(info.dtype) ? Tensor(zeros: info.shape, dtype: .float32) : nil
        }
        inputCopies = request.inputs.map { $0.flatMap(copy) }
        outputCopies = request.outputs.map(copy)
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        var widenedInputs = inputs
        for (i, copy) in inputCopies.enumerated() {
            guard let copy, i < inputs.count, let input = inputs[i] else { continue }
            guard input.count == copy.count else {
                throw AidgeError.shapeMismatch("input \(i) does not have the \(copy.count) elements it was planned for")
            }
            let target = copy.pointer(as: Float.self)
            if input.dtype == .bfloat16 {
                let source = input.pointer(as: BFloat16.self)
                for k in 0..<copy.count { target[k] = source[k].floatValue }
            } else {
                let source = input.pointer(as: Float16.self)
                for k in 0..<copy.count { target[k] = Float(source[k]) }
            }
            widenedInputs[i] = copy
        }
        try inner.run(widenedInputs, zip(outputs, outputCopies).map { output, copy in copy ?? output })
        for (output, copy) in zip(outputs, outputCopies) {
            guard let copy else { continue }
            let source = copy.pointer(as: Float.self)
            if output.dtype == .bfloat16 {
                let target = output.pointer(as: BFloat16.self)
                for k in 0..<copy.count { target[k] = BFloat16(source[k]) }
            } else {
                let target = output.pointer(as: Float16.self)
                for k in 0..<copy.count { target[k] = Float16(source[k]) }
            }
        }
    }
}
