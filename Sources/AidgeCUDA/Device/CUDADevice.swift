import AidgeCore
import Synchronization

/// One GPU as the backend uses it: its primary context (the one the CUDA runtime and PyTorch use, so device
/// pointers and streams are shared with them), its memory, its compiled kernels and its cuBLAS handle.
public final class CUDADevice: Sendable {
    let libraries: CUDALibraries
    public let ordinal: Int
    public let name: String
    /// Compute capability (major, minor): kernels are compiled for it.
    public let computeCapability: (major: Int, minor: Int)
    public let multiprocessorCount: Int
    let maxSharedMemoryOptin: Int
    private let contextAddress: UInt
    let allocator: DeviceAllocator
    /// Loaded kernels by source, then by name (addresses of `CUfunction`s).
    private let functions = Mutex<[String: [String: UInt]]>([:])
    private let blasAddress = Mutex<UInt>(0)
    private let dnnAddress = Mutex<UInt>(0)

    var driver: Driver { libraries.driver }
    public var device: Device { .cuda(ordinal) }
    public var isEmulated: Bool { libraries.isEmulated }

    private static let opened = Mutex<[Int: CUDADevice]>([:])

    /// The device `ordinal`, initialised on first use.
    public static func get(_ ordinal: Int = 0) throws -> CUDADevice {
        try opened.withLock { table in
            if let known = table[ordinal] { return known }
            let device = try CUDADevice(ordinal: ordinal)
            table[ordinal] = device
            return device
        }
    }

    /// How many CUDA devices there are (0 when the driver cannot be loaded).
    public static var count: Int {
        guard let libraries = try? CUDALibraries.get(), libraries.driver.initialize(0) == 0 else { return 0 }
        var n: Int32 = 0
        return libraries.driver.deviceCount(&n) == 0 ? Int(n) : 0
    }

    private init(ordinal: Int) throws {
        libraries = try CUDALibraries.get()
        let driver = libraries.driver
        try driver.check(driver.initialize(0), "initialisation")
        var count: Int32 = 0
        try driver.check(driver.deviceCount(&count), "counting devices")
        guard ordinal >= 0, ordinal < Int(count) else {
            throw AidgeError.device("there is no CUDA device \(ordinal) (\(count) found)")
        }
        var handle: Int32 = 0
        try driver.check(driver.deviceGet(&handle, Int32(ordinal)), "opening device \(ordinal)")
        var text = [CChar](repeating: 0, count: 256)
        try driver.check(driver.deviceName(&text, Int32(text.count), handle), "reading the device name")
        name = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        computeCapability = (
            try driver.attribute(.computeCapabilityMajor, device: handle),
            try driver.attribute(.computeCapabilityMinor, device: handle)
        )
        multiprocessorCount = try driver.attribute(.multiprocessorCount, device: handle)
        maxSharedMemoryOptin = try driver.attribute(.maxSharedMemoryPerBlockOptin, device: handle)
        var context: CUhandle?
        try driver.check(driver.primaryContextRetain(&context, handle), "retaining the primary context")
        contextAddress = UInt(bitPattern: context)
        self.ordinal = ordinal
        allocator = DeviceAllocator(driver: driver, device: .cuda(ordinal))
        try makeCurrent()
    }

    /// Makes this device's primary context current on the calling thread (every entry point calls it: the
    /// driver's current context is per thread).
    func makeCurrent() throws {
        try driver.check(driver.setCurrentContext(OpaquePointer(bitPattern: contextAddress)), "setting the context")
    }

    /// Waits for the work queued on the current stream.
    public func synchronize() throws {
        try makeCurrent()
        try driver.check(driver.streamSynchronize(CUDAStream.handle), "synchronising the stream")
    }

    /// The NVRTC options of this device's kernels.
    private var compileOptions: [String] {
        ["--gpu-architecture=compute_\(computeCapability.major)\(computeCapability.minor)", "--std=c++17"]
    }

    /// The kernel `name` of `source` (compiled and loaded on first use, then cached).
    func function(_ name: String, in source: String) throws -> OpaquePointer? {
        if let known = functions.withLock({ $0[source]?[name] }) { return OpaquePointer(bitPattern: known) }
        try makeCurrent()
        let ptx = try libraries.nvrtc.compile(KernelPrelude.text + source, name: name, options: compileOptions)
        var module: CUhandle?
        try ptx.withUnsafeBytes { code in
            guard let base = code.baseAddress else { return }
            try driver.check(driver.moduleLoadData(&module, base), "loading the module of kernel \(name)")
        }
        var loaded: [String: UInt] = [:]
        for kernel in KernelPrelude.kernelNames(in: source) {
            var function: CUhandle?
            try driver.check(driver.moduleGetFunction(&function, module, kernel), "finding kernel \(kernel)")
            loaded[kernel] = UInt(bitPattern: function)
        }
        guard let address = loaded[name] else { throw AidgeError.device("the kernel source defines no \(name)") }
        functions.withLock { $0[source] = loaded }
        return OpaquePointer(bitPattern: address)
    }

    /// This device's cuDNN handle, bound to the current stream; nil without cuDNN.
    func dnn() throws -> (CuDNN, OpaquePointer?)? {
        guard let cudnn = libraries.cudnn else { return nil }
        let handle = try Self.handle(in: dnnAddress) { created in
            try cudnn.check(cudnn.create(&created), "creating a handle")
        }
        try cudnn.check(cudnn.setStream(handle, CUDAStream.handle), "setting the stream")
        return (cudnn, handle)
    }

    /// The library handle kept in `slot`, made by `create` on first use.
    private static func handle(
        in slot: borrowing Mutex<UInt>, create: (inout OpaquePointer?) throws -> Void
    ) throws -> OpaquePointer? {
        try slot.withLock { address -> OpaquePointer? in
            if address == 0 {
                var created: OpaquePointer?
                try create(&created)
                address = UInt(bitPattern: created)
            }
            return OpaquePointer(bitPattern: address)
        }
    }

    /// Whether convolutions can run through cuDNN.
    public var hasCuDNN: Bool { libraries.cudnn != nil }

    /// This device's cuBLAS handle, bound to the current stream.
    func blas() throws -> OpaquePointer? {
        let cublas = libraries.cublas
        let handle = try Self.handle(in: blasAddress) { created in
            try cublas.check(cublas.create(&created), "creating a handle")
        }
        try cublas.check(cublas.setStream(handle, CUDAStream.handle), "setting the stream")
        return handle
    }
}
