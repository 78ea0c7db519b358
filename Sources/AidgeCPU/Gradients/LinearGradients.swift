import AidgeCore

/// Backward kernels of the linear operators (to be filled).
func registerLinearGradients(_ registry: KernelRegistry) {}
