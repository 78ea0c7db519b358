"""The CPU emulator of the CUDA driver API, NVRTC, cuBLAS and cuDNN (Tests/CUDAEmulator), through ctypes.

The CUDA backend loads the emulator instead of libcuda, libnvrtc, libcublas and libcudnn where AIDGE_CUDA_EMULATOR
names it, so that its kernel sources compile and run in CI without a GPU. These tests check the emulator itself against
NumPy: copies, kernels with barriers, shuffles and shared memory, the GEMMs, the convolutions, and the errors a real
driver would report.
When the interpreter's environment has the nvidia-cuda-nvrtc package (requirements-dev.txt), every kernel source
here is also compiled by the real NVRTC, which proves it valid CUDA."""

from __future__ import annotations

import ctypes
import glob
import math
import os
import subprocess
import sys
import sysconfig
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]

CUDA_SUCCESS = 0
CUDA_ERROR_INVALID_VALUE = 1
CUDA_ERROR_NOT_INITIALIZED = 3
CUDA_ERROR_INVALID_DEVICE = 101
CUDA_ERROR_INVALID_CONTEXT = 201
CUDA_ERROR_NOT_FOUND = 500
CUDA_ERROR_ILLEGAL_ADDRESS = 700
CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES = 701
CUDA_ERROR_ASSERT = 710
CUDA_ERROR_LAUNCH_FAILED = 719
NVRTC_ERROR_COMPILATION = 6
CUBLAS_STATUS_INVALID_VALUE = 7
CUBLAS_STATUS_NOT_SUPPORTED = 15
CUDA_R_32F, CUDA_R_16F, CUDA_R_16BF = 0, 2, 14
CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_32F_FAST_TF32 = 68, 77
CUBLAS_GEMM_DEFAULT = -1
# cuDNN 9's status codes (categories of a thousand; cuDNN 8's were 1, 3 and 9).
CUDNN_STATUS_NOT_INITIALIZED, CUDNN_STATUS_BAD_PARAM, CUDNN_STATUS_NOT_SUPPORTED = 1001, 2000, 3000
CUDNN_DATA_FLOAT, CUDNN_DATA_DOUBLE, CUDNN_DATA_HALF, CUDNN_DATA_BFLOAT16 = 0, 1, 2, 9
CUDNN_TENSOR_NCHW, CUDNN_TENSOR_NHWC = 0, 1
CUDNN_CONVOLUTION, CUDNN_CROSS_CORRELATION = 0, 1
CUDNN_DEFAULT_MATH, CUDNN_TENSOR_OP_MATH, CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION, CUDNN_FMA_MATH = 0, 1, 2, 3
CUDNN_FWD_ALGO_IMPLICIT_GEMM, CUDNN_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_FWD_ALGO_FFT = 0, 1, 4


def _real_nvrtc() -> Path | None:
    """libnvrtc.so.13 of the nvidia-cuda-nvrtc package, in the repository's .venv or the running interpreter's."""
    sites = [sysconfig.get_paths()["purelib"], *glob.glob(str(REPO / ".venv/lib/python3*/site-packages"))]
    for site in sites:
        candidate = Path(site) / "nvidia/cu13/lib/libnvrtc.so.13"
        if candidate.exists():
            return candidate
    return None


REAL_NVRTC = _real_nvrtc()


