"""Eclipse Aidge's `aidge_onnx` names over the Aidge for Swift engine."""

from __future__ import annotations

import os
from typing import Any

import aidge
from aidge import GraphView

from . import node_import  # noqa: F401

__all__ = ["load_onnx", "supported_operators"]


def load_onnx(filename: Any, verbose: bool = False) -> GraphView:
    """Imports an ONNX model (a path, bytes, or an ``onnx.ModelProto``). An operator without a converter loads as a
    generic operator; running it raises NotImplementedError naming it."""
    if isinstance(filename, (str, os.PathLike, bytes, bytearray)) or hasattr(filename, "SerializeToString"):
        return aidge.onnx.load(filename)
    raise TypeError(f"load_onnx() needs a path, bytes or an onnx.ModelProto, got {type(filename).__name__}")


def supported_operators() -> list[str]:
    """The ONNX operator types the engine imports and runs."""
    return aidge.supported_operators()
