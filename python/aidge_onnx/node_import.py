"""Aidge's `aidge_onnx.node_import` names: which ONNX operators the engine imports."""

from __future__ import annotations

import aidge.onnx


def supported_operators() -> list[str]:
    """The ONNX operator types the engine imports and runs, sorted (Aidge returns the op types it has a converter
    for). ``aidge.onnx.supported_operators()`` gives their opset ranges and dtypes."""
    return [op.type if not op.domain else f"{op.domain}.{op.type}" for op in aidge.onnx.supported_operators()]
