// Emulated device memory: allocations, copies, memsets and pointer attributes.
//
// Each allocation is its own mapping: its data pages, then one page that stays inaccessible. The returned pointer
// is 256-byte aligned like cuMemAlloc's and placed so that the allocation ends as close to that page as the
// alignment allows, so a kernel that runs past the end faults (and the launch reports where). Outside the
// emulator's own copies, memsets, launches and cuBLAS calls the data pages are inaccessible too, so host code that
// dereferences a device pointer faults at once instead of reading memory a GPU would not let it read.
// AIDGE_EMULATOR_PROTECT=0 leaves them accessible.
//
// Fresh allocations are filled with 0xFF bytes (NaN, -1) so that reads of memory nothing wrote show.
#include "internal.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>

namespace aidge_emu {
namespace {

struct Allocation {
    uintptr_t base;
    size_t size;
    char* mapping;      // data pages, then the guard page
    size_t data_bytes;  // a multiple of the page size
    int device;
};

std::map<uintptr_t, Allocation> g_allocations;  // by base
size_t g_live_bytes = 0;
int g_access_depth = 0;

size_t page_size() {
    static const size_t size = size_t(sysconf(_SC_PAGESIZE));
    return size;
}

size_t round_up(size_t value, size_t multiple) { return (value + multiple - 1) / multiple * multiple; }

bool protection_enabled() {
    static const bool enabled = [] {
        const char* value = getenv("AIDGE_EMULATOR_PROTECT");
        return !(value && strcmp(value, "0") == 0);
    }();
    return enabled;
}

void set_access(const Allocation& allocation, bool accessible) {
    mprotect(allocation.mapping, allocation.data_bytes, accessible ? PROT_READ | PROT_WRITE : PROT_NONE);
}

// The allocation that contains address, or null.
const Allocation* find_allocation(uintptr_t address) {
    auto it = g_allocations.upper_bound(address);
    if (it == g_allocations.begin()) return nullptr;
    --it;
    return address < it->second.base + it->second.size ? &it->second : nullptr;
}

// Checks a device range of a copy or memset and reports one that is not inside one live allocation.
bool check_device_range(const char* api, const char* role, uintptr_t address, size_t bytes) {
    if (is_device_range(address, bytes)) return true;
    report("%s: the %s range [0x%llx, +%zu) is not inside one live device allocation; it starts at %s", api, role,
           (unsigned long long)address, bytes, describe_address(address).c_str());
    return false;
}

bool check_host_range(const char* api, const char* role, const void* host, size_t bytes) {
    if (!host) {
        report("%s: null host %s", api, role);
        return false;
    }
    if (overlaps_device_memory(host, bytes)) {
        report("%s: the host %s %p is device memory", api, role, host);
        return false;
    }
    return true;
}

int copy(const char* api, uintptr_t destination, bool destination_on_device, uintptr_t source, bool source_on_device,
         size_t bytes, void* stream) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_context()) return status;
    if (!is_valid_stream(stream)) return CUDA_ERROR_INVALID_HANDLE;
    if (bytes == 0) return CUDA_SUCCESS;
    auto check = [&](bool on_device, const char* role, uintptr_t address) {
        return on_device ? check_device_range(api, role, address, bytes)
                         : check_host_range(api, role, reinterpret_cast<void*>(address), bytes);
    };
    if (!check(destination_on_device, "destination", destination) || !check(source_on_device, "source", source))
        return CUDA_ERROR_INVALID_VALUE;
    DeviceAccess access;
    memmove(reinterpret_cast<void*>(destination), reinterpret_cast<const void*>(source), bytes);
    return CUDA_SUCCESS;
}

template <class T>
int fill(const char* api, uintptr_t destination, T value, size_t count, void* stream) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_context()) return status;
    if (!is_valid_stream(stream)) return CUDA_ERROR_INVALID_HANDLE;
    if (count == 0) return CUDA_SUCCESS;
    if (destination % sizeof(T) != 0) {
        report("%s: destination 0x%llx is not %zu-byte aligned", api, (unsigned long long)destination, sizeof(T));
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (count > SIZE_MAX / sizeof(T) || !check_device_range(api, "destination", destination, count * sizeof(T)))
        return CUDA_ERROR_INVALID_VALUE;
    DeviceAccess access;
    T* target = reinterpret_cast<T*>(destination);
    for (size_t i = 0; i < count; ++i) target[i] = value;
    return CUDA_SUCCESS;
}

}  // namespace

