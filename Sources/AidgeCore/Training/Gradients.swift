/// Small gradient arithmetic the scheduler and optimizers need outside the kernels (seeding, zeroing).
public enum Gradients {
    /// Sets every element of the contiguous `tensor` (on the host or a device) to zero.
    public static func zero(_ tensor: Tensor) throws {
        if !tensor.isOnHost { return try memory(of: tensor).zero(tensor) }
        tensor.rawPointer.initializeMemory(as: UInt8.self, repeating: 0, count: tensor.byteCount)
    }

    /// Adds `source` (any strides) to the contiguous `target` of the same shape and dtype (float32 or float64), on
    /// the target's device.
    public static func accumulate(_ source: Tensor, into target: Tensor) throws {
        guard source.shape == target.shape else {
            throw AidgeError.shapeMismatch(
                "a gradient of shape \(ShapeUtil.text(source.shape)) for a value of shape \(ShapeUtil.text(target.shape))")
        }
        guard source.dtype == target.dtype else {
            throw AidgeError.unsupportedType("a \(source.dtype) gradient for a \(target.dtype) value")
        }
        if !target.isOnHost { return try memory(of: target).accumulate(source, into: target) }
        let src = try source.onHost().contiguous()
        switch target.dtype {
        case .float32: add(src.pointer(as: Float.self), target.pointer(as: Float.self), target.count)
        case .float64: add(src.pointer(as: Double.self), target.pointer(as: Double.self), target.count)
        default: throw AidgeError.unsupportedType("gradients of \(target.dtype) values are not supported")
        }
    }

    private static func memory(of tensor: Tensor) throws -> any DeviceMemory {
        guard let memory = DeviceMemories.shared.memory(device: tensor.device) else {
            throw AidgeError.device("no backend that runs on \(tensor.device) is loaded")
        }
        return memory
    }

    private static func add<T: BinaryFloatingPoint>(_ s: UnsafeMutablePointer<T>, _ d: UnsafeMutablePointer<T>, _ n: Int) {
        for i in 0..<n { d[i] += s[i] }
    }
}
