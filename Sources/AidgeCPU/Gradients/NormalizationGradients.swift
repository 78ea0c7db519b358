import AidgeCore

/// Backward kernels of the normalization operators (to be filled).
func registerNormalizationGradients(_ registry: KernelRegistry) {}