bool is_device_range(uintptr_t address, size_t bytes) {
    const Allocation* allocation = find_allocation(address);
    return allocation && bytes <= allocation->base + allocation->size - address;
}

bool overlaps_device_memory(const void* host, size_t bytes) {
    uintptr_t first = reinterpret_cast<uintptr_t>(host);
    uintptr_t last = first + (bytes ? bytes - 1 : 0);
    auto it = g_allocations.upper_bound(last);
    if (it == g_allocations.begin()) return false;
    --it;
    return it->second.base + it->second.size > first;
}

std::string describe_address(uintptr_t address) {
    char text[256];
    if (const Allocation* inside = find_allocation(address)) {
        snprintf(text, sizeof text, "byte %zu of the %zu-byte allocation at 0x%llx", size_t(address - inside->base),
                 inside->size, (unsigned long long)inside->base);
        return text;
    }
    auto next = g_allocations.upper_bound(address);
    if (next != g_allocations.begin()) {
        const Allocation& before = std::prev(next)->second;
        uintptr_t end = before.base + before.size;
        if (address < reinterpret_cast<uintptr_t>(before.mapping) + before.data_bytes + page_size()) {
            snprintf(text, sizeof text, "%zu bytes past the end of the %zu-byte allocation at 0x%llx",
                     size_t(address - end), before.size, (unsigned long long)before.base);
            return text;
        }
    }
    if (next != g_allocations.end() && address >= reinterpret_cast<uintptr_t>(next->second.mapping)) {
        snprintf(text, sizeof text, "%zu bytes before the %zu-byte allocation at 0x%llx",
                 size_t(next->second.base - address), next->second.size, (unsigned long long)next->second.base);
        return text;
    }
    return "not in any live device allocation (freed, host memory, or a wrongly computed address)";
}

void free_allocations_of(int device) {
    for (auto it = g_allocations.begin(); it != g_allocations.end();) {
        if (it->second.device != device) {
            ++it;
            continue;
        }
        munmap(it->second.mapping, it->second.data_bytes + page_size());
        g_live_bytes -= it->second.size;
        it = g_allocations.erase(it);
    }
}

DeviceAccess::DeviceAccess() {
    if (protection_enabled() && g_access_depth++ == 0)
        for (const auto& entry : g_allocations) set_access(entry.second, true);
}

DeviceAccess::~DeviceAccess() {
    if (protection_enabled() && --g_access_depth == 0)
        for (const auto& entry : g_allocations) set_access(entry.second, false);
}

}  // namespace aidge_emu

using namespace aidge_emu;

AIDGE_EMU_EXPORT int cuMemAlloc_v2(unsigned long long* pointer, size_t bytes) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_context()) return status;
    if (!pointer || bytes == 0) return CUDA_ERROR_INVALID_VALUE;
    if (bytes > kTotalMemory - g_live_bytes) return CUDA_ERROR_OUT_OF_MEMORY;
    size_t data_bytes = round_up(bytes, page_size());
    void* mapping =
        mmap(nullptr, data_bytes + page_size(), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mapping == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
    Allocation allocation{0, bytes, static_cast<char*>(mapping), data_bytes, current_device()};
    allocation.base = reinterpret_cast<uintptr_t>(allocation.mapping) + data_bytes - round_up(bytes, 256);
    set_access(allocation, true);
    memset(allocation.mapping, 0xFF, data_bytes);
    if (protection_enabled() && g_access_depth == 0) set_access(allocation, false);
    g_allocations.emplace(allocation.base, allocation);
    g_live_bytes += bytes;
    *pointer = allocation.base;
    return CUDA_SUCCESS;
}

// Only a pointer cuMemAlloc_v2 returned, and only once; null included.
AIDGE_EMU_EXPORT int cuMemFree_v2(unsigned long long pointer) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_context()) return status;
    auto it = g_allocations.find(pointer);
    if (it == g_allocations.end()) {
        report("cuMemFree_v2: 0x%llx is not the start of a live allocation: %s", pointer,
               describe_address(pointer).c_str());
        return CUDA_ERROR_INVALID_VALUE;
    }
    munmap(it->second.mapping, it->second.data_bytes + page_size());
    g_live_bytes -= it->second.size;
    g_allocations.erase(it);
    return CUDA_SUCCESS;
}

