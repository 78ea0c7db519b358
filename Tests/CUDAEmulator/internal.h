// Declarations shared by the translation units of the CUDA emulator library.
#pragma once

#define AIDGE_EMULATOR_HOST
#include "emulation.h"

#include <cstddef>
#include <cstdint>
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

}  // namespace aidge_emu
