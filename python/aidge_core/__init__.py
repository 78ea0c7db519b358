"""Eclipse Aidge's `aidge_core` names over the Aidge for Swift engine: re-exports and small signature adapters.

A script written for Aidge (load a model, ``compile``, ``SequentialScheduler(model).forward(data=[Tensor(x)])``,
``np.array(out[0])``) runs unchanged.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

import aidge
from aidge import (  # noqa: F401  (re-exports)
    Add, AvgPooling2D, BatchNorm2D, Concat, Conv2D, ConvDepthWise2D, Div, FC, Flatten, GenericOperator,
    GlobalAveragePooling, GraphView, Identity, LeakyReLU, MatMul, MaxPooling2D, Mul, Node, Pad, PaddedConv2D,
    Producer, ReLU, Reshape, Sigmoid, Softmax, Sub, Tanh, Transpose, dtype, parallel, residual, sequential,
)
from aidge import Tensor as _Tensor


class Tensor(_Tensor):
    """Aidge's Tensor: ``Tensor(numpy_array)`` copies the array, a Python scalar gives a 0-d tensor, and a plain
    list is refused (give a NumPy array). ``numpy.asarray(t)`` shares memory."""

    __slots__ = ()

    def __new__(cls, array: Any = None, backend: str = "cpu", *, dims: Sequence[int] | None = None,
                dtype: Any = None) -> _Tensor:
        if isinstance(array, (list, tuple)):
            raise TypeError("Tensor() takes a numpy array or a scalar, not a plain list: use numpy.array(...) first")
        if array is not None and not isinstance(array, (np.ndarray, np.generic, int, float, bool, _Tensor)):
            raise TypeError(f"Tensor() takes a numpy array or a scalar, got {type(array).__name__}")
        return _Tensor.__new__(cls, array, dims=dims, dtype=dtype, backend=backend)

    @staticmethod
    def available_backends() -> list[str]:
        return ["cpu", "cuda"] if aidge.cuda.is_available() else ["cpu"]

    # Aidge's in-place methods.
    def set_backend(self, name: str, device: int = 0, copyFrom: bool = True) -> None:  # noqa: N803
        """Moves the tensor to backend ``name`` in place (its elements are copied unless copyFrom is False)."""
        if device != 0:
            raise NotImplementedError(f"only device 0 is supported, got {name} device {device}")
        moved = self.to(name) if copyFrom else aidge.Tensor(dims=self.dims, dtype=self.dtype_name, backend=name)
        self._assign(moved)

    def set_datatype(self, datatype: Any, copyCast: bool = True) -> None:  # noqa: N803
        """Converts the elements in place (a zero tensor of the new type when copyCast is False)."""
        name = aidge._dtype_name(datatype)
        if copyCast:
            self._assign(self.astype(name))
        else:
            self._assign(aidge._aidge.zeros(self.dims, name))

    def reshape(self, dims: Sequence[int]) -> None:  # type: ignore[override]
        """New dimensions in place (same memory), as Aidge's reshape."""
        self._assign(_Tensor.reshape(self, list(dims)))

    # Aidge indexes with a flat index or with coordinates.
    def __getitem__(self, index: Any) -> Any:
        view = np.asarray(self)
        return view.reshape(-1)[index] if isinstance(index, int) else view[tuple(index)]

    def __setitem__(self, index: Any, value: Any) -> None:
        if self.readonly:
            raise ValueError("this tensor is read-only (it views read-only memory)")
        view = np.asarray(self)
        if isinstance(index, int):
            view.flat[index] = value
        else:
            view[tuple(index)] = value

    def zeros(self) -> None:
        np.asarray(self)[...] = 0

    def ones(self) -> None:
        np.asarray(self)[...] = 1


