"""Aidge for Swift: a deep-learning engine written in Swift, driven from Python.

Tensors share memory with NumPy (buffer protocol) and with PyTorch, JAX and TensorFlow (DLPack) without copies;
ONNX models load into graphs that run on the engine's CPU kernels with the GIL released.
"""

from __future__ import annotations

import contextlib
import enum
import os
import weakref
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from . import _aidge
from ._aidge import (
    AidgeError,
    FileError,
    InvalidValueError,
    NotSupportedError,
    ProcessorError,
    DeviceError,
    UnsupportedTypeError,
)

__all__ = [
    "AidgeError", "DeviceError", "FileError", "InvalidValueError", "NotSupportedError", "ProcessorError", "UnsupportedTypeError",
    "dtype", "Tensor", "from_numpy", "from_dlpack", "GraphView", "Scheduler", "onnx", "learning",
    "set_num_threads", "get_num_threads", "share_openmp_threads", "supported_operators", "apply", "gradients", "Node", "sequential", "parallel", "residual",
    "Conv2D", "PaddedConv2D", "ConvDepthWise2D", "FC", "BatchNorm2D", "ReLU", "LeakyReLU", "Sigmoid", "Tanh",
    "Softmax", "Identity", "Add", "Sub", "Mul", "Div", "MatMul", "Flatten", "Transpose", "GlobalAveragePooling",
    "Reshape", "Concat", "MaxPooling2D", "AvgPooling2D", "Pad", "Producer", "GenericOperator",
]

Node = _aidge.Node


class OperatorView:
    """A node's operator as Aidge shows it (``node.get_operator()``): type, attributes, and the tensors of the
    Producer nodes feeding it."""

    def __init__(self, node: Node) -> None:
        self._node = node

    def type(self) -> str:
        return self._node.type()

    @property
    def attr(self) -> dict[str, Any]:
        return self._node.attributes()

    def nb_inputs(self) -> int:
        return len(self._node.input_names)

    def nb_outputs(self) -> int:
        return self._node.output_count

    def get_input(self, index: int) -> "Tensor | None":
        """The tensor of the Producer on input ``index`` (a weight, a bias), or None."""
        parent = self._node.parents[index]
        return None if parent is None else parent.producer_tensor

    def get_output(self, index: int = 0) -> "Tensor | None":
        """A Producer's tensor (other outputs exist only while a graph runs)."""
        return self._node.producer_tensor if index == 0 else None

    def set_output(self, index: int, tensor: "Tensor") -> None:
        if index != 0:
            raise IndexError("a Producer has one output")
        self._node.set_producer_tensor(tensor)


# Aidge's method names on nodes.
Node.get_operator = lambda self: OperatorView(self)
Node.get_parents = lambda self: self.parents
Node.get_children = lambda self: self.children
Node.get_nb_inputs = lambda self: len(self.input_names)
Node.get_nb_outputs = lambda self: self.output_count


def _node_outputs(self: Node) -> list[list[tuple[Node, int]]]:
    """Per output, the (child, input index) pairs that read it (Aidge's ``Node.outputs()``)."""
    readers: list[list[tuple[Node, int]]] = [[] for _ in range(self.output_count)]
    for child in self.children:
        for index, (parent, output) in enumerate(child.inputs()):
            if parent == self and 0 <= output < len(readers):
                readers[output].append((child, index))
    return readers


Node.outputs = _node_outputs


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
    float8_e4m3fn = "float8_e4m3fn"
    float8_e4m3fnuz = "float8_e4m3fnuz"
    float8_e5m2 = "float8_e5m2"
    float8_e5m2fnuz = "float8_e5m2fnuz"
    float4_e2m1fn = "float4_e2m1fn"
    int4 = "int4"
    uint4 = "uint4"
    int2 = "int2"
    uint2 = "uint2"
    float8_e8m0fnu = "float8_e8m0fnu"
    string = "string"

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


# The dtypes NumPy holds through ml_dtypes (one element per byte or two, no buffer-protocol format).
_ML_DTYPES = {"bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float4_e2m1fn",
              "float8_e8m0fnu",
              "int4", "uint4", "int2", "uint2"}


def _is_text(array: np.ndarray) -> bool:
    return array.dtype.kind in "US" or (
        array.dtype.hasobject and all(isinstance(v, (str, bytes)) for v in array.flat))


