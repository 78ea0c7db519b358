#define _GNU_SOURCE
#include "CAidgePlatform.h"
#include <dlfcn.h>
#include <sched.h>
#include <stddef.h>
#include <unistd.h>

int aidge_cpu_supports_kernels(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
    return 1;
#endif
}

int aidge_cpu_supports_avx512(void) {
#if defined(__x86_64__)
    // The runtime's feature bits for AVX-512 also require the OS to save the ZMM state (XGETBV).
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
#else
    return 0;
#endif
}

long aidge_cpu_cache_size(int level) {
#if defined(_SC_LEVEL1_DCACHE_SIZE)
    switch (level) {
    case 1: return sysconf(_SC_LEVEL1_DCACHE_SIZE);
    case 2: return sysconf(_SC_LEVEL2_CACHE_SIZE);
    case 3: return sysconf(_SC_LEVEL3_CACHE_SIZE);
    }
#endif
    return 0;
}

int aidge_cpu_available_cores(void) {
#if defined(__linux__)
    // The cores this process may run on (taskset, cgroup cpusets), not every core of the machine.
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* GCC's entry point for `#pragma omp parallel` (libgomp >= 4.9; Intel's and LLVM's runtimes export it too). */
typedef void (*aidge_gomp_parallel)(void (*)(void *), void *, unsigned, unsigned);
static aidge_gomp_parallel gomp_parallel = NULL;

int aidge_openmp_available(void) {
    aidge_gomp_parallel found = (aidge_gomp_parallel)dlsym(RTLD_DEFAULT, "GOMP_parallel");
    __atomic_store_n(&gomp_parallel, found, __ATOMIC_RELEASE);
    return found != NULL;
}

void aidge_openmp_parallel(void (*body)(void *), void *context, unsigned threads) {
    aidge_gomp_parallel run = __atomic_load_n(&gomp_parallel, __ATOMIC_ACQUIRE);
    if (run != NULL) {
        run(body, context, threads, 0);
    } else {
        body(context);
    }
}
