import AidgeCore

/// The CPU backend: registers a kernel for each operator type into the core's registry.
public enum CPUBackend: Backend {
    public static let name = "cpu"

    /// Registers every CPU kernel. Throws on a processor without the instruction sets the kernels use.
    public static func register() throws {
        guard Processor.supportsCPUKernels else {
            throw AidgeError.unsupportedProcessor(
                "this processor lacks AVX2/FMA/F16C, which the CPU kernels are compiled for")
        }
        // Kernel families, one file each under `Kernels/`.
        let registry = KernelRegistry.shared
        registerDataKernels(registry)
        registerElementwiseKernels(registry)
        registerActivationKernels(registry)
        registerLinearKernels(registry)
        registerConvolutionKernels(registry)
        registerPoolingKernels(registry)
        registerNormalizationKernels(registry)
        registerReductionKernels(registry)
        registerResizeKernels(registry)
        registerShapeKernels(registry)
        registerIndexingKernels(registry)
        registerScatterKernels(registry)
        registerTopKKernels(registry)
        registerLossKernels(registry)
        registerAttentionKernels(registry)
        registerFlexAttentionKernels(registry)
        registerRotaryEmbeddingKernels(registry)
        registerDeterminantKernels(registry)
        registerGridSampleKernels(registry)
        registerEinsumKernels(registry)
        registerGroupNormalizationKernels(registry)
        registerLocalResponseNormalizationKernels(registry)
        registerCol2ImKernels(registry)
        registerMaxUnpoolKernels(registry)
        registerAffineGridKernels(registry)
        registerSignalKernels(registry)
        registerLinearAttentionKernels(registry)
        registerDataDependentKernels(registry)
        registerTextKernels(registry)
        registerRandomKernels(registry)
        registerCausalConvWithStateKernels(registry)
        registerIntegerConvolutionKernels(registry)
        registerOptimizerKernels(registry)
        registerRoiAlignKernels(registry)
        registerDeformConvKernels(registry)
        registerTfIdfVectorizerKernels(registry)
        registerFeatureTransformKernels(registry)
        registerTreeEnsembleKernels(registry)
        ControlFlowKernels.register(registry, backend: name)
        registerQuantizationKernels(registry)
        registerRecurrentKernels(registry)
        registerGradientKernels(registry)
        HalfPrecisionFallback.install(registry)
    }

    /// Whether the GEMM uses its AVX-512 kernel for full tiles (default: when the processor has AVX-512). Turning
    /// it off runs the AVX2 kernels everywhere (for comparisons and tests); turning it on where the processor
    /// lacks AVX-512 is ignored.
    public static var usesAVX512: Bool {
        get { SGEMM.wideTiles.load(ordering: .relaxed) }
        set { SGEMM.wideTiles.store(newValue && Processor.supportsAVX512, ordering: .relaxed) }
    }
}