def _text_tensor(array: np.ndarray) -> "Tensor":
    """A string tensor holding a copy of NumPy text (bytes must be UTF-8) in the engine's interned strings."""
    strings = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in array.flat]
    return _aidge.string_tensor(strings, list(array.shape))


def _share(array: np.ndarray, copy: bool) -> "Tensor":
    """A tensor over a NumPy array's memory (or a copy of it)."""
    if _is_text(array):
        if not copy:
            raise TypeError("text arrays cannot share memory with a tensor: aidge.Tensor(array) copies them")
        return _text_tensor(array)
    if array.dtype.hasobject:
        raise TypeError("object arrays cannot become tensors: give a numeric array or strings")
    if array.dtype.name in _ML_DTYPES:  # ml_dtypes: no buffer-protocol format, so view the bits
        bits = np.uint16 if array.dtype.itemsize == 2 else np.uint8
        return _aidge.from_buffer(array.view(bits), copy=copy, dtype=array.dtype.name)
    return _aidge.from_buffer(array, copy=copy)


class Tensor(_aidge.TensorBase):
    """An n-dimensional array the engine computes on.

    ``Tensor(array)`` copies (as Aidge does); ``aidge.from_numpy(array)`` shares memory. ``numpy.asarray(t)`` and
    ``memoryview(t)`` see the tensor's memory without a copy; ``t.__dlpack__()`` shares it with PyTorch and others.
    """

    __slots__ = ("__weakref__",)

    def __new__(cls, data: Any = None, *, dims: Sequence[int] | None = None, dtype: Any = None,
                backend: str = "cpu") -> "Tensor":
        if backend not in ("cpu", "cuda"):
            raise ValueError(f"unknown backend '{backend}' (cpu and cuda exist)")
        if backend == "cuda":
            return Tensor(data, dims=dims, dtype=dtype).to("cuda")
        if data is None:
            if dims is None:
                raise ValueError("Tensor() needs data or dims")
            tensor = _aidge.zeros(list(dims), _dtype_name(dtype or "float32"))
            dtype = None
        elif isinstance(data, _aidge.TensorBase):
            tensor = data.clone()
        else:
            tensor = _share(np.asarray(data), copy=True)
        if dtype is not None and tensor.dtype_name != _dtype_name(dtype):
            tensor = tensor.astype(_dtype_name(dtype))
        if cls is not Tensor:  # a subclass (aidge_core.Tensor): the same tensor, in an object of that class
            obj = _aidge.TensorBase.__new__(cls)
            obj._assign(tensor)
            return obj
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
        """'cpu' or 'cuda': where the elements are."""
        return self.device_name.split(":")[0]

    @property
    def device(self) -> int:
        """The device ordinal (0 on the host)."""
        name = self.device_name
        return int(name.split(":")[1]) if ":" in name else 0

    def to(self, device: str) -> "Tensor":
        """This tensor on ``device`` ('cpu', 'cuda', 'cuda:0'): itself when it is there, else a contiguous copy."""
        return self.to_device(device)

    def cpu(self) -> "Tensor":
        """This tensor on the host (a copy when it is on a GPU)."""
        return self.to_device("cpu")

    def cuda(self) -> "Tensor":
        """This tensor on CUDA device 0 (a copy when it is on the host)."""
        return self.to_device("cuda")

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    # NumPy views.
    def numpy(self) -> np.ndarray:
        """A NumPy array sharing this tensor's memory (bfloat16, float8, int4...: an ``ml_dtypes`` view); string
        tensors give a new object array of ``str``, as ONNX's tools hold strings."""
        if self.dtype_name == "string":
            values = self._strings()
            strings = np.empty(len(values), dtype=object)
            strings[:] = values
            return strings.reshape(self.shape)
        if self.dtype_name in _ML_DTYPES:
            try:
                import ml_dtypes
            except ImportError as error:
                raise TypeError(f"{self.dtype_name} tensors need ml_dtypes for a NumPy view (pip install ml_dtypes)") from error
            return np.asarray(self._bits()).view(getattr(ml_dtypes, self.dtype_name))
        # Through a memoryview, so that a buffer that cannot be exported (more than 64 dimensions) raises its own
        # error: np.asarray(self) would fall back on __array__, which calls this again, until RecursionError.
        return np.asarray(memoryview(self))

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        array = self.numpy()
        if dtype is not None and np.dtype(dtype) != array.dtype:
            if copy is False:
                raise ValueError(f"a {self.dtype_name} tensor cannot be seen as {np.dtype(dtype)} without a copy")
            return array.astype(dtype)
        return array.copy() if copy else array

    def has_grad(self) -> bool:
        """Whether a gradient was written (by ``backward`` or a loss) since the last reset."""
        return self.grad is not None

    # Arithmetic, computed by the engine (NumPy broadcasting; both sides must have the same dtype).
    def _operand(self, other: Any) -> "Tensor":
        if isinstance(other, _aidge.TensorBase):
            return other
        if isinstance(other, (bool, int, float)):
            return Tensor(np.asarray(other)).astype(self.dtype_name)
        return _as_tensor(other, 1)

    def _binary(self, op: str, other: Any, reflected: bool = False) -> "Tensor":
        b = self._operand(other)
        return _aidge.apply(op, [b, self] if reflected else [self, b])[0]

    def __add__(self, other: Any) -> "Tensor":
        return self._binary("Add", other)

    def __radd__(self, other: Any) -> "Tensor":
        return self._binary("Add", other, reflected=True)

    def __sub__(self, other: Any) -> "Tensor":
        return self._binary("Sub", other)

    def __rsub__(self, other: Any) -> "Tensor":
        return self._binary("Sub", other, reflected=True)

    def __mul__(self, other: Any) -> "Tensor":
        return self._binary("Mul", other)

    def __rmul__(self, other: Any) -> "Tensor":
        return self._binary("Mul", other, reflected=True)

    def __truediv__(self, other: Any) -> "Tensor":
        return self._binary("Div", other)

    def __rtruediv__(self, other: Any) -> "Tensor":
        return self._binary("Div", other, reflected=True)

    def __pow__(self, other: Any) -> "Tensor":
        return self._binary("Pow", other)

    def __matmul__(self, other: Any) -> "Tensor":
        return self._binary("MatMul", other)

    def __neg__(self) -> "Tensor":
        return _aidge.apply("Neg", [self])[0]

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


