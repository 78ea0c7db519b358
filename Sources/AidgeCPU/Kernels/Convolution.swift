import AidgeCore

func registerConvolutionKernels(_ registry: KernelRegistry) {}
