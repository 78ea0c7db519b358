import AidgeCore

func registerIndexingKernels(_ registry: KernelRegistry) {}
