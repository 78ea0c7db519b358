// Emulated cuDNN: the legacy descriptor API of a forward convolution, as the CUDA backend calls it.
//
// Status codes are cuDNN 9's (categories of a thousand: 1001 not initialized, 2000 bad parameter, 3000 not
// supported, 4000 internal error); the emulator returns the category codes, not the finer ones. Descriptors are
// checked as cuDNN checks them, and again, against each other, by the calls that use them. Device operands must lie
// inside live allocations; the output may not overlap the inputs, the workspace, or itself.
//
// The convolution accumulates in float (double for double data). Float inputs are rounded to TF32 unless the math
// type is CUDNN_FMA_MATH, as tensor cores round them; fp16 and bf16 inputs are exact in float. Results are rounded to
// nearest even into the output's type. IMPLICIT_GEMM (0) needs no workspace; IMPLICIT_PRECOMP_GEMM (1) needs some,
// and the emulator overwrites it with 0xFF bytes, so that a workspace shared with live data shows. Other algorithms
// are not emulated (CUDNN_STATUS_NOT_SUPPORTED).
//
// AIDGE_EMULATOR_CUDNN=0 makes the library behave as if cuDNN could not be used: cudnnGetVersion returns 0 and
// cudnnCreate CUDNN_STATUS_NOT_INITIALIZED.
#include "internal.h"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <set>
#include <vector>

