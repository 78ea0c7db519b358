// Emulated cuBLAS: the GEMMs the CUDA backend calls, column-major, with host alpha and beta.
//
// Arguments are checked as cuBLAS checks them; device operands must lie inside live allocations. Products
// accumulate in float. Inputs are rounded first where the requested math would round them on a GPU: to TF32 for
// CUBLAS_COMPUTE_32F_FAST_TF32 or the CUBLAS_TF32_TENSOR_OP_MATH math mode, to fp16 or bf16 for
// CUBLAS_COMPUTE_32F_FAST_16F and _16BF. Results are rounded to nearest even into C's type.
#include "internal.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <vector>

namespace aidge_emu {
namespace {

enum : int {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
};

enum : int { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 };

enum : int {
    CUBLAS_COMPUTE_32F = 68,
    CUBLAS_COMPUTE_32F_PEDANTIC = 69,
    CUBLAS_COMPUTE_32F_FAST_16F = 74,
    CUBLAS_COMPUTE_32F_FAST_16BF = 75,
    CUBLAS_COMPUTE_32F_FAST_TF32 = 77,
};

constexpr int kTF32TensorOpMath = 3;

struct Handle {
    void* stream = nullptr;
    int math_mode = 0;
};

std::set<Handle*> g_handles;  // guarded by device_mutex

Handle* find_handle(void* handle) {
    auto it = g_handles.find(static_cast<Handle*>(handle));
    return it == g_handles.end() ? nullptr : *it;
}

// ---------------------------------------------------------------------------------------------------------------
// Rounding of the inputs (the number formats are in internal.h).

enum class Rounding { none, tf32, half, bfloat16 };

float round_input(float value, Rounding rounding) {
    switch (rounding) {
        case Rounding::none: return value;
        case Rounding::tf32: return round_to_tf32(value);
        case Rounding::half: return half_to_float(float_to_half(value));
        case Rounding::bfloat16: return bfloat16_to_float(float_to_bfloat16(value));
    }
    return value;
}

size_t element_size(int type) { return type == CUDA_R_32F ? 4 : 2; }

float load(const void* base, int type, long long index) {
    switch (type) {
        case CUDA_R_16F: return half_to_float(static_cast<const uint16_t*>(base)[index]);
        case CUDA_R_16BF: return bfloat16_to_float(static_cast<const uint16_t*>(base)[index]);
        default: return static_cast<const float*>(base)[index];
    }
}

void store(void* base, int type, long long index, float value) {
    switch (type) {
        case CUDA_R_16F: static_cast<uint16_t*>(base)[index] = float_to_half(value); break;
        case CUDA_R_16BF: static_cast<uint16_t*>(base)[index] = float_to_bfloat16(value); break;
        default: static_cast<float*>(base)[index] = value;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The GEMM.

struct Matrix {
    const void* data;
    int type;
    int ld;
    long long stride;  // between batches, in elements
};

// Whether every batch of a rows x cols stored matrix lies inside one live allocation.
bool check_operand(const char* api, const char* role, const Matrix& matrix, int rows, int cols, int batches) {
    long long extent = (long long)(cols - 1) * matrix.ld + rows;
    long long last = (long long)(batches - 1) * matrix.stride;
    long long low = last < 0 ? last : 0;
    long long high = last > 0 ? last : 0;
    size_t size = element_size(matrix.type);
    uintptr_t start = reinterpret_cast<uintptr_t>(matrix.data) + uintptr_t(low * (long long)size);
    if (is_device_range(start, size_t(high - low + extent) * size)) return true;
    report("%s: %s (%d x %d, ld %d, %d batches, stride %lld) is not inside one live device allocation; it starts at %s",
           api, role, rows, cols, matrix.ld, batches, matrix.stride,
           describe_address(reinterpret_cast<uintptr_t>(matrix.data)).c_str());
    return false;
}

// op(X) of a batch, rows x cols, into a column-major float matrix.
void pack(const Matrix& matrix, long long batch, int op, int rows, int cols, Rounding rounding,
          std::vector<float>& out) {
    out.resize(size_t(rows) * size_t(cols));
    long long offset = batch * matrix.stride;
    for (int c = 0; c < cols; ++c)
        for (int r = 0; r < rows; ++r) {
            long long index = op == 0 ? offset + r + (long long)c * matrix.ld : offset + c + (long long)r * matrix.ld;
            out[size_t(r) + size_t(c) * size_t(rows)] = round_input(load(matrix.data, matrix.type, index), rounding);
        }
}

int gemm(const char* api, void* handle, int transa, int transb, int m, int n, int k, const float* alpha, Matrix a,
         Matrix b, const float* beta, Matrix c, int batches, Rounding rounding) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (!find_handle(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    auto max1 = [](int value) { return value > 1 ? value : 1; };
    if (transa < 0 || transa > 2 || transb < 0 || transb > 2 || m < 0 || n < 0 || k < 0 || batches < 0 ||
        a.ld < max1(transa == 0 ? m : k) || b.ld < max1(transb == 0 ? k : n) || c.ld < max1(m) || !alpha || !beta)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0 || batches == 0) return CUBLAS_STATUS_SUCCESS;
    if (overlaps_device_memory(alpha, sizeof(float)) || overlaps_device_memory(beta, sizeof(float))) {
        report("%s: alpha and beta are host pointers (the device pointer mode is not emulated)", api);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    // As in cuBLAS, A and B are not read when alpha is zero or k is, and C is not read when beta is zero.
    bool product = k > 0 && *alpha != 0.0f;
    if (product && (!check_operand(api, "A", a, transa == 0 ? m : k, transa == 0 ? k : m, batches) ||
                    !check_operand(api, "B", b, transb == 0 ? k : n, transb == 0 ? n : k, batches)))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (!check_operand(api, "C", c, m, n, batches)) return CUBLAS_STATUS_INVALID_VALUE;

    DeviceAccess access;
    std::vector<float> packed_a, packed_b;
    std::vector<float> column(static_cast<size_t>(m));
    float scale = *alpha, keep = *beta;
    for (int batch = 0; batch < batches; ++batch) {
        if (product) {
            pack(a, batch, transa, m, k, rounding, packed_a);
            pack(b, batch, transb, k, n, rounding, packed_b);
        }
        long long offset = (long long)batch * c.stride;
        void* out = const_cast<void*>(c.data);
        for (int j = 0; j < n; ++j) {
            std::fill(column.begin(), column.end(), 0.0f);
            if (product) {
                for (int p = 0; p < k; ++p) {
                    float factor = packed_b[size_t(p) + size_t(j) * size_t(k)];
                    const float* source = &packed_a[size_t(p) * size_t(m)];
                    for (int i = 0; i < m; ++i) column[size_t(i)] += source[i] * factor;
                }
            }
            for (int i = 0; i < m; ++i) {
                long long index = offset + i + (long long)j * c.ld;
                float result = scale * column[size_t(i)];
                if (keep != 0.0f) result += keep * load(out, c.type, index);
                store(out, c.type, index, result);
            }
        }
    }
    return CUBLAS_STATUS_SUCCESS;
}

Rounding float_math_rounding(void* handle) {
    std::lock_guard<std::mutex> lock(device_mutex);
    Handle* known = find_handle(handle);
    return known && (known->math_mode & 0xf) == kTF32TensorOpMath ? Rounding::tf32 : Rounding::none;
}

// The rounding of the inputs for a GemmEx, or CUBLAS_STATUS_NOT_SUPPORTED for types and compute types the emulator
// (like the backend) does not use.
int ex_rounding(void* handle, int a_type, int b_type, int c_type, int compute, Rounding& rounding) {
    bool known_type = a_type == CUDA_R_32F || a_type == CUDA_R_16F || a_type == CUDA_R_16BF;
    if (!known_type || b_type != a_type || (c_type != a_type && c_type != CUDA_R_32F))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    switch (compute) {
        case CUBLAS_COMPUTE_32F: rounding = float_math_rounding(handle); break;
        case CUBLAS_COMPUTE_32F_PEDANTIC: rounding = Rounding::none; break;
        case CUBLAS_COMPUTE_32F_FAST_TF32: rounding = Rounding::tf32; break;
        case CUBLAS_COMPUTE_32F_FAST_16F: rounding = Rounding::half; break;
        case CUBLAS_COMPUTE_32F_FAST_16BF: rounding = Rounding::bfloat16; break;
        default: return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (a_type != CUDA_R_32F) rounding = Rounding::none;  // 16-bit inputs are exact in every compute type
    return CUBLAS_STATUS_SUCCESS;
}

// CUBLAS_GEMM_DEFAULT (-1), the algorithms 0-23 and the tensor-op ones 99-115.
bool valid_algorithm(int algorithm) {
    return (algorithm >= -1 && algorithm <= 23) || (algorithm >= 99 && algorithm <= 115);
}

}  // namespace
}  // namespace aidge_emu

using namespace aidge_emu;

AIDGE_EMU_EXPORT int cublasCreate_v2(void** handle) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (check_context() != CUDA_SUCCESS) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    Handle* created = new Handle;
    g_handles.insert(created);
    *handle = created;
    return CUBLAS_STATUS_SUCCESS;
}

AIDGE_EMU_EXPORT int cublasDestroy_v2(void* handle) {
    std::lock_guard<std::mutex> lock(device_mutex);
    Handle* known = find_handle(handle);
    if (!known) return CUBLAS_STATUS_NOT_INITIALIZED;
    g_handles.erase(known);
    delete known;
    return CUBLAS_STATUS_SUCCESS;
}

AIDGE_EMU_EXPORT int cublasSetStream_v2(void* handle, void* stream) {
    std::lock_guard<std::mutex> lock(device_mutex);
    Handle* known = find_handle(handle);
    if (!known) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!is_valid_stream(stream)) return CUBLAS_STATUS_INVALID_VALUE;
    known->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

// CUBLAS_DEFAULT_MATH, _TENSOR_OP_MATH, _PEDANTIC_MATH or _TF32_TENSOR_OP_MATH, optionally with
// CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION (16).
AIDGE_EMU_EXPORT int cublasSetMathMode(void* handle, int mode) {
    std::lock_guard<std::mutex> lock(device_mutex);
    Handle* known = find_handle(handle);
    if (!known) return CUBLAS_STATUS_NOT_INITIALIZED;
    if ((mode & ~16) < 0 || (mode & ~16) > 3) return CUBLAS_STATUS_INVALID_VALUE;
    known->math_mode = mode;
    return CUBLAS_STATUS_SUCCESS;
}

// The workspace is never used, but must be what cuBLAS requires: device memory, 256-byte aligned.
AIDGE_EMU_EXPORT int cublasSetWorkspace_v2(void* handle, void* workspace, size_t bytes) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (!find_handle(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    uintptr_t address = reinterpret_cast<uintptr_t>(workspace);
    if (bytes > 0 && (address % 256 != 0 || !is_device_range(address, bytes))) {
        report("cublasSetWorkspace_v2: the workspace %p (%zu bytes) is not 256-byte aligned device memory", workspace,
               bytes);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    return CUBLAS_STATUS_SUCCESS;
}

AIDGE_EMU_EXPORT const char* cublasGetStatusString(int status) {
    switch (status) {
        case 0: return "the operation completed successfully";
        case 1: return "the library was not initialized";
        case 3: return "the resource allocation failed";
        case 7: return "an invalid numeric value was used as an argument";
        case 8: return "an absent device architectural feature is required";
        case 11: return "an access to GPU memory space failed";
        case 13: return "the GPU program failed to execute";
        case 14: return "an internal operation failed";
        case 15: return "the functionality requested is not supported";
        case 16: return "an error was detected when checking the current licensing";
        default: return "unknown error";
    }
}

AIDGE_EMU_EXPORT int cublasSgemm_v2(void* handle, int transa, int transb, int m, int n, int k, const float* alpha,
                                    const float* a, int lda, const float* b, int ldb, const float* beta, float* c,
                                    int ldc) {
    return gemm("cublasSgemm_v2", handle, transa, transb, m, n, k, alpha, Matrix{a, CUDA_R_32F, lda, 0},
                Matrix{b, CUDA_R_32F, ldb, 0}, beta, Matrix{c, CUDA_R_32F, ldc, 0}, 1, float_math_rounding(handle));
}

AIDGE_EMU_EXPORT int cublasSgemmStridedBatched(void* handle, int transa, int transb, int m, int n, int k,
                                               const float* alpha, const float* a, int lda, long long stride_a,
                                               const float* b, int ldb, long long stride_b, const float* beta, float* c,
                                               int ldc, long long stride_c, int batches) {
    return gemm("cublasSgemmStridedBatched", handle, transa, transb, m, n, k, alpha,
                Matrix{a, CUDA_R_32F, lda, stride_a}, Matrix{b, CUDA_R_32F, ldb, stride_b}, beta,
                Matrix{c, CUDA_R_32F, ldc, stride_c}, batches, float_math_rounding(handle));
}

AIDGE_EMU_EXPORT int cublasGemmEx(void* handle, int transa, int transb, int m, int n, int k, const void* alpha,
                                  const void* a, int a_type, int lda, const void* b, int b_type, int ldb,
                                  const void* beta, void* c, int c_type, int ldc, int compute, int algorithm) {
    Rounding rounding = Rounding::none;
    if (int status = ex_rounding(handle, a_type, b_type, c_type, compute, rounding)) return status;
    if (!valid_algorithm(algorithm)) return CUBLAS_STATUS_INVALID_VALUE;
    return gemm("cublasGemmEx", handle, transa, transb, m, n, k, static_cast<const float*>(alpha),
                Matrix{a, a_type, lda, 0}, Matrix{b, b_type, ldb, 0}, static_cast<const float*>(beta),
                Matrix{c, c_type, ldc, 0}, 1, rounding);
}

AIDGE_EMU_EXPORT int cublasGemmStridedBatchedEx(void* handle, int transa, int transb, int m, int n, int k,
                                                const void* alpha, const void* a, int a_type, int lda,
                                                long long stride_a, const void* b, int b_type, int ldb,
                                                long long stride_b, const void* beta, void* c, int c_type, int ldc,
                                                long long stride_c, int batches, int compute, int algorithm) {
    Rounding rounding = Rounding::none;
    if (int status = ex_rounding(handle, a_type, b_type, c_type, compute, rounding)) return status;
    if (!valid_algorithm(algorithm)) return CUBLAS_STATUS_INVALID_VALUE;
    return gemm("cublasGemmStridedBatchedEx", handle, transa, transb, m, n, k, static_cast<const float*>(alpha),
                Matrix{a, a_type, lda, stride_a}, Matrix{b, b_type, ldb, stride_b}, static_cast<const float*>(beta),
                Matrix{c, c_type, ldc, stride_c}, batches, rounding);
}
