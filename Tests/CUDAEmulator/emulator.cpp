// CPU emulator of the CUDA driver API: initialisation, devices, primary contexts, streams, events, modules and
// kernel launches. Device memory is in memory.cpp, block execution in launch.cpp, NVRTC in nvrtc.cpp, cuBLAS in
// cublas.cpp and cuDNN in cudnn.cpp; all of them are exported from one library, libaidge_cuda_emulator.so, which the
// CUDA backend loads in place of libcuda, libnvrtc, libcublas and libcudnn when AIDGE_CUDA_EMULATOR names it.
#include "internal.h"

#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

namespace aidge_emu {

std::mutex device_mutex;

void report(const char* format, ...) {
    char line[2048];
    va_list args;
    va_start(args, format);
    vsnprintf(line, sizeof line, format, args);
    va_end(args);
    fprintf(stderr, "aidge-cuda-emulator: %s\n", line);
}

namespace {

using Clock = std::chrono::steady_clock;

struct Context {
    int device;
    int retains = 0;  // a primary context is active while retained
};

struct Stream {
    int device;
};

struct Event {
    int device;
    unsigned flags;
    bool recorded = false;
    Clock::time_point time;
};

struct Module {
    int device;
    void* library;
    bool uses_barriers;
    std::map<std::string, std::unique_ptr<Function>> functions;
};

constexpr unsigned kEventDisableTiming = 2;
constexpr char kImageMagic[] = "// aidge cuda emulator\n";

bool g_initialized = false;
std::vector<Context> g_contexts;  // one primary context per device, made by cuInit
thread_local Context* t_current = nullptr;
std::map<Stream*, std::unique_ptr<Stream>> g_streams;
std::map<Event*, std::unique_ptr<Event>> g_events;
std::map<Module*, std::unique_ptr<Module>> g_modules;
std::map<Function*, Module*> g_functions;
std::atomic<unsigned long long> g_launches{0};

int device_count() {
    const char* value = getenv("AIDGE_EMULATOR_DEVICES");
    int count = value ? atoi(value) : 1;
    return count < 1 ? 1 : count > 64 ? 64 : count;
}

int check_device(int device) {
    if (!g_initialized) return CUDA_ERROR_NOT_INITIALIZED;
    return device >= 0 && device < int(g_contexts.size()) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
}

void unload(Module* module) {
    for (auto& entry : module->functions) g_functions.erase(entry.second.get());
    dlclose(module->library);
    g_modules.erase(module);
}

// A primary context released for the last time is destroyed with everything made in it.
void destroy_context_resources(int device) {
    free_allocations_of(device);
    for (auto it = g_modules.begin(); it != g_modules.end();) {
        Module* module = (it++)->first;
        if (module->device == device) unload(module);
    }
    for (auto it = g_streams.begin(); it != g_streams.end();)
        it = it->second->device == device ? g_streams.erase(it) : std::next(it);
    for (auto it = g_events.begin(); it != g_events.end();)
        it = it->second->device == device ? g_events.erase(it) : std::next(it);
}

Event* find_event(void* handle) {
    auto it = g_events.find(static_cast<Event*>(handle));
    return it == g_events.end() ? nullptr : it->second.get();
}

struct ErrorText {
    int code;
    const char* name;
    const char* text;
};

constexpr ErrorText kErrors[] = {
    {CUDA_SUCCESS, "CUDA_SUCCESS", "no error"},
    {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {CUDA_ERROR_NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {CUDA_ERROR_INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {CUDA_ERROR_INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {CUDA_ERROR_INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"},
    {CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES",
     "too many resources requested for launch"},
    {CUDA_ERROR_ASSERT, "CUDA_ERROR_ASSERT", "device-side assert triggered"},
    {CUDA_ERROR_LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
    {CUDA_ERROR_NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
};

const ErrorText* find_error(int code) {
    for (const ErrorText& error : kErrors)
        if (error.code == code) return &error;
    return nullptr;
}

}  // namespace

int check_context() {
    if (!g_initialized) return CUDA_ERROR_NOT_INITIALIZED;
    return t_current && t_current->retains > 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
}

int current_device() { return t_current->device; }

// The null stream and the legacy and per-thread default streams (CU_STREAM_LEGACY = 1, CU_STREAM_PER_THREAD = 2)
// are always valid.
bool is_valid_stream(void* stream) {
    return reinterpret_cast<uintptr_t>(stream) <= 2 || g_streams.count(static_cast<Stream*>(stream)) != 0;
}

}  // namespace aidge_emu

using namespace aidge_emu;

// ---------------------------------------------------------------------------------------------------------------
// Initialisation and devices.

AIDGE_EMU_EXPORT int cuInit(unsigned flags) {
    if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
    std::lock_guard<std::mutex> lock(device_mutex);
    if (!g_initialized) {
        int count = device_count();
        for (int device = 0; device < count; ++device) g_contexts.push_back(Context{device});
        g_initialized = true;
    }
    return CUDA_SUCCESS;
}

AIDGE_EMU_EXPORT int cuDriverGetVersion(int* version) {
    if (!version) return CUDA_ERROR_INVALID_VALUE;
    *version = 13000;
    return CUDA_SUCCESS;
}

AIDGE_EMU_EXPORT int cuDeviceGetCount(int* count) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (!g_initialized) return CUDA_ERROR_NOT_INITIALIZED;
    if (!count) return CUDA_ERROR_INVALID_VALUE;
    *count = int(g_contexts.size());
    return CUDA_SUCCESS;
}

AIDGE_EMU_EXPORT int cuDeviceGet(int* device, int ordinal) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_device(ordinal)) return status;
    if (!device) return CUDA_ERROR_INVALID_VALUE;
    *device = ordinal;
    return CUDA_SUCCESS;
}

AIDGE_EMU_EXPORT int cuDeviceGetName(char* name, int length, int device) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_device(device)) return status;
    if (!name || length <= 0) return CUDA_ERROR_INVALID_VALUE;
    snprintf(name, size_t(length), "%s", "Aidge CUDA emulator");
    return CUDA_SUCCESS;
}

AIDGE_EMU_EXPORT int cuDeviceGetAttribute(int* value, int attribute, int device) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_device(device)) return status;
    if (!value) return CUDA_ERROR_INVALID_VALUE;
    // The attributes of a compute capability 9.0 device that the emulator enforces or that shape launches.
    switch (attribute) {
        case 1: *value = kMaxThreadsPerBlock; break;  // MAX_THREADS_PER_BLOCK
        case 2: *value = 1024; break;                 // MAX_BLOCK_DIM_X
        case 3: *value = 1024; break;                 // MAX_BLOCK_DIM_Y
        case 4: *value = 64; break;                   // MAX_BLOCK_DIM_Z
        case 5: *value = 2147483647; break;           // MAX_GRID_DIM_X
        case 6: *value = 65535; break;                // MAX_GRID_DIM_Y
        case 7: *value = 65535; break;                // MAX_GRID_DIM_Z
        case 8: *value = kDefaultDynamicShared; break;  // MAX_SHARED_MEMORY_PER_BLOCK
        case 10: *value = 32; break;                  // WARP_SIZE
        case 16: *value = 4; break;                   // MULTIPROCESSOR_COUNT
        case 39: *value = 2048; break;                // MAX_THREADS_PER_MULTIPROCESSOR
        case 41: *value = 1; break;                   // UNIFIED_ADDRESSING
        case 75: *value = 9; break;                   // COMPUTE_CAPABILITY_MAJOR
        case 76: *value = 0; break;                   // COMPUTE_CAPABILITY_MINOR
        case 97: *value = kMaxDynamicShared; break;   // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
        default: return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

AIDGE_EMU_EXPORT int cuDeviceTotalMem_v2(size_t* bytes, int device) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_device(device)) return status;
    if (!bytes) return CUDA_ERROR_INVALID_VALUE;
    *bytes = kTotalMemory;
    return CUDA_SUCCESS;
}