def apply(op_type: str, *inputs: Any, **attributes: Any) -> list[Tensor]:
    """Runs one ONNX operator on tensors (arrays and DLPack objects are shared, not copied), with its ONNX
    attributes as keywords; returns its outputs. ``aidge.apply("Softmax", x, axis=1)``; None leaves an optional
    input absent."""
    return _aidge.apply(op_type, [None if x is None else _as_tensor(x, i) for i, x in enumerate(inputs)], attributes)


def gradients(
    op_type: str,
    inputs: Sequence[Any],
    output_gradients: Sequence[Any],
    *,
    constants: Sequence[int] = (),
    training: bool = False,
    **attributes: Any,
) -> tuple[list[Tensor], list[Tensor | None]]:
    """Runs one operator forward and backward (its vector-Jacobian product): returns its outputs and, for each
    input, the gradient of ``sum(output_k * output_gradients[k])`` (None for absent inputs and ``constants``,
    which are fixed when planning: shapes, axes). ``training`` runs the training forms (batch statistics,
    dropout)."""
    def optional(values: Sequence[Any]) -> list[Tensor | None]:
        return [None if x is None else _as_tensor(x, i) for i, x in enumerate(values)]

    return _aidge.gradients(
        op_type, optional(inputs), optional(output_gradients), attributes, list(constants), training
    )


