// Force-included (-include) before every CUDA kernel source that the emulated NVRTC compiles for the CPU.
//
// It maps the CUDA C++ that the backend's kernel sources use onto host C++17:
// - the execution-space keywords vanish, and __shared__ becomes `static`: the emulator runs one block at a time,
//   so a function-local static is exactly the memory the threads of a block share;
// - threadIdx, blockIdx, blockDim and gridDim read the thread the emulator runs now, and the barrier, shuffle and
//   vote intrinsics call into the emulator, both through the `aidge_emu_runtime` pointer that the emulator sets
//   after it loads the kernel library (the library has no undefined symbols to resolve against the emulator,
//   which is itself loaded RTLD_LOCAL);
// - fp16/bf16 are not provided: sources branch on AIDGE_EMULATION and convert in software. __CUDA_ARCH__,
//   __CUDACC__ and __CUDACC_RTC__ stay undefined.
//
// The emulator includes this file too, with AIDGE_EMULATOR_HOST defined, for the ABI structure below only.
#ifndef AIDGE_CUDA_EMULATION_H
#define AIDGE_CUDA_EMULATION_H

// ---------------------------------------------------------------------------------------------------------------
// ABI between the emulator and a kernel library.

struct AidgeEmuIndex {
    unsigned x, y, z;
};

struct AidgeEmuRuntime {
    // Of the emulated thread running now.
    AidgeEmuIndex thread_idx, block_idx, block_dim, grid_dim;
    unsigned lane;  // linear thread id (x fastest) modulo 32
    // The launch's sharedMemBytes, 16-byte aligned, filled with 0xFF at the start of every block, and followed by
    // an inaccessible page.
    void* dynamic_shared;
    void (*sync_block)(void);
    void (*sync_warp)(unsigned mask);
    // A warp collective: each lane of `mask` that takes part stores `value`; on return values[l] holds lane l's
    // value for every lane l of the returned mask (the lanes that took part).
    unsigned (*warp_exchange)(unsigned mask, unsigned long long value, unsigned long long* values);
    unsigned (*active_mask)(void);
    // Ends the launch with the CUresult `code` (CUDA_ERROR_ASSERT, CUDA_ERROR_LAUNCH_FAILED); does not return.
    void (*trap)(int code, const char* what, const char* file, int line);
};

#ifndef AIDGE_EMULATOR_HOST

#define AIDGE_EMULATION 1

// Only what the CUDA device environment also offers; no <cstdint> or <cstdio>, whose global names could clash with
// the sources' own typedefs.
#include <math.h>
#include <stddef.h>
#include <type_traits>
#include <utility>

extern "C" int printf(const char* format, ...);

#define AIDGE_EMU_EXPORT __attribute__((visibility("default")))

extern "C" {
AIDGE_EMU_EXPORT AidgeEmuRuntime* aidge_emu_runtime = nullptr;
}

// ---------------------------------------------------------------------------------------------------------------
// Keywords.

#define __global__
#define __device__
#define __host__
#define __constant__
#define __grid_constant__
#define __shared__ static
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// __restrict__ is a GCC and Clang keyword already.

// ---------------------------------------------------------------------------------------------------------------
// Built-in variables and vector types.

typedef AidgeEmuIndex uint3;

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

#define threadIdx (static_cast<const uint3&>(aidge_emu_runtime->thread_idx))
#define blockIdx (static_cast<const uint3&>(aidge_emu_runtime->block_idx))
#define blockDim (static_cast<const uint3&>(aidge_emu_runtime->block_dim))
#define gridDim (static_cast<const uint3&>(aidge_emu_runtime->grid_dim))
static const int warpSize = 32;

// Sizes and alignments as in CUDA's vector_types.h.
struct __align__(8) float2 { float x, y; };
struct float3 { float x, y, z; };
struct __align__(16) float4 { float x, y, z, w; };
struct __align__(16) double2 { double x, y; };
struct __align__(8) int2 { int x, y; };
struct int3 { int x, y, z; };
struct __align__(16) int4 { int x, y, z, w; };
struct __align__(8) uint2 { unsigned x, y; };
struct __align__(16) uint4 { unsigned x, y, z, w; };
struct __align__(4) char4 { signed char x, y, z, w; };
struct __align__(4) uchar4 { unsigned char x, y, z, w; };
struct __align__(16) longlong2 { long long x, y; };

