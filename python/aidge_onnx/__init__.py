"""Eclipse Aidge's `aidge_onnx` names over the Aidge for Swift engine."""

from __future__ import annotations

import os
from typing import Any, Callable

import aidge
from aidge import GraphView

from . import node_import  # noqa: F401

__all__ = ["export_onnx", "load_onnx", "register_import", "supported_operators"]

# Converters registered by users: ONNX op type -> fn(onnx_node, input_nodes, opset) -> Node | None.
_CONVERTERS: dict[str, Callable[..., Any]] = {}


def register_import(key: str, fn: Callable[..., Any]) -> None:
    """Adds a converter for ONNX operators of type ``key``: ``fn(onnx_node, input_nodes, opset)`` returns the node
    to use (``input_nodes``: (parent node or None, output index) per input), or None to keep the engine's own."""
    _CONVERTERS[key] = fn


def load_onnx(filename: Any, verbose: bool = False) -> GraphView:
    """Imports an ONNX model (a path, bytes, or an ``onnx.ModelProto``). An operator without a converter loads as a
    generic operator; running it raises NotImplementedError naming it."""
    if not (isinstance(filename, (str, os.PathLike, bytes, bytearray)) or hasattr(filename, "SerializeToString")):
        raise TypeError(f"load_onnx() needs a path, bytes or an onnx.ModelProto, got {type(filename).__name__}")
    graph = aidge.onnx.load(filename)
    if _CONVERTERS:
        _apply_converters(graph, filename)
    return graph


def export_onnx(graph_view: GraphView, path_to_save: Any, inputs_dims: Any = None, outputs_dims: Any = None,
                opset: int | None = None) -> None:
    """Writes ``graph_view`` as an ONNX model at ``path_to_save`` (``.onnx`` is appended when missing, as Aidge does).
    ``inputs_dims``/``outputs_dims``: one list of dimensions per graph input/output, written as their shapes."""
    path = os.fspath(path_to_save)
    if not path.endswith(".onnx"):
        path += ".onnx"
    aidge.onnx.export(graph_view, path, opset=opset, input_shapes=inputs_dims, output_shapes=outputs_dims)


def _apply_converters(graph: GraphView, source: Any) -> None:
    """Puts the nodes that registered converters make in place of the imported ones (matched by output name)."""
    import onnx

    if isinstance(source, (str, os.PathLike)):
        model = onnx.load(os.fspath(source), load_external_data=False)
    elif isinstance(source, (bytes, bytearray)):
        model = onnx.load_from_string(bytes(source))
    else:
        model = source
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    by_output = {n.output_names[0]: n for n in graph.get_nodes() if n.output_names}
    for onnx_node in model.graph.node:
        convert = _CONVERTERS.get(onnx_node.op_type)
        imported = by_output.get(onnx_node.output[0]) if convert and onnx_node.output else None
        if imported is None:
            continue
        node = convert(onnx_node, imported.inputs(), opset)
        if node is not None:
            graph._graph.replace_node(imported, node)


def supported_operators() -> list[str]:
    """The ONNX operator types the engine imports and runs (see ``node_import.supported_operators``)."""
    return node_import.supported_operators()
