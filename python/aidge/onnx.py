"""ONNX import: a file, bytes, or an ``onnx.ModelProto`` becomes a ``GraphView``; which ONNX operators are supported."""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from . import GraphView, _aidge, dtype

__all__ = ["load", "supported_operators", "SupportedOperator"]


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
    """The ONNX operators the engine imports and runs on the CPU, sorted by type, with the opsets they are read
    in and the dtypes their kernels take (the data of ``aidge ops``)."""
    return [
        SupportedOperator(t, d, since, last, [dtype(name) for name in dtypes], verified)
        for t, d, since, last, dtypes, verified in _aidge.supported_onnx_operators()
    ]