def _as_value(value: Any, position: int) -> Any:
    """A run input: None (an empty optional), a list of tensors (a sequence) or a tensor."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [_as_tensor(x, position) for x in value]
    return _as_tensor(value, position)


def _as_tensor(value: Any, position: int) -> Tensor:
    """A run input as a tensor, without copying what can be shared."""
    if isinstance(value, _aidge.TensorBase):
        return value
    if isinstance(value, np.ndarray):
        return _text_tensor(value) if _is_text(value) else _share(value, copy=False)
    if hasattr(value, "__dlpack__"):
        return _aidge.from_dlpack(value)
    try:
        array = np.asarray(value)
    except Exception as error:  # noqa: BLE001 - any conversion failure is the caller's input
        raise TypeError(f"input {position}: cannot make a tensor from {type(value).__name__}") from error
    return _share(array, copy=False)


_LIVE_GRAPHS: "weakref.WeakSet[GraphView]" = weakref.WeakSet()


def _graph_of(value: Any) -> Any:
    return value._graph if isinstance(value, GraphView) else value


class GraphView:
    """A computational graph with ordered inputs and outputs, and the scheduler that runs it.

    Call it with NumPy arrays, tensors or DLPack objects (one per input, in order). Outputs are new tensors each
    run. Two threads may call the same graph: runs take turns on its working memory.
    """

    def __init__(self, graph: Any = None, name: str = "graph") -> None:
        if graph is None:
            graph = _aidge.build(("graph", [], name))
        if not isinstance(graph, _aidge.Graph):
            raise TypeError("GraphView wraps a graph made by aidge.onnx.load, a builder, or nothing (empty)")
        self._graph = graph
        _LIVE_GRAPHS.add(self)

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

    # Nodes.
    def get_nodes(self) -> list[Node]:
        """Every node (producers included), in topological order."""
        return self._graph.node_list()

    def get_node(self, name: str) -> Node | None:
        return self._graph.get_node(name)

    def add(self, node_or_graph: "Node | GraphView") -> None:
        """Adds a node (with its producers) or every node of a graph; inputs and outputs are recomputed."""
        self._graph.add(_graph_of(node_or_graph))

    def get_input_nodes(self) -> list[Node]:
        """Nodes that read a graph input, in input order."""
        return self._graph.input_nodes()

    def get_output_nodes(self) -> list[Node]:
        """Nodes whose output is a graph output, in output order."""
        return self._graph.output_nodes()

    def get_ordered_inputs(self) -> list[tuple[Node | None, int]]:
        """(node, input index) reading each graph input, in order (Aidge's form; ``inputs`` has the names)."""
        return self._graph.ordered_inputs()

    def get_ordered_outputs(self) -> list[tuple[Node, int]]:
        """(node, output index) of each graph output, in order."""
        return self._graph.ordered_outputs()

    def producers(self) -> list[Node]:
        return [n for n in self.get_nodes() if n.type() == "Producer"]

    def clone(self) -> "GraphView":
        return GraphView(self._graph.clone())

    # Planning and running.
    def compile(self, backend: str = "cpu", datatype: Any = None, device: int = 0,
                dims: Sequence[Sequence[int]] | None = None) -> None:
        """Fixes input dims (one list per input) and checks every operator's shapes (Aidge's compile)."""
        self.set_backend(backend, device)
        if dims is not None:
            self.forward_dims(dims, datatype)

    def forward_dims(self, dims: Sequence[Sequence[int]], datatype: Any = None) -> None:
        """Fixes the input shapes and plans them (shape inference through every node)."""
        self._graph.set_input_dims([list(d) for d in dims], None if datatype is None else _dtype_name(datatype))

    def set_datatype(self, datatype: Any) -> None:
        """Converts the floating-point weights and inputs to ``datatype``."""
        self._graph.set_datatype(_dtype_name(datatype))

    @staticmethod
    def replace(old_nodes: Sequence[Node], new_nodes: Sequence[Node]) -> bool:
        """Swaps a connected piece (one data input, one output) for a chain of new nodes in the graph that holds
        it (Aidge's static ``GraphView.replace``). Returns whether a graph held every old node."""
        old, new = list(old_nodes), list(new_nodes)
        for view in list(_LIVE_GRAPHS):
            if old and all(view.get_node(n.name()) == n for n in old):
                view._graph.replace(old, new)
                return True
        return False

    def set_backend(self, name: str, device: int = 0) -> None:
        """Runs the graph on ``name`` ('cpu' or 'cuda') from now on: host inputs are copied to the device, outputs
        stay on it (``Tensor.cpu()`` brings them back). Raises ``DeviceError`` saying what is missing when the
        CUDA backend cannot run here."""
        if device != 0:
            raise NotImplementedError(f"only device 0 is supported, got {name} device {device}")
        self._graph.set_backend(name)

    @property
    def backend(self) -> str:
        """The backend the graph runs on."""
        return self._graph.backend

    def run(self, *inputs: Any) -> list[Any]:
        """Runs the graph; returns one value per output: a tensor, or for the ONNX containers a list of tensors (a
        sequence) or None (an empty optional), which are also how such inputs are given."""
        input_kinds = self._graph.kinds[0]
        lone_sequence = len(input_kinds) == 1 and "sequence" in input_kinds[0]
        if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)) and not lone_sequence:
            inputs = tuple(inputs[0])
        return self._graph.run([_as_value(x, i) for i, x in enumerate(inputs)])

    def profile(self, *inputs: Any, runs: int = 1) -> list[tuple[str, str, float]]:
        """Runs the graph ``runs`` times; returns (node, type, mean seconds) per kernel call in execution order."""
        return self._graph.profile([_as_tensor(x, i) for i, x in enumerate(inputs)], runs)

    def __call__(self, *inputs: Any) -> Tensor | tuple[Tensor, ...]:
        """Runs the graph; one output comes back as a tensor, several as a tuple."""
        outputs = self.run(*inputs)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    # Training.
    def train(self, mode: bool = True) -> "GraphView":
        """Training mode: BatchNormalization uses batch statistics, Dropout drops, runs record for ``backward``,
        recipes leave parameters alone. ``train(False)`` is ``eval()``."""
        self._graph.train(mode)
        return self

    def eval(self) -> "GraphView":
        """Evaluation mode (the default): inference forms of BatchNormalization and Dropout."""
        self._graph.train(False)
        return self

    @property
    def training(self) -> bool:
        return self._graph.training

    def parameters(self) -> list[Node]:
        """The Producer nodes that training updates (weights and biases, not running statistics or shapes)."""
        return self._graph.parameters()

    def backward(self) -> None:
        """Back-propagates the last run from the gradients a loss wrote on its outputs, adding into the
        parameters' gradients (``producer_tensor.grad``). After a run in evaluation mode, the run is repeated
        recording first, and later runs record."""
        self._graph.backward()

    # Rewrites and rendering.
    def optimize(self, **recipes: bool) -> dict[str, int]:
        """Inference recipes (remove_identity, remove_dropout, constant_folding, fuse_batchnorm,
        fuse_activation), each on unless set False. Returns how many nodes each changed."""
        return self._graph.optimize(**recipes)

    def apply_recipe(self, name: str) -> int:
        """One recipe by name; returns how many nodes it changed."""
        return self._graph.apply_recipe(name)

    def mermaid(self) -> str:
        return self._graph.mermaid()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes ``path.mmd``, a Mermaid flowchart (as Aidge does)."""
        with open(os.fspath(path) + ".mmd", "w", encoding="utf-8") as f:
            f.write(self.mermaid())

    def __repr__(self) -> str:
        return f"GraphView({self.name!r}, {len(self._graph.nodes)} nodes, inputs={self.inputs}, outputs={self.outputs})"


def sequential(components: Sequence["Node | GraphView"], name: str = "sequential") -> GraphView:
    """Chains nodes and graphs: each one's outputs feed the next one's inputs."""
    return GraphView(_aidge.build(("sequential", [_graph_of(c) for c in components], name)))


def parallel(components: Sequence["Node | GraphView"], name: str = "parallel") -> GraphView:
    """Side-by-side branches (a following node takes their outputs in order)."""
    return GraphView(_aidge.build(("parallel", [_graph_of(c) for c in components], name)))


def residual(components: Sequence["Node | GraphView"], name: str = "residual") -> GraphView:
    """A sequential block whose input is added to its output."""
    return GraphView(_aidge.build(("residual", [_graph_of(c) for c in components], name)))


class Scheduler:
    """Runs a graph (Aidge's SequentialScheduler): ``forward(data=[...])`` returns the output tensors."""

    def __init__(self, graph: GraphView) -> None:
        if not isinstance(graph, GraphView):
            raise TypeError(f"Scheduler needs a GraphView, got {type(graph).__name__}")
        self.graph = graph

    def forward(self, forward_dims: bool = True, data: Iterable[Any] = ()) -> list[Tensor]:
        return self.graph.run(*list(data))

    def backward(self) -> None:
        """Back-propagates the last forward from the gradients a loss wrote on its outputs."""
        self.graph.backward()


def set_num_threads(n: int) -> None:
    """Threads the kernels use (0: every core)."""
    _aidge.set_num_threads(n)


def get_num_threads() -> int:
    return _aidge.get_num_threads()


def share_openmp_threads(on: bool = True) -> bool:
    """Runs the kernels' parallel work on the process's OpenMP threads instead of the engine's own; returns whether
    it does (the process must have an OpenMP runtime loaded, as it does once PyTorch is imported).

    ``aidge.torch`` turns this on: PyTorch's OpenMP threads keep spinning for a while after each of its parallel
    operators, and the engine's workers would compete with them for the cores in every training step."""
    return _aidge.share_openmp_threads(on)


class cuda:  # noqa: N801 (torch.cuda's spelling)
    """The CUDA backend: loaded on first use, from the NVIDIA driver, NVRTC and cuBLAS found at run time (PyTorch's
    NVIDIA wheels are looked in first)."""

    @staticmethod
    def is_available() -> bool:
        """Whether a GPU, its driver, NVRTC and cuBLAS are there."""
        return _aidge.cuda_available()

    @staticmethod
    def load_error() -> str | None:
        """Why the CUDA backend cannot run here, or None when it can."""
        return _aidge.cuda_load_error()

    @staticmethod
    def device_name() -> str:
        return _aidge.cuda_device_name()

    @staticmethod
    def set_options(*, tf32_matmul: bool | None = None, tf32_convolution: bool | None = None,
                    cudnn: bool | None = None) -> dict[str, bool]:
        """Options for graphs planned from now on; returns them all. ``tf32_matmul`` (default False) and
        ``tf32_convolution`` (default True) follow PyTorch's ``torch.backends.cuda.matmul.allow_tf32`` and
        ``torch.backends.cudnn.allow_tf32``; ``cudnn`` (default True) runs convolutions through cuDNN where it
        loads (else im2col and cuBLAS)."""
        return _aidge.cuda_set_options(tf32_matmul=tf32_matmul, tf32_convolution=tf32_convolution, cudnn=cudnn)

    @staticmethod
    def set_stream(stream: Any) -> int:
        """Queues the backend's work on ``stream`` from now on: a ``torch.cuda.Stream`` (its ``cuda_stream``) or a
        CUstream address (0: the default stream). Returns the previous handle."""
        return _aidge.cuda_set_stream(int(getattr(stream, "cuda_stream", stream)))

    @staticmethod
    def current_stream() -> int:
        """The CUstream address the backend queues its work on."""
        return _aidge.cuda_current_stream()

    @staticmethod
    @contextlib.contextmanager
    def stream(stream: Any) -> Iterator[None]:
        """``with aidge.cuda.stream(s):`` queues the backend's work on ``s`` inside the block."""
        previous = cuda.set_stream(stream)
        try:
            yield
        finally:
            cuda.set_stream(previous)

    @staticmethod
    def synchronize() -> None:
        """Waits for the work queued on the current stream."""
        _aidge.cuda_synchronize()


def _add_nvidia_wheel_libraries() -> None:
    """Adds the folders of the NVIDIA wheels that PyTorch installs (nvidia/cu13/lib, nvidia/*/lib) to the CUDA
    backend's library path, so NVRTC and cuBLAS are found without a CUDA toolkit."""
    import importlib.util
    import os
    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return
    folders = []
    for root in spec.submodule_search_locations:
        for sub in sorted(os.listdir(root)):
            lib = os.path.join(root, sub, "lib")
            if os.path.isdir(lib):
                folders.append(lib)
    known = os.environ.get("AIDGE_CUDA_LIBRARY_PATH", "")
    os.environ["AIDGE_CUDA_LIBRARY_PATH"] = ":".join([p for p in [known] if p] + folders)


_add_nvidia_wheel_libraries()


def supported_operators(backend: str = "cpu") -> list[str]:
    """The ONNX operator types ``backend`` ('cpu' or 'cuda') runs."""
    return _aidge.supported_operators() if backend == "cpu" else _aidge.backend_operators(backend)


# Operator factories with Aidge's names and defaults; weights and biases are Producer nodes `<name>_w` / `<name>_b`,
# zero until set.
def Conv2D(in_channels: int, out_channels: int, kernel_dims: Sequence[int], name: str = "",
           stride_dims: Sequence[int] = (1, 1), dilation_dims: Sequence[int] = (1, 1), no_bias: bool = False) -> Node:
    return _aidge.factory(("Conv2D", (in_channels, out_channels, list(kernel_dims), name, list(stride_dims),
                                      list(dilation_dims), no_bias), None))


def PaddedConv2D(in_channels: int, out_channels: int, kernel_dims: Sequence[int], name: str = "",
                 stride_dims: Sequence[int] = (1, 1), padding_dims: Sequence[int] = (0, 0, 0, 0),
                 dilation_dims: Sequence[int] = (1, 1), no_bias: bool = False) -> Node:
    return _aidge.factory(("PaddedConv2D", (in_channels, out_channels, list(kernel_dims), name, list(stride_dims),
                                            list(padding_dims), list(dilation_dims), no_bias), None))


def ConvDepthWise2D(nb_channels: int, kernel_dims: Sequence[int], name: str = "", stride_dims: Sequence[int] = (1, 1),
                    dilation_dims: Sequence[int] = (1, 1), no_bias: bool = False) -> Node:
    return _aidge.factory(("ConvDepthWise2D", (nb_channels, list(kernel_dims), name, list(stride_dims),
                                               list(dilation_dims), no_bias), None))


def FC(in_channels: int, out_channels: int, no_bias: bool = False, name: str = "") -> Node:
    return _aidge.factory(("FC", (in_channels, out_channels, no_bias, name), None))


def BatchNorm2D(nb_features: int, epsilon: float = 1e-5, momentum: float = 0.1, name: str = "") -> Node:
    return _aidge.factory(("BatchNorm2D", (nb_features, epsilon, momentum, name), None))


def LeakyReLU(negative_slope: float = 0.01, name: str = "") -> Node:
    return _aidge.factory(("LeakyReLU", (negative_slope, name), None))


def Softmax(axis: int, name: str = "") -> Node:
    return _aidge.factory(("Softmax", (axis, name), None))


def Flatten(axis: int = 1, name: str = "") -> Node:
    return _aidge.factory(("Flatten", (axis, name), None))


def Transpose(output_dims_order: Sequence[int], name: str = "") -> Node:
    return _aidge.factory(("Transpose", (list(output_dims_order), name), None))


def Reshape(shape: Sequence[int], name: str = "") -> Node:
    return _aidge.factory(("Reshape", (list(shape), name), None))


def Concat(nb_inputs: int, axis: int = 0, name: str = "") -> Node:
    return _aidge.factory(("Concat", (nb_inputs, axis, name), None))


def MaxPooling2D(kernel_dims: Sequence[int], name: str = "", stride_dims: Sequence[int] = (1, 1),
                 ceil_mode: bool = False) -> Node:
    return _aidge.factory(("MaxPooling2D", (list(kernel_dims), name, list(stride_dims), ceil_mode), None))


def AvgPooling2D(kernel_dims: Sequence[int], name: str = "", stride_dims: Sequence[int] = (1, 1)) -> Node:
    return _aidge.factory(("AvgPooling2D", (list(kernel_dims), name, list(stride_dims)), None))


def Pad(begin_end_borders: Sequence[int], border_value: float = 0.0, name: str = "") -> Node:
    return _aidge.factory(("Pad", (list(begin_end_borders), border_value, name), None))


def Producer(tensor: Any, name: str = "", constant: bool = False) -> Node:
    if not isinstance(tensor, _aidge.TensorBase):
        tensor = Tensor(tensor)
    return _aidge.factory(("Producer", (tensor, name, constant), None))


def GenericOperator(type: str, nb_data: int, nb_param: int, nb_out: int, name: str = "") -> Node:  # noqa: A002
    return _aidge.factory(("GenericOperator", (type, nb_data, nb_param, nb_out, name), None))


def ReLU(name: str = "") -> Node:
    return _aidge.factory(("ReLU", (name,), None))


def Sigmoid(name: str = "") -> Node:
    return _aidge.factory(("Sigmoid", (name,), None))


def Tanh(name: str = "") -> Node:
    return _aidge.factory(("Tanh", (name,), None))


def Identity(name: str = "") -> Node:
    return _aidge.factory(("Identity", (name,), None))


def Add(name: str = "") -> Node:
    return _aidge.factory(("Add", (name,), None))


def Sub(name: str = "") -> Node:
    return _aidge.factory(("Sub", (name,), None))


def Mul(name: str = "") -> Node:
    return _aidge.factory(("Mul", (name,), None))


def Div(name: str = "") -> Node:
    return _aidge.factory(("Div", (name,), None))


def MatMul(name: str = "") -> Node:
    return _aidge.factory(("MatMul", (name,), None))


def GlobalAveragePooling(name: str = "") -> Node:
    return _aidge.factory(("GlobalAveragePooling", (name,), None))


from . import onnx  # noqa: E402  (needs GraphView)
from . import learning  # noqa: E402