def _build() -> str:
    result = subprocess.run(["bash", "scripts/build_cuda_emulator.sh"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, f"building the emulator failed (it needs a C++ compiler):\n{result.stderr}"
    return result.stdout.strip().splitlines()[-1]


class Cuda:
    """The emulator library with the argument types of the functions the tests call, and a primary context made
    current on this thread."""

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)
        self.lib = lib
        P, U64, I, U, SZ = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int, ctypes.c_uint, ctypes.c_size_t
        LL = ctypes.c_longlong
        signatures = {
            "cuInit": [U], "cuDeviceGetCount": [P], "cuDeviceGetAttribute": [P, I, I],
            "cuDeviceGetName": [ctypes.c_char_p, I, I], "cuDriverGetVersion": [P],
            "cuDevicePrimaryCtxRetain": [P, I], "cuCtxSetCurrent": [P],
            "cuMemAlloc_v2": [P, SZ], "cuMemFree_v2": [U64], "cuMemGetInfo_v2": [P, P],
            "cuMemcpyHtoD_v2": [U64, P, SZ], "cuMemcpyDtoH_v2": [P, U64, SZ], "cuMemcpyDtoD_v2": [U64, U64, SZ],
            "cuMemcpyHtoDAsync_v2": [U64, P, SZ, P], "cuMemcpyDtoHAsync_v2": [P, U64, SZ, P],
            "cuMemsetD8_v2": [U64, ctypes.c_ubyte, SZ], "cuMemsetD32Async": [U64, U, SZ, P],
            "cuPointerGetAttribute": [P, I, U64],
            "cuStreamCreate": [P, U], "cuStreamDestroy_v2": [P], "cuStreamSynchronize": [P],
            "cuEventCreate": [P, U], "cuEventRecord": [P, P], "cuEventElapsedTime": [P, P, P],
            "cuEventDestroy_v2": [P],
            "cuModuleLoadData": [P, ctypes.c_char_p], "cuModuleGetFunction": [P, P, ctypes.c_char_p],
            "cuModuleUnload": [P], "cuFuncSetAttribute": [P, I, I],
            "cuLaunchKernel": [P, U, U, U, U, U, U, U, P, P, P],
            "cuGetErrorName": [I, P],
            "nvrtcCreateProgram": [P, ctypes.c_char_p, ctypes.c_char_p, I, P, P],
            "nvrtcCompileProgram": [P, I, P], "nvrtcDestroyProgram": [P],
            "nvrtcGetPTXSize": [P, P], "nvrtcGetPTX": [P, ctypes.c_char_p],
            "nvrtcGetProgramLogSize": [P, P], "nvrtcGetProgramLog": [P, ctypes.c_char_p],
            "cublasCreate_v2": [P], "cublasDestroy_v2": [P], "cublasSetMathMode": [P, I],
            "cublasSgemm_v2": [P, I, I, I, I, I, P, U64, I, U64, I, P, U64, I],
            "cublasSgemmStridedBatched": [P, I, I, I, I, I, P, U64, I, LL, U64, I, LL, P, U64, I, LL, I],
            "cublasGemmEx": [P, I, I, I, I, I, P, U64, I, I, U64, I, I, P, U64, I, I, I, I],
            "cublasGemmStridedBatchedEx": [P, I, I, I, I, I, P, U64, I, I, LL, U64, I, I, LL, P, U64, I, I, LL, I, I,
                                           I],
            "cudnnCreate": [P], "cudnnDestroy": [P], "cudnnSetStream": [P, P],
            "cudnnCreateTensorDescriptor": [P], "cudnnDestroyTensorDescriptor": [P],
            "cudnnSetTensorNdDescriptor": [P, I, I, P, P],
            "cudnnCreateFilterDescriptor": [P], "cudnnDestroyFilterDescriptor": [P],
            "cudnnSetFilterNdDescriptor": [P, I, I, I, P],
            "cudnnCreateConvolutionDescriptor": [P], "cudnnDestroyConvolutionDescriptor": [P],
            "cudnnSetConvolutionNdDescriptor": [P, I, P, P, P, I, I], "cudnnSetConvolutionGroupCount": [P, I],
            "cudnnSetConvolutionMathType": [P, I], "cudnnGetConvolutionNdForwardOutputDim": [P, P, P, I, P],
            "cudnnGetConvolutionForwardAlgorithm_v7": [P, P, P, P, P, I, P, P],
            "cudnnGetConvolutionForwardWorkspaceSize": [P, P, P, P, P, I, P],
            "cudnnConvolutionForward": [P, P, P, U64, P, U64, P, I, U64, SZ, P, P, U64],
        }
        for name, argtypes in signatures.items():
            getattr(lib, name).argtypes = argtypes
            getattr(lib, name).restype = ctypes.c_int
        lib.cudnnGetVersion.argtypes, lib.cudnnGetVersion.restype = [], ctypes.c_size_t
        lib.cudnnGetErrorString.argtypes, lib.cudnnGetErrorString.restype = [I], ctypes.c_char_p
        lib.aidge_emu_live_allocations.restype = ctypes.c_int
        lib.aidge_emu_live_bytes.restype = ctypes.c_size_t
        lib.aidge_emu_launch_count.restype = ctypes.c_ulonglong
        self.ok(lib.cuInit(0), "cuInit")
        self.context = ctypes.c_void_p()
        self.ok(lib.cuDevicePrimaryCtxRetain(ctypes.byref(self.context), 0), "cuDevicePrimaryCtxRetain")
        self.ok(lib.cuCtxSetCurrent(self.context), "cuCtxSetCurrent")

    def ok(self, status: int, what: str) -> None:
        name = ctypes.c_char_p()
        self.lib.cuGetErrorName(status, ctypes.byref(name))
        assert status == 0, f"{what} returned {status} ({name.value})"

    # Memory.

    def alloc(self, nbytes: int) -> int:
        pointer = ctypes.c_uint64()
        self.ok(self.lib.cuMemAlloc_v2(ctypes.byref(pointer), nbytes), "cuMemAlloc_v2")
        return pointer.value

    def upload(self, array: np.ndarray) -> int:
        array = np.ascontiguousarray(array)
        pointer = self.alloc(array.nbytes)
        self.ok(self.lib.cuMemcpyHtoD_v2(pointer, array.ctypes.data, array.nbytes), "cuMemcpyHtoD_v2")
        return pointer

    def download(self, pointer: int, shape: tuple[int, ...] | int, dtype: type) -> np.ndarray:
        out = np.empty(shape, dtype)
        self.ok(self.lib.cuMemcpyDtoH_v2(out.ctypes.data, pointer, out.nbytes), "cuMemcpyDtoH_v2")
        return out

    def free(self, *pointers: int) -> None:
        for pointer in pointers:
            self.ok(self.lib.cuMemFree_v2(pointer), "cuMemFree_v2")

    # Programs and launches.

    def compile(self, source: str, options: tuple[str, ...] = (), name: str = "kernel.cu",
                headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
        """(status, log, PTX) of compiling a source with the emulated NVRTC; headers maps include names to texts."""
        program = ctypes.c_void_p()
        headers = headers or {}
        texts = (ctypes.c_char_p * max(1, len(headers)))(*[text.encode() for text in headers.values()])
        names = (ctypes.c_char_p * max(1, len(headers)))(*[include.encode() for include in headers])
        assert self.lib.nvrtcCreateProgram(ctypes.byref(program), source.encode(), name.encode(), len(headers),
                                           texts, names) == 0
        encoded = [option.encode() for option in options]
        array = (ctypes.c_char_p * max(1, len(encoded)))(*encoded)
        status = self.lib.nvrtcCompileProgram(program, len(encoded), array)
        size = ctypes.c_size_t()
        assert self.lib.nvrtcGetProgramLogSize(program, ctypes.byref(size)) == 0
        log = ctypes.create_string_buffer(size.value)
        assert self.lib.nvrtcGetProgramLog(program, log) == 0
        ptx = b""
        if status == 0:
            assert self.lib.nvrtcGetPTXSize(program, ctypes.byref(size)) == 0
            buffer = ctypes.create_string_buffer(size.value)
            assert self.lib.nvrtcGetPTX(program, buffer) == 0
            ptx = buffer.value
        assert self.lib.nvrtcDestroyProgram(ctypes.byref(program)) == 0 and not program.value
        return status, log.value.decode(), ptx

    def module(self, source: str, options: tuple[str, ...] = ()) -> ctypes.c_void_p:
        status, log, ptx = self.compile(source, options)
        assert status == 0, f"compilation failed:\n{log}"
        module = ctypes.c_void_p()
        self.ok(self.lib.cuModuleLoadData(ctypes.byref(module), ptx), "cuModuleLoadData")
        return module

    def function(self, module: ctypes.c_void_p, name: str) -> ctypes.c_void_p:
        function = ctypes.c_void_p()
        self.ok(self.lib.cuModuleGetFunction(ctypes.byref(function), module, name.encode()), "cuModuleGetFunction")
        return function

    def launch(self, function: ctypes.c_void_p, grid: tuple[int, ...], block: tuple[int, ...], *args: object,
               shared: int = 0, stream: ctypes.c_void_p | None = None) -> int:
        """cuLaunchKernel's status; args are ctypes values (c_uint64 for device pointers)."""
        grid3 = (tuple(grid) + (1, 1))[:3]
        block3 = (tuple(block) + (1, 1))[:3]
        params = (ctypes.c_void_p * max(1, len(args)))(*[ctypes.cast(ctypes.pointer(a), ctypes.c_void_p) for a in args])
        return self.lib.cuLaunchKernel(function, *grid3, *block3, shared, stream, params, None)

    def blas(self) -> ctypes.c_void_p:
        handle = ctypes.c_void_p()
        assert self.lib.cublasCreate_v2(ctypes.byref(handle)) == 0
        return handle


@pytest.fixture(scope="module")
def cuda(tmp_path_factory: pytest.TempPathFactory) -> Cuda:
    path = _build()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AIDGE_EMULATOR_CACHE", str(tmp_path_factory.mktemp("kernel-cache")))
        if REAL_NVRTC is not None:
            env.setenv("AIDGE_EMULATOR_NVRTC", str(REAL_NVRTC))
        yield Cuda(path)


def _f32(value: float) -> ctypes.c_float:
    return ctypes.c_float(value)


def _ptr(pointer: int) -> ctypes.c_uint64:
    return ctypes.c_uint64(pointer)


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


# ---------------------------------------------------------------------------------------------------------------------
# Device, memory and copies.


def test_device_queries(cuda: Cuda) -> None:
    lib = cuda.lib
    value = ctypes.c_int()
    for attribute, expected in [(1, 1024), (2, 1024), (8, 49152), (10, 32), (16, 4), (75, 9), (76, 0), (97, 232448)]:
        cuda.ok(lib.cuDeviceGetAttribute(ctypes.byref(value), attribute, 0), f"attribute {attribute}")
        assert value.value == expected, attribute
    assert lib.cuDeviceGetAttribute(ctypes.byref(value), 12345, 0) == CUDA_ERROR_INVALID_VALUE
    assert lib.cuDeviceGetAttribute(ctypes.byref(value), 1, 1) == CUDA_ERROR_INVALID_DEVICE
    cuda.ok(lib.cuDriverGetVersion(ctypes.byref(value)), "cuDriverGetVersion")
    assert value.value == 13000
    cuda.ok(lib.cuDeviceGetCount(ctypes.byref(value)), "cuDeviceGetCount")
    assert value.value == 1
    name = ctypes.create_string_buffer(64)
    cuda.ok(lib.cuDeviceGetName(name, 64, 0), "cuDeviceGetName")
    assert name.value == b"Aidge CUDA emulator"


def test_memcpy_round_trip_memset_and_accounting(cuda: Cuda) -> None:
    lib = cuda.lib
    allocations, live_bytes = lib.aidge_emu_live_allocations(), lib.aidge_emu_live_bytes()
    data = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    first = cuda.upload(data)
    assert first % 256 == 0
    second = cuda.alloc(data.nbytes)
    assert lib.aidge_emu_live_allocations() == allocations + 2
    assert lib.aidge_emu_live_bytes() == live_bytes + 2 * data.nbytes
    free, total = ctypes.c_size_t(), ctypes.c_size_t()
    cuda.ok(lib.cuMemGetInfo_v2(ctypes.byref(free), ctypes.byref(total)), "cuMemGetInfo_v2")
    assert total.value - free.value == lib.aidge_emu_live_bytes()

    assert np.all(cuda.download(second, 1000, np.uint32) == 0xFFFFFFFF), "fresh memory holds the 0xFF pattern"
    cuda.ok(lib.cuMemcpyDtoD_v2(second, first, data.nbytes), "cuMemcpyDtoD_v2")
    np.testing.assert_array_equal(cuda.download(second, 1000, np.float32), data)

    stream = ctypes.c_void_p()
    cuda.ok(lib.cuStreamCreate(ctypes.byref(stream), 0), "cuStreamCreate")
    cuda.ok(lib.cuMemsetD32Async(second + 40, 0x3F800000, 10, stream), "cuMemsetD32Async")  # 1.0f
    cuda.ok(lib.cuMemsetD8_v2(second + 400, 0, 8), "cuMemsetD8_v2")
    back = np.empty(1000, np.float32)
    cuda.ok(lib.cuMemcpyDtoHAsync_v2(back.ctypes.data, second, back.nbytes, stream), "cuMemcpyDtoHAsync_v2")
    cuda.ok(lib.cuStreamSynchronize(stream), "cuStreamSynchronize")
    expected = data.copy()
    expected[10:20] = 1.0
    expected[100:102] = 0.0
    np.testing.assert_array_equal(back, expected)
    cuda.ok(lib.cuStreamDestroy_v2(stream), "cuStreamDestroy_v2")

    memory_type, ordinal = ctypes.c_uint(), ctypes.c_int(-1)
    cuda.ok(lib.cuPointerGetAttribute(ctypes.byref(memory_type), 2, first + 123), "MEMORY_TYPE")
    cuda.ok(lib.cuPointerGetAttribute(ctypes.byref(ordinal), 9, first), "DEVICE_ORDINAL")
    assert (memory_type.value, ordinal.value) == (2, 0)
    assert lib.cuPointerGetAttribute(ctypes.byref(memory_type), 2, back.ctypes.data) == CUDA_ERROR_INVALID_VALUE

    cuda.free(first, second)
    assert lib.aidge_emu_live_allocations() == allocations
    assert lib.aidge_emu_live_bytes() == live_bytes


def test_invalid_copies_and_frees_are_rejected(cuda: Cuda) -> None:
    lib = cuda.lib
    host = np.zeros(64, np.float32)
    pointer = cuda.alloc(host.nbytes)
    assert lib.cuMemcpyHtoD_v2(pointer + 4, host.ctypes.data, host.nbytes) == CUDA_ERROR_INVALID_VALUE, "overruns"
    assert lib.cuMemcpyDtoH_v2(host.ctypes.data, pointer - 256, 4) == CUDA_ERROR_INVALID_VALUE, "before the start"
    assert lib.cuMemcpyDtoD_v2(pointer, pointer, host.nbytes + 1) == CUDA_ERROR_INVALID_VALUE
    assert lib.cuMemcpyHtoD_v2(pointer, pointer, 4) == CUDA_ERROR_INVALID_VALUE, "a device pointer as host source"
    assert lib.cuMemsetD32Async(pointer + 2, 0, 1, None) == CUDA_ERROR_INVALID_VALUE, "misaligned"
    assert lib.cuMemFree_v2(pointer + 16) == CUDA_ERROR_INVALID_VALUE, "not the start of an allocation"
    cuda.free(pointer)
    assert lib.cuMemFree_v2(pointer) == CUDA_ERROR_INVALID_VALUE, "double free"
    assert lib.cuMemcpyDtoH_v2(host.ctypes.data, pointer, 4) == CUDA_ERROR_INVALID_VALUE, "use after free"


def test_events_measure_host_time(cuda: Cuda) -> None:
    lib = cuda.lib
    start, end = ctypes.c_void_p(), ctypes.c_void_p()
    cuda.ok(lib.cuEventCreate(ctypes.byref(start), 0), "cuEventCreate")
    cuda.ok(lib.cuEventCreate(ctypes.byref(end), 0), "cuEventCreate")
    elapsed = ctypes.c_float()
    assert lib.cuEventElapsedTime(ctypes.byref(elapsed), start, end) != 0, "not recorded yet"
    cuda.ok(lib.cuEventRecord(start, None), "cuEventRecord")
    cuda.ok(lib.cuEventRecord(end, None), "cuEventRecord")
    cuda.ok(lib.cuEventElapsedTime(ctypes.byref(elapsed), start, end), "cuEventElapsedTime")
    assert 0.0 <= elapsed.value < 1000.0
    cuda.ok(lib.cuEventDestroy_v2(start), "cuEventDestroy_v2")
    cuda.ok(lib.cuEventDestroy_v2(end), "cuEventDestroy_v2")


def test_calls_need_cuinit_and_a_current_context(cuda: Cuda) -> None:
    result = _run_python(f"""
        import ctypes
        lib = ctypes.CDLL({str(cuda.lib._name)!r})
        count, context, pointer = ctypes.c_int(), ctypes.c_void_p(), ctypes.c_uint64()
        print(lib.cuDeviceGetCount(ctypes.byref(count)), end=" ")
        print(lib.cuInit(0), end=" ")
        print(lib.cuDeviceGetCount(ctypes.byref(count)), count.value, end=" ")
        print(lib.cuMemAlloc_v2(ctypes.byref(pointer), ctypes.c_size_t(16)), end=" ")
        print(lib.cuDevicePrimaryCtxRetain(ctypes.byref(context), 2), end=" ")
        print(lib.cuDevicePrimaryCtxRetain(ctypes.byref(context), 1), end=" ")
        print(lib.cuCtxSetCurrent(context), lib.cuMemAlloc_v2(ctypes.byref(pointer), ctypes.c_size_t(16)))
        """, AIDGE_EMULATOR_DEVICES="2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(v) for v in (CUDA_ERROR_NOT_INITIALIZED, 0, 0, 2, CUDA_ERROR_INVALID_CONTEXT,
                                                      CUDA_ERROR_INVALID_DEVICE, 0, 0, 0)]


def test_host_reads_of_device_memory_fault_while_protected(cuda: Cuda) -> None:
    code = f"""
        import ctypes
        lib = ctypes.CDLL({str(cuda.lib._name)!r})
        context, pointer = ctypes.c_void_p(), ctypes.c_uint64()
        assert lib.cuInit(0) == 0 and lib.cuDevicePrimaryCtxRetain(ctypes.byref(context), 0) == 0
        assert lib.cuCtxSetCurrent(context) == 0
        assert lib.cuMemAlloc_v2(ctypes.byref(pointer), ctypes.c_size_t(64)) == 0
        print(hex(ctypes.c_uint32.from_address(pointer.value).value), flush=True)
        """
    protected = _run_python(code)
    assert protected.returncode < 0, f"expected a signal, got {protected.returncode}: {protected.stdout}"
    unprotected = _run_python(code, AIDGE_EMULATOR_PROTECT="0")
    assert unprotected.returncode == 0, unprotected.stderr
    assert unprotected.stdout.strip() == "0xffffffff"


# ---------------------------------------------------------------------------------------------------------------------
# Kernels.

ELEMENTWISE = r"""
struct Affine { float scale; float shift; };

// A grid-stride loop; `y = gelu(scale * x + shift)`.
extern "C" __global__ void affine_gelu(const float* __restrict__ x, float* __restrict__ y, Affine p, long long n) {
    long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += stride) {
        float v = p.scale * x[i] + p.shift;
        y[i] = 0.5f * v * (1.0f + erff(v * 0.70710678f));
    }
}
"""


class _Affine(ctypes.Structure):
    _fields_ = [("scale", ctypes.c_float), ("shift", ctypes.c_float)]


def test_grid_stride_elementwise_kernel(cuda: Cuda) -> None:
    n = 5003
    x = np.random.default_rng(1).standard_normal(n).astype(np.float32)
    function = cuda.function(cuda.module(ELEMENTWISE), "affine_gelu")
    px, py = cuda.upload(x), cuda.alloc(x.nbytes)
    launches = cuda.lib.aidge_emu_launch_count()
    cuda.ok(cuda.launch(function, (3,), (128,), _ptr(px), _ptr(py), _Affine(1.5, -0.25), ctypes.c_longlong(n)),
            "launch")
    assert cuda.lib.aidge_emu_launch_count() == launches + 1
    v = 1.5 * x.astype(np.float64) - 0.25
    expected = 0.5 * v * (1.0 + np.vectorize(math.erf)(v / math.sqrt(2.0)))
    np.testing.assert_allclose(cuda.download(py, n, np.float32), expected, rtol=1e-5, atol=1e-6)
    cuda.free(px, py)


REDUCTION = r"""
__device__ __forceinline__ float warp_sum(float v) {
    #pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    return v;
}

// One block per row: per-thread partial sums, a shuffle reduction per warp, then warp 0 reduces the warps' sums.
extern "C" __global__ void __launch_bounds__(1024) row_sum(const float* x, float* out, int columns) {
    __shared__ float partial[32];
    const float* row = x + (long long)blockIdx.x * columns;
    float v = 0.0f;
    for (int c = threadIdx.x; c < columns; c += blockDim.x) v += row[c];
    v = warp_sum(v);
    int lane = threadIdx.x % warpSize, warp = threadIdx.x / warpSize;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        int warps = (blockDim.x + warpSize - 1) / warpSize;
        v = lane < warps ? partial[lane] : 0.0f;
        v = warp_sum(v);
        if (lane == 0) out[blockIdx.x] = v;
    }
}
"""


@pytest.mark.parametrize("threads", [32, 96, 256, 1024])
def test_block_reduction_with_shuffles_and_shared_memory(cuda: Cuda, threads: int) -> None:
    rows, columns = 7, 1000
    x = np.random.default_rng(threads).standard_normal((rows, columns)).astype(np.float32)
    function = cuda.function(cuda.module(REDUCTION), "row_sum")
    px, pout = cuda.upload(x), cuda.alloc(rows * 4)
    cuda.ok(cuda.launch(function, (rows,), (threads,), _ptr(px), _ptr(pout), ctypes.c_int(columns)), "launch")
    np.testing.assert_allclose(cuda.download(pout, rows, np.float32), x.astype(np.float64).sum(axis=1),
                               rtol=1e-5, atol=1e-4)
    cuda.free(px, pout)


def test_launch_bounds_are_enforced(cuda: Cuda) -> None:
    source = REDUCTION.replace("__launch_bounds__(1024)", "__launch_bounds__(2 * 64, 4)")
    function = cuda.function(cuda.module(source), "row_sum")
    x, out = cuda.alloc(4 * 256), cuda.alloc(4)
    assert cuda.launch(function, (1,), (256,), _ptr(x), _ptr(out), ctypes.c_int(256)) == \
        CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES
    cuda.ok(cuda.launch(function, (1,), (128,), _ptr(x), _ptr(out), ctypes.c_int(256)), "launch within the bounds")
    cuda.free(x, out)


WARP_OPS = r"""
extern "C" __global__ void warp_ops(const int* x, int* scan, int* segment_max, unsigned* ballot, int* broadcast,
                                    int* down, int* active) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    int lane = threadIdx.x & 31;
    int v = x[t];
    int s = v;  // inclusive scan of the warp
    for (int d = 1; d < 32; d <<= 1) {
        int other = __shfl_up_sync(0xffffffffu, s, d);
        if (lane >= d) s += other;
    }
    scan[t] = s;
    int m = v;  // maximum of each group of 8 lanes
    for (int d = 4; d > 0; d >>= 1) m = max(m, __shfl_xor_sync(0xffffffffu, m, d, 8));
    segment_max[t] = m;
    ballot[t] = __ballot_sync(0xffffffffu, v > 0);
    broadcast[t] = __shfl_sync(0xffffffffu, v, 5, 16);  // lane 5 of each half warp
    down[t] = __shfl_down_sync(0xffffffffu, v, 3);      // the last 3 lanes keep their own value
    active[t] = __all_sync(0xffffffffu, v > -1000) + 2 * __any_sync(0xffffffffu, v == 7);
}
"""


def test_warp_shuffles_and_votes(cuda: Cuda) -> None:
    blocks, threads = 2, 64
    n = blocks * threads
    x = np.random.default_rng(2).integers(-9, 10, n).astype(np.int32)
    x[40] = 7  # warp 1 has a 7; make sure warp 0 has none
    x[:32][x[:32] == 7] = 6
    function = cuda.function(cuda.module(WARP_OPS), "warp_ops")
    px = cuda.upload(x)
    outputs = [cuda.alloc(n * 4) for _ in range(6)]
    cuda.ok(cuda.launch(function, (blocks,), (threads,), _ptr(px), *map(_ptr, outputs)), "launch")
    scan, segment_max, ballot, broadcast, down, active = (
        cuda.download(p, n, np.uint32 if i == 2 else np.int32) for i, p in enumerate(outputs))

    warps = x.reshape(-1, 32)
    np.testing.assert_array_equal(scan, np.cumsum(warps, axis=1).ravel())
    np.testing.assert_array_equal(segment_max, np.repeat(x.reshape(-1, 8).max(axis=1), 8))
    bits = (warps > 0).astype(np.uint64) << np.arange(32, dtype=np.uint64)
    np.testing.assert_array_equal(ballot, np.repeat(bits.sum(axis=1), 32).astype(np.uint32))
    np.testing.assert_array_equal(broadcast, np.repeat(x.reshape(-1, 16)[:, 5], 16))
    lanes = np.arange(32)
    expected_down = np.where(lanes + 3 < 32, np.roll(warps, -3, axis=1), warps).ravel()
    np.testing.assert_array_equal(down, expected_down)
    np.testing.assert_array_equal(active, np.repeat(1 + 2 * (warps == 7).any(axis=1), 32))
    cuda.free(px, *outputs)


ATOMICS = r"""
// A histogram of x & 15 through shared-memory atomics, global atomics, and a block-wide vote.
extern "C" __global__ void histogram(const int* x, int n, unsigned* bins, int* maximum, float* total,
                                     int* busy_blocks) {
    __shared__ unsigned local[16];
    for (int b = threadIdx.x; b < 16; b += blockDim.x) local[b] = 0;
    __syncthreads();
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int v = i < n ? x[i] : 0;
    if (i < n) {
        atomicAdd(&local[v & 15], 1u);
        atomicMax(maximum, v);
        atomicAdd(total, (float)v);
    }
    int large = __syncthreads_count(i < n && v > 190);
    for (int b = threadIdx.x; b < 16; b += blockDim.x) atomicAdd(&bins[b], local[b]);
    if (threadIdx.x == 0 && large > 0) atomicAdd(busy_blocks, 1);
}
"""


def test_atomics_and_block_votes(cuda: Cuda) -> None:
    n, threads = 1000, 256
    blocks = (n + threads - 1) // threads
    x = np.random.default_rng(5).integers(0, 200, n).astype(np.int32)
    function = cuda.function(cuda.module(ATOMICS), "histogram")
    px = cuda.upload(x)
    bins, maximum, total, busy = (cuda.upload(np.zeros(size, dtype)) for size, dtype in
                                  [(16, np.uint32), (1, np.int32), (1, np.float32), (1, np.int32)])
    cuda.ok(cuda.launch(function, (blocks,), (threads,), _ptr(px), ctypes.c_int(n), _ptr(bins), _ptr(maximum),
                        _ptr(total), _ptr(busy)), "launch")
    np.testing.assert_array_equal(cuda.download(bins, 16, np.uint32), np.bincount(x & 15, minlength=16))
    assert cuda.download(maximum, 1, np.int32)[0] == x.max()
    assert cuda.download(total, 1, np.float32)[0] == float(x.sum())  # exact: integers below 2^24
    padded = np.concatenate([x, np.zeros(blocks * threads - n, np.int32)]).reshape(blocks, threads)
    assert cuda.download(busy, 1, np.int32)[0] == int((padded > 190).any(axis=1).sum())
    cuda.free(px, bins, maximum, total, busy)


TRANSPOSE = r"""
#define TILE 16
// A 2D grid of 16 x 8 blocks; each thread moves two elements of a 16 x 16 tile through shared memory.
extern "C" __global__ void transpose(const float* in, float* out, int rows, int columns) {
    __shared__ float tile[TILE][TILE + 1];
    int x = blockIdx.x * TILE + threadIdx.x;
    for (int j = threadIdx.y; j < TILE; j += blockDim.y) {
        int y = blockIdx.y * TILE + j;
        if (x < columns && y < rows) tile[j][threadIdx.x] = in[(long long)y * columns + x];
    }
    __syncthreads();
    x = blockIdx.y * TILE + threadIdx.x;
    for (int j = threadIdx.y; j < TILE; j += blockDim.y) {
        int y = blockIdx.x * TILE + j;
        if (x < rows && y < columns) out[(long long)y * rows + x] = tile[threadIdx.x][j];
    }
}
"""


def test_two_dimensional_blocks_and_grids(cuda: Cuda) -> None:
    rows, columns = 37, 50
    a = np.random.default_rng(3).standard_normal((rows, columns)).astype(np.float32)
    function = cuda.function(cuda.module(TRANSPOSE), "transpose")
    pin, pout = cuda.upload(a), cuda.alloc(a.nbytes)
    grid = ((columns + 15) // 16, (rows + 15) // 16)
    cuda.ok(cuda.launch(function, grid, (16, 8), _ptr(pin), _ptr(pout), ctypes.c_int(rows), ctypes.c_int(columns)),
            "launch")
    np.testing.assert_array_equal(cuda.download(pout, (columns, rows), np.float32), a.T)
    cuda.free(pin, pout)


DYNAMIC_SHARED = r"""
// For a GPU, the backend's prelude defines the macro; emulation.h defines it for the emulator.
#ifndef AIDGE_EMULATION
#define AIDGE_DYNAMIC_SHARED(type, name) \
    extern __shared__ __align__(16) unsigned char aidge_dynamic_shared_[]; \
    type* name = reinterpret_cast<type*>(aidge_dynamic_shared_)
#endif

// Reverses each block's slice of x through dynamic shared memory.
extern "C" __global__ void reverse_blocks(const float* x, float* y) {
    AIDGE_DYNAMIC_SHARED(float, tile);
    long long base = (long long)blockIdx.x * blockDim.x;
    tile[threadIdx.x] = x[base + threadIdx.x];
    __syncthreads();
    y[base + threadIdx.x] = tile[blockDim.x - 1 - threadIdx.x];
}

// Reads the float just past the dynamic shared memory of its launch.
extern "C" __global__ void read_past_shared(float* y) {
    AIDGE_DYNAMIC_SHARED(float, tile);
    y[threadIdx.x] = tile[threadIdx.x + blockDim.x];
}
"""


def test_dynamic_shared_memory(cuda: Cuda) -> None:
    blocks, threads = 4, 128
    x = np.arange(blocks * threads, dtype=np.float32)
    module = cuda.module(DYNAMIC_SHARED)
    function = cuda.function(module, "reverse_blocks")
    px, py = cuda.upload(x), cuda.alloc(x.nbytes)
    cuda.ok(cuda.launch(function, (blocks,), (threads,), _ptr(px), _ptr(py), shared=threads * 4), "launch")
    np.testing.assert_array_equal(cuda.download(py, x.size, np.float32), x.reshape(blocks, threads)[:, ::-1].ravel())

    # Past 48 KiB only once allowed, as on a GPU.
    big = 64 * 1024
    assert cuda.launch(function, (blocks,), (threads,), _ptr(px), _ptr(py), shared=big) == CUDA_ERROR_INVALID_VALUE
    assert cuda.lib.cuFuncSetAttribute(function, 8, 300 * 1024) == CUDA_ERROR_INVALID_VALUE
    cuda.ok(cuda.lib.cuFuncSetAttribute(function, 8, big), "cuFuncSetAttribute")
    cuda.ok(cuda.launch(function, (blocks,), (threads,), _ptr(px), _ptr(py), shared=big), "launch with 64 KiB")

    past = cuda.function(module, "read_past_shared")
    assert cuda.launch(past, (1,), (32,), _ptr(py), shared=32 * 4) == CUDA_ERROR_ILLEGAL_ADDRESS
    cuda.free(px, py)


# ---------------------------------------------------------------------------------------------------------------------
# Errors of compilation and launch.


def test_compilation_errors_come_back_in_the_log(cuda: Cuda) -> None:
    status, log, ptx = cuda.compile('extern "C" __global__ void broken(float* y) { y[0] = undeclared_value_xyz; }')
    assert status == NVRTC_ERROR_COMPILATION and ptx == b""
    assert "undeclared_value_xyz" in log


def test_compilations_are_cached(cuda: Cuda) -> None:
    source = ELEMENTWISE + "\n// cached\n"
    first = cuda.compile(source, ("-DUNUSED=1", "--use_fast_math", "-arch=sm_90"))
    assert first[0] == 0
    library = Path(first[2].decode().splitlines()[1])
    stamp = library.stat().st_mtime_ns
    second = cuda.compile(source, ("-DUNUSED=1", "--use_fast_math", "-arch=sm_90"))
    assert second == first and library.stat().st_mtime_ns == stamp
    assert cuda.compile(source, ("-DUNUSED=2",))[2] != first[2], "options are part of the key"


def test_headers_of_the_program(cuda: Cuda) -> None:
    source = '#include "ops/scale.h"\n' \
             'extern "C" __global__ void scaled(float* y) { y[threadIdx.x] = scale(threadIdx.x); }'
    headers = {"ops/scale.h": "__device__ inline float scale(unsigned i) { return FACTOR * i; }\n"}
    status, log, ptx = cuda.compile(source, ("-DFACTOR=3.0f",), headers=headers)
    assert status == 0, log
    module = ctypes.c_void_p()
    cuda.ok(cuda.lib.cuModuleLoadData(ctypes.byref(module), ptx), "cuModuleLoadData")
    py = cuda.alloc(32 * 4)
    cuda.ok(cuda.launch(cuda.function(module, "scaled"), (1,), (32,), _ptr(py)), "launch")
    np.testing.assert_array_equal(cuda.download(py, 32, np.float32), 3.0 * np.arange(32))
    cuda.free(py)


def test_macros_pass_through(cuda: Cuda) -> None:
    source = 'extern "C" __global__ void fill(float* y) { y[threadIdx.x] = SCALE * threadIdx.x + OFFSET; }'
    function = cuda.function(cuda.module(source, ("-DSCALE=2.0f", "--define-macro=OFFSET=1.0f")), "fill")
    py = cuda.alloc(64 * 4)
    cuda.ok(cuda.launch(function, (1,), (64,), _ptr(py)), "launch")
    np.testing.assert_array_equal(cuda.download(py, 64, np.float32), 2.0 * np.arange(64) + 1.0)
    cuda.free(py)


LAUNCH_ERRORS = r"""
extern "C" __global__ void write_index(int* y, long long n) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < n) y[i] = (int)i;
}

// Thread 0 waits at the block barrier while the rest of its warp waits for it at a warp barrier.
extern "C" __global__ void deadlock(int* y) {
    if (threadIdx.x == 0) __syncthreads();
    else __syncwarp();
    y[threadIdx.x] = 1;
}

extern "C" __global__ void checks(int* y) {
    assert(threadIdx.x < 16);
    y[threadIdx.x] = 1;
}
"""


def test_launch_errors(cuda: Cuda) -> None:
    module = cuda.module(LAUNCH_ERRORS)
    write_index = cuda.function(module, "write_index")
    n = 1024  # 4 KiB: the allocation ends at an inaccessible page
    py = cuda.alloc(n * 4)
    args = (_ptr(py), ctypes.c_longlong(n))
    assert cuda.launch(write_index, (1,), (2048,), *args) == CUDA_ERROR_INVALID_VALUE
    assert cuda.launch(write_index, (1,), (1, 1, 65), *args) == CUDA_ERROR_INVALID_VALUE
    assert cuda.launch(write_index, (0,), (32,), *args) == CUDA_ERROR_INVALID_VALUE
    assert cuda.launch(write_index, (1, 65536), (32,), *args) == CUDA_ERROR_INVALID_VALUE

    launches = cuda.lib.aidge_emu_launch_count()
    assert cuda.launch(write_index, (5,), (256,), _ptr(py), ctypes.c_longlong(n + 1)) == CUDA_ERROR_ILLEGAL_ADDRESS
    assert cuda.launch(cuda.function(module, "deadlock"), (1,), (64,), _ptr(py)) == CUDA_ERROR_LAUNCH_FAILED
    assert cuda.launch(cuda.function(module, "checks"), (1,), (32,), _ptr(py)) == CUDA_ERROR_ASSERT
    assert cuda.lib.aidge_emu_launch_count() == launches

    # The emulator recovers: errors are not sticky.
    cuda.ok(cuda.launch(write_index, (4,), (256,), *args), "launch after the errors")
    np.testing.assert_array_equal(cuda.download(py, n, np.int32), np.arange(n))

    missing = ctypes.c_void_p()
    assert cuda.lib.cuModuleGetFunction(ctypes.byref(missing), module, b"no_such_kernel") == CUDA_ERROR_NOT_FOUND
    cuda.ok(cuda.lib.cuModuleUnload(module), "cuModuleUnload")
    assert cuda.launch(write_index, (1,), (32,), *args) != CUDA_SUCCESS, "a kernel of an unloaded module"
    cuda.free(py)


PLAIN_FAULTS = r"""
extern "C" __global__ void write_past(float* y, int n) { y[threadIdx.x + n] = 1.0f; }
extern "C" __global__ void trap_at_three(float* y) {
    if (threadIdx.x == 3) __trap();
    y[threadIdx.x] = 2.0f;
}
"""

DEEP_STACK = r"""
extern "C" __global__ void deep_stack(float* y) {
    volatile float big[64 * 1024];  // 256 KiB: more than an emulated thread's stack
    for (int i = 0; i < 64 * 1024; ++i) big[i] = i;
    __syncthreads();
    y[threadIdx.x] = big[threadIdx.x];
}
"""


def test_faults_end_the_launch_not_the_process(cuda: Cuda) -> None:
    py = cuda.alloc(1024 * 4)
    plain = cuda.module(PLAIN_FAULTS)  # no barrier: threads run as plain calls
    assert cuda.launch(cuda.function(plain, "write_past"), (1,), (4,), _ptr(py), ctypes.c_int(1024)) == \
        CUDA_ERROR_ILLEGAL_ADDRESS
    assert cuda.launch(cuda.function(plain, "trap_at_three"), (1,), (4,), _ptr(py)) == CUDA_ERROR_LAUNCH_FAILED
    fibers = cuda.module(DEEP_STACK)
    assert cuda.launch(cuda.function(fibers, "deep_stack"), (1,), (2,), _ptr(py)) == CUDA_ERROR_ILLEGAL_ADDRESS
    cuda.ok(cuda.launch(cuda.function(plain, "trap_at_three"), (1,), (3,), _ptr(py)), "launch after the faults")
    np.testing.assert_array_equal(cuda.download(py, 3, np.float32), [2.0, 2.0, 2.0])
    cuda.free(py)


def test_failures_report_where(cuda: Cuda) -> None:
    code = f"""
        import ctypes
        lib = ctypes.CDLL({str(cuda.lib._name)!r})
        context, program, module, function = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
        assert lib.cuInit(0) == 0 and lib.cuDevicePrimaryCtxRetain(ctypes.byref(context), 0) == 0
        assert lib.cuCtxSetCurrent(context) == 0
        source = {LAUNCH_ERRORS!r}.encode()
        assert lib.nvrtcCreateProgram(ctypes.byref(program), source, b"errors.cu", 0, None, None) == 0
        assert lib.nvrtcCompileProgram(program, 0, None) == 0
        size = ctypes.c_size_t()
        lib.nvrtcGetPTXSize(program, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetPTX(program, ptx)
        assert lib.cuModuleLoadData(ctypes.byref(module), ptx) == 0
        assert lib.cuModuleGetFunction(ctypes.byref(function), module, b"deadlock") == 0
        pointer = ctypes.c_uint64()
        assert lib.cuMemAlloc_v2(ctypes.byref(pointer), ctypes.c_size_t(256)) == 0
        params = (ctypes.c_void_p * 1)(ctypes.cast(ctypes.pointer(pointer), ctypes.c_void_p))
        print(lib.cuLaunchKernel(function, 1, 1, 1, 64, 1, 1, 0, None, params, None))
        """
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(CUDA_ERROR_LAUNCH_FAILED)
    assert "kernel deadlock, block (0, 0, 0): deadlock" in result.stderr
    assert "threads 0 wait at __syncthreads; threads 1-31 wait at a warp barrier" in result.stderr


# ---------------------------------------------------------------------------------------------------------------------
# cuBLAS.


def _column_major(matrix: np.ndarray, ld: int) -> np.ndarray:
    """A rows x cols matrix stored column-major with leading dimension ld (rows of padding hold NaN)."""
    rows, cols = matrix.shape
    stored = np.full((cols, ld), np.nan, matrix.dtype)
    stored[:, :rows] = matrix.T
    return stored.ravel()


def _from_column_major(stored: np.ndarray, rows: int, cols: int, ld: int) -> np.ndarray:
    return stored.reshape(cols, ld)[:, :rows].T


@pytest.mark.parametrize("transa", [0, 1])
@pytest.mark.parametrize("transb", [0, 1])
def test_sgemm_transposes_and_leading_dimensions(cuda: Cuda, transa: int, transb: int) -> None:
    m, n, k = 5, 7, 3
    rng = np.random.default_rng(10 * transa + transb)
    op_a, op_b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    stored_a = op_a.T if transa else op_a
    stored_b = op_b.T if transb else op_b
    lda, ldb, ldc = stored_a.shape[0] + 3, stored_b.shape[0] + 2, m + 1
    pa, pb = cuda.upload(_column_major(stored_a, lda)), cuda.upload(_column_major(stored_b, ldb))
    pc = cuda.upload(_column_major(c0, ldc))
    handle = cuda.blas()
    alpha, beta = _f32(1.5), _f32(0.5)
    status = cuda.lib.cublasSgemm_v2(handle, transa, transb, m, n, k, ctypes.byref(alpha), pa, lda, pb, ldb,
                                     ctypes.byref(beta), pc, ldc)
    assert status == 0
    stored_c = cuda.download(pc, n * ldc, np.float32)
    expected = 1.5 * op_a.astype(np.float64) @ op_b + 0.5 * c0
    np.testing.assert_allclose(_from_column_major(stored_c, m, n, ldc), expected, rtol=1e-5, atol=1e-5)
    assert np.isnan(stored_c.reshape(n, ldc)[:, m]).all(), "the padding rows of C are left alone"
    cuda.lib.cublasDestroy_v2(handle)
    cuda.free(pa, pb, pc)


def test_sgemm_with_zero_beta_does_not_read_c(cuda: Cuda) -> None:
    m, n, k = 4, 3, 2
    a = np.arange(m * k, dtype=np.float32).reshape(m, k)
    b = np.arange(k * n, dtype=np.float32).reshape(k, n) - 2
    pa, pb = cuda.upload(_column_major(a, m)), cuda.upload(_column_major(b, k))
    pc = cuda.upload(np.full(m * n, np.nan, np.float32))
    handle = cuda.blas()
    alpha, beta = _f32(2.0), _f32(0.0)
    assert cuda.lib.cublasSgemm_v2(handle, 0, 0, m, n, k, ctypes.byref(alpha), pa, m, pb, k, ctypes.byref(beta),
                                   pc, m) == 0
    np.testing.assert_array_equal(_from_column_major(cuda.download(pc, m * n, np.float32), m, n, m), 2.0 * a @ b)
    # Errors as cuBLAS reports them.
    assert cuda.lib.cublasSgemm_v2(handle, 0, 0, m, n, k, ctypes.byref(alpha), pa, m - 1, pb, k, ctypes.byref(beta),
                                   pc, m) == CUBLAS_STATUS_INVALID_VALUE, "lda < m"
    assert cuda.lib.cublasSgemm_v2(handle, 0, 0, m, n, k + 1, ctypes.byref(alpha), pa, m, pb, k + 1,
                                   ctypes.byref(beta), pc, m) == CUBLAS_STATUS_INVALID_VALUE, "A overruns"
    cuda.lib.cublasDestroy_v2(handle)
    cuda.free(pa, pb, pc)


def test_sgemm_strided_batched(cuda: Cuda) -> None:
    batches, m, n, k = 3, 4, 5, 6
    rng = np.random.default_rng(4)
    a = rng.standard_normal((batches, m, k)).astype(np.float32)
    b = rng.standard_normal((batches, k, n)).astype(np.float32)
    # Row-major batches read as column-major are the transposes: C^T = B^T A^T, the usual trick.
    pa, pb, pc = cuda.upload(a), cuda.upload(b), cuda.alloc(batches * m * n * 4)
    handle = cuda.blas()
    alpha, beta = _f32(1.0), _f32(0.0)
    assert cuda.lib.cublasSgemmStridedBatched(handle, 0, 0, n, m, k, ctypes.byref(alpha), pb, n, k * n, pa, k, m * k,
                                              ctypes.byref(beta), pc, n, m * n, batches) == 0
    np.testing.assert_allclose(cuda.download(pc, (batches, m, n), np.float32), a.astype(np.float64) @ b,
                               rtol=1e-5, atol=1e-5)
    cuda.lib.cublasDestroy_v2(handle)
    cuda.free(pa, pb, pc)


def _to_bfloat16(values: np.ndarray) -> np.ndarray:
    """float32 to bfloat16 bits, rounded to nearest even."""
    bits = values.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def _from_bfloat16(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


@pytest.mark.parametrize("input_type", [CUDA_R_16F, CUDA_R_16BF])
@pytest.mark.parametrize("output_type", ["same", CUDA_R_32F])
def test_gemm_strided_batched_ex_half_precision(cuda: Cuda, input_type: int, output_type: object) -> None:
    batches, m, n, k = 2, 6, 5, 9
    c_type = input_type if output_type == "same" else CUDA_R_32F
    rng = np.random.default_rng(input_type)
    a32, b32 = rng.standard_normal((batches, k, m)), rng.standard_normal((batches, n, k))
    if input_type == CUDA_R_16F:
        a_bits, b_bits = a32.astype(np.float16), b32.astype(np.float16)
        a_values, b_values = a_bits.astype(np.float64), b_bits.astype(np.float64)
    else:
        a_bits, b_bits = _to_bfloat16(a32), _to_bfloat16(b32)
        a_values, b_values = _from_bfloat16(a_bits).astype(np.float64), _from_bfloat16(b_bits).astype(np.float64)
    # Column-major m x k and k x n batches: the row-major (k, m) and (n, k) arrays above.
    pa, pb = cuda.upload(a_bits), cuda.upload(b_bits)
    c_size = 4 if c_type == CUDA_R_32F else 2
    pc = cuda.alloc(batches * m * n * c_size)
    handle = cuda.blas()
    alpha, beta = _f32(0.75), _f32(0.0)
    status = cuda.lib.cublasGemmStridedBatchedEx(
        handle, 0, 0, m, n, k, ctypes.byref(alpha), pa, input_type, m, m * k, pb, input_type, k, k * n,
        ctypes.byref(beta), pc, c_type, m, m * n, batches, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT)
    assert status == 0
    # C (column-major m x n) of batch i is (A_i B_i), A_i = a_values[i].T (m x k), B_i = b_values[i].T (k x n).
    expected = 0.75 * np.einsum("bkm,bnk->bnm", a_values, b_values)  # row-major (n, m) = column-major m x n
    if c_type == CUDA_R_32F:
        result = cuda.download(pc, (batches, n, m), np.float32)
        np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5)
    elif c_type == CUDA_R_16F:
        result = cuda.download(pc, (batches, n, m), np.float16).astype(np.float64)
        np.testing.assert_allclose(result, expected.astype(np.float16).astype(np.float64), rtol=1e-3, atol=1e-3)
    else:
        result = _from_bfloat16(cuda.download(pc, (batches, n, m), np.uint16)).astype(np.float64)
        np.testing.assert_allclose(result, _from_bfloat16(_to_bfloat16(expected)), rtol=8e-3, atol=8e-3)
    cuda.lib.cublasDestroy_v2(handle)
    cuda.free(pa, pb, pc)


def test_gemm_ex_tf32_rounds_inputs_and_unsupported_compute_types(cuda: Cuda) -> None:
    value = np.array([1.0 + 2.0**-20], np.float32)  # not representable in TF32's 10 mantissa bits
    pa, pb, pc = cuda.upload(value), cuda.upload(np.ones(1, np.float32)), cuda.alloc(4)
    handle = cuda.blas()
    alpha, beta = _f32(1.0), _f32(0.0)

    def gemm_ex(compute: int) -> int:
        return cuda.lib.cublasGemmEx(handle, 0, 0, 1, 1, 1, ctypes.byref(alpha), pa, CUDA_R_32F, 1, pb, CUDA_R_32F, 1,
                                     ctypes.byref(beta), pc, CUDA_R_32F, 1, compute, CUBLAS_GEMM_DEFAULT)

    assert gemm_ex(CUBLAS_COMPUTE_32F) == 0
    assert cuda.download(pc, 1, np.float32)[0] == value[0]
    assert gemm_ex(CUBLAS_COMPUTE_32F_FAST_TF32) == 0
    assert cuda.download(pc, 1, np.float32)[0] == 1.0
    assert cuda.lib.cublasSetMathMode(handle, 3) == 0  # CUBLAS_TF32_TENSOR_OP_MATH
    assert cuda.lib.cublasSgemm_v2(handle, 0, 0, 1, 1, 1, ctypes.byref(alpha), pa, 1, pb, 1, ctypes.byref(beta),
                                   pc, 1) == 0
    assert cuda.download(pc, 1, np.float32)[0] == 1.0
    assert gemm_ex(64) == CUBLAS_STATUS_NOT_SUPPORTED  # CUBLAS_COMPUTE_16F
    cuda.lib.cublasDestroy_v2(handle)
    cuda.free(pa, pb, pc)


# ---------------------------------------------------------------------------------------------------------------------
# cuDNN.


class ConvolutionFwdAlgoPerf(ctypes.Structure):
    """cudnnConvolutionFwdAlgoPerf_t."""
    _fields_ = [("algo", ctypes.c_int), ("status", ctypes.c_int), ("time", ctypes.c_float),
                ("memory", ctypes.c_size_t), ("determinism", ctypes.c_int), ("mathType", ctypes.c_int),
                ("reserved", ctypes.c_int * 3)]


def _ints(values: tuple[int, ...] | list[int]) -> ctypes.Array[ctypes.c_int]:
    return (ctypes.c_int * max(1, len(values)))(*values)


def _packed_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(np.prod(shape[i + 1:])) for i in range(len(shape)))


class Cudnn:
    """A cuDNN handle and the descriptors made through it, destroyed by close()."""

    def __init__(self, cuda: Cuda) -> None:
        self.cuda, self.lib = cuda, cuda.lib
        self.handle = ctypes.c_void_p()
        assert self.lib.cudnnCreate(ctypes.byref(self.handle)) == 0
        self.made: list[tuple[object, ctypes.c_void_p]] = []

    def _create(self, kind: str) -> ctypes.c_void_p:
        descriptor = ctypes.c_void_p()
        assert getattr(self.lib, f"cudnnCreate{kind}Descriptor")(ctypes.byref(descriptor)) == 0
        self.made.append((getattr(self.lib, f"cudnnDestroy{kind}Descriptor"), descriptor))
        return descriptor

    def tensor(self, shape: tuple[int, ...], dtype: int = CUDNN_DATA_FLOAT,
               strides: tuple[int, ...] | None = None) -> ctypes.c_void_p:
        descriptor = self._create("Tensor")
        strides = strides or _packed_strides(shape)
        assert self.lib.cudnnSetTensorNdDescriptor(descriptor, dtype, len(shape), _ints(shape), _ints(strides)) == 0
        return descriptor

    def filter(self, shape: tuple[int, ...], dtype: int = CUDNN_DATA_FLOAT) -> ctypes.c_void_p:
        descriptor = self._create("Filter")
        assert self.lib.cudnnSetFilterNdDescriptor(descriptor, dtype, CUDNN_TENSOR_NCHW, len(shape), _ints(shape)) == 0
        return descriptor

    def convolution(self, pads: tuple[int, ...], strides: tuple[int, ...], dilations: tuple[int, ...],
                    mode: int = CUDNN_CROSS_CORRELATION, groups: int = 1, math: int = CUDNN_FMA_MATH,
                    compute: int = CUDNN_DATA_FLOAT) -> ctypes.c_void_p:
        descriptor = self._create("Convolution")
        assert self.lib.cudnnSetConvolutionNdDescriptor(descriptor, len(pads), _ints(pads), _ints(strides),
                                                        _ints(dilations), mode, compute) == 0
        assert self.lib.cudnnSetConvolutionGroupCount(descriptor, groups) == 0
        assert self.lib.cudnnSetConvolutionMathType(descriptor, math) == 0
        return descriptor

    def output_shape(self, conv: ctypes.c_void_p, x: ctypes.c_void_p, w: ctypes.c_void_p,
                     rank: int) -> tuple[int, ...]:
        out = _ints([0] * rank)
        assert self.lib.cudnnGetConvolutionNdForwardOutputDim(conv, x, w, rank, out) == 0
        return tuple(out)

    def algorithms(self, x: ctypes.c_void_p, w: ctypes.c_void_p, conv: ctypes.c_void_p, y: ctypes.c_void_p,
                   requested: int = 8) -> tuple[int, list[ConvolutionFwdAlgoPerf]]:
        """cudnnGetConvolutionForwardAlgorithm_v7's status and results."""
        results = (ConvolutionFwdAlgoPerf * requested)()
        returned = ctypes.c_int(-1)
        status = self.lib.cudnnGetConvolutionForwardAlgorithm_v7(self.handle, x, w, conv, y, requested,
                                                                 ctypes.byref(returned), results)
        return status, list(results)[:max(0, returned.value)]

    def forward(self, x_desc: ctypes.c_void_p, x: int, w_desc: ctypes.c_void_p, w: int, conv: ctypes.c_void_p,
                y_desc: ctypes.c_void_p, y: int, alpha: float = 1.0, beta: float = 0.0, algo: int = 1,
                workspace: int = 0, workspace_bytes: int = 0, double: bool = False) -> int:
        scalar = ctypes.c_double if double else ctypes.c_float
        a, b = scalar(alpha), scalar(beta)
        return self.lib.cudnnConvolutionForward(self.handle, ctypes.byref(a), x_desc, x, w_desc, w, conv, algo,
                                                workspace, workspace_bytes, ctypes.byref(b), y_desc, y)

    def close(self) -> None:
        for destroy, descriptor in reversed(self.made):
            assert destroy(descriptor) == 0
        assert self.lib.cudnnDestroy(self.handle) == 0


@pytest.fixture
def cudnn(cuda: Cuda) -> Cudnn:
    made = Cudnn(cuda)
    yield made
    made.close()


def _reference_convolution(x: np.ndarray, w: np.ndarray, pads: tuple[int, ...], strides: tuple[int, ...],
                           dilations: tuple[int, ...], groups: int = 1, flip: bool = False) -> np.ndarray:
    """The N-d convolution (cross-correlation unless flip) in float64, NCHW, symmetric pads."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    if flip:
        w = w[(slice(None), slice(None)) + (slice(None, None, -1),) * (w.ndim - 2)]
    n, k, cg = x.shape[0], w.shape[0], w.shape[1]
    padded = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in pads])
    out = [(padded.shape[2 + i] - (w.shape[2 + i] - 1) * dilations[i] - 1) // strides[i] + 1
           for i in range(len(pads))]
    xg = padded.reshape(n, groups, cg, *padded.shape[2:])
    wg = w.reshape(groups, k // groups, cg, *w.shape[2:])
    y = np.zeros((n, groups, k // groups, *out))
    for tap in np.ndindex(*w.shape[2:]):
        window = tuple(slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, o, s in zip(tap, dilations, out, strides))
        y += np.einsum("ngc...,gkc->ngk...", xg[(slice(None),) * 3 + window], wg[(slice(None),) * 3 + tap])
    return y.reshape(n, k, *out)


def _run_convolution(cudnn: Cudnn, x: np.ndarray, w: np.ndarray, pads: tuple[int, ...], strides: tuple[int, ...],
                     dilations: tuple[int, ...], *, dtype: int = CUDNN_DATA_FLOAT, groups: int = 1,
                     mode: int = CUDNN_CROSS_CORRELATION, math: int = CUDNN_FMA_MATH, alpha: float = 1.0,
                     beta: float = 0.0, y0: np.ndarray | None = None, algo_rank: int = 0) -> np.ndarray:
    """y = alpha conv(x, w) + beta y0 through the emulated cuDNN, x, w and y0 already in the storage dtype (bf16 as
    uint16 bits), with the algorithm cuDNN ranks algo_rank-th and the workspace it asks for."""
    cuda = cudnn.cuda
    compute = CUDNN_DATA_DOUBLE if dtype == CUDNN_DATA_DOUBLE else CUDNN_DATA_FLOAT
    x_desc, w_desc = cudnn.tensor(x.shape, dtype), cudnn.filter(w.shape, dtype)
    conv = cudnn.convolution(pads, strides, dilations, mode, groups, math, compute)
    y_shape = cudnn.output_shape(conv, x_desc, w_desc, x.ndim)
    y_desc = cudnn.tensor(y_shape, dtype)
    status, results = cudnn.algorithms(x_desc, w_desc, conv, y_desc)
    assert status == 0 and results[algo_rank].status == 0
    algo, workspace_bytes = results[algo_rank].algo, results[algo_rank].memory
    size = ctypes.c_size_t()
    assert cuda.lib.cudnnGetConvolutionForwardWorkspaceSize(cudnn.handle, x_desc, w_desc, conv, y_desc, algo,
                                                            ctypes.byref(size)) == 0
    assert size.value == workspace_bytes
    px, pw = cuda.upload(x), cuda.upload(w)
    py = cuda.upload(y0) if y0 is not None else cuda.alloc(int(np.prod(y_shape)) * x.itemsize)
    workspace = cuda.alloc(workspace_bytes) if workspace_bytes else 0
    status = cudnn.forward(x_desc, px, w_desc, pw, conv, y_desc, py, alpha, beta, algo, workspace, workspace_bytes,
                           double=dtype == CUDNN_DATA_DOUBLE)
    assert status == 0, cuda.lib.cudnnGetErrorString(status)
    y = cuda.download(py, y_shape, x.dtype)
    cuda.free(px, pw, py, *([workspace] if workspace else []))
    return y


CONVOLUTIONS = {
    "2d": dict(x=(2, 3, 9, 11), w=(4, 3, 3, 2), pads=(1, 2), strides=(2, 1), dilations=(1, 2)),
    "groups": dict(x=(1, 6, 7, 8), w=(4, 3, 3, 3), pads=(1, 1), strides=(1, 2), dilations=(1, 1), groups=2),
    "depthwise": dict(x=(2, 4, 8, 8), w=(8, 1, 3, 3), pads=(2, 2), strides=(1, 1), dilations=(2, 2), groups=4),
    "1d": dict(x=(2, 3, 17), w=(5, 3, 4), pads=(2,), strides=(3,), dilations=(2,)),
    "3d": dict(x=(1, 2, 5, 6, 7), w=(3, 2, 2, 3, 2), pads=(1, 0, 1), strides=(1, 2, 2), dilations=(2, 1, 1)),
    "convolution mode": dict(x=(1, 2, 6, 7), w=(3, 2, 3, 2), pads=(1, 0), strides=(1, 1), dilations=(1, 1),
                             mode=CUDNN_CONVOLUTION),
}


@pytest.mark.parametrize("case", CONVOLUTIONS)
@pytest.mark.parametrize("algo_rank", [0, 1])
def test_cudnn_convolution_forward(cudnn: Cudnn, case: str, algo_rank: int) -> None:
    spec = dict(CONVOLUTIONS[case])
    rng = np.random.default_rng(len(case))
    x = rng.standard_normal(spec.pop("x")).astype(np.float32)
    w = rng.standard_normal(spec.pop("w")).astype(np.float32)
    geometry = (spec.pop("pads"), spec.pop("strides"), spec.pop("dilations"))
    y = _run_convolution(cudnn, x, w, *geometry, algo_rank=algo_rank, **spec)
    expected = _reference_convolution(x, w, *geometry, groups=spec.get("groups", 1),
                                      flip=spec.get("mode") == CUDNN_CONVOLUTION)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_cudnn_double_precision(cudnn: Cudnn) -> None:
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((2, 4, 6, 5)), rng.standard_normal((6, 2, 2, 3))
    y0 = rng.standard_normal((2, 6, 3, 5))
    y = _run_convolution(cudnn, x, w, (0, 1), (2, 1), (1, 1), dtype=CUDNN_DATA_DOUBLE, groups=2, alpha=2.0, beta=-0.5,
                         y0=y0)
    np.testing.assert_allclose(y, 2.0 * _reference_convolution(x, w, (0, 1), (2, 1), (1, 1), groups=2) - 0.5 * y0,
                               rtol=1e-12, atol=1e-12)


def test_cudnn_alpha_and_beta(cudnn: Cudnn) -> None:
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((1, 3, 6, 6)).astype(np.float32), rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    geometry = ((1, 1), (1, 1), (1, 1))
    expected = _reference_convolution(x, w, *geometry)
    nan = np.full(expected.shape, np.nan, np.float32)
    y = _run_convolution(cudnn, x, w, *geometry, alpha=0.5, beta=0.0, y0=nan)
    np.testing.assert_allclose(y, 0.5 * expected, rtol=1e-5, atol=1e-5)  # beta = 0: y is not read
    y0 = rng.standard_normal(expected.shape).astype(np.float32)
    y = _run_convolution(cudnn, x, w, *geometry, alpha=1.0, beta=1.0, y0=y0)
    np.testing.assert_allclose(y, expected + y0, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [CUDNN_DATA_HALF, CUDNN_DATA_BFLOAT16])
def test_cudnn_half_precision(cudnn: Cudnn, dtype: int) -> None:
    rng = np.random.default_rng(dtype)
    x32, w32 = rng.standard_normal((2, 4, 7, 6)), rng.standard_normal((6, 2, 3, 3))
    y32 = rng.standard_normal((2, 6, 4, 6))
    if dtype == CUDNN_DATA_HALF:
        x, w, y0 = x32.astype(np.float16), w32.astype(np.float16), y32.astype(np.float16)
        values = [a.astype(np.float64) for a in (x, w, y0)]
    else:
        x, w, y0 = _to_bfloat16(x32), _to_bfloat16(w32), _to_bfloat16(y32)
        values = [_from_bfloat16(a).astype(np.float64) for a in (x, w, y0)]
    y = _run_convolution(cudnn, x, w, (1, 1), (2, 1), (1, 1), dtype=dtype, groups=2, alpha=0.75, beta=0.5, y0=y0)
    result = y.astype(np.float64) if dtype == CUDNN_DATA_HALF else _from_bfloat16(y).astype(np.float64)
    expected = 0.75 * _reference_convolution(values[0], values[1], (1, 1), (2, 1), (1, 1), groups=2) + 0.5 * values[2]
    np.testing.assert_allclose(result, expected, rtol=2e-2, atol=2e-2 * np.abs(expected).max())


def test_cudnn_float_math_types_round_to_tf32(cudnn: Cudnn) -> None:
    value = np.full((1, 1, 1, 1), 1.0 + 2.0**-20, np.float32)  # not representable in TF32's 10 mantissa bits
    one = np.ones((1, 1, 1, 1), np.float32)
    for math, expected in [(CUDNN_DEFAULT_MATH, 1.0), (CUDNN_TENSOR_OP_MATH, 1.0),
                           (CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION, 1.0), (CUDNN_FMA_MATH, value.item())]:
        y = _run_convolution(cudnn, value, one, (0, 0), (1, 1), (1, 1), math=math)
        assert y.item() == expected, math


def test_cudnn_strided_tensors(cudnn: Cudnn) -> None:
    """X is a view with padded rows and Y channels-last with padded pixels; the padding holds NaN and stays NaN."""
    cuda = cudnn.cuda
    rng = np.random.default_rng(11)
    n, c, h, wd, k = 2, 3, 6, 7, 4
    x = rng.standard_normal((n, c, h, wd)).astype(np.float32)
    w = rng.standard_normal((k, c, 3, 3)).astype(np.float32)
    stored_x = np.full((n, c, h, wd + 3), np.nan, np.float32)
    stored_x[..., :wd] = x
    oh, ow = h, wd
    stored_y = np.full((n, oh, ow, k + 1), np.nan, np.float32)  # NHWC with one spare channel per pixel
    x_desc = cudnn.tensor((n, c, h, wd), strides=_packed_strides(stored_x.shape))
    y_desc = cudnn.tensor((n, k, oh, ow), strides=(oh * ow * (k + 1), 1, ow * (k + 1), k + 1))
    w_desc = cudnn.filter(w.shape)
    conv = cudnn.convolution((1, 1), (1, 1), (1, 1))
    px, pw, py = cuda.upload(stored_x), cuda.upload(w), cuda.upload(stored_y)
    assert cudnn.forward(x_desc, px, w_desc, pw, conv, y_desc, py, algo=CUDNN_FWD_ALGO_IMPLICIT_GEMM) == 0
    result = cuda.download(py, stored_y.shape, np.float32)
    np.testing.assert_allclose(result[..., :k].transpose(0, 3, 1, 2),
                               _reference_convolution(x, w, (1, 1), (1, 1), (1, 1)), rtol=1e-5, atol=1e-5)
    assert np.isnan(result[..., k]).all(), "the spare channel is left alone"
    cuda.free(px, pw, py)


def test_cudnn_algorithms_and_workspace(cudnn: Cudnn) -> None:
    cuda = cudnn.cuda
    x_desc, w_desc = cudnn.tensor((1, 2, 5, 5)), cudnn.filter((3, 2, 3, 3))
    conv = cudnn.convolution((1, 1), (1, 1), (1, 1), math=CUDNN_TENSOR_OP_MATH)
    assert cudnn.output_shape(conv, x_desc, w_desc, 4) == (1, 3, 5, 5)
    y_desc = cudnn.tensor((1, 3, 5, 5))
    status, results = cudnn.algorithms(x_desc, w_desc, conv, y_desc)
    assert status == 0
    assert [r.algo for r in results] == [CUDNN_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_FWD_ALGO_IMPLICIT_GEMM]
    assert results[0].memory > 0 and results[1].memory == 0
    assert all(r.status == 0 and r.determinism == 1 and r.mathType == CUDNN_TENSOR_OP_MATH for r in results)
    status, results = cudnn.algorithms(x_desc, w_desc, conv, y_desc, requested=1)
    assert status == 0 and len(results) == 1
    needed = results[0].memory
    size = ctypes.c_size_t()
    lib = cuda.lib
    assert lib.cudnnGetConvolutionForwardWorkspaceSize(cudnn.handle, x_desc, w_desc, conv, y_desc,
                                                       CUDNN_FWD_ALGO_FFT, ctypes.byref(size)) == \
        CUDNN_STATUS_NOT_SUPPORTED
    assert lib.cudnnGetConvolutionForwardWorkspaceSize(cudnn.handle, x_desc, w_desc, conv, y_desc, 99,
                                                       ctypes.byref(size)) == CUDNN_STATUS_BAD_PARAM

    px, pw = cuda.upload(np.ones((1, 2, 5, 5), np.float32)), cuda.upload(np.ones((3, 2, 3, 3), np.float32))
    py, workspace = cuda.alloc(75 * 4), cuda.upload(np.zeros(needed + 64, np.uint8))
    algo = CUDNN_FWD_ALGO_IMPLICIT_PRECOMP_GEMM
    assert cudnn.forward(x_desc, px, w_desc, pw, conv, y_desc, py, algo=algo, workspace=workspace,
                         workspace_bytes=needed - 1) == CUDNN_STATUS_BAD_PARAM, "too small a workspace"
    assert cudnn.forward(x_desc, px, w_desc, pw, conv, y_desc, py, algo=algo) == CUDNN_STATUS_BAD_PARAM
    assert cudnn.forward(x_desc, px, w_desc, pw, conv, y_desc, py, algo=CUDNN_FWD_ALGO_FFT) == \
        CUDNN_STATUS_NOT_SUPPORTED
    assert cudnn.forward(x_desc, px, w_desc, pw, conv, y_desc, py, algo=algo, workspace=workspace,
                         workspace_bytes=needed + 64) == 0
    scratch = cuda.download(workspace, needed + 64, np.uint8)
    assert (scratch[:needed] == 0xFF).all() and (scratch[needed:] == 0).all(), "the workspace is scratch"
    assert cudnn.forward(x_desc, px, w_desc, pw, conv, y_desc, py, algo=CUDNN_FWD_ALGO_IMPLICIT_GEMM) == 0
    assert cuda.download(py, (3, 5, 5), np.float32)[0, 2, 2] == 18.0
    cuda.free(px, pw, py, workspace)


def test_cudnn_errors(cudnn: Cudnn) -> None:
    cuda, lib = cudnn.cuda, cudnn.lib
    x_desc, w_desc = cudnn.tensor((1, 4, 6, 6)), cudnn.filter((2, 3, 3, 3))
    conv = cudnn.convolution((0, 0), (1, 1), (1, 1))
    out = _ints([0] * 4)
    assert lib.cudnnGetConvolutionNdForwardOutputDim(conv, x_desc, w_desc, 4, out) == CUDNN_STATUS_BAD_PARAM, \
        "4 channels against a filter of 3"
    y_desc = cudnn.tensor((1, 2, 4, 4))
    assert cudnn.algorithms(x_desc, w_desc, conv, y_desc)[0] == CUDNN_STATUS_BAD_PARAM
    assert lib.cudnnSetConvolutionGroupCount(conv, 2) == 0
    assert cudnn.algorithms(x_desc, w_desc, conv, y_desc)[0] == CUDNN_STATUS_BAD_PARAM, "4 != 3 x 2 either"
    assert lib.cudnnSetConvolutionGroupCount(conv, 1) == 0

    x_desc = cudnn.tensor((1, 3, 6, 6))
    assert cudnn.algorithms(x_desc, w_desc, conv, cudnn.tensor((1, 2, 4, 5)))[0] == CUDNN_STATUS_BAD_PARAM, "Y's W"
    assert cudnn.algorithms(x_desc, w_desc, conv, cudnn.tensor((1, 2, 4, 4), CUDNN_DATA_HALF))[0] == \
        CUDNN_STATUS_BAD_PARAM, "Y's type"
    half_conv = cudnn.convolution((0, 0), (1, 1), (1, 1), compute=CUDNN_DATA_HALF)
    assert cudnn.algorithms(x_desc, w_desc, half_conv, y_desc)[0] == CUDNN_STATUS_NOT_SUPPORTED, "float in half"
    assert cudnn.algorithms(x_desc, w_desc, conv, y_desc)[0] == 0

    # Descriptors.
    filter_desc = cudnn._create("Filter")
    assert lib.cudnnSetFilterNdDescriptor(filter_desc, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, 4,
                                          _ints((2, 3, 3, 3))) == CUDNN_STATUS_NOT_SUPPORTED
    tensor_desc = cudnn._create("Tensor")
    assert lib.cudnnSetTensorNdDescriptor(tensor_desc, CUDNN_DATA_FLOAT, 2, _ints((2, 3)), _ints((3, 1))) == \
        CUDNN_STATUS_BAD_PARAM
    assert lib.cudnnSetTensorNdDescriptor(tensor_desc, CUDNN_DATA_FLOAT, 4, _ints((1, 3, 6, 6)),
                                          _ints((108, 36, 6, 0))) == CUDNN_STATUS_BAD_PARAM
    assert cudnn.algorithms(tensor_desc, w_desc, conv, y_desc)[0] == CUDNN_STATUS_BAD_PARAM, "never set"
    conv_desc = cudnn._create("Convolution")
    assert lib.cudnnSetConvolutionNdDescriptor(conv_desc, 2, _ints((1, 1)), _ints((0, 1)), _ints((1, 1)),
                                               CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT) == CUDNN_STATUS_BAD_PARAM
    assert lib.cudnnSetConvolutionMathType(conv_desc, 4) == CUDNN_STATUS_BAD_PARAM
    assert lib.cudnnSetConvolutionGroupCount(conv_desc, 0) == CUDNN_STATUS_BAD_PARAM
    assert lib.cudnnGetErrorString(CUDNN_STATUS_BAD_PARAM) == b"CUDNN_STATUS_BAD_PARAM"

    # Device operands.
    px, pw = cuda.upload(np.ones((1, 3, 6, 6), np.float32)), cuda.upload(np.ones((2, 3, 3, 3), np.float32))
    py, small = cuda.alloc(32 * 4), cuda.alloc(31 * 4)
    algo = CUDNN_FWD_ALGO_IMPLICIT_GEMM
    assert cudnn.forward(x_desc, px, w_desc, pw, conv, y_desc, py, algo=algo) == 0
    freed = cuda.alloc(32 * 4)
    cuda.free(freed)
    for bad_y in (freed, small, py + 4, px, px + 64 * 4 + (1 << 40)):
        assert cudnn.forward(x_desc, px, w_desc, pw, conv, y_desc, bad_y, algo=algo) == CUDNN_STATUS_BAD_PARAM, bad_y
    assert cudnn.forward(x_desc, py, w_desc, pw, conv, y_desc, py, algo=algo) == CUDNN_STATUS_BAD_PARAM, "x too small"
    assert cudnn.forward(x_desc, px + 2, w_desc, pw, conv, y_desc, py, algo=algo) == CUDNN_STATUS_BAD_PARAM, "align"
    overlapping, big = cudnn.tensor((1, 2, 4, 4), strides=(32, 16, 4, 2)), cuda.alloc(64 * 4)
    assert cudnn.forward(x_desc, px, w_desc, pw, conv, overlapping, big, algo=algo) == CUDNN_STATUS_BAD_PARAM
    one = ctypes.c_float(1.0)
    assert lib.cudnnConvolutionForward(cudnn.handle, ctypes.byref(one), x_desc, px, w_desc, pw, conv, algo, 0, 0,
                                       None, y_desc, py) == CUDNN_STATUS_BAD_PARAM, "null beta"
    assert lib.cudnnConvolutionForward(None, ctypes.byref(one), x_desc, px, w_desc, pw, conv, algo, 0, 0,
                                       ctypes.byref(one), y_desc, py) == CUDNN_STATUS_BAD_PARAM, "no handle"
    cuda.free(px, pw, py, small, big)


def test_cudnn_streams(cudnn: Cudnn) -> None:
    lib = cudnn.lib
    stream = ctypes.c_void_p()
    cudnn.cuda.ok(lib.cuStreamCreate(ctypes.byref(stream), 0), "cuStreamCreate")
    assert lib.cudnnSetStream(cudnn.handle, stream) == 0
    assert lib.cudnnSetStream(cudnn.handle, ctypes.c_void_p(0x1234)) == CUDNN_STATUS_BAD_PARAM
    cudnn.cuda.ok(lib.cuStreamDestroy_v2(stream), "cuStreamDestroy_v2")
    x = np.ones((1, 1, 2, 2), np.float32)
    px, py = cudnn.cuda.upload(x), cudnn.cuda.alloc(4)
    x_desc, w_desc, y_desc = cudnn.tensor(x.shape), cudnn.filter(x.shape), cudnn.tensor((1, 1, 1, 1))
    conv = cudnn.convolution((0, 0), (1, 1), (1, 1))

    def forward() -> int:
        return cudnn.forward(x_desc, px, w_desc, px, conv, y_desc, py, algo=CUDNN_FWD_ALGO_IMPLICIT_GEMM)

    assert forward() == CUDNN_STATUS_BAD_PARAM, "a destroyed stream"
    assert lib.cudnnSetStream(cudnn.handle, None) == 0
    assert forward() == 0 and cudnn.cuda.download(py, 1, np.float32)[0] == 4.0
    cudnn.cuda.free(px, py)


@pytest.mark.parametrize("setting", ["", "0"])
def test_cudnn_needs_a_context_and_can_be_disabled(cuda: Cuda, setting: str) -> None:
    result = _run_python(f"""
        import ctypes
        lib = ctypes.CDLL({str(cuda.lib._name)!r})
        lib.cudnnGetVersion.restype = ctypes.c_size_t
        handle, context = ctypes.c_void_p(), ctypes.c_void_p()
        print(lib.cudnnGetVersion(), lib.cudnnCreate(ctypes.byref(handle)), end=" ")
        assert lib.cuInit(0) == 0 and lib.cuDevicePrimaryCtxRetain(ctypes.byref(context), 0) == 0
        print(lib.cudnnCreate(ctypes.byref(handle)), end=" ")
        assert lib.cuCtxSetCurrent(context) == 0
        print(lib.cudnnCreate(ctypes.byref(handle)))
        """, AIDGE_EMULATOR_CUDNN=setting)
    assert result.returncode == 0, result.stderr
    created = CUDNN_STATUS_NOT_INITIALIZED if setting == "0" else 0
    assert result.stdout.split() == [str(v) for v in (0 if setting == "0" else 90100, CUDNN_STATUS_NOT_INITIALIZED,
                                                      CUDNN_STATUS_NOT_INITIALIZED, created)]


def test_cudnn_resnet_stem_is_fast(cudnn: Cudnn) -> None:
    """1x3x224x224 through 64 7x7 filters, stride 2, pad 3: the size of the convolutions the backend's tests run."""
    cuda = cudnn.cuda
    rng = np.random.default_rng(12)
    x = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
    w = rng.standard_normal((64, 3, 7, 7)).astype(np.float32)
    x_desc, w_desc = cudnn.tensor(x.shape), cudnn.filter(w.shape)
    conv = cudnn.convolution((3, 3), (2, 2), (1, 1))
    y_desc = cudnn.tensor((1, 64, 112, 112))
    px, pw, py = cuda.upload(x), cuda.upload(w), cuda.alloc(64 * 112 * 112 * 4)
    start = time.perf_counter()
    assert cudnn.forward(x_desc, px, w_desc, pw, conv, y_desc, py, algo=CUDNN_FWD_ALGO_IMPLICIT_GEMM) == 0
    elapsed = time.perf_counter() - start
    y = cuda.download(py, (1, 64, 112, 112), np.float32)
    cuda.free(px, pw, py)
    assert elapsed < 1.0, f"{elapsed:.2f} s"
    expected = _reference_convolution(x[:, :, :40, :40], w[:5], (3, 3), (2, 2), (1, 1))  # a corner, for correctness
    np.testing.assert_allclose(y[:, :5, :17, :17], expected[:, :, :17, :17], rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------------------------------
# The real NVRTC.


@pytest.mark.skipif(REAL_NVRTC is None, reason="nvidia-cuda-nvrtc (requirements-dev.txt) is not installed in .venv "
                                               "or the interpreter running the tests")
def test_real_nvrtc_rejects_what_only_cuda_forbids(cuda: Cuda, monkeypatch: pytest.MonkeyPatch) -> None:
    # Valid C++ for the host compiler, invalid CUDA: a kernel calling a host function, a __shared__ initializer.
    sources = [
        'int host_only() { return 1; }\nextern "C" __global__ void k(int* y) { y[0] = host_only(); }',
        'extern "C" __global__ void k(float* y) { __shared__ float s[2] = {1.0f, 2.0f}; y[0] = s[threadIdx.x]; }',
    ]
    for source in sources:
        status, log, _ = cuda.compile(source)
        assert status == NVRTC_ERROR_COMPILATION, f"the real NVRTC accepted:\n{source}"
        assert "error" in log and "kernel.cu" in log, log
    monkeypatch.delenv("AIDGE_EMULATOR_NVRTC")
    for source in sources:
        assert cuda.compile(source)[0] == 0, "without the cross-check only the host compiler judges"