namespace aidge_emu {
namespace {

enum : int {
    CUDNN_STATUS_SUCCESS = 0,
    CUDNN_STATUS_NOT_INITIALIZED = 1001,
    CUDNN_STATUS_BAD_PARAM = 2000,
    CUDNN_STATUS_NOT_SUPPORTED = 3000,
    CUDNN_STATUS_INTERNAL_ERROR = 4000,
    CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED = 4003,
    CUDNN_STATUS_EXECUTION_FAILED = 5000,
};

enum : int { CUDNN_DATA_FLOAT = 0, CUDNN_DATA_DOUBLE = 1, CUDNN_DATA_HALF = 2, CUDNN_DATA_BFLOAT16 = 9 };
constexpr int kLastDataType = 21;  // CUDNN_DATA_COMPLEX_FP64

enum : int { CUDNN_TENSOR_NCHW = 0, CUDNN_TENSOR_NHWC = 1, CUDNN_TENSOR_NCHW_VECT_C = 2 };
enum : int { CUDNN_CONVOLUTION = 0, CUDNN_CROSS_CORRELATION = 1 };
enum : int { CUDNN_DEFAULT_MATH = 0, CUDNN_FMA_MATH = 3 };
enum : int { CUDNN_FWD_ALGO_IMPLICIT_GEMM = 0, CUDNN_FWD_ALGO_IMPLICIT_PRECOMP_GEMM = 1, kAlgorithmCount = 8 };
enum : int { CUDNN_DETERMINISTIC = 1 };

constexpr int kDimMax = 8;  // CUDNN_DIM_MAX
constexpr int kMaxSpatial = 3;

struct Handle {
    void* stream = nullptr;
};

struct TensorDescriptor {
    bool set = false;
    int type = 0;
    int rank = 0;
    int dims[kDimMax] = {};
    long long strides[kDimMax] = {};
};

struct FilterDescriptor {
    bool set = false;
    int type = 0;
    int rank = 0;
    int dims[kDimMax] = {};
};

struct ConvolutionDescriptor {
    bool set = false;
    int spatial = 0;
    int pads[kDimMax - 2] = {};
    int strides[kDimMax - 2] = {};
    int dilations[kDimMax - 2] = {};
    int mode = CUDNN_CROSS_CORRELATION;
    int compute = CUDNN_DATA_FLOAT;
    int groups = 1;
    int math = CUDNN_DEFAULT_MATH;
};

// Guarded by device_mutex.
std::set<Handle*> g_handles;
std::set<TensorDescriptor*> g_tensors;
std::set<FilterDescriptor*> g_filters;
std::set<ConvolutionDescriptor*> g_convolutions;

template <class T>
T* find(std::set<T*>& registry, void* pointer) {
    auto it = registry.find(static_cast<T*>(pointer));
    return it == registry.end() ? nullptr : *it;
}

template <class T>
int create(std::set<T*>& registry, void** out) {
    if (!out) return CUDNN_STATUS_BAD_PARAM;
    T* created = new (std::nothrow) T;
    if (!created) return CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
    std::lock_guard<std::mutex> lock(device_mutex);
    registry.insert(created);
    *out = created;
    return CUDNN_STATUS_SUCCESS;
}

template <class T>
int destroy(std::set<T*>& registry, void* pointer) {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (!pointer) return CUDNN_STATUS_SUCCESS;  // as cuDNN: destroying null does nothing
    T* known = find(registry, pointer);
    if (!known) return CUDNN_STATUS_BAD_PARAM;
    registry.erase(known);
    delete known;
    return CUDNN_STATUS_SUCCESS;
}

bool enabled() {
    const char* value = getenv("AIDGE_EMULATOR_CUDNN");
    return !(value && strcmp(value, "0") == 0);
}

size_t element_size(int type) {
    switch (type) {
        case CUDNN_DATA_DOUBLE: return 8;
        case CUDNN_DATA_HALF:
        case CUDNN_DATA_BFLOAT16: return 2;
        default: return 4;
    }
}

const char* type_name(int type) {
    switch (type) {
        case CUDNN_DATA_FLOAT: return "float";
        case CUDNN_DATA_DOUBLE: return "double";
        case CUDNN_DATA_HALF: return "half";
        case CUDNN_DATA_BFLOAT16: return "bfloat16";
        default: return "an unsupported type";
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The geometry of a convolution, from its three descriptors.

struct Geometry {
    int spatial = 0;
    int n = 0, c = 0, k = 0, groups = 1;
    int in[kDimMax - 2] = {}, filter[kDimMax - 2] = {}, out[kDimMax - 2] = {};
};

// The output's dimensions, or CUDNN_STATUS_BAD_PARAM (reported) when X, W and the convolution do not fit together.
int geometry(const char* api, const TensorDescriptor* x, const FilterDescriptor* w, const ConvolutionDescriptor* conv,
             Geometry& g) {
    if (!x || !w || !conv) {
        report("%s: an unknown tensor, filter or convolution descriptor", api);
        return CUDNN_STATUS_BAD_PARAM;
    }
    if (!x->set || !w->set || !conv->set) {
        report("%s: a tensor, filter or convolution descriptor that was never set", api);
        return CUDNN_STATUS_BAD_PARAM;
    }
    if (x->rank != w->rank || x->rank != conv->spatial + 2) {
        report("%s: X has %d dimensions, W %d, and the convolution %d spatial ones", api, x->rank, w->rank,
               conv->spatial);
        return CUDNN_STATUS_BAD_PARAM;
    }
    if (x->type != w->type) {
        report("%s: X holds %s, W %s", api, type_name(x->type), type_name(w->type));
        return CUDNN_STATUS_BAD_PARAM;
    }
    g.spatial = conv->spatial;
    g.n = x->dims[0];
    g.c = x->dims[1];
    g.k = w->dims[0];
    g.groups = conv->groups;
    if ((long long)w->dims[1] * g.groups != g.c || g.k % g.groups != 0) {
        report("%s: X has %d channels, W %d output and %d input channels, in %d groups", api, g.c, g.k, w->dims[1],
               g.groups);
        return CUDNN_STATUS_BAD_PARAM;
    }
    for (int i = 0; i < g.spatial; ++i) {
        g.in[i] = x->dims[i + 2];
        g.filter[i] = w->dims[i + 2];
        long long span = (long long)(g.filter[i] - 1) * conv->dilations[i] + 1;
        long long room = (long long)g.in[i] + 2LL * conv->pads[i];
        if (span > room) {
            report("%s: spatial dimension %d: the dilated filter (%lld) is wider than the padded input (%lld)", api, i,
                   span, room);
            return CUDNN_STATUS_BAD_PARAM;
        }
        g.out[i] = int((room - span) / conv->strides[i] + 1);
    }
    return CUDNN_STATUS_SUCCESS;
}

// The checks of everything but the data: Y matches the output X and W make, and the types are a configuration
// cuDNN runs.
int check_problem(const char* api, void* x_desc, void* w_desc, void* conv_desc, void* y_desc, Geometry& g) {
    TensorDescriptor* x = find(g_tensors, x_desc);
    FilterDescriptor* w = find(g_filters, w_desc);
    ConvolutionDescriptor* conv = find(g_convolutions, conv_desc);
    if (int status = geometry(api, x, w, conv, g)) return status;
    TensorDescriptor* y = find(g_tensors, y_desc);
    if (!y || !y->set) {
        report("%s: an unknown or unset Y descriptor", api);
        return CUDNN_STATUS_BAD_PARAM;
    }
    bool same = y->rank == x->rank && y->dims[0] == g.n && y->dims[1] == g.k;
    for (int i = 0; same && i < g.spatial; ++i) same = y->dims[i + 2] == g.out[i];
    if (!same) {
        report("%s: Y's dimensions are not the convolution's output dimensions", api);
        return CUDNN_STATUS_BAD_PARAM;
    }
    if (y->type != x->type) {
        report("%s: X holds %s, Y %s", api, type_name(x->type), type_name(y->type));
        return CUDNN_STATUS_BAD_PARAM;
    }
    // FLOAT_CONFIG, DOUBLE_CONFIG, (PSEUDO_/TRUE_)HALF_CONFIG and (PSEUDO_)BFLOAT16_CONFIG.
    int type = x->type, compute = conv->compute;
    bool supported = (type == CUDNN_DATA_FLOAT && compute == CUDNN_DATA_FLOAT) ||
                     (type == CUDNN_DATA_DOUBLE && compute == CUDNN_DATA_DOUBLE) ||
                     (type == CUDNN_DATA_HALF && (compute == CUDNN_DATA_HALF || compute == CUDNN_DATA_FLOAT)) ||
                     (type == CUDNN_DATA_BFLOAT16 && (compute == CUDNN_DATA_BFLOAT16 || compute == CUDNN_DATA_FLOAT));
    if (!supported) {
        report("%s: %s data with compute type %d is not a configuration cuDNN runs", api, type_name(type), compute);
        return CUDNN_STATUS_NOT_SUPPORTED;
    }
    if (g.spatial > kMaxSpatial) {
        report("%s: %d spatial dimensions; the emulator convolves 1 to %d", api, g.spatial, kMaxSpatial);
        return CUDNN_STATUS_NOT_SUPPORTED;
    }
    return CUDNN_STATUS_SUCCESS;
}

// The workspace an algorithm needs: none for IMPLICIT_GEMM, a size that grows with the filter for
// IMPLICIT_PRECOMP_GEMM (as its precomputed offsets do); -1 for algorithms that are not emulated.
long long workspace_bytes(const Geometry& g, int algorithm) {
    if (algorithm == CUDNN_FWD_ALGO_IMPLICIT_GEMM) return 0;
    if (algorithm != CUDNN_FWD_ALGO_IMPLICIT_PRECOMP_GEMM) return -1;
    long long taps = g.c / g.groups;
    for (int i = 0; i < g.spatial; ++i) taps *= g.filter[i];
    return (1024 + 8 * taps + 255) / 256 * 256;
}

int check_algorithm(const char* api, int algorithm) {
    if (algorithm < 0 || algorithm >= kAlgorithmCount) {
        report("%s: %d is not a cudnnConvolutionFwdAlgo_t", api, algorithm);
        return CUDNN_STATUS_BAD_PARAM;
    }
    if (algorithm > CUDNN_FWD_ALGO_IMPLICIT_PRECOMP_GEMM) {
        report("%s: algorithm %d is not emulated (use one cudnnGetConvolutionForwardAlgorithm_v7 returns)", api,
               algorithm);
        return CUDNN_STATUS_NOT_SUPPORTED;
    }
    return CUDNN_STATUS_SUCCESS;
}

// ---------------------------------------------------------------------------------------------------------------
// Device operands.

struct Range {
    uintptr_t start;
    size_t bytes;
};

// The bytes a strided tensor spans, or 0 when it spans more than the address space.
size_t span_bytes(const TensorDescriptor& t) {
    unsigned __int128 last = 0;
    for (int i = 0; i < t.rank; ++i) last += (unsigned __int128)(t.dims[i] - 1) * (unsigned long long)t.strides[i];
    unsigned __int128 bytes = (last + 1) * element_size(t.type);
    return bytes > SIZE_MAX ? 0 : size_t(bytes);
}

// Whether the strides interleave the dimensions, so that two elements may share an address: with the dimensions
// sorted by stride, each stride must step past the last element the smaller ones reach.
bool interleaved(const TensorDescriptor& t) {
    std::vector<std::pair<long long, int>> order;
    for (int i = 0; i < t.rank; ++i)
        if (t.dims[i] > 1) order.emplace_back(t.strides[i], t.dims[i]);
    std::sort(order.begin(), order.end());
    long long reach = 0;  // the largest offset of the dimensions so far
    for (const auto& [stride, dim] : order) {
        if (stride <= reach) return true;
        reach += (dim - 1) * stride;
    }
    return false;
}

bool overlap(const Range& a, const Range& b) { return a.start < b.start + b.bytes && b.start < a.start + a.bytes; }

bool check_operand(const char* api, const char* role, const void* pointer, size_t bytes, size_t alignment,
                   Range& range) {
    uintptr_t address = reinterpret_cast<uintptr_t>(pointer);
    range = Range{address, bytes};
    if (!pointer) {
        report("%s: %s is null", api, role);
        return false;
    }
    if (address % alignment != 0) {
        report("%s: %s 0x%llx is not %zu-byte aligned", api, role, (unsigned long long)address, alignment);
        return false;
    }
    if (bytes == 0 || !is_device_range(address, bytes)) {
        report("%s: %s [0x%llx, +%zu) is not inside one live device allocation; it starts at %s", api, role,
               (unsigned long long)address, bytes, describe_address(address).c_str());
        return false;
    }
    return true;
}

// ---------------------------------------------------------------------------------------------------------------
// The convolution.

template <class Acc>
Acc load(const void* base, int type, long long index, bool tf32) {
    switch (type) {
        case CUDNN_DATA_DOUBLE: return Acc(static_cast<const double*>(base)[index]);
        case CUDNN_DATA_HALF: return Acc(half_to_float(static_cast<const uint16_t*>(base)[index]));
        case CUDNN_DATA_BFLOAT16: return Acc(bfloat16_to_float(static_cast<const uint16_t*>(base)[index]));
        default: {
            float value = static_cast<const float*>(base)[index];
            return Acc(tf32 ? round_to_tf32(value) : value);
        }
    }
}

template <class Acc>
void store(void* base, int type, long long index, Acc value) {
    switch (type) {
        case CUDNN_DATA_DOUBLE: static_cast<double*>(base)[index] = double(value); break;
        case CUDNN_DATA_HALF: static_cast<uint16_t*>(base)[index] = float_to_half(float(value)); break;
        case CUDNN_DATA_BFLOAT16: static_cast<uint16_t*>(base)[index] = float_to_bfloat16(float(value)); break;
        default: static_cast<float*>(base)[index] = float(value);
    }
}

// Everything the loops need, with the spatial dimensions padded to three (leading ones of size 1).
struct Problem {
    int n, c, k, groups;
    int in[3], filter[3], out[3], pad[3], stride[3], dilation[3];
    long long x_strides[5], y_strides[5];  // N, C, D, H, W
    int type;
    bool tf32, flip;
};

Problem make_problem(const Geometry& g, const TensorDescriptor& x, const TensorDescriptor& y,
                     const ConvolutionDescriptor& conv) {
    Problem p{};
    p.n = g.n;
    p.c = g.c;
    p.k = g.k;
    p.groups = g.groups;
    p.type = x.type;
    p.tf32 = x.type == CUDNN_DATA_FLOAT && conv.math != CUDNN_FMA_MATH;
    p.flip = conv.mode == CUDNN_CONVOLUTION;
    int lead = kMaxSpatial - g.spatial;
    for (int i = 0; i < 3; ++i) {
        int s = i - lead;  // the descriptor's spatial dimension, or negative for a padding one
        p.in[i] = s < 0 ? 1 : g.in[s];
        p.filter[i] = s < 0 ? 1 : g.filter[s];
        p.out[i] = s < 0 ? 1 : g.out[s];
        p.pad[i] = s < 0 ? 0 : conv.pads[s];
        p.stride[i] = s < 0 ? 1 : conv.strides[s];
        p.dilation[i] = s < 0 ? 1 : conv.dilations[s];
        p.x_strides[2 + i] = s < 0 ? 0 : x.strides[2 + s];
        p.y_strides[2 + i] = s < 0 ? 0 : y.strides[2 + s];
    }
    for (int i = 0; i < 2; ++i) {
        p.x_strides[i] = x.strides[i];
        p.y_strides[i] = y.strides[i];
    }
    return p;
}

// y = alpha * conv(x, w) + beta * y, one image and one output channel at a time: the image is copied once, padded
// with zeros, into Acc; each filter tap then adds a scaled, strided slice of it to the output plane, so the inner
// loop has no bounds checks.
template <class Acc>
void convolve(const Problem& p, const void* x, const void* w, Acc alpha, Acc beta, void* y) {
    const int cg = p.c / p.groups, kg = p.k / p.groups;
    const long long taps = (long long)p.filter[0] * p.filter[1] * p.filter[2];
    const int pd = p.in[0] + 2 * p.pad[0], ph = p.in[1] + 2 * p.pad[1], pw = p.in[2] + 2 * p.pad[2];
    const long long plane = (long long)pd * ph * pw;
    const long long outputs = (long long)p.out[0] * p.out[1] * p.out[2];

    // W, packed [k][c][taps], taps reversed for a true convolution.
    std::vector<Acc> weights(size_t(p.k) * size_t(cg) * size_t(taps));
    for (long long i = 0; i < (long long)p.k * cg; ++i)
        for (long long t = 0; t < taps; ++t)
            weights[size_t(i * taps + t)] = load<Acc>(w, p.type, i * taps + (p.flip ? taps - 1 - t : t), p.tf32);

    std::vector<Acc> image(size_t(p.c) * size_t(plane));
    std::vector<Acc> sums(static_cast<size_t>(outputs));
    for (int n = 0; n < p.n; ++n) {
        std::fill(image.begin(), image.end(), Acc(0));
        for (int c = 0; c < p.c; ++c)
            for (int d = 0; d < p.in[0]; ++d)
                for (int h = 0; h < p.in[1]; ++h) {
                    long long source = n * p.x_strides[0] + c * p.x_strides[1] + d * p.x_strides[2] +
                                       h * p.x_strides[3];
                    Acc* row = &image[size_t(c * plane + ((long long)(d + p.pad[0]) * ph + h + p.pad[1]) * pw +
                                             p.pad[2])];
                    for (int i = 0; i < p.in[2]; ++i)
                        row[i] = load<Acc>(x, p.type, source + i * p.x_strides[4], p.tf32);
                }

        for (int k = 0; k < p.k; ++k) {
            std::fill(sums.begin(), sums.end(), Acc(0));
            const int group = k / kg;
            for (int c = 0; c < cg; ++c) {
                const Acc* channel = &image[size_t((long long)(group * cg + c) * plane)];
                const Acc* tap = &weights[size_t(((long long)k * cg + c) * taps)];
                for (int fd = 0; fd < p.filter[0]; ++fd)
                    for (int fh = 0; fh < p.filter[1]; ++fh)
                        for (int fw = 0; fw < p.filter[2]; ++fw) {
                            const Acc factor = *tap++;
                            const Acc* start = channel + ((long long)fd * p.dilation[0] * ph +
                                                          (long long)fh * p.dilation[1]) * pw +
                                               (long long)fw * p.dilation[2];
                            Acc* sum = sums.data();
                            for (int od = 0; od < p.out[0]; ++od)
                                for (int oh = 0; oh < p.out[1]; ++oh) {
                                    const Acc* source =
                                        start + ((long long)od * p.stride[0] * ph + (long long)oh * p.stride[1]) * pw;
                                    const int step = p.stride[2];
                                    if (step == 1) {
                                        for (int ow = 0; ow < p.out[2]; ++ow) sum[ow] += factor * source[ow];
                                    } else {
                                        for (int ow = 0; ow < p.out[2]; ++ow) sum[ow] += factor * source[ow * step];
                                    }
                                    sum += p.out[2];
                                }
                        }
            }

            const Acc* sum = sums.data();
            for (int od = 0; od < p.out[0]; ++od)
                for (int oh = 0; oh < p.out[1]; ++oh) {
                    long long target =
                        n * p.y_strides[0] + k * p.y_strides[1] + od * p.y_strides[2] + oh * p.y_strides[3];
                    for (int ow = 0; ow < p.out[2]; ++ow, ++sum) {
                        long long index = target + ow * p.y_strides[4];
                        Acc result = alpha * *sum;
                        if (beta != Acc(0)) result += beta * load<Acc>(y, p.type, index, false);
                        store<Acc>(y, p.type, index, result);
                    }
                }
        }
    }
}

}  // namespace
}  // namespace aidge_emu

using namespace aidge_emu;

// ---------------------------------------------------------------------------------------------------------------
// Library, handles and streams.

// cuDNN 9.1.0, or 0 under AIDGE_EMULATOR_CUDNN=0.
AIDGE_EMU_EXPORT size_t cudnnGetVersion(void) { return enabled() ? 90100 : 0; }

AIDGE_EMU_EXPORT const char* cudnnGetErrorString(int status) {
    switch (status) {
        case 0: return "CUDNN_STATUS_SUCCESS";
        case 1001: return "CUDNN_STATUS_NOT_INITIALIZED";
        case 1002: return "CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH";
        case 1004: return "CUDNN_STATUS_DEPRECATED";
        case 2000: return "CUDNN_STATUS_BAD_PARAM";
        case 2001: return "CUDNN_STATUS_INVALID_VALUE";
        case 2002: return "CUDNN_STATUS_BAD_PARAM_NULL_POINTER";
        case 2003: return "CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER";
        case 2004: return "CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED";
        case 2005: return "CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND";
        case 2006: return "CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT";
        case 2007: return "CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH";
        case 2008: return "CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH";
        case 3000: return "CUDNN_STATUS_NOT_SUPPORTED";
        case 3001: return "CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN";
        case 3002: return "CUDNN_STATUS_NOT_SUPPORTED_SHAPE";
        case 3003: return "CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE";
        case 3004: return "CUDNN_STATUS_NOT_SUPPORTED_LAYOUT";
        case 3007: return "CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH";
        case 4000: return "CUDNN_STATUS_INTERNAL_ERROR";
        case 4003: return "CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED";
        case 4004: return "CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED";
        case 5000: return "CUDNN_STATUS_EXECUTION_FAILED";
        case 5001: return "CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER";
        default: return "CUDNN_UNKNOWN_STATUS";
    }
}

// Needs a current context, like cublasCreate_v2.
AIDGE_EMU_EXPORT int cudnnCreate(void** handle) {
    if (!enabled()) return CUDNN_STATUS_NOT_INITIALIZED;
    if (!handle) return CUDNN_STATUS_BAD_PARAM;
    std::lock_guard<std::mutex> lock(device_mutex);
    if (check_context() != CUDA_SUCCESS) return CUDNN_STATUS_NOT_INITIALIZED;
    Handle* created = new (std::nothrow) Handle;
    if (!created) return CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
    g_handles.insert(created);
    *handle = created;
    return CUDNN_STATUS_SUCCESS;
}

AIDGE_EMU_EXPORT int cudnnDestroy(void* handle) {
    std::lock_guard<std::mutex> lock(device_mutex);
    Handle* known = find(g_handles, handle);
    if (!known) return CUDNN_STATUS_BAD_PARAM;
    g_handles.erase(known);
    delete known;
    return CUDNN_STATUS_SUCCESS;
}

AIDGE_EMU_EXPORT int cudnnSetStream(void* handle, void* stream) {
    std::lock_guard<std::mutex> lock(device_mutex);
    Handle* known = find(g_handles, handle);
    if (!known || !is_valid_stream(stream)) return CUDNN_STATUS_BAD_PARAM;
    known->stream = stream;
    return CUDNN_STATUS_SUCCESS;
}

// ---------------------------------------------------------------------------------------------------------------
// Descriptors.

AIDGE_EMU_EXPORT int cudnnCreateTensorDescriptor(void** descriptor) { return create(g_tensors, descriptor); }
AIDGE_EMU_EXPORT int cudnnDestroyTensorDescriptor(void* descriptor) { return destroy(g_tensors, descriptor); }
AIDGE_EMU_EXPORT int cudnnCreateFilterDescriptor(void** descriptor) { return create(g_filters, descriptor); }
AIDGE_EMU_EXPORT int cudnnDestroyFilterDescriptor(void* descriptor) { return destroy(g_filters, descriptor); }
AIDGE_EMU_EXPORT int cudnnCreateConvolutionDescriptor(void** descriptor) {
    return create(g_convolutions, descriptor);
}
AIDGE_EMU_EXPORT int cudnnDestroyConvolutionDescriptor(void* descriptor) {
    return destroy(g_convolutions, descriptor);
}

// 3 to 8 dimensions, positive sizes and strides (any order, not necessarily packed), under 2^31 elements.
AIDGE_EMU_EXPORT int cudnnSetTensorNdDescriptor(void* descriptor, int type, int rank, const int dims[],
                                                const int strides[]) {
    std::lock_guard<std::mutex> lock(device_mutex);
    TensorDescriptor* known = find(g_tensors, descriptor);
    if (!known || !dims || !strides || type < 0 || type > kLastDataType || rank < 3) return CUDNN_STATUS_BAD_PARAM;
    if (rank > kDimMax) return CUDNN_STATUS_NOT_SUPPORTED;
    long long elements = 1;
    for (int i = 0; i < rank; ++i) {
        if (dims[i] <= 0 || strides[i] <= 0) return CUDNN_STATUS_BAD_PARAM;
        elements *= dims[i];
        if (elements > 0x7fffffffLL) return CUDNN_STATUS_NOT_SUPPORTED;
    }
    TensorDescriptor updated;
    updated.set = true;
    updated.type = type;
    updated.rank = rank;
    for (int i = 0; i < rank; ++i) {
        updated.dims[i] = dims[i];
        updated.strides[i] = strides[i];
    }
    *known = updated;
    return CUDNN_STATUS_SUCCESS;
}

// K, C/groups, then the filter's spatial sizes; packed, CUDNN_TENSOR_NCHW only.
AIDGE_EMU_EXPORT int cudnnSetFilterNdDescriptor(void* descriptor, int type, int format, int rank, const int dims[]) {
    std::lock_guard<std::mutex> lock(device_mutex);
    FilterDescriptor* known = find(g_filters, descriptor);
    if (!known || !dims || type < 0 || type > kLastDataType || rank < 3) return CUDNN_STATUS_BAD_PARAM;
    if (format == CUDNN_TENSOR_NHWC || format == CUDNN_TENSOR_NCHW_VECT_C) {
        report("cudnnSetFilterNdDescriptor: only the CUDNN_TENSOR_NCHW filter format is emulated");
        return CUDNN_STATUS_NOT_SUPPORTED;
    }
    if (format != CUDNN_TENSOR_NCHW) return CUDNN_STATUS_BAD_PARAM;
    if (rank > kDimMax) return CUDNN_STATUS_NOT_SUPPORTED;
    long long elements = 1;
    for (int i = 0; i < rank; ++i) {
        if (dims[i] <= 0) return CUDNN_STATUS_BAD_PARAM;
        elements *= dims[i];
        if (elements > 0x7fffffffLL) return CUDNN_STATUS_NOT_SUPPORTED;
    }
    FilterDescriptor updated;
    updated.set = true;
    updated.type = type;
    updated.rank = rank;
    for (int i = 0; i < rank; ++i) updated.dims[i] = dims[i];
    *known = updated;
    return CUDNN_STATUS_SUCCESS;
}

// One symmetric pad, stride and dilation per spatial dimension; the group count and math type are kept.
AIDGE_EMU_EXPORT int cudnnSetConvolutionNdDescriptor(void* descriptor, int length, const int pads[],
                                                     const int strides[], const int dilations[], int mode,
                                                     int compute) {
    std::lock_guard<std::mutex> lock(device_mutex);
    ConvolutionDescriptor* known = find(g_convolutions, descriptor);
    if (!known || !pads || !strides || !dilations || length < 1 ||
        (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION) || compute < 0 || compute > kLastDataType)
        return CUDNN_STATUS_BAD_PARAM;
    if (length > kDimMax - 2) return CUDNN_STATUS_NOT_SUPPORTED;
    for (int i = 0; i < length; ++i)
        if (pads[i] < 0 || strides[i] <= 0 || dilations[i] <= 0) return CUDNN_STATUS_BAD_PARAM;
    known->set = true;
    known->spatial = length;
    for (int i = 0; i < length; ++i) {
        known->pads[i] = pads[i];
        known->strides[i] = strides[i];
        known->dilations[i] = dilations[i];
    }
    known->mode = mode;
    known->compute = compute;
    return CUDNN_STATUS_SUCCESS;
}

AIDGE_EMU_EXPORT int cudnnSetConvolutionGroupCount(void* descriptor, int groups) {
    std::lock_guard<std::mutex> lock(device_mutex);
    ConvolutionDescriptor* known = find(g_convolutions, descriptor);
    if (!known || groups < 1) return CUDNN_STATUS_BAD_PARAM;
    known->groups = groups;
    return CUDNN_STATUS_SUCCESS;
}

// CUDNN_DEFAULT_MATH, _TENSOR_OP_MATH, _TENSOR_OP_MATH_ALLOW_CONVERSION (float inputs rounded to TF32) or
// CUDNN_FMA_MATH (not rounded).
AIDGE_EMU_EXPORT int cudnnSetConvolutionMathType(void* descriptor, int math) {
    std::lock_guard<std::mutex> lock(device_mutex);
    ConvolutionDescriptor* known = find(g_convolutions, descriptor);
    if (!known || math < CUDNN_DEFAULT_MATH || math > CUDNN_FMA_MATH) return CUDNN_STATUS_BAD_PARAM;
    known->math = math;
    return CUDNN_STATUS_SUCCESS;
}

// ---------------------------------------------------------------------------------------------------------------
// The forward convolution.

// N, K, then 1 + (in + 2 pad - ((filter - 1) dilation + 1)) / stride per spatial dimension.
AIDGE_EMU_EXPORT int cudnnGetConvolutionNdForwardOutputDim(void* conv_desc, void* x_desc, void* w_desc, int rank,
                                                           int out[]) {
    const char* api = "cudnnGetConvolutionNdForwardOutputDim";
    std::lock_guard<std::mutex> lock(device_mutex);
    if (!out) return CUDNN_STATUS_BAD_PARAM;
    TensorDescriptor* x = find(g_tensors, x_desc);
    Geometry g;
    if (int status = geometry(api, x, find(g_filters, w_desc), find(g_convolutions, conv_desc), g)) return status;
    if (rank != x->rank) {
        report("%s: nbDims is %d, X has %d dimensions", api, rank, x->rank);
        return CUDNN_STATUS_BAD_PARAM;
    }
    out[0] = g.n;
    out[1] = g.k;
    for (int i = 0; i < g.spatial; ++i) out[i + 2] = g.out[i];
    return CUDNN_STATUS_SUCCESS;
}

struct ConvolutionFwdAlgoPerf {
    int algo;
    int status;
    float time;
    size_t memory;
    int determinism;
    int mathType;
    int reserved[3];
};
static_assert(sizeof(ConvolutionFwdAlgoPerf) == 48, "cudnnConvolutionFwdAlgoPerf_t is 48 bytes");

// IMPLICIT_PRECOMP_GEMM (with a workspace), then IMPLICIT_GEMM (without), as a heuristic returns them: times -1.
AIDGE_EMU_EXPORT int cudnnGetConvolutionForwardAlgorithm_v7(void* handle, void* x_desc, void* w_desc, void* conv_desc,
                                                            void* y_desc, int requested, int* returned,
                                                            ConvolutionFwdAlgoPerf* results) {
    const char* api = "cudnnGetConvolutionForwardAlgorithm_v7";
    std::lock_guard<std::mutex> lock(device_mutex);
    if (!find(g_handles, handle) || requested < 1 || !returned || !results) return CUDNN_STATUS_BAD_PARAM;
    Geometry g;
    if (int status = check_problem(api, x_desc, w_desc, conv_desc, y_desc, g)) return status;
    const int math = find(g_convolutions, conv_desc)->math;
    const int order[] = {CUDNN_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_FWD_ALGO_IMPLICIT_GEMM};
    int count = std::min(requested, 2);
    for (int i = 0; i < count; ++i) {
        ConvolutionFwdAlgoPerf perf{};
        perf.algo = order[i];
        perf.status = CUDNN_STATUS_SUCCESS;
        perf.time = -1.0f;
        perf.memory = size_t(workspace_bytes(g, order[i]));
        perf.determinism = CUDNN_DETERMINISTIC;
        perf.mathType = math;
        results[i] = perf;
    }
    *returned = count;
    return CUDNN_STATUS_SUCCESS;
}

AIDGE_EMU_EXPORT int cudnnGetConvolutionForwardWorkspaceSize(void* handle, void* x_desc, void* w_desc,
                                                             void* conv_desc, void* y_desc, int algorithm,
                                                             size_t* bytes) {
    const char* api = "cudnnGetConvolutionForwardWorkspaceSize";
    std::lock_guard<std::mutex> lock(device_mutex);
    if (!find(g_handles, handle) || !bytes) return CUDNN_STATUS_BAD_PARAM;
    Geometry g;
    if (int status = check_problem(api, x_desc, w_desc, conv_desc, y_desc, g)) return status;
    if (int status = check_algorithm(api, algorithm)) return status;
    *bytes = size_t(workspace_bytes(g, algorithm));
    return CUDNN_STATUS_SUCCESS;
}

// y = alpha conv(x, w) + beta y; alpha and beta point to host floats (doubles for double data); y is not read when
// beta is zero.
AIDGE_EMU_EXPORT int cudnnConvolutionForward(void* handle, const void* alpha, void* x_desc, const void* x,
                                             void* w_desc, const void* w, void* conv_desc, int algorithm,
                                             void* workspace, size_t workspace_size, const void* beta, void* y_desc,
                                             void* y) {
    const char* api = "cudnnConvolutionForward";
    std::lock_guard<std::mutex> lock(device_mutex);
    Handle* known = find(g_handles, handle);
    if (!known) return CUDNN_STATUS_BAD_PARAM;
    if (!is_valid_stream(known->stream)) {
        report("%s: the handle's stream was destroyed", api);
        return CUDNN_STATUS_BAD_PARAM;
    }
    Geometry g;
    if (int status = check_problem(api, x_desc, w_desc, conv_desc, y_desc, g)) return status;
    if (int status = check_algorithm(api, algorithm)) return status;
    const TensorDescriptor& xd = *find(g_tensors, x_desc);
    const TensorDescriptor& yd = *find(g_tensors, y_desc);
    const FilterDescriptor& wd = *find(g_filters, w_desc);
    const ConvolutionDescriptor& conv = *find(g_convolutions, conv_desc);
    const int type = xd.type;
    const size_t scalar = type == CUDNN_DATA_DOUBLE ? sizeof(double) : sizeof(float);

    if (!alpha || !beta) {
        report("%s: alpha or beta is null", api);
        return CUDNN_STATUS_BAD_PARAM;
    }
    if (overlaps_device_memory(alpha, scalar) || overlaps_device_memory(beta, scalar)) {
        report("%s: alpha and beta are host pointers, not device memory", api);
        return CUDNN_STATUS_BAD_PARAM;
    }
    size_t needed = size_t(workspace_bytes(g, algorithm));
    if (workspace_size < needed) {
        report("%s: algorithm %d needs %zu bytes of workspace, %zu given", api, algorithm, needed, workspace_size);
        return CUDNN_STATUS_BAD_PARAM;
    }
    Range x_range, w_range, y_range, workspace_range{0, 0};
    size_t w_bytes = element_size(type);
    for (int i = 0; i < wd.rank; ++i) w_bytes *= size_t(wd.dims[i]);
    size_t alignment = element_size(type);
    if (!check_operand(api, "x", x, span_bytes(xd), alignment, x_range) ||
        !check_operand(api, "w", w, w_bytes, alignment, w_range) ||
        !check_operand(api, "y", y, span_bytes(yd), alignment, y_range) ||
        (workspace_size > 0 && !check_operand(api, "the workspace", workspace, workspace_size, 1, workspace_range)))
        return CUDNN_STATUS_BAD_PARAM;
    if (overlap(y_range, x_range) || overlap(y_range, w_range) || overlap(y_range, workspace_range)) {
        report("%s: y overlaps x, w or the workspace (cuDNN convolutions are not in place)", api);
        return CUDNN_STATUS_BAD_PARAM;
    }
    if (interleaved(yd)) {
        report("%s: y's strides interleave its dimensions, so that its elements may share addresses", api);
        return CUDNN_STATUS_BAD_PARAM;
    }

    Problem problem = make_problem(g, xd, yd, conv);
    try {
        DeviceAccess access;
        if (needed > 0) memset(workspace, 0xFF, needed);
        if (type == CUDNN_DATA_DOUBLE)
            convolve<double>(problem, x, w, *static_cast<const double*>(alpha), *static_cast<const double*>(beta), y);
        else
            convolve<float>(problem, x, w, *static_cast<const float*>(alpha), *static_cast<const float*>(beta), y);
    } catch (const std::bad_alloc&) {
        return CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
    }
    return CUDNN_STATUS_SUCCESS;
}
