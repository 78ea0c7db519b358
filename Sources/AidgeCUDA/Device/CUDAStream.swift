import Synchronization

/// The stream CUDA work is queued on. Every kernel and copy of the backend runs on `CUDAStream.current`: the
/// stream set around a run (`CUDAStream.$scoped.withValue(stream) { ... }`), else the process's default
/// (`CUDAStream.setDefault`, which Python's `aidge.cuda.set_stream` calls with torch's current stream), else 0, the
/// legacy default stream, which orders work with every other blocking stream of the context.
public enum CUDAStream {
    /// A `CUstream` handle (an address) for the work of one scope; nil leaves the default.
    @TaskLocal public static var scoped: UInt?

    private static let fallback = Atomic<UInt>(0)

    /// Sets the stream used outside any scope; returns the one it replaces.
    @discardableResult
    public static func setDefault(_ stream: UInt) -> UInt { fallback.exchange(stream, ordering: .relaxed) }

    /// The stream work is queued on now.
    public static var current: UInt { scoped ?? fallback.load(ordering: .relaxed) }

    /// The current stream as the driver takes it.
    static var handle: OpaquePointer? { OpaquePointer(bitPattern: current) }
}
