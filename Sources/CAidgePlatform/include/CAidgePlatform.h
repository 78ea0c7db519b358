#ifndef CAIDGE_PLATFORM_H
#define CAIDGE_PLATFORM_H

/// 1 when the processor has every instruction set the CPU kernels are compiled for (AVX2, FMA, F16C on x86-64).
int aidge_cpu_supports_kernels(void);

/// 1 when the processor and the operating system support the AVX-512 kernels (F, VL, DQ, BW; x86-64 only).
int aidge_cpu_supports_avx512(void);

/// Cores this process may run on (its CPU affinity), at least 1.
int aidge_cpu_available_cores(void);

/// Size in bytes of the last-level data cache the GEMM blocks for (0 when unknown).
long aidge_cpu_cache_size(int level);

/// 1 when the process has an OpenMP runtime loaded (libgomp, or one that offers its entry points, as PyTorch's
/// does): `aidge_openmp_parallel` can then run work on that runtime's threads.
int aidge_openmp_available(void);

/// Runs `body(context)` on a team of `threads` threads of the process's OpenMP runtime, the caller included, and
/// returns when all have returned (`#pragma omp parallel num_threads(threads)`). Only after
/// `aidge_openmp_available()` returned 1.
void aidge_openmp_parallel(void (*body)(void *), void *context, unsigned threads);

/// A spin-wait hint (PAUSE on x86-64): lets the other hyper-thread run and saves power while a worker spins.
static inline void aidge_cpu_pause(void) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
