import AidgeCore

/// Backward kernels of the reduction operators (to be filled).
func registerReductionGradients(_ registry: KernelRegistry) {}
