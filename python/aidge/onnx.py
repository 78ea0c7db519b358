"""ONNX import and export: a file, bytes, or an ``onnx.ModelProto`` becomes a ``GraphView``, and back; which ONNX
operators are supported."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, NamedTuple

from . import GraphView, _aidge, dtype

__all__ = ["export", "load", "supported_operators", "SupportedOperator"]


def load(model: Any, *, base_dir: str | os.PathLike[str] | None = None) -> GraphView:
    """Imports an ONNX model: a path, bytes, or an ``onnx.ModelProto``. External data is read next to the file
    (or in ``base_dir`` for bytes and protos). A malformed model (an opset newer than supported, an attribute of
    the wrong type, a missing required attribute or input, a cycle, a tensor whose data does not match its shape)
    raises ``ValueError`` naming the node and the problem."""
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


class SupportedOperator(NamedTuple):
    """An ONNX operator that the importer reads and the CPU backend runs."""

    type: str
    """The ONNX op type."""
    domain: str
    """The ONNX domain ("" for the default one)."""
    since_version: int
    """The first opset version whose form the importer reads."""
    last_version: int
    """The last opset it is read in."""
    dtypes: list[dtype]
    """The dtypes of its main input that the CPU backend takes."""
    dtypes_verified: bool
    """True when each dtype was checked by building and running a kernel; False when they are the ONNX type
    constraint's, unchecked."""


def supported_operators() -> list[SupportedOperator]:
    """The ONNX operators the engine imports and runs on the CPU, with the opsets they are read in and the dtypes
    their kernels take (the data of ``aidge ops``): the default domain's sorted by type, then those of ai.onnx.ml,
    ai.onnx.preview and ai.onnx.preview.training (their versions are those of their own domain)."""
    return [
        SupportedOperator(t, d, since, last, [dtype(name) for name in dtypes], verified)
        for t, d, since, last, dtypes, verified in _aidge.supported_onnx_operators()
    ]
