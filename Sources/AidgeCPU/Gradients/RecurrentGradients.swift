import AidgeCore

/// Backward kernels of the recurrent operators (to be filled).
func registerRecurrentGradients(_ registry: KernelRegistry) {}