// ---------------------------------------------------------------------------------------------------------------
// Primary contexts. The current context is per host thread, as in CUDA: a thread that never made one current
// gets CUDA_ERROR_INVALID_CONTEXT.

AIDGE_EMU_EXPORT int cuDevicePrimaryCtxRetain(void** context, int device) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_device(device)) return status;
    if (!context) return CUDA_ERROR_INVALID_VALUE;
    ++g_contexts[size_t(device)].retains;
    *context = &g_contexts[size_t(device)];
    return CUDA_SUCCESS;
}

AIDGE_EMU_EXPORT int cuDevicePrimaryCtxRelease_v2(int device) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_device(device)) return status;
    Context& context = g_contexts[size_t(device)];
    if (context.retains == 0) return CUDA_ERROR_INVALID_CONTEXT;
    if (--context.retains == 0) destroy_context_resources(device);
    return CUDA_SUCCESS;
}

AIDGE_EMU_EXPORT int cuCtxSetCurrent(void* context) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (!g_initialized) return CUDA_ERROR_NOT_INITIALIZED;
    if (!context) {
        t_current = nullptr;
        return CUDA_SUCCESS;
    }
    for (Context& candidate : g_contexts) {
        if (&candidate == context) {
            t_current = &candidate;
            return CUDA_SUCCESS;
        }
    }
    return CUDA_ERROR_INVALID_CONTEXT;
}

