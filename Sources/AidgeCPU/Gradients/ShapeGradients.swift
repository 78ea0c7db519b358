import AidgeCore

/// Backward kernels of the shape operators (to be filled).
func registerShapeGradients(_ registry: KernelRegistry) {}
