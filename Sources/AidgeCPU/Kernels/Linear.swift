import AidgeCore

func registerLinearKernels(_ registry: KernelRegistry) {}
