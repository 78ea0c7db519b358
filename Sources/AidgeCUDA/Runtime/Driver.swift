import AidgeCore

/// Handles of the driver API, as the C declarations make them (opaque pointers).
typealias CUhandle = OpaquePointer
/// A device address.
typealias CUdeviceptr = UInt64

/// The CUDA driver API functions the backend calls, resolved from `libcuda.so.1` (declared here, so no CUDA
/// header is needed to build).
///
/// `@unchecked Sendable`: an immutable table of C function addresses, which any thread may call.
struct Driver: @unchecked Sendable {
    typealias Status = Int32
    let library: SharedLibrary
    let initialize: @convention(c) (UInt32) -> Status
    let driverVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> Status
    let deviceCount: @convention(c) (UnsafeMutablePointer<Int32>) -> Status
    let deviceGet: @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Status
    let deviceName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Status
    let deviceAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> Status
    let primaryContextRetain: @convention(c) (UnsafeMutablePointer<CUhandle?>, Int32) -> Status
    let setCurrentContext: @convention(c) (CUhandle?) -> Status
    let memoryAllocate: @convention(c) (UnsafeMutablePointer<CUdeviceptr>, Int) -> Status
    let memoryFree: @convention(c) (CUdeviceptr) -> Status
    let copyHostToDevice: @convention(c) (CUdeviceptr, UnsafeRawPointer?, Int, CUhandle?) -> Status
    let copyDeviceToHost: @convention(c) (UnsafeMutableRawPointer?, CUdeviceptr, Int, CUhandle?) -> Status
    let copyDeviceToDevice: @convention(c) (CUdeviceptr, CUdeviceptr, Int, CUhandle?) -> Status
    let setBytes: @convention(c) (CUdeviceptr, UInt8, Int, CUhandle?) -> Status
    let pointerAttribute: @convention(c) (UnsafeMutableRawPointer, Int32, CUdeviceptr) -> Status
    let streamSynchronize: @convention(c) (CUhandle?) -> Status
    let eventCreate: @convention(c) (UnsafeMutablePointer<CUhandle?>, UInt32) -> Status
    let eventRecord: @convention(c) (CUhandle?, CUhandle?) -> Status
    let eventDestroy: @convention(c) (CUhandle?) -> Status
    let streamWaitEvent: @convention(c) (CUhandle?, CUhandle?, UInt32) -> Status
    let moduleLoadData: @convention(c) (UnsafeMutablePointer<CUhandle?>, UnsafeRawPointer) -> Status
    let moduleGetFunction: @convention(c) (UnsafeMutablePointer<CUhandle?>, CUhandle?, UnsafePointer<CChar>) -> Status
    let functionSetAttribute: @convention(c) (CUhandle?, Int32, Int32) -> Status
    let launchKernel: @convention(c) (
        CUhandle?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, CUhandle?,
        UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?
    ) -> Status
    let errorString: @convention(c) (Status, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Status

    init(_ library: SharedLibrary) throws {
        self.library = library
        initialize = try library.function("cuInit")
        driverVersion = try library.function("cuDriverGetVersion")
        deviceCount = try library.function("cuDeviceGetCount")
        deviceGet = try library.function("cuDeviceGet")
        deviceName = try library.function("cuDeviceGetName")
        deviceAttribute = try library.function("cuDeviceGetAttribute")
        primaryContextRetain = try library.function("cuDevicePrimaryCtxRetain")
        setCurrentContext = try library.function("cuCtxSetCurrent")
        memoryAllocate = try library.function("cuMemAlloc_v2")
        memoryFree = try library.function("cuMemFree_v2")
        copyHostToDevice = try library.function("cuMemcpyHtoDAsync_v2")
        copyDeviceToHost = try library.function("cuMemcpyDtoHAsync_v2")
        copyDeviceToDevice = try library.function("cuMemcpyDtoDAsync_v2")
        setBytes = try library.function("cuMemsetD8Async")
        pointerAttribute = try library.function("cuPointerGetAttribute")
        streamSynchronize = try library.function("cuStreamSynchronize")
        eventCreate = try library.function("cuEventCreate")
        eventRecord = try library.function("cuEventRecord")
        eventDestroy = try library.function("cuEventDestroy_v2")
        streamWaitEvent = try library.function("cuStreamWaitEvent")
        moduleLoadData = try library.function("cuModuleLoadData")
        moduleGetFunction = try library.function("cuModuleGetFunction")
        functionSetAttribute = try library.function("cuFuncSetAttribute")
        launchKernel = try library.function("cuLaunchKernel")
        errorString = try library.function("cuGetErrorString")
    }

    /// Throws when a driver call failed, with the driver's description and what was being done.
    func check(_ status: Status, _ what: @autoclosure () -> String) throws {
        guard status != 0 else { return }
        var text: UnsafePointer<CChar>?
        let description = errorString(status, &text) == 0 ? text.map { String(cString: $0) } : nil
        throw AidgeError.device("CUDA \(what()) failed: \(description ?? "error") (\(status))")
    }

    /// Device attributes the backend reads (`CUdevice_attribute` values).
    enum Attribute: Int32 {
        case maxThreadsPerBlock = 1
        case maxSharedMemoryPerBlock = 8
        case multiprocessorCount = 16
        case computeCapabilityMajor = 75
        case computeCapabilityMinor = 76
        case maxSharedMemoryPerBlockOptin = 97
    }

    func attribute(_ attribute: Attribute, device: Int32) throws -> Int {
        var value: Int32 = 0
        try check(deviceAttribute(&value, attribute.rawValue, device), "reading device attribute \(attribute)")
        return Int(value)
    }
}
