import AidgeCore

func registerShapeKernels(_ registry: KernelRegistry) {}
