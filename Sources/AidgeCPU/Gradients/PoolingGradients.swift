import AidgeCore

/// Backward kernels of the pooling operators (to be filled).
func registerPoolingGradients(_ registry: KernelRegistry) {}
