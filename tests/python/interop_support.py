"""Helpers shared by the Python package tests (a plain module, not a conftest.py, so that running these tests
together with tests/e2e, whose modules import its conftest by name, works).

The models come from ``tests/e2e/models.py`` (plain ``torch.nn``, seeded); ``export_models`` writes them with the
torch.export based ("dynamo") exporter. NumPy, PyTorch, ONNX, ONNX Runtime and ml_dtypes are hard requirements: a
missing one fails the import of this file, it does not skip tests.
"""

from __future__ import annotations

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
