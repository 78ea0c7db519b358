"""Aidge for Swift: a deep-learning engine written in Swift, driven from Python.

Tensors share memory with NumPy (buffer protocol) and with PyTorch, JAX and TensorFlow (DLPack) without copies;
ONNX models load into graphs that run on the engine's CPU kernels with the GIL released.
"""

from __future__ import annotations

import enum
import os
from typing import Any, Iterable, Sequence

import numpy as np

from . import _aidge
from ._aidge import (
    AidgeError,
    FileError,
    InvalidValueError,
    NotSupportedError,
    ProcessorError,
    UnsupportedTypeError,
)

__all__ = [
    "AidgeError", "FileError", "InvalidValueError", "NotSupportedError", "ProcessorError", "UnsupportedTypeError",
    "dtype", "Tensor", "from_numpy", "from_dlpack", "GraphView", "Scheduler", "onnx",
    "set_num_threads", "get_num_threads", "supported_operators",
]


class dtype(enum.Enum):
    """Element types (Aidge's names; ``boolean`` is NumPy's ``bool``)."""

    float64 = "float64"
    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"
    int8 = "int8"
    int16 = "int16"
    int32 = "int32"
    int64 = "int64"
    uint8 = "uint8"
    uint16 = "uint16"
    uint32 = "uint32"
    uint64 = "uint64"
    boolean = "bool"

    def __repr__(self) -> str:
        return f"dtype.{self.name}"


def _dtype_name(value: Any) -> str:
    """The engine's name of a dtype given as an ``aidge.dtype``, a string, or anything ``numpy.dtype`` takes."""
    if isinstance(value, dtype):
        return value.value
    if isinstance(value, str):
        return "bool" if value == "boolean" else value
    name = getattr(value, "name", None)
    if isinstance(name, str) and name in {d.name for d in dtype}:
        return dtype[name].value
    return np.dtype(value).name


def _share(array: np.ndarray, copy: bool) -> "Tensor":
    """A tensor over a NumPy array's memory (or a copy of it)."""
    if array.dtype.hasobject:
        raise TypeError("object arrays cannot become tensors: give a numeric array")
    if array.dtype.name == "bfloat16":  # ml_dtypes: no buffer-protocol format, so view the bits
        return _aidge.from_buffer(array.view(np.uint16), copy=copy, dtype="bfloat16")
    return _aidge.from_buffer(array, copy=copy)


class Tensor(_aidge.TensorBase):
    """An n-dimensional array the engine computes on.

    ``Tensor(array)`` copies (as Aidge does); ``aidge.from_numpy(array)`` shares memory. ``numpy.asarray(t)`` and
    ``memoryview(t)`` see the tensor's memory without a copy; ``t.__dlpack__()`` shares it with PyTorch and others.
    """

    __slots__ = ("__weakref__",)

    def __new__(cls, data: Any = None, *, dims: Sequence[int] | None = None, dtype: Any = None,
                backend: str = "cpu") -> "Tensor":
        if backend != "cpu":
            raise NotImplementedError(f"backend '{backend}' is not available (cpu is)")
        if data is None:
            if dims is None:
                raise ValueError("Tensor() needs data or dims")
            return _aidge.zeros(list(dims), _dtype_name(dtype or "float32"))
        if isinstance(data, _aidge.TensorBase):
            tensor = data.clone()
        else:
            tensor = _share(np.asarray(data), copy=True)
        if dtype is not None and tensor.dtype_name != _dtype_name(dtype):
            tensor = tensor.astype(_dtype_name(dtype))
        return tensor

    # Shape and type.
    @property
    def dims(self) -> list[int]:
        """Dimensions, as a list (Aidge's name)."""
        return list(self.shape)

    @property
    def dtype(self) -> "dtype":
        """Element type."""
        return _DTYPES[self.dtype_name]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def backend(self) -> str:
        return "cpu"

    @property
    def device(self) -> int:
        return 0

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    # NumPy views.
    def numpy(self) -> np.ndarray:
        """A NumPy array sharing this tensor's memory (bfloat16: an ``ml_dtypes.bfloat16`` view)."""
        if self.dtype_name == "bfloat16":
            try:
                import ml_dtypes
            except ImportError as error:
                raise TypeError("bfloat16 tensors need ml_dtypes for a NumPy view (pip install ml_dtypes)") from error
            return np.asarray(self._bits()).view(ml_dtypes.bfloat16)
        return np.asarray(self)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        array = self.numpy()
        if dtype is not None and np.dtype(dtype) != array.dtype:
            return array.astype(dtype)
        return array.copy() if copy else array

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def __getitem__(self, index: Any) -> Any:
        return self.numpy()[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        if self.readonly:
            raise ValueError("this tensor is read-only (it views read-only memory)")
        self.numpy()[index] = value


_DTYPES = {d.value: d for d in dtype}
_aidge.set_tensor_class(Tensor)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing ``array``'s memory: any strides (kept as a strided view), read-only if the array is.
    The array stays alive as long as the tensor. Byte-swapped and object arrays are refused."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy() needs a numpy.ndarray, got {type(array).__name__}")
    return _share(array, copy=False)