AIDGE_EMU_EXPORT int cuCtxGetCurrent(void** context) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (!g_initialized) return CUDA_ERROR_NOT_INITIALIZED;
    if (!context) return CUDA_ERROR_INVALID_VALUE;
    *context = t_current;
    return CUDA_SUCCESS;
}

AIDGE_EMU_EXPORT int cuCtxGetDevice(int* device) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_context()) return status;
    if (!device) return CUDA_ERROR_INVALID_VALUE;
    *device = current_device();
    return CUDA_SUCCESS;
}

// Every operation completes before its call returns, so synchronisation only checks its arguments.
AIDGE_EMU_EXPORT int cuCtxSynchronize(void) {
    std::lock_guard<std::mutex> lock(device_mutex);
    return check_context();
}

// ---------------------------------------------------------------------------------------------------------------
// Streams and events.

AIDGE_EMU_EXPORT int cuStreamCreate(void** stream, unsigned flags) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_context()) return status;
    if (!stream || flags > 1) return CUDA_ERROR_INVALID_VALUE;  // CU_STREAM_DEFAULT or CU_STREAM_NON_BLOCKING
    auto created = std::make_unique<Stream>(Stream{current_device()});
    *stream = created.get();
    g_streams.emplace(created.get(), std::move(created));
    return CUDA_SUCCESS;
}

AIDGE_EMU_EXPORT int cuStreamDestroy_v2(void* stream) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_context()) return status;
    return g_streams.erase(static_cast<Stream*>(stream)) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

namespace {

int check_stream(void* stream) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_context()) return status;
    return is_valid_stream(stream) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

}  // namespace

AIDGE_EMU_EXPORT int cuStreamSynchronize(void* stream) { return check_stream(stream); }

// Always CUDA_SUCCESS for a valid stream: nothing is ever pending.
AIDGE_EMU_EXPORT int cuStreamQuery(void* stream) { return check_stream(stream); }

AIDGE_EMU_EXPORT int cuEventCreate(void** event, unsigned flags) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_context()) return status;
    if (!event || (flags & ~7u) != 0) return CUDA_ERROR_INVALID_VALUE;
    auto created = std::make_unique<Event>(Event{current_device(), flags, false, Clock::time_point()});
    *event = created.get();
    g_events.emplace(created.get(), std::move(created));
    return CUDA_SUCCESS;
}

AIDGE_EMU_EXPORT int cuEventDestroy_v2(void* event) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_context()) return status;
    return g_events.erase(static_cast<Event*>(event)) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

AIDGE_EMU_EXPORT int cuEventRecord(void* event, void* stream) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_context()) return status;
    Event* recorded = find_event(event);
    if (!recorded || !is_valid_stream(stream)) return CUDA_ERROR_INVALID_HANDLE;
    recorded->recorded = true;
    recorded->time = Clock::now();
    return CUDA_SUCCESS;
}

AIDGE_EMU_EXPORT int cuStreamWaitEvent(void* stream, void* event, unsigned flags) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_context()) return status;
    if (!find_event(event) || !is_valid_stream(stream)) return CUDA_ERROR_INVALID_HANDLE;
    return flags <= 1 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

