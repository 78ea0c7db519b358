import AidgeCore
import Synchronization

/// The CUDA backend: kernels compiled with NVRTC for the GPU at hand, GEMMs through cuBLAS, and the device's
/// memory for plans. Everything NVIDIA is loaded at run time, so this builds and runs where there is no GPU:
/// there, `register()` throws one clear error and `isAvailable` is false.
public enum CUDABackend: Backend {
    public static let name = "cuda"

    private static let state = Mutex<(registered: Bool, ordinal: Int)>((false, 0))
    private static let tf32 = Atomic<Bool>(false)
    private static let cudnn = Atomic<Bool>(true)
    private static let tf32Convolutions = Atomic<Bool>(true)

    /// Loads the CUDA libraries, opens device 0 and registers the kernels and the device memory. Safe to call
    /// again; throws `AidgeError.device` saying what is missing on a machine without a GPU or libraries.
    public static func register() throws {
        try state.withLock { state in
            if state.registered { return }
            let device = try CUDADevice.get(state.ordinal)
            DeviceMemories.shared.register(CUDAMemory(device), backend: name)
            let registry = KernelRegistry.shared
            registerElementwiseKernels(registry)
            registerDataMovementKernels(registry)
            registerLinearKernels(registry)
            registerSoftmaxKernels(registry)
            registerReductionKernels(registry)
            registerPoolingKernels(registry)
            registerNormalizationKernels(registry)
            registerConvolutionKernels(registry)
            registerShapeKernels(registry)
            registerGeneratorKernels(registry)
            registerResizeKernels(registry)
            registerElementwiseGradients(registry)
            registerLinearGradients(registry)
            registerConvolutionGradients(registry)
            registerPoolingGradients(registry)
            registerNormalizationGradients(registry)
            registerIndexingGradients(registry)
            state.registered = true
        }
    }

    /// Whether a GPU and the libraries are there (tries to register the backend once).
    public static var isAvailable: Bool { (try? register()) != nil }

    /// The device the kernels run on.
    public static func device() throws -> CUDADevice { try CUDADevice.get(state.withLock { $0.ordinal }) }

    static func memory() throws -> CUDAMemory {
        guard let memory = DeviceMemories.shared.memory(backend: name) as? CUDAMemory else {
            throw AidgeError.device("the CUDA backend is not registered")
        }
        return memory
    }

    /// Whether convolutions planned from now on use cuDNN where it is loaded (default); off, they run as im2col
    /// and cuBLAS GEMMs.
    public static var usesCuDNN: Bool {
        get { cudnn.load(ordering: .relaxed) }
        set { cudnn.store(newValue, ordering: .relaxed) }
    }

    /// Whether float32 MatMul and Gemm planned from now on may use TF32 tensor cores (faster, about 1e-3
    /// relative error). Off by default, as PyTorch's `torch.backends.cuda.matmul.allow_tf32`.
    public static var allowsTF32: Bool {
        get { tf32.load(ordering: .relaxed) }
        set { tf32.store(newValue, ordering: .relaxed) }
    }

    /// Whether float32 convolutions planned from now on may use TF32 tensor cores. On by default, as PyTorch's
    /// `torch.backends.cudnn.allow_tf32`; off, they match the CPU to float32 rounding.
    public static var allowsTF32Convolutions: Bool {
        get { tf32Convolutions.load(ordering: .relaxed) }
        set { tf32Convolutions.store(newValue, ordering: .relaxed) }
    }
}