inline float2 make_float2(float x, float y) { return {x, y}; }
inline float3 make_float3(float x, float y, float z) { return {x, y, z}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline double2 make_double2(double x, double y) { return {x, y}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int3 make_int3(int x, int y, int z) { return {x, y, z}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return {x, y, z}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline char4 make_char4(signed char x, signed char y, signed char z, signed char w) { return {x, y, z, w}; }
inline uchar4 make_uchar4(unsigned char x, unsigned char y, unsigned char z, unsigned char w) { return {x, y, z, w}; }
inline longlong2 make_longlong2(long long x, long long y) { return {x, y}; }

// ---------------------------------------------------------------------------------------------------------------
// Dynamic shared memory: the sources' only way to `extern __shared__`.

inline void* aidge_emu_dynamic_shared() { return aidge_emu_runtime->dynamic_shared; }
#define AIDGE_DYNAMIC_SHARED(type, name) type* name = reinterpret_cast<type*>(aidge_emu_dynamic_shared())

// ---------------------------------------------------------------------------------------------------------------
// Barriers, shuffles and votes. Each parks the emulated thread until the threads it waits for arrive.

inline void __syncthreads() { aidge_emu_runtime->sync_block(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { aidge_emu_runtime->sync_warp(mask); }
inline unsigned __activemask() { return aidge_emu_runtime->active_mask(); }

// The block-wide reductions: zero, accumulate, read, each phase between two barriers so that no thread starts the
// next phase (or the next call) before every thread ended this one.
inline int aidge_emu_syncthreads_reduce(int predicate, int mode) {
    static int count;
    count = 0;
    __syncthreads();
    count += predicate != 0;
    __syncthreads();
    int total = count;
    __syncthreads();
    int threads = int(blockDim.x * blockDim.y * blockDim.z);
    return mode == 0 ? total : mode == 1 ? total == threads : total != 0;
}
inline int __syncthreads_count(int predicate) { return aidge_emu_syncthreads_reduce(predicate, 0); }
inline int __syncthreads_and(int predicate) { return aidge_emu_syncthreads_reduce(predicate, 1); }
inline int __syncthreads_or(int predicate) { return aidge_emu_syncthreads_reduce(predicate, 2); }

template <class T>
inline unsigned long long aidge_emu_bits(T value) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value,
                  "warp intrinsics move trivially copyable values of 8 bytes at most");
    unsigned long long bits = 0;
    __builtin_memcpy(&bits, &value, sizeof(T));
    return bits;
}

template <class T>
inline T aidge_emu_from_bits(unsigned long long bits) {
    T value;
    __builtin_memcpy(&value, &bits, sizeof(T));
    return value;
}

// Every shuffle takes part in the exchange, in range or not. A source lane that did not take part (exited, outside
// the block, or outside `mask`) is undefined on a GPU; here it reads as all bits set (NaN, -1).
template <class T>
inline T aidge_emu_shuffle(unsigned mask, T var, int source, bool in_range) {
    unsigned long long values[32];
    unsigned took_part = aidge_emu_runtime->warp_exchange(mask, aidge_emu_bits(var), values);
    if (!in_range) return var;
    if (source < 0 || source > 31 || !(took_part >> source & 1u)) return aidge_emu_from_bits<T>(~0ull);
    return aidge_emu_from_bits<T>(values[source]);
}

template <class T>
inline T __shfl_sync(unsigned mask, T var, int srcLane, int width = 32) {
    int lane = int(aidge_emu_runtime->lane);
    return aidge_emu_shuffle(mask, var, (lane & ~(width - 1)) + (srcLane & (width - 1)), true);
}

template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
    int lane = int(aidge_emu_runtime->lane);
    return aidge_emu_shuffle(mask, var, lane - int(delta), (lane & (width - 1)) >= int(delta));
}

template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {
    int lane = int(aidge_emu_runtime->lane);
    return aidge_emu_shuffle(mask, var, lane + int(delta), (lane & (width - 1)) + int(delta) < width);
}

// A lane may read earlier segments of `width` lanes, not later ones.
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = 32) {
    int lane = int(aidge_emu_runtime->lane);
    int source = lane ^ laneMask;
    return aidge_emu_shuffle(mask, var, source, source < (lane & ~(width - 1)) + width);
}

inline unsigned __ballot_sync(unsigned mask, int predicate) {
    unsigned long long values[32];
    unsigned took_part = aidge_emu_runtime->warp_exchange(mask, predicate != 0, values) & mask;
    unsigned ballot = 0;
    for (int lane = 0; lane < 32; ++lane)
        if ((took_part >> lane & 1u) && values[lane]) ballot |= 1u << lane;
    return ballot;
}

inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }

inline int __all_sync(unsigned mask, int predicate) {
    unsigned long long values[32];
    unsigned took_part = aidge_emu_runtime->warp_exchange(mask, predicate != 0, values) & mask;
    for (int lane = 0; lane < 32; ++lane)
        if ((took_part >> lane & 1u) && !values[lane]) return 0;
    return 1;
}

template <class T, class Combine>
inline T aidge_emu_warp_reduce(unsigned mask, T value, Combine combine) {
    unsigned long long values[32];
    unsigned took_part = aidge_emu_runtime->warp_exchange(mask, aidge_emu_bits(value), values) & mask;
    bool first = true;
    T result = value;
    for (int lane = 0; lane < 32; ++lane) {
        if (!(took_part >> lane & 1u)) continue;
        T other = aidge_emu_from_bits<T>(values[lane]);
        result = first ? other : combine(result, other);
        first = false;
    }
    return result;
}
#define AIDGE_EMU_WARP_REDUCE(name, T, combine)                                      \
    inline T name(unsigned mask, T value) {                                          \
        return aidge_emu_warp_reduce(mask, value, [](T a, T b) { return combine; }); \
    }
AIDGE_EMU_WARP_REDUCE(__reduce_add_sync, unsigned, a + b)
AIDGE_EMU_WARP_REDUCE(__reduce_add_sync, int, a + b)
AIDGE_EMU_WARP_REDUCE(__reduce_min_sync, unsigned, b < a ? b : a)
AIDGE_EMU_WARP_REDUCE(__reduce_min_sync, int, b < a ? b : a)
AIDGE_EMU_WARP_REDUCE(__reduce_max_sync, unsigned, b > a ? b : a)
AIDGE_EMU_WARP_REDUCE(__reduce_max_sync, int, b > a ? b : a)
#undef AIDGE_EMU_WARP_REDUCE

// Memory fences order nothing here: emulated threads switch only at barriers.
inline void __threadfence_block() { __asm__ __volatile__("" ::: "memory"); }
inline void __threadfence() { __asm__ __volatile__("" ::: "memory"); }
inline void __threadfence_system() { __asm__ __volatile__("" ::: "memory"); }
inline void __nanosleep(unsigned) {}

// ---------------------------------------------------------------------------------------------------------------
// Traps and assertions end the launch with the error a GPU reports instead of ending the process.

