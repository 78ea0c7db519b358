import Synchronization

/// Where the gradient of a tensor lives, shared by every copy of the tensor's view (like PyTorch's `.grad`).
///
/// A reference, so that a parameter's gradient written by `backward` is seen through the Producer, the optimizer
/// and Python alike. Backward accumulates into it; optimizers read it; `reset` empties it.
public final class GradientCell: Sendable {
    private let state = Mutex<Tensor?>(nil)

    public init() {}

    /// The gradient, or nil when none was written since the last reset.
    public var tensor: Tensor? {
        get { state.withLock { $0 } }
        set { state.withLock { $0 = newValue } }
    }

    /// The gradient, created zero-filled with `shape` and `dtype` when absent or of another shape.
    public func accumulator(shape: [Int], dtype: DType) -> Tensor {
        state.withLock { current in
            if let t = current, t.shape == shape, t.dtype == dtype, t.isContiguous, t.isOnHost { return t }
            let fresh = Tensor(zeros: shape, dtype: dtype)
            current = fresh
            return fresh
        }
    }

    /// The gradient on `memory`'s device (a device parameter's gradient lives where the parameter does), created
    /// zero-filled when absent, elsewhere or of another shape.
    public func accumulator(shape: [Int], dtype: DType, on memory: any DeviceMemory) throws -> Tensor {
        try state.withLock { current in
            if let t = current, t.shape == shape, t.dtype == dtype, t.isContiguous, t.device == memory.device {
                return t
            }
            let fresh = try Tensor(storage: memory.allocate(byteCount: ShapeUtil.count(shape) * dtype.byteSize), dtype: dtype, shape: shape)
            try memory.zero(fresh)
            current = fresh
            return fresh
        }
    }

    /// Forgets the gradient (the next backward starts from zero).
    public func reset() { tensor = nil }
}
