"""ONNX import and export: a file, bytes, or an ``onnx.ModelProto`` becomes a ``GraphView``, and back."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from . import GraphView, _aidge

__all__ = ["export", "load"]


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


def export(graph: GraphView, path: str | os.PathLike[str] | None = None, opset: int | None = None, *,
           external_data: bool = False, size_threshold: int = 1024,
           input_shapes: Sequence[Sequence[int | str]] | None = None,
           output_shapes: Sequence[Sequence[int | str]] | None = None) -> bytes | None:
    """Writes ``graph`` as an ONNX model at ``path``, or returns the serialized model when ``path`` is None.

    ``opset`` defaults to the graph's imported one when every node can be written at it, else the engine's latest
    forms (opset 21, or newer where an operator needs it). With ``external_data``, tensors of ``size_threshold``
    bytes or more go to ``<file name>.data`` next to the model. ``input_shapes``/``output_shapes`` (one list of
    dimensions per input/output, ints or names of symbolic dimensions) replace the declared and inferred shapes."""
    return _aidge.export_onnx(
        getattr(graph, "_graph", graph), path=os.fspath(path) if path is not None else None, opset=opset, external_data=external_data,
        size_threshold=size_threshold, input_shapes=input_shapes, output_shapes=output_shapes)
