#if canImport(Glibc)
import Glibc
#endif
import AidgeCore

/// NVRTC, the run-time CUDA C++ compiler, resolved from `libnvrtc.so`: kernels are compiled from source on first
/// use, for the device at hand.
///
/// `@unchecked Sendable`: an immutable table of C function addresses; NVRTC programs are not shared.
struct NVRTC: @unchecked Sendable {
    typealias Status = Int32
    let library: SharedLibrary
    let version: @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Status
    let createProgram: @convention(c) (
        UnsafeMutablePointer<OpaquePointer?>, UnsafePointer<CChar>, UnsafePointer<CChar>?, Int32,
        UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?
    ) -> Status
    let destroyProgram: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status
    let compileProgram: @convention(c) (OpaquePointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Status
    let ptxSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Status
    let ptx: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Status
    let logSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Status
    let log: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Status
    let errorString: @convention(c) (Status) -> UnsafePointer<CChar>?

    init(_ library: SharedLibrary) throws {
        self.library = library
        version = try library.function("nvrtcVersion")
        createProgram = try library.function("nvrtcCreateProgram")
        destroyProgram = try library.function("nvrtcDestroyProgram")
        compileProgram = try library.function("nvrtcCompileProgram")
        ptxSize = try library.function("nvrtcGetPTXSize")
        ptx = try library.function("nvrtcGetPTX")
        logSize = try library.function("nvrtcGetProgramLogSize")
        log = try library.function("nvrtcGetProgramLog")
        errorString = try library.function("nvrtcGetErrorString")
    }

    private func check(_ status: Status, _ what: String) throws {
        guard status != 0 else { return }
        let text = errorString(status).map { String(cString: $0) } ?? "error \(status)"
        throw AidgeError.device("NVRTC \(what) failed: \(text)")
    }

    /// The PTX of `source` (NUL-terminated), compiled with `options`. A compile error carries NVRTC's log.
    func compile(_ source: String, name: String, options: [String]) throws -> [CChar] {
        var program: OpaquePointer?
        try check(createProgram(&program, source, name, 0, nil, nil), "creating program \(name)")
        defer { _ = destroyProgram(&program) }
        let cOptions = options.map { strdup($0) }
        defer { cOptions.forEach { free($0) } }
        let status = cOptions.map { UnsafePointer($0) }.withUnsafeBufferPointer {
            compileProgram(program, Int32($0.count), $0.baseAddress)
        }
        if status != 0 {
            var size = 0
            var text = ""
            if logSize(program, &size) == 0, size > 1 {
                var buffer = [CChar](repeating: 0, count: size)
                if log(program, &buffer) == 0 { text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
            }
            throw AidgeError.device("NVRTC could not compile \(name): \(text.isEmpty ? "error \(status)" : text)")
        }
        var size = 0
        try check(ptxSize(program, &size), "reading the PTX size of \(name)")
        var code = [CChar](repeating: 0, count: max(size, 1))
        try check(ptx(program, &code), "reading the PTX of \(name)")
        return code
    }
}
