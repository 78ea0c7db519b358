import AidgeCore

/// The cuBLAS functions the backend calls, resolved from `libcublas.so` (column-major, host scalars).
///
/// `@unchecked Sendable`: an immutable table of C function addresses.
struct CuBLAS: @unchecked Sendable {
    typealias Status = Int32
    let library: SharedLibrary
    let create: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status
    let setStream: @convention(c) (OpaquePointer?, OpaquePointer?) -> Status
    let setMathMode: @convention(c) (OpaquePointer?, Int32) -> Status
    let gemmStridedBatchedEx: @convention(c) (
        OpaquePointer?, Int32, Int32, Int32, Int32, Int32, UnsafeRawPointer, UnsafeRawPointer?, Int32, Int32, Int64,
        UnsafeRawPointer?, Int32, Int32, Int64, UnsafeRawPointer, UnsafeMutableRawPointer?, Int32, Int32, Int64, Int32,
        Int32, Int32
    ) -> Status
    let statusString: (@convention(c) (Status) -> UnsafePointer<CChar>?)?

    init(_ library: SharedLibrary) throws {
        self.library = library
        create = try library.function("cublasCreate_v2")
        setStream = try library.function("cublasSetStream_v2")
        setMathMode = try library.function("cublasSetMathMode")
        gemmStridedBatchedEx = try library.function("cublasGemmStridedBatchedEx")
        statusString = library.has("cublasGetStatusString") ? try library.function("cublasGetStatusString") : nil
    }

    func check(_ status: Status, _ what: @autoclosure () -> String) throws {
        guard status != 0 else { return }
        let text = statusString?(status).map { String(cString: $0) } ?? "status \(status)"
        throw AidgeError.device("cuBLAS \(what()) failed: \(text)")
    }

    /// `cudaDataType` values.
    enum DataType: Int32 {
        case float32 = 0
        case float16 = 2
        case bfloat16 = 14
    }

    /// `cublasComputeType_t` values.
    enum ComputeType: Int32 {
        case float32 = 68
        case float32Pedantic = 69
        case float32FastTF32 = 77
    }

    /// `cublasOperation_t`.
    enum Operation: Int32 {
        case none = 0
        case transpose = 1
    }
}