def from_dlpack(obj: Any) -> Tensor:
    """A tensor sharing the memory of a DLPack producer (a torch tensor, a NumPy array, ...) or capsule."""
    return _aidge.from_dlpack(obj)


def from_data_ptr(dims: Sequence[int], data_ptr: int, dtype: Any = "float32", backend: str = "cpu",
                  device: int = 0, *, strides: Sequence[int] | None = None, owner: Any = None,
                  readonly: bool = False) -> Tensor:
    """A tensor over external memory at ``data_ptr`` (no copy). ``owner`` is kept alive as long as the tensor."""
    if backend != "cpu" or device != 0:
        raise NotImplementedError(f"backend '{backend}' device {device} is not available (cpu 0 is)")
    return _aidge.from_data_ptr(int(data_ptr), list(dims), _dtype_name(dtype),
                                None if strides is None else list(strides), owner, readonly)


Tensor.from_data_ptr = staticmethod(from_data_ptr)  # Aidge's spelling
Tensor.from_numpy = staticmethod(from_numpy)
Tensor.from_dlpack = staticmethod(from_dlpack)


def _as_tensor(value: Any, position: int) -> Tensor:
    """A run input as a tensor, without copying what can be shared."""
    if isinstance(value, _aidge.TensorBase):
        return value
    if isinstance(value, np.ndarray):
        return _share(value, copy=False)
    if hasattr(value, "__dlpack__"):
        return _aidge.from_dlpack(value)
    try:
        array = np.asarray(value)
    except Exception as error:  # noqa: BLE001 - any conversion failure is the caller's input
        raise TypeError(f"input {position}: cannot make a tensor from {type(value).__name__}") from error
    return _share(array, copy=False)


class GraphView:
    """A computational graph with ordered inputs and outputs, and the scheduler that runs it.

    Call it with NumPy arrays, tensors or DLPack objects (one per input, in order). Outputs are new tensors each
    run. Two threads may call the same graph: runs take turns on its working memory.
    """

    def __init__(self, graph: Any) -> None:
        if not isinstance(graph, _aidge.Graph):
            raise TypeError("GraphView wraps a graph made by aidge.onnx.load")
        self._graph = graph

    @property
    def name(self) -> str:
        return self._graph.name

    @property
    def inputs(self) -> list[tuple[str, str, list[int | str] | None]]:
        """(name, dtype, dims) per input; a symbolic dimension is its name."""
        return self._graph.inputs

    @property
    def outputs(self) -> list[str]:
        return self._graph.outputs

    def get_nodes(self) -> list[tuple[str, str]]:
        """(name, type) of every node, in topological order."""
        return self._graph.nodes

    def run(self, *inputs: Any) -> list[Tensor]:
        """Runs the graph; returns one tensor per output."""
        if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)):
            inputs = tuple(inputs[0])
        return self._graph.run([_as_tensor(x, i) for i, x in enumerate(inputs)])

    def __call__(self, *inputs: Any) -> Tensor | tuple[Tensor, ...]:
        """Runs the graph; one output comes back as a tensor, several as a tuple."""
        outputs = self.run(*inputs)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def optimize(self, **recipes: bool) -> dict[str, int]:
        """Inference recipes (remove_identity, remove_dropout, constant_folding, fuse_batchnorm,
        fuse_activation), each on unless set False. Returns how many nodes each changed."""
        return self._graph.optimize(**recipes)

    def mermaid(self) -> str:
        return self._graph.mermaid()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes ``path.mmd``, a Mermaid flowchart (as Aidge does)."""
        with open(os.fspath(path) + ".mmd", "w", encoding="utf-8") as f:
            f.write(self.mermaid())

    def __repr__(self) -> str:
        return f"GraphView({self.name!r}, {len(self.get_nodes())} nodes, inputs={self.inputs}, outputs={self.outputs})"


class Scheduler:
    """Runs a graph (Aidge's SequentialScheduler): ``forward(data=[...])`` returns the output tensors."""

    def __init__(self, graph: GraphView) -> None:
        if not isinstance(graph, GraphView):
            raise TypeError(f"Scheduler needs a GraphView, got {type(graph).__name__}")
        self.graph = graph

    def forward(self, forward_dims: bool = True, data: Iterable[Any] = ()) -> list[Tensor]:
        return self.graph.run(*list(data))


def set_num_threads(n: int) -> None:
    """Threads the kernels use (0: every core)."""
    _aidge.set_num_threads(n)


def get_num_threads() -> int:
    return _aidge.get_num_threads()


def supported_operators() -> list[str]:
    """The ONNX operator types the CPU backend runs."""
    return _aidge.supported_operators()


from . import onnx  # noqa: E402  (needs GraphView)