AIDGE_EMU_EXPORT int cuEventSynchronize(void* event) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_context()) return status;
    return find_event(event) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

// The host wall-clock time between the two records, in milliseconds.
AIDGE_EMU_EXPORT int cuEventElapsedTime(float* milliseconds, void* start, void* end) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_context()) return status;
    if (!milliseconds) return CUDA_ERROR_INVALID_VALUE;
    Event* first = find_event(start);
    Event* last = find_event(end);
    if (!first || !last || !first->recorded || !last->recorded) return CUDA_ERROR_INVALID_HANDLE;
    if ((first->flags | last->flags) & kEventDisableTiming) return CUDA_ERROR_INVALID_HANDLE;
    *milliseconds = std::chrono::duration<float, std::milli>(last->time - first->time).count();
    return CUDA_SUCCESS;
}

// ---------------------------------------------------------------------------------------------------------------
// Modules. The "PTX" of the emulated NVRTC is the marker line followed by the path of the kernel library.

AIDGE_EMU_EXPORT int cuModuleLoadData(void** module, const void* image) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_context()) return status;
    if (!module || !image) return CUDA_ERROR_INVALID_VALUE;
    const char* text = static_cast<const char*>(image);
    if (strncmp(text, kImageMagic, sizeof kImageMagic - 1) != 0) {
        report("cuModuleLoadData: the image was not made by the emulated NVRTC (real PTX and cubins cannot run)");
        return CUDA_ERROR_INVALID_IMAGE;
    }
    std::string path(text + sizeof kImageMagic - 1);
    path = path.substr(0, path.find('\n'));
    void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        report("cuModuleLoadData: %s", dlerror());
        return CUDA_ERROR_INVALID_IMAGE;
    }
    auto* runtime_pointer = static_cast<AidgeEmuRuntime**>(dlsym(library, "aidge_emu_runtime"));
    if (!runtime_pointer) {
        report("cuModuleLoadData: %s defines no aidge_emu_runtime", path.c_str());
        dlclose(library);
        return CUDA_ERROR_INVALID_IMAGE;
    }
    *runtime_pointer = runtime();
    auto loaded = std::make_unique<Module>(
        Module{current_device(), library, dlsym(library, "aidge_emu_uses_barriers") != nullptr, {}});
    *module = loaded.get();
    g_modules.emplace(loaded.get(), std::move(loaded));
    return CUDA_SUCCESS;
}

AIDGE_EMU_EXPORT int cuModuleUnload(void* module) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_context()) return status;
    auto it = g_modules.find(static_cast<Module*>(module));
    if (it == g_modules.end()) return CUDA_ERROR_INVALID_HANDLE;
    unload(it->first);
    return CUDA_SUCCESS;
}

AIDGE_EMU_EXPORT int cuModuleGetFunction(void** function, void* module, const char* name) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_context()) return status;
    auto it = g_modules.find(static_cast<Module*>(module));
    if (it == g_modules.end()) return CUDA_ERROR_INVALID_HANDLE;
    if (!function || !name) return CUDA_ERROR_INVALID_VALUE;
    Module& owner = *it->second;
    auto known = owner.functions.find(name);
    if (known == owner.functions.end()) {
        std::string suffix(name);
        auto entry = reinterpret_cast<void (*)(void**)>(dlsym(owner.library, ("aidge_emu_entry_" + suffix).c_str()));
        auto arity = static_cast<const int*>(dlsym(owner.library, ("aidge_emu_arity_" + suffix).c_str()));
        if (!entry || !arity) return CUDA_ERROR_NOT_FOUND;
        auto bound = static_cast<const int*>(dlsym(owner.library, ("aidge_emu_max_threads_" + suffix).c_str()));
        auto made = std::make_unique<Function>(
            Function{suffix, entry, *arity, owner.uses_barriers, bound ? *bound : kMaxThreadsPerBlock});
        g_functions.emplace(made.get(), &owner);
        known = owner.functions.emplace(suffix, std::move(made)).first;
    }
    *function = known->second.get();
    return CUDA_SUCCESS;
}