[[noreturn]] inline void aidge_emu_trap(int code, const char* what, const char* file, int line) {
    aidge_emu_runtime->trap(code, what, file, line);
    __builtin_unreachable();
}
[[noreturn]] inline void __trap() { aidge_emu_trap(719, "__trap()", "", 0); }
#undef assert
#define assert(condition) \
    ((condition) ? (void)0 : aidge_emu_trap(710, "assertion failed: " #condition, __FILE__, __LINE__))

// ---------------------------------------------------------------------------------------------------------------
// Atomics: plain read-modify-write, since the emulated threads of a launch run one at a time and switch only at
// barriers. Each returns the old value.

#define AIDGE_EMU_ATOMIC(name, T, update) \
    inline T name(T* address, T val) {   \
        T old = *address;                 \
        *address = (update);              \
        return old;                       \
    }
AIDGE_EMU_ATOMIC(atomicAdd, int, old + val)
AIDGE_EMU_ATOMIC(atomicAdd, unsigned, old + val)
AIDGE_EMU_ATOMIC(atomicAdd, unsigned long long, old + val)
AIDGE_EMU_ATOMIC(atomicAdd, float, old + val)
AIDGE_EMU_ATOMIC(atomicAdd, double, old + val)
AIDGE_EMU_ATOMIC(atomicSub, int, old - val)
AIDGE_EMU_ATOMIC(atomicSub, unsigned, old - val)
AIDGE_EMU_ATOMIC(atomicMax, int, val > old ? val : old)
AIDGE_EMU_ATOMIC(atomicMax, unsigned, val > old ? val : old)
AIDGE_EMU_ATOMIC(atomicMax, long long, val > old ? val : old)
AIDGE_EMU_ATOMIC(atomicMax, unsigned long long, val > old ? val : old)
AIDGE_EMU_ATOMIC(atomicMin, int, val < old ? val : old)
AIDGE_EMU_ATOMIC(atomicMin, unsigned, val < old ? val : old)
AIDGE_EMU_ATOMIC(atomicMin, long long, val < old ? val : old)
AIDGE_EMU_ATOMIC(atomicMin, unsigned long long, val < old ? val : old)
AIDGE_EMU_ATOMIC(atomicExch, int, val)
AIDGE_EMU_ATOMIC(atomicExch, unsigned, val)
AIDGE_EMU_ATOMIC(atomicExch, unsigned long long, val)
AIDGE_EMU_ATOMIC(atomicExch, float, val)
AIDGE_EMU_ATOMIC(atomicAnd, int, old & val)
AIDGE_EMU_ATOMIC(atomicAnd, unsigned, old & val)
AIDGE_EMU_ATOMIC(atomicAnd, unsigned long long, old & val)
AIDGE_EMU_ATOMIC(atomicOr, int, old | val)
AIDGE_EMU_ATOMIC(atomicOr, unsigned, old | val)
AIDGE_EMU_ATOMIC(atomicOr, unsigned long long, old | val)
AIDGE_EMU_ATOMIC(atomicXor, int, old ^ val)
AIDGE_EMU_ATOMIC(atomicXor, unsigned, old ^ val)
AIDGE_EMU_ATOMIC(atomicXor, unsigned long long, old ^ val)
AIDGE_EMU_ATOMIC(atomicInc, unsigned, old >= val ? 0u : old + 1u)
AIDGE_EMU_ATOMIC(atomicDec, unsigned, (old == 0u || old > val) ? val : old - 1u)
#undef AIDGE_EMU_ATOMIC

#define AIDGE_EMU_ATOMIC_CAS(T)                          \
    inline T atomicCAS(T* address, T compare, T val) {  \
        T old = *address;                                \
        if (old == compare) *address = val;              \
        return old;                                      \
    }
AIDGE_EMU_ATOMIC_CAS(int)
AIDGE_EMU_ATOMIC_CAS(unsigned)
AIDGE_EMU_ATOMIC_CAS(unsigned long long)
#undef AIDGE_EMU_ATOMIC_CAS

// ---------------------------------------------------------------------------------------------------------------
// Math. <math.h> gives the float and double functions of the global namespace (expf, erff, tanhf, fmaxf, ...,
// INFINITY, NAN); these are CUDA's own.

// CUDA's min and max: the usual arithmetic conversions, fmin/fmax (NaN-ignoring) for floating point.
template <class A, class B, class = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> min(A a, B b) {
    using C = std::common_type_t<A, B>;
    if constexpr (std::is_floating_point<C>::value) return fmin(C(a), C(b));
    else return C(b) < C(a) ? C(b) : C(a);
}
template <class A, class B, class = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> max(A a, B b) {
    using C = std::common_type_t<A, B>;
    if constexpr (std::is_floating_point<C>::value) return fmax(C(a), C(b));
    else return C(b) > C(a) ? C(b) : C(a);
}

inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return powf(10.0f, x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline void __sincosf(float x, float* s, float* c) { *s = sinf(x); *c = cosf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fadd_rn(float x, float y) { return x + y; }
inline float __fsub_rn(float x, float y) { return x - y; }
inline float __fmul_rn(float x, float y) { return x * y; }
inline float __fdiv_rn(float x, float y) { return x / y; }
inline float __fmaf_rn(float x, float y, float z) { return fmaf(x, y, z); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __saturatef(float x) { return x >= 1.0f ? 1.0f : (x > 0.0f ? x : 0.0f); }  // NaN gives 0

inline int __float2int_rn(float x) { return int(nearbyintf(x)); }
inline int __float2int_rz(float x) { return int(x); }
inline int __float2int_rd(float x) { return int(floorf(x)); }
inline int __float2int_ru(float x) { return int(ceilf(x)); }
inline unsigned __float2uint_rn(float x) { return unsigned(nearbyintf(x)); }
inline long long __float2ll_rn(float x) { return (long long)nearbyintf(x); }
inline float __int2float_rn(int x) { return float(x); }
inline float __uint2float_rn(unsigned x) { return float(x); }
inline float __ll2float_rn(long long x) { return float(x); }

inline int __float_as_int(float x) { return aidge_emu_from_bits<int>(aidge_emu_bits(x)); }
inline unsigned __float_as_uint(float x) { return aidge_emu_from_bits<unsigned>(aidge_emu_bits(x)); }
inline float __int_as_float(int x) { return aidge_emu_from_bits<float>(aidge_emu_bits(x)); }
inline float __uint_as_float(unsigned x) { return aidge_emu_from_bits<float>(aidge_emu_bits(x)); }
inline long long __double_as_longlong(double x) { return aidge_emu_from_bits<long long>(aidge_emu_bits(x)); }
inline double __longlong_as_double(long long x) { return aidge_emu_from_bits<double>(aidge_emu_bits(x)); }

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
    unsigned r = 0;
    for (int i = 0; i < 32; ++i) r |= (x >> i & 1u) << (31 - i);
    return r;
}

// Cache-hinted loads and stores are plain accesses.
template <class T> inline T __ldg(const T* p) { return *p; }
template <class T> inline T __ldcg(const T* p) { return *p; }
template <class T> inline T __ldcs(const T* p) { return *p; }
template <class T> inline void __stcg(T* p, T v) { *p = v; }
template <class T> inline void __stcs(T* p, T v) { *p = v; }

// ---------------------------------------------------------------------------------------------------------------
// Entry points. The emulated NVRTC appends, for every `extern "C" __global__ void NAME(...)` of the source,
//   AIDGE_EMU_ENTRY(NAME)
// which defines aidge_emu_entry_NAME(void** args), calling NAME with the values cuLaunchKernel's kernelParams point
// at (each read as NAME's own parameter type), and aidge_emu_arity_NAME, its number of parameters; and for a kernel
// with __launch_bounds__(MAX, ...)
//   AIDGE_EMU_MAX_THREADS(NAME, MAX)
// whose value the emulated launch enforces as the driver does.

template <class... A, size_t... I>
inline void aidge_emu_call(void (*kernel)(A...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...);
}

template <class... A>
inline void aidge_emu_invoke(void (*kernel)(A...), void** args) {
    aidge_emu_call(kernel, args, std::index_sequence_for<A...>{});
}

template <class... A>
constexpr int aidge_emu_arity(void (*)(A...)) {
    return int(sizeof...(A));
}

#define AIDGE_EMU_ENTRY(name)                                                                          \
    extern "C" AIDGE_EMU_EXPORT void aidge_emu_entry_##name(void** args) { aidge_emu_invoke(name, args); } \
    extern "C" AIDGE_EMU_EXPORT const int aidge_emu_arity_##name = aidge_emu_arity(name);

#define AIDGE_EMU_MAX_THREADS(name, max_threads) \
    extern "C" AIDGE_EMU_EXPORT const int aidge_emu_max_threads_##name = (max_threads);

#endif  // AIDGE_EMULATOR_HOST
#endif  // AIDGE_CUDA_EMULATION_H
