"""Helpers shared by the Python package tests (a plain module, not a conftest.py, so that running these tests
together with tests/e2e, whose modules import its conftest by name, works).

The models come from ``tests/e2e/models.py`` (plain ``torch.nn``, seeded); ``export_models`` writes them with the
torch.export based ("dynamo") exporter. NumPy, PyTorch, ONNX, ONNX Runtime and ml_dtypes are hard requirements: a
missing one fails the import of this file, it does not skip tests.
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import onnxruntime as ort

import aidge

E2E_DIR = Path(__file__).resolve().parents[1] / "e2e"
if str(E2E_DIR) not in sys.path:
    sys.path.insert(0, str(E2E_DIR))

import models  # noqa: E402  (tests/e2e/models.py)

ATOL = 1e-4
RTOL_OF_MAX = 1e-3

# Every dtype the engine has, as NumPy dtypes (bfloat16 through ml_dtypes, bool as aidge.dtype.boolean).
ALL_DTYPES = [
    np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64), np.dtype(ml_dtypes.bfloat16),
    np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32), np.dtype(np.int64),
    np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.uint32), np.dtype(np.uint64),
    np.dtype(np.bool_),
]


def dtype_id(dtype: np.dtype) -> str:
    return dtype.name


def aidge_dtype(dtype: np.dtype) -> aidge.dtype:
    """The aidge.dtype member of a NumPy dtype."""
    return aidge.dtype.boolean if dtype == np.bool_ else aidge.dtype[dtype.name]


def sample(shape: tuple[int, ...], dtype: np.dtype, start: int = 0) -> np.ndarray:
    """A C-contiguous array of small distinct values (alternating for bool), exact in every dtype."""
    n = int(np.prod(shape, dtype=np.int64))
    values = (np.arange(n) + start) % 100
    if dtype == np.bool_:
        return (values % 2 == 1).reshape(shape)
    return values.astype(np.float32).astype(dtype).reshape(shape)


def other_value(dtype: np.dtype, value: object) -> object:
    """A value of ``dtype`` different from ``value``."""
    if dtype == np.bool_:
        return not bool(value)
    return np.array(value).astype(np.float32).astype(dtype) + dtype.type(7)


def assert_matches_ort(ours: np.ndarray, reference: np.ndarray) -> None:
    """max|ours - ORT| <= 1e-4 + 1e-3 * max|ORT|, with equal shapes and dtypes."""
    assert ours.shape == reference.shape, f"shape {ours.shape} != ORT's {reference.shape}"
    assert ours.dtype == reference.dtype, f"dtype {ours.dtype} != ORT's {reference.dtype}"
    assert np.isfinite(ours).all(), "non-finite outputs"
    error = float(np.abs(ours.astype(np.float64) - reference.astype(np.float64)).max(initial=0.0))
    bound = ATOL + RTOL_OF_MAX * float(np.abs(reference).max(initial=0.0))
    assert error <= bound, f"max|aidge - ort| = {error:.3g} > {bound:.3g}"


class ExportedModel:
    """An exported ONNX model with its ONNX Runtime session and a seeded input of the run batch."""

    def __init__(self, name: str, path: Path, input_shape: tuple[int, ...]) -> None:
        self.name = name
        self.path = path
        self.input_shape = input_shape
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def input(self, seed: int = 0) -> np.ndarray:
        return np.random.default_rng(seed).standard_normal(self.input_shape).astype(np.float32)

    def reference(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.session.get_inputs()[0].name: x})[0]


# Batch of the comparisons: not the export example's (2), so the dynamic batch is exercised; 1 for the convnets
# to keep the suite fast.
RUN_BATCH = {"mlp": 3, "resnet18": 1, "mobilenetv2": 1}


def export_models(folder: Path) -> dict[str, ExportedModel]:
    """MLP, ResNet-18 and MobileNetV2 exported with the dynamo exporter into ``folder``."""
    result = {}
    for name, batch in RUN_BATCH.items():
        model, example = models.MODELS[name]()
        path = models.export(model, example, folder / f"{name}.onnx", dynamo=True)
        result[name] = ExportedModel(name, path, (batch, *example.shape[1:]))
    return result


# A hand-made DLPack capsule (legacy form, no deleter), for memory that no Python library can describe here: device
# addresses, strided device views.
class _Device(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p), ("device", _Device), ("ndim", ctypes.c_int32), ("dtype", _DataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class _Managed(ctypes.Structure):
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


def dlpack_capsule(address: int, shape: tuple[int, ...], strides: tuple[int, ...] | None, *,
                   device: tuple[int, int], keep: list[object]) -> object:
    """A legacy DLPack capsule for a float32 tensor at ``address`` on ``device`` (DLPack type, id). ``keep`` holds
    the structures the capsule points at; it must outlive the tensor made from it."""
    dims = (ctypes.c_int64 * len(shape))(*shape)
    steps = (ctypes.c_int64 * len(strides))(*strides) if strides is not None else None
    managed = _Managed(
        _DLTensor(ctypes.c_void_p(address), _Device(*device), len(shape), _DataType(2, 32, 1), dims, steps, 0),
        None, None)
    keep += [dims, steps, managed]
    new = ctypes.pythonapi.PyCapsule_New
    new.restype = ctypes.py_object
    new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    return new(ctypes.addressof(managed), b"dltensor", None)
