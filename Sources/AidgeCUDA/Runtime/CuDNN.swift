import AidgeCore

/// The cuDNN functions the convolutions use (the descriptor API of cuDNN 8 and 9), resolved from `libcudnn.so`
/// when it loads; without it, convolutions run as im2col and cuBLAS.
///
/// `@unchecked Sendable`: an immutable table of C function addresses.
struct CuDNN: @unchecked Sendable {
    typealias Status = Int32
    typealias Handle = OpaquePointer?
    let library: SharedLibrary
    let version: @convention(c) () -> Int
    let errorString: @convention(c) (Status) -> UnsafePointer<CChar>?
    let create: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status
    let setStream: @convention(c) (Handle, OpaquePointer?) -> Status
    let createTensor: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status
    let destroyTensor: @convention(c) (Handle) -> Status
    let setTensor: @convention(c) (Handle, Int32, Int32, UnsafePointer<Int32>, UnsafePointer<Int32>) -> Status
    let createFilter: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status
    let destroyFilter: @convention(c) (Handle) -> Status
    let setFilter: @convention(c) (Handle, Int32, Int32, Int32, UnsafePointer<Int32>) -> Status
    let createConvolution: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status
    let destroyConvolution: @convention(c) (Handle) -> Status
    let setConvolution: @convention(c) (
        Handle, Int32, UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafePointer<Int32>, Int32, Int32
    ) -> Status
    let setGroupCount: @convention(c) (Handle, Int32) -> Status
    let setMathType: @convention(c) (Handle, Int32) -> Status
    let forwardAlgorithms: @convention(c) (
        Handle, Handle, Handle, Handle, Handle, Int32, UnsafeMutablePointer<Int32>, UnsafeMutableRawPointer
    ) -> Status
    let forwardWorkspaceSize: @convention(c) (Handle, Handle, Handle, Handle, Handle, Int32, UnsafeMutablePointer<Int>)
        -> Status
    let forward: @convention(c) (
        Handle, UnsafeRawPointer, Handle, UnsafeRawPointer, Handle, UnsafeRawPointer, Handle, Int32,
        UnsafeMutableRawPointer?, Int, UnsafeRawPointer, Handle, UnsafeMutableRawPointer
    ) -> Status

    init(_ library: SharedLibrary) throws {
        self.library = library
        version = try library.function("cudnnGetVersion")
        errorString = try library.function("cudnnGetErrorString")
        create = try library.function("cudnnCreate")
        setStream = try library.function("cudnnSetStream")
        createTensor = try library.function("cudnnCreateTensorDescriptor")
        destroyTensor = try library.function("cudnnDestroyTensorDescriptor")
        setTensor = try library.function("cudnnSetTensorNdDescriptor")
        createFilter = try library.function("cudnnCreateFilterDescriptor")
        destroyFilter = try library.function("cudnnDestroyFilterDescriptor")
        setFilter = try library.function("cudnnSetFilterNdDescriptor")
        createConvolution = try library.function("cudnnCreateConvolutionDescriptor")
        destroyConvolution = try library.function("cudnnDestroyConvolutionDescriptor")
        setConvolution = try library.function("cudnnSetConvolutionNdDescriptor")
        setGroupCount = try library.function("cudnnSetConvolutionGroupCount")
        setMathType = try library.function("cudnnSetConvolutionMathType")
        forwardAlgorithms = try library.function("cudnnGetConvolutionForwardAlgorithm_v7")
        forwardWorkspaceSize = try library.function("cudnnGetConvolutionForwardWorkspaceSize")
        forward = try library.function("cudnnConvolutionForward")
    }

    func check(_ status: Status, _ what: @autoclosure () -> String) throws {
        guard status != 0 else { return }
        let text = errorString(status).map { String(cString: $0) } ?? "status \(status)"
        throw AidgeError.device("cuDNN \(what()) failed: \(text)")
    }

    /// `cudnnDataType_t` of a dtype, or nil when cuDNN's convolutions do not take it.
    static func dataType(_ dtype: DType) -> Int32? {
        switch dtype {
        case .float32: return 0
        case .float64: return 1
        case .float16: return 2
        case .bfloat16: return 9
        default: return nil
        }
    }

    /// `cudnnConvolutionFwdAlgoPerf_t`'s size and the offsets of its fields (algo, status, memory).
    static let perfSize = 48
    static let perfMemoryOffset = 16
}
