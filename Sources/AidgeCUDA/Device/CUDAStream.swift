/// The stream CUDA work is queued on. Every kernel and copy of the backend runs on `CUDAStream.current`, which
/// callers set around a run (`CUDAStream.$current.withValue(stream) { ... }`): the PyTorch wrapper passes torch's
/// current stream, so work is ordered with torch's own without synchronising the device. 0 is the default stream.
public enum CUDAStream {
    /// A `CUstream` handle, as an address.
    @TaskLocal public static var current: UInt = 0

    /// The current stream as the driver takes it.
    static var handle: OpaquePointer? { OpaquePointer(bitPattern: current) }
}
