#ifndef CAIDGE_PLATFORM_H
#define CAIDGE_PLATFORM_H

/// 1 when the processor has every instruction set the CPU kernels are compiled for (AVX2, FMA, F16C on x86-64).
int aidge_cpu_supports_kernels(void);

/// Size in bytes of the last-level data cache the GEMM blocks for (0 when unknown).
long aidge_cpu_cache_size(int level);

#endif
