import AidgeCore

/// Backward kernels of the convolution operators (to be filled).
func registerConvolutionGradients(_ registry: KernelRegistry) {}
