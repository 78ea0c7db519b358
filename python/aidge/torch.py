"""PyTorch interop: ``torch.nn.Module`` -> engine graph through an in-memory ONNX export.

``to_graph(module, example_inputs)`` gives a ``GraphView`` whose Producers are named after the module's
``state_dict`` entries, with nothing folded: BatchNormalization stays a node (exported in training form), so the
graph can be trained and its parameters matched with the module's by name.
"""

from __future__ import annotations

import io
import warnings
from typing import Any, Sequence

import torch as _torch

from . import GraphView
from . import onnx as _onnx

__all__ = ["to_graph"]


def _as_tuple(example_inputs: Any) -> tuple[Any, ...]:
    if isinstance(example_inputs, _torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, (tuple, list)) and all(isinstance(x, _torch.Tensor) for x in example_inputs):
        return tuple(example_inputs)
    raise TypeError("example_inputs must be a torch.Tensor or a tuple of them")


def to_graph(module: _torch.nn.Module, example_inputs: Any, *, opset: int = 17,
             dynamic_batch: bool = True, input_names: Sequence[str] | None = None) -> GraphView:
    """Exports ``module`` to ONNX in memory (TorchScript exporter, training form, no constant folding: every
    parameter and buffer stays its own initializer, named as in ``state_dict``) and imports it. The module's
    mode (``train``/``eval``) is left as it was; the graph starts in evaluation mode."""
    if not isinstance(module, _torch.nn.Module):
        raise TypeError(f"to_graph needs a torch.nn.Module, got {type(module).__name__}")
    inputs = _as_tuple(example_inputs)
    names = list(input_names) if input_names is not None else [f"input_{i}" for i in range(len(inputs))]
    dynamic_axes = {name: {0: "batch"} for name in names} if dynamic_batch else None
    buffer = io.BytesIO()
    was_training = module.training
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _torch.onnx.export(
                module, inputs, buffer, dynamo=False, opset_version=opset, input_names=names,
                dynamic_axes=dynamic_axes, training=_torch.onnx.TrainingMode.TRAINING, do_constant_folding=False,
            )
    finally:
        module.train(was_training)
    return _onnx.load(buffer.getvalue())
