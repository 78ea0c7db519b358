import AidgeCore

/// Backward kernels of the elementwise operators (to be filled).
func registerElementwiseGradients(_ registry: KernelRegistry) {}
