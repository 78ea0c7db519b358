import AidgeCore

func registerDataKernels(_ registry: KernelRegistry) {}
