#if canImport(Glibc)
import Glibc
#endif
import AidgeCore

/// The NVIDIA libraries the backend needs, loaded once per process: the driver, NVRTC and cuBLAS (cuBLAS loads
/// cuBLASLt itself). With `AIDGE_CUDA_EMULATOR` set, all three come from that one library (a CPU emulator used by
/// the tests on machines without a GPU).
struct CUDALibraries: Sendable {
    let driver: Driver
    let nvrtc: NVRTC
    let cublas: CuBLAS
    /// cuDNN, when it loads (and `AIDGE_CUDA_CUDNN` is not 0); convolutions fall back on im2col without it.
    let cudnn: CuDNN?
    /// Whether the libraries are the CPU emulator.
    let isEmulated: Bool

    /// The loaded libraries, or the error that says which one is missing (tried once per process).
    static let loaded: Result<CUDALibraries, AidgeError> = {
        do {
            return .success(try CUDALibraries())
        } catch let error as AidgeError {
            return .failure(error)
        } catch {
            return .failure(AidgeError.device("\(error)"))
        }
    }()

    static func get() throws -> CUDALibraries { try loaded.get() }

    private init() throws {
        let directories = LibrarySearch.directories
        if let emulator = LibrarySearch.emulator {
            let library = try SharedLibrary.open("its CPU emulator", candidates: [emulator], directories: [])
            driver = try Driver(library)
            nvrtc = try NVRTC(library)
            cublas = try CuBLAS(library)
            cudnn = Self.optionalCuDNN { library }
            isEmulated = true
            return
        }
        driver = try Driver(
            SharedLibrary.open(
                "the NVIDIA driver (libcuda.so.1: is an NVIDIA GPU with its driver installed?)",
                candidates: ["libcuda.so.1"], directories: []))
        nvrtc = try NVRTC(
            SharedLibrary.open(
                "NVRTC (libnvrtc.so, from a CUDA toolkit or the nvidia-cuda-nvrtc wheel: set AIDGE_CUDA_LIBRARY_PATH "
                    + "to its folder)", candidates: ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"],
                directories: directories))
        cublas = try CuBLAS(
            SharedLibrary.open(
                "cuBLAS (libcublas.so, from a CUDA toolkit or the nvidia-cublas wheel: set AIDGE_CUDA_LIBRARY_PATH "
                    + "to its folder)", candidates: ["libcublas.so.13", "libcublas.so.12", "libcublas.so"],
                directories: directories))
        cudnn = Self.optionalCuDNN {
            try SharedLibrary.open("cuDNN (libcudnn.so)", candidates: ["libcudnn.so.9", "libcudnn.so"], directories: directories)
        }
        isEmulated = false
    }

    /// cuDNN from `library`, or nil when it does not load, reports no version, or `AIDGE_CUDA_CUDNN=0` turns it off.
    private static func optionalCuDNN(_ library: () throws -> SharedLibrary) -> CuDNN? {
        if let value = getenv("AIDGE_CUDA_CUDNN"), String(cString: value) == "0" { return nil }
        guard let cudnn = try? CuDNN(library()), cudnn.version() > 0 else { return nil }
        return cudnn
    }
}
