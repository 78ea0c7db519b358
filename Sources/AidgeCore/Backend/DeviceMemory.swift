import Synchronization

/// The memory of a device other than the host (a GPU): how its storages are made and filled. A backend whose
/// kernels run there registers one, so that the core can place a plan's arena, inputs, constants and outputs on
/// the device without knowing the device's API.
public protocol DeviceMemory: AnyObject, Sendable {
    /// The device whose memory this is.
    var device: Device { get }
    /// A new storage of `byteCount` bytes on the device (contents undefined).
    func allocate(byteCount: Int) throws -> Storage
    /// Copies the elements of `source` into `destination`: same dtype and shape, any strides, each on the host
    /// or on this device. Copies to the host are complete when this returns; others are ordered on the device
    /// before any later kernel.
    func copy(_ source: Tensor, into destination: Tensor) throws
    /// Sets every element of the contiguous `tensor`, on this device, to zero.
    func zero(_ tensor: Tensor) throws
    /// Adds `source` (any strides, on this device or the host) into the contiguous `target` on this device, of the
    /// same shape and float dtype: how gradients accumulate.
    func accumulate(_ source: Tensor, into target: Tensor) throws
}

/// Device memories by backend and by device.
public final class DeviceMemories: Sendable {
    public static let shared = DeviceMemories()
    private let byBackend = Mutex<[String: any DeviceMemory]>([:])

    public init() {}

    /// Says that `backend`'s kernels read and write `memory`'s device.
    public func register(_ memory: any DeviceMemory, backend: String) {
        byBackend.withLock { $0[backend] = memory }
    }

    /// The device memory `backend` runs on, or nil for the host.
    public func memory(backend: String) -> (any DeviceMemory)? {
        byBackend.withLock { $0[backend] }
    }

    /// The registered memory of `device`, or nil.
    public func memory(device: Device) -> (any DeviceMemory)? {
        byBackend.withLock { $0.values.first { $0.device == device } }
    }
}

extension Tensor {
    /// Whether the elements are in host memory, where CPU code may read them.
    public var isOnHost: Bool { device == .cpu }

    /// A contiguous copy of this tensor on `target` (host or a device with registered memory).
    public func copy(to target: Device) throws -> Tensor {
        if target == .cpu && isOnHost { return copy() }
        let memories = DeviceMemories.shared
        guard let memory = target == .cpu ? memories.memory(device: device) : memories.memory(device: target) else {
            throw AidgeError.device("no backend that runs on \(target == .cpu ? device : target) is loaded")
        }
        let destination = target == .cpu
            ? Tensor(zeros: shape, dtype: dtype)
            : Tensor(unchecked: try memory.allocate(byteCount: byteCount), dtype: dtype, shape: shape,
                strides: ShapeUtil.contiguousStrides(shape), offset: 0)
        try memory.copy(self, into: destination)
        return destination
    }

    /// This tensor if it is contiguous, else a contiguous copy on the same device.
    public func contiguousOnDevice() throws -> Tensor {
        isContiguous ? self : try copy(to: device)
    }

    /// This tensor's elements where host code can read them: itself on the host, else a host copy.
    public func onHost() throws -> Tensor {
        isOnHost ? self : try copy(to: .cpu)
    }
}
