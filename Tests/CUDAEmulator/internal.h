// Declarations shared by the translation units of the CUDA emulator library.
#pragma once

#define AIDGE_EMULATOR_HOST
#include "emulation.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>

#define AIDGE_EMU_EXPORT extern "C" __attribute__((visibility("default")))

namespace aidge_emu {

// The CUresult values the emulator returns.
enum : int {
    CUDA_SUCCESS = 0,
    CUDA_ERROR_INVALID_VALUE = 1,
    CUDA_ERROR_OUT_OF_MEMORY = 2,
    CUDA_ERROR_NOT_INITIALIZED = 3,
    CUDA_ERROR_INVALID_DEVICE = 101,
    CUDA_ERROR_INVALID_IMAGE = 200,
    CUDA_ERROR_INVALID_CONTEXT = 201,
    CUDA_ERROR_INVALID_HANDLE = 400,
    CUDA_ERROR_NOT_FOUND = 500,
    CUDA_ERROR_ILLEGAL_ADDRESS = 700,
    CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES = 701,
    CUDA_ERROR_ASSERT = 710,
    CUDA_ERROR_LAUNCH_FAILED = 719,
    CUDA_ERROR_NOT_SUPPORTED = 801,
};

// What the emulated device reports and enforces.
constexpr size_t kTotalMemory = size_t(16) << 30;
constexpr int kMaxThreadsPerBlock = 1024;
constexpr int kDefaultDynamicShared = 48 * 1024;
constexpr int kMaxDynamicShared = 232448;  // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN of a compute capability 9.0 device

// The emulator runs one operation at a time, as one GPU queue would: every call that reads or changes emulated
// device state (memory, modules, launches, cuBLAS) holds this lock.
extern std::mutex device_mutex;

// One line "aidge-cuda-emulator: ..." on stderr, for misuse that a plain error code would leave unexplained.
void report(const char* format, ...) __attribute__((format(printf, 1, 2)));

// emulator.cpp. The caller holds device_mutex.
int check_context();              // CUDA_SUCCESS, CUDA_ERROR_NOT_INITIALIZED or CUDA_ERROR_INVALID_CONTEXT
int current_device();             // of the calling thread's context, once check_context() succeeded
bool is_valid_stream(void* stream);

// memory.cpp. The caller holds device_mutex.
bool is_device_range(uintptr_t address, size_t bytes);       // inside one live allocation
bool overlaps_device_memory(const void* host, size_t bytes);  // a host pointer that is device memory
std::string describe_address(uintptr_t address);              // where an invalid access landed, for diagnostics
void free_allocations_of(int device);

// While one exists, every live allocation is readable and writable; otherwise, unless AIDGE_EMULATOR_PROTECT=0,
// none is, so that host code that dereferences a device pointer faults. The caller holds device_mutex.
class DeviceAccess {
public:
    DeviceAccess();
    ~DeviceAccess();
    DeviceAccess(const DeviceAccess&) = delete;
    DeviceAccess& operator=(const DeviceAccess&) = delete;
};

// A kernel of a loaded module.
struct Function {
    std::string name;
    void (*entry)(void** args);
    int arity;
    bool uses_barriers;  // the source calls a barrier, shuffle or vote: threads run as fibers
    int max_threads;     // its __launch_bounds__, or kMaxThreadsPerBlock
    int max_dynamic_shared = kDefaultDynamicShared;
};

// launch.cpp. Runs the grid on the calling thread; the caller holds device_mutex and a DeviceAccess. Returns
// CUDA_SUCCESS, or the launch's error after reporting it.
int run_grid(const Function& function, AidgeEmuIndex grid, AidgeEmuIndex block, unsigned shared_bytes,
             void** params);
// The pointer every kernel library's aidge_emu_runtime is set to.
AidgeEmuRuntime* runtime();

// Number formats of the cuBLAS and cuDNN emulations: fp16 and bf16 to and from float, rounded to nearest even, and
// the TF32 rounding of tensor-core inputs.

inline uint32_t bits_of(float value) {
    uint32_t bits;
    memcpy(&bits, &value, 4);
    return bits;
}

inline float float_of(uint32_t bits) {
    float value;
    memcpy(&value, &bits, 4);
    return value;
}

inline float half_to_float(uint16_t half) {
    uint32_t sign = uint32_t(half & 0x8000u) << 16;
    uint32_t exponent = half >> 10 & 0x1fu;
    uint32_t mantissa = half & 0x3ffu;
    if (exponent == 0x1f) return float_of(sign | 0x7f800000u | mantissa << 13);  // inf, NaN
    if (exponent == 0) {
        float magnitude = float(mantissa) * 5.9604644775390625e-8f;  // subnormal: mantissa * 2^-24
        return sign ? -magnitude : magnitude;
    }
    return float_of(sign | (exponent + 112) << 23 | mantissa << 13);
}

inline uint16_t float_to_half(float value) {
    uint32_t bits = bits_of(value);
    uint16_t sign = uint16_t(bits >> 16 & 0x8000u);
    uint32_t magnitude = bits & 0x7fffffffu;
    if (magnitude > 0x7f800000u) return sign | 0x7e00u;  // NaN
    if (magnitude >= 0x477ff000u) return sign | 0x7c00u;  // rounds to at least 65520: inf
    if (magnitude < 0x38800000u) {
        // Subnormal or zero: scale by 2^24 and round to an integer count of 2^-24, to nearest even.
        float scaled = float_of(magnitude) * 16777216.0f;
        uint32_t whole = uint32_t(scaled);
        float rest = scaled - float(whole);
        if (rest > 0.5f || (rest == 0.5f && (whole & 1u))) ++whole;
        return sign | uint16_t(whole);
    }
    uint32_t rounded = magnitude + 0xfffu + (magnitude >> 13 & 1u);
    return sign | uint16_t((rounded - (112u << 23)) >> 13);
}

inline float bfloat16_to_float(uint16_t value) { return float_of(uint32_t(value) << 16); }

inline uint16_t float_to_bfloat16(float value) {
    uint32_t bits = bits_of(value);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t(bits >> 16 | 0x40u);  // NaN stays NaN
    return uint16_t((bits + 0x7fffu + (bits >> 16 & 1u)) >> 16);
}

// TF32 keeps 10 mantissa bits, rounded to nearest even.
inline float round_to_tf32(float value) {
    uint32_t bits = bits_of(value);
    if ((bits & 0x7f800000u) == 0x7f800000u) return value;
    return float_of((bits + 0xfffu + (bits >> 13 & 1u)) & ~0x1fffu);
}

}  // namespace aidge_emu