class SequentialScheduler:
    """Runs a graph in a static order: ``forward(data=[Tensor, ...])`` returns the output tensors."""

    def __init__(self, graph: GraphView) -> None:
        if not isinstance(graph, GraphView):
            raise TypeError(f"SequentialScheduler needs a GraphView, got {type(graph).__name__}")
        self._graph = graph

    def forward(self, forward_dims: bool = True, data: Sequence[Any] = ()) -> list[_Tensor]:
        for i, value in enumerate(data):
            if isinstance(value, np.ndarray):
                raise TypeError(f"data[{i}] is a numpy array: wrap it in aidge_core.Tensor(...) as Aidge requires")
        self._last_data = list(data)
        return self._graph.run(*self._last_data)

    def backward(self) -> None:
        """Back-propagates the last forward from the gradients a loss wrote on its outputs."""
        self._graph.backward()

    def save_scheduling_diagram(self, filename: str) -> None:
        """Writes ``filename.mmd``, a Mermaid Gantt chart of one run on the last forward's data (times in µs)."""
        data = getattr(self, "_last_data", None)
        if data is None:
            raise RuntimeError("save_scheduling_diagram() needs a forward() first")
        lines = ["gantt", "    dateFormat x", "    axisFormat %Q µs"]
        start = 0.0
        for name, op_type, seconds in self._graph.profile(*data):
            end = start + seconds * 1e6
            lines.append(f"    {name} ({op_type}) :{int(start)}, {max(int(end), int(start) + 1)}")
            start = end
        with open(filename + ".mmd", "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")

    def graph_view(self) -> GraphView:
        return self._graph


def producers(graph: GraphView) -> list[_Tensor]:
    """The tensors of the Producer nodes (weights, biases, constants) of a graph, as Aidge returns them: shared
    with the graph, with their gradients (``t.grad``) after ``backward``."""
    return [node.producer_tensor for node in graph.producers()]


# Fillers: initialise a weight tensor in place (fans from the [out, in, kernel...] layout).
def constant_filler(tensor: _Tensor, value: float) -> None:
    aidge._aidge.fill(tensor, "constant", value=value)


def uniform_filler(tensor: _Tensor, min: float = 0.0, max: float = 1.0) -> None:  # noqa: A002
    aidge._aidge.fill(tensor, "uniform", min=min, max=max)


def normal_filler(tensor: _Tensor, mean: float = 0.0, std_dev: float = 1.0) -> None:
    aidge._aidge.fill(tensor, "normal", mean=mean, std_dev=std_dev)


def he_filler(tensor: _Tensor, variance_norm: str = "FAN_IN", mean_norm: float = 0.0, scaling: float = 1.0) -> None:
    aidge._aidge.fill(tensor, "he", variance_norm=_fan(variance_norm), mean=mean_norm, scaling=scaling)


def xavier_uniform_filler(tensor: _Tensor, scaling: float = 1.0, variance_norm: str = "FAN_IN") -> None:
    aidge._aidge.fill(tensor, "xavier_uniform", scaling=scaling, variance_norm=_fan(variance_norm))


def _fan(value: Any) -> str:
    name = getattr(value, "name", value)
    return {"FanIn": "FAN_IN", "FanOut": "FAN_OUT", "Average": "FAN_AVG"}.get(name, name)


# Recipes: each returns how many nodes it changed.
def fuse_batchnorm(graph: GraphView) -> int:
    return graph.apply_recipe("fuse_batchnorm")


def remove_flatten(graph: GraphView) -> int:
    return graph.apply_recipe("remove_flatten")


def remove_dropout(graph: GraphView) -> int:
    return graph.apply_recipe("remove_dropout")


def remove_identity(graph: GraphView) -> int:
    return graph.apply_recipe("remove_identity")


def constant_folding(graph: GraphView) -> int:
    return graph.apply_recipe("constant_folding")


def matmul_to_fc(graph: GraphView) -> int:
    """MatMul by a constant weight (+ Add of a constant bias) into one FC (Gemm), where the input is 2-D."""
    return graph.apply_recipe("matmul_to_fc")
