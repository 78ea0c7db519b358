"""PyTorch interop: tensors shared without copies, and ``torch.nn.Module`` -> engine graph through an in-memory ONNX
export.

``from_torch(t)`` / ``to_torch(tensor)`` share memory (DLPack) for every dtype both have, strided views included.
``to_graph(module, example_inputs)`` gives a ``GraphView`` whose Producers are named after the module's
``state_dict`` entries, with nothing folded: BatchNormalization stays a node (exported in training form), so the
graph can be trained and its parameters matched with the module's by name.
"""

from __future__ import annotations

import io
import warnings
from typing import Any, Sequence

import torch as _torch

from . import GraphView, Tensor, from_dlpack
from . import onnx as _onnx

__all__ = ["from_torch", "to_torch", "to_graph"]


def from_torch(tensor: _torch.Tensor) -> Tensor:
    """The engine's view of a torch tensor's memory (no copy; strides kept). A CUDA tensor keeps its device: running
    it needs the CUDA backend, and it is never copied to the host behind your back."""
    if not isinstance(tensor, _torch.Tensor):
        raise TypeError(f"from_torch needs a torch.Tensor, got {type(tensor).__name__}")
    if tensor.requires_grad:
        tensor = tensor.detach()  # same memory; autograd stays with torch
    return from_dlpack(tensor)


def to_torch(tensor: Tensor) -> _torch.Tensor:
    """A torch tensor over an engine tensor's memory (no copy; strides kept)."""
    return _torch.from_dlpack(tensor)


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