AIDGE_EMU_EXPORT int cuFuncSetAttribute(void* function, int attribute, int value) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_context()) return status;
    auto it = g_functions.find(static_cast<Function*>(function));
    if (it == g_functions.end()) return CUDA_ERROR_INVALID_HANDLE;
    switch (attribute) {
        case 8:  // MAX_DYNAMIC_SHARED_SIZE_BYTES
            if (value < 0 || value > kMaxDynamicShared) return CUDA_ERROR_INVALID_VALUE;
            it->first->max_dynamic_shared = value;
            return CUDA_SUCCESS;
        case 9:  // PREFERRED_SHARED_MEMORY_CARVEOUT: a hint, -1 or a percentage
            return value >= -1 && value <= 100 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
        default:
            return CUDA_ERROR_INVALID_VALUE;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Launches: checked like the driver checks them, then run synchronously on the calling thread.

AIDGE_EMU_EXPORT int cuLaunchKernel(void* function, unsigned grid_x, unsigned grid_y, unsigned grid_z,
                                    unsigned block_x, unsigned block_y, unsigned block_z, unsigned shared_bytes,
                                    void* stream, void** params, void** extra) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_context()) return status;
    auto it = g_functions.find(static_cast<Function*>(function));
    if (it == g_functions.end() || !is_valid_stream(stream)) return CUDA_ERROR_INVALID_HANDLE;
    const Function& kernel = *it->first;
    unsigned long long threads = 1ull * block_x * block_y * block_z;
    if (threads == 0 || threads > unsigned(kMaxThreadsPerBlock) || block_x > 1024 || block_y > 1024 || block_z > 64 ||
        grid_x == 0 || grid_y == 0 || grid_z == 0 || grid_x > 2147483647u || grid_y > 65535 || grid_z > 65535) {
        report("cuLaunchKernel %s: invalid configuration, grid (%u, %u, %u), block (%u, %u, %u)",
               kernel.name.c_str(), grid_x, grid_y, grid_z, block_x, block_y, block_z);
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (threads > unsigned(kernel.max_threads)) {
        report("cuLaunchKernel %s: %llu threads per block, its __launch_bounds__ allow %d", kernel.name.c_str(),
               threads, kernel.max_threads);
        return CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES;
    }
    if (shared_bytes > unsigned(kernel.max_dynamic_shared)) {
        report("cuLaunchKernel %s: %u bytes of dynamic shared memory, the kernel allows %d "
               "(cuFuncSetAttribute CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES raises it up to %d)",
               kernel.name.c_str(), shared_bytes, kernel.max_dynamic_shared, kMaxDynamicShared);
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (extra) {
        report("cuLaunchKernel %s: the `extra` argument buffer is not emulated; pass kernelParams",
               kernel.name.c_str());
        return params ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_NOT_SUPPORTED;
    }
    for (int i = 0; i < kernel.arity; ++i) {
        if (!params || !params[i]) {
            report("cuLaunchKernel %s: kernelParams[%d] of %d is null", kernel.name.c_str(), i, kernel.arity);
            return CUDA_ERROR_INVALID_VALUE;
        }
    }
    DeviceAccess access;
    int status = run_grid(kernel, AidgeEmuIndex{grid_x, grid_y, grid_z}, AidgeEmuIndex{block_x, block_y, block_z},
                          shared_bytes, params);
    if (status == CUDA_SUCCESS) ++g_launches;
    return status;
}

AIDGE_EMU_EXPORT unsigned long long aidge_emu_launch_count(void) { return g_launches.load(); }

// ---------------------------------------------------------------------------------------------------------------
// Error strings.

AIDGE_EMU_EXPORT int cuGetErrorString(int error, const char** text) {
    if (!text) return CUDA_ERROR_INVALID_VALUE;
    const ErrorText* known = find_error(error);
    *text = known ? known->text : nullptr;
    return known ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

AIDGE_EMU_EXPORT int cuGetErrorName(int error, const char** name) {
    if (!name) return CUDA_ERROR_INVALID_VALUE;
    const ErrorText* known = find_error(error);
    *name = known ? known->name : nullptr;
    return known ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