AIDGE_EMU_EXPORT int cuMemGetInfo_v2(size_t* free_bytes, size_t* total_bytes) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_context()) return status;
    if (!free_bytes || !total_bytes) return CUDA_ERROR_INVALID_VALUE;
    *total_bytes = kTotalMemory;
    *free_bytes = kTotalMemory - g_live_bytes;
    return CUDA_SUCCESS;
}

AIDGE_EMU_EXPORT int cuMemcpyHtoD_v2(unsigned long long destination, const void* source, size_t bytes) {
    return copy("cuMemcpyHtoD_v2", destination, true, reinterpret_cast<uintptr_t>(source), false, bytes, nullptr);
}

AIDGE_EMU_EXPORT int cuMemcpyDtoH_v2(void* destination, unsigned long long source, size_t bytes) {
    return copy("cuMemcpyDtoH_v2", reinterpret_cast<uintptr_t>(destination), false, source, true, bytes, nullptr);
}

AIDGE_EMU_EXPORT int cuMemcpyDtoD_v2(unsigned long long destination, unsigned long long source, size_t bytes) {
    return copy("cuMemcpyDtoD_v2", destination, true, source, true, bytes, nullptr);
}

AIDGE_EMU_EXPORT int cuMemcpyHtoDAsync_v2(unsigned long long destination, const void* source, size_t bytes,
                                          void* stream) {
    return copy("cuMemcpyHtoDAsync_v2", destination, true, reinterpret_cast<uintptr_t>(source), false, bytes, stream);
}

AIDGE_EMU_EXPORT int cuMemcpyDtoHAsync_v2(void* destination, unsigned long long source, size_t bytes, void* stream) {
    return copy("cuMemcpyDtoHAsync_v2", reinterpret_cast<uintptr_t>(destination), false, source, true, bytes, stream);
}

AIDGE_EMU_EXPORT int cuMemcpyDtoDAsync_v2(unsigned long long destination, unsigned long long source, size_t bytes,
                                          void* stream) {
    return copy("cuMemcpyDtoDAsync_v2", destination, true, source, true, bytes, stream);
}

AIDGE_EMU_EXPORT int cuMemsetD8_v2(unsigned long long destination, unsigned char value, size_t count) {
    return fill("cuMemsetD8_v2", destination, value, count, nullptr);
}

AIDGE_EMU_EXPORT int cuMemsetD8Async(unsigned long long destination, unsigned char value, size_t count, void* stream) {
    return fill("cuMemsetD8Async", destination, value, count, stream);
}

AIDGE_EMU_EXPORT int cuMemsetD32Async(unsigned long long destination, unsigned value, size_t count, void* stream) {
    return fill("cuMemsetD32Async", destination, value, count, stream);
}

AIDGE_EMU_EXPORT int cuPointerGetAttribute(void* data, int attribute, unsigned long long pointer) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (int status = check_context()) return status;
    if (!data) return CUDA_ERROR_INVALID_VALUE;
    const Allocation* allocation = find_allocation(pointer);
    if (!allocation) return CUDA_ERROR_INVALID_VALUE;
    switch (attribute) {
        case 2:  // CU_POINTER_ATTRIBUTE_MEMORY_TYPE
            *static_cast<unsigned*>(data) = 2;  // CU_MEMORYTYPE_DEVICE
            return CUDA_SUCCESS;
        case 9:  // CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL
            *static_cast<int*>(data) = allocation->device;
            return CUDA_SUCCESS;
        default:
            return CUDA_ERROR_INVALID_VALUE;
    }
}

AIDGE_EMU_EXPORT int aidge_emu_live_allocations(void) {
    std::lock_guard<std::mutex> lock(device_mutex);
    return int(g_allocations.size());
}

AIDGE_EMU_EXPORT size_t aidge_emu_live_bytes(void) {
    std::lock_guard<std::mutex> lock(device_mutex);
    return g_live_bytes;
}
