"""Aidge's ``aidge_interop_torch`` names over ``aidge.torch``.

Unlike Eclipse Aidge's wrapper, backward does not step a hidden SGD: gradients land in the module's parameters
(``.grad``) and the update is the user's optimizer's, like any torch module.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch

import aidge
import aidge.torch as _interop

__all__ = ["wrap", "AidgeModule", "torch_tensor_to_aidge", "aidge_tensor_to_torch"]


def torch_tensor_to_aidge(torch_tensor: torch.Tensor) -> aidge.Tensor:
    """The engine's view of a torch tensor (no copy, any dtype both have, strides kept)."""
    return _interop.from_torch(torch_tensor)


def aidge_tensor_to_torch(aidge_tensor: aidge.Tensor) -> torch.Tensor:
    """A torch tensor over an engine tensor's memory (no copy)."""
    return _interop.to_torch(aidge_tensor)


def _example_inputs(input_size: Any) -> tuple[torch.Tensor, ...]:
    """Random example inputs from one size (a sequence of ints) or several."""
    sizes = input_size if input_size and isinstance(input_size[0], (list, tuple)) else [input_size]
    return tuple(torch.randn(*[int(d) for d in size]) for size in sizes)


def wrap(torch_model: torch.nn.Module, input_size: Sequence[Any], opset_version: int = 18,
         save_onnx_model: bool = False, in_names: Sequence[str] | None = None, out_names: Sequence[str] | None = None,
         verbose: bool = False) -> torch.nn.Module:
    """Aidge's ``wrap``: the module run and trained by the engine inside PyTorch, on its own parameters. The ONNX
    model is made in memory; ``save_onnx_model=True`` also writes it to ``<class name>.onnx``. ``out_names`` is
    accepted for compatibility (outputs keep the module's order)."""
    inputs = _example_inputs(input_size)
    data, template = _interop._export(torch_model, inputs, opset_version, None, in_names)
    if save_onnx_model:
        path = f"{type(torch_model).__name__}.onnx"
        with open(path, "wb") as f:
            f.write(data)
        if verbose:
            print(f"aidge_interop_torch: wrote {os.path.abspath(path)}")
    wrapped = _interop.EngineModule(torch_model, data, len(inputs), output_template=template)
    if verbose:
        print(wrapped._graph)
    return wrapped


class AidgeModule(torch.nn.Module):
    """Aidge's ``AidgeModule``: an engine graph as a torch module. Its parameters are the graph's trainable
    Producers, seen by torch without a copy, so any torch optimizer trains them."""

    def __init__(self, graph_view: aidge.GraphView, batch_size: int | None = None, backend: str = "cpu") -> None:
        super().__init__()
        if backend not in ("cpu", "cuda"):
            raise ValueError(f"unknown backend '{backend}' (cpu and cuda exist)")
        self._graph = graph_view
        self.batch_size = batch_size
        self._input_count = len(graph_view.inputs)
        self._parameter_nodes = graph_view.parameters()
        # On cuda, the parameters move to the GPU once; torch and the graph then share that memory.
        graph_view.set_backend(backend)
        for i, node in enumerate(self._parameter_nodes):
            if backend == "cuda":
                node.set_producer_tensor(node.producer_tensor.to("cuda"))
            tensor = aidge_tensor_to_torch(node.producer_tensor)
            self.register_parameter(f"p{i}_{node.name().replace('.', '_')}", torch.nn.Parameter(tensor))

    def forward(self, *inputs: torch.Tensor) -> Any:
        if len(inputs) != self._input_count:
            raise TypeError(f"the graph takes {self._input_count} inputs, got {len(inputs)}")
        if self._graph.backend == "cuda":
            with aidge.cuda.stream(torch.cuda.current_stream()):
                outputs = _interop._run(self, inputs, list(self.parameters()))
        else:
            outputs = _interop._run(self, inputs, list(self.parameters()))
        return outputs[0] if len(outputs) == 1 else outputs
