import AidgeCore

func registerReductionKernels(_ registry: KernelRegistry) {}
