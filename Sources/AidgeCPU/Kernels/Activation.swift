import AidgeCore

func registerActivationKernels(_ registry: KernelRegistry) {}
