"""Aidge's `aidge_onnx.node_import` names: which ONNX operators the engine imports."""

from __future__ import annotations

import aidge


def supported_operators() -> list[str]:
    """The ONNX operator types the engine imports and runs."""
    return aidge.supported_operators()
