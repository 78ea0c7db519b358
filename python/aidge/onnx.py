"""ONNX import: a file, bytes, or an ``onnx.ModelProto`` becomes a ``GraphView``."""

from __future__ import annotations

import os
from typing import Any

from . import GraphView, _aidge

__all__ = ["load"]


def load(model: Any, *, base_dir: str | os.PathLike[str] | None = None) -> GraphView:
    """Imports an ONNX model: a path, bytes, or an ``onnx.ModelProto``. External data is read next to the file
    (or in ``base_dir`` for bytes and protos)."""
    if isinstance(model, (str, os.PathLike)):
        return GraphView(_aidge.load_onnx(path=os.fspath(model)))
    if isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
    elif hasattr(model, "SerializeToString"):
        data = model.SerializeToString()
    else:
        raise TypeError(f"load() needs a path, bytes or an onnx.ModelProto, got {type(model).__name__}")
    return GraphView(_aidge.load_onnx(data=data, base_dir=os.fspath(base_dir) if base_dir is not None else "."))
