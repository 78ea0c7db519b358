"""PyTorch interop: tensors shared without copies, and ``torch.nn.Module`` -> engine graph through an in-memory ONNX
export.

``from_torch(t)`` / ``to_torch(tensor)`` share memory (DLPack) for every dtype both have, strided views included.
``to_graph(module, example_inputs)`` gives a ``GraphView`` whose Producers are named after the module's
``state_dict`` entries, with nothing folded: BatchNormalization stays a node (exported in training form), so the
graph can be trained and its parameters matched with the module's by name.

Importing this module runs the engine's parallel work on PyTorch's OpenMP threads (``aidge.share_openmp_threads``),
so that the two runtimes take turns on the cores instead of competing for them.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any, Iterator, Sequence

import torch as _torch
import torch.utils.dlpack as _dlpack
from torch.utils import _pytree
from torch.nn.modules.batchnorm import _BatchNorm

from . import GraphView, Tensor, from_dlpack, share_openmp_threads
from . import cuda as _cuda
from . import onnx as _onnx

__all__ = ["from_torch", "to_torch", "to_onnx", "to_graph", "wrap", "EngineModule"]

_READ_ONLY_WRAPPER = getattr(_dlpack, "ReadOnlyTensorWrapper", ())

share_openmp_threads(True)

DynamicAxes = dict[int, dict[int, str]]
"""``{input_index: {dimension: name}}``: the input dimensions that may change from one forward to the next."""


def from_torch(tensor: _torch.Tensor) -> Tensor:
    """The engine's view of a torch tensor's memory (no copy; strides kept). A CUDA tensor keeps its device: running
    it needs the CUDA backend, and it is never copied to the host behind your back. A
    ``torch.utils.dlpack.ReadOnlyTensorWrapper`` (torch 2.15) gives a read-only view."""
    if not isinstance(tensor, _torch.Tensor):
        raise TypeError(f"from_torch needs a torch.Tensor, got {type(tensor).__name__}")
    if isinstance(tensor, _READ_ONLY_WRAPPER):
        return from_dlpack(tensor)  # it refuses attribute reads such as requires_grad
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
             dynamic_axes: DynamicAxes | None = None, input_names: Sequence[str] | None = None) -> GraphView:
    """Exports ``module`` to ONNX in memory (see ``to_onnx``) and imports it. The graph starts in evaluation mode;
    its own ``train()`` / ``eval()`` switch BatchNorm and Dropout."""
    return _onnx.load(to_onnx(module, example_inputs, opset=opset, dynamic_axes=dynamic_axes,
                              input_names=input_names))


def to_onnx(module: _torch.nn.Module, example_inputs: Any, *, opset: int = 17,
            dynamic_axes: DynamicAxes | None = None, input_names: Sequence[str] | None = None) -> bytes:
    """The ONNX model of ``module`` as bytes, made in memory: TorchScript exporter, training form, no constant
    folding, so every parameter and buffer stays its own initializer named as in ``state_dict``, and nothing is
    fused. The exporter's fixed training flags are removed (the engine's mode decides). ``dynamic_axes``:
    ``{input_index: {dim: name}}``, by default the first dimension of every input. The module's mode, buffers and
    torch's random state are left as they were."""
    return _export(module, _as_tuple(example_inputs), opset, dynamic_axes, input_names)[0]


def _export(module: _torch.nn.Module, inputs: tuple[Any, ...], opset: int, dynamic_axes: DynamicAxes | None,
            input_names: Sequence[str] | None) -> tuple[bytes, Any]:
    """``to_onnx``, and the structure of the module's output (ONNX flattens tuples, lists and dicts) as a
    template: the output with each tensor replaced by its position among the ONNX outputs."""
    if not isinstance(module, _torch.nn.Module):
        raise TypeError(f"aidge.torch needs a torch.nn.Module, got {type(module).__name__}")
    names = list(input_names) if input_names is not None else [f"input_{i}" for i in range(len(inputs))]
    if len(names) != len(inputs):
        raise ValueError(f"{len(names)} input names for {len(inputs)} inputs")
    if dynamic_axes is None:
        dynamic_axes = {i: {0: "batch"} for i in range(len(inputs)) if inputs[i].dim() > 0}
    for i, axes in dynamic_axes.items():
        if not 0 <= i < len(inputs) or any(not -inputs[i].dim() <= d < inputs[i].dim() for d in axes):
            raise ValueError(f"dynamic_axes {{{i}: {axes}}} does not match the example inputs' shapes")
    templates: list[Any] = []

    def record(_module: Any, _inputs: Any, output: Any) -> None:
        leaves, spec = _pytree.tree_flatten(output)
        templates.append(_pytree.tree_unflatten(list(range(len(leaves))), spec))

    hook = module.register_forward_hook(record)
    buffer = io.BytesIO()
    was_training = module.training
    # Tracing runs the module in training form, which would update BatchNorm's running statistics: keep them.
    saved_buffers = {name: b.detach().clone() for name, b in module.named_buffers()}
    try:
        with warnings.catch_warnings(), _traceable_attention(), _torch.random.fork_rng(devices=[]):
            warnings.simplefilter("ignore")
            _torch.onnx.export(
                module, inputs, buffer, dynamo=False, opset_version=opset, input_names=names,
                dynamic_axes={names[i]: axes for i, axes in dynamic_axes.items()},
                training=_torch.onnx.TrainingMode.TRAINING, do_constant_folding=False,
            )
    except Exception as error:  # noqa: BLE001 - whatever the exporter raises, say which module failed
        raise RuntimeError(
            f"aidge.torch: {type(module).__name__} could not be exported to ONNX: {type(error).__name__}: {error}"
        ) from error
    finally:
        hook.remove()
        module.train(was_training)
        with _torch.no_grad():
            for name, b in module.named_buffers():
                if name in saved_buffers:
                    b.copy_(saved_buffers[name])
    return _mode_free(buffer.getvalue(), saved_buffers), templates[0] if templates else None


@contextlib.contextmanager
def _traceable_attention() -> Iterator[None]:
    """Tracing turns MultiheadAttention's ``is_causal`` flag into a tensor, which ``scaled_dot_product_attention``
    refuses (``nn.TransformerEncoderLayer`` then cannot be exported); while exporting, the flag is given back as
    the bool it is."""
    functional = _torch.nn.functional
    original = functional.scaled_dot_product_attention

    def attention(query: Any, key: Any, value: Any, attn_mask: Any = None, dropout_p: float = 0.0,
                  is_causal: Any = False, *args: Any, **kwargs: Any) -> Any:
        if isinstance(is_causal, _torch.Tensor):
            is_causal = bool(is_causal)
        return original(query, key, value, attn_mask, dropout_p, is_causal, *args, **kwargs)

    functional.scaled_dot_product_attention = attention
    try:
        yield
    finally:
        functional.scaled_dot_product_attention = original


def _mode_free(model_bytes: bytes, buffers: dict[str, _torch.Tensor]) -> bytes:
    """The exported model without the training flags the exporter hard-codes (Dropout's ``training_mode`` input,
    BatchNormalization's ``training_mode`` attribute): the graph's ``train()``/``eval()`` decides instead. Buffer
    initializers get the values from before the export (its trace updated the running statistics once)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(model_bytes)
    for node in model.graph.node:
        if node.op_type == "Dropout" and len(node.input) > 2:
            del node.input[2:]
        if node.op_type == "BatchNormalization":
            kept = [a for a in node.attribute if a.name != "training_mode"]
            del node.attribute[:]
            node.attribute.extend(kept)
    for initializer in model.graph.initializer:
        if initializer.name in buffers:
            initializer.CopyFrom(numpy_helper.from_array(buffers[initializer.name].numpy(), initializer.name))
    return model.SerializeToString()


class _EngineRun(_torch.autograd.Function):
    """One forward of the engine inside PyTorch's autograd: inputs and parameters in, outputs out, each forward
    with its own record for backward."""

    @staticmethod
    def forward(ctx: Any, wrapper: Any, *tensors: _torch.Tensor) -> tuple[_torch.Tensor, ...]:
        """``wrapper``: a module with ``_graph``, ``_input_count`` and ``_parameter_nodes``; ``tensors``: the
        inputs, then the torch tensors of those Producers, in order."""
        inputs = tensors[: wrapper._input_count]
        engine = wrapper._graph._graph
        outputs, recording = engine.run_recorded([from_torch(x) for x in inputs], training=wrapper.training)
        ctx.wrapper, ctx.recording = wrapper, recording
        ctx.parameter_shapes = [p.shape for p in tensors[wrapper._input_count:]]
        return tuple(to_torch(o) for o in outputs)

    @staticmethod
    def backward(ctx: Any, *output_gradients: _torch.Tensor | None) -> tuple[_torch.Tensor | None, ...]:
        if _torch.is_grad_enabled():
            raise RuntimeError(
                "aidge.torch: the engine's backward is not differentiable (double backward, create_graph=True "
                "and higher-order gradients are not supported)")
        if ctx.recording is None:
            raise RuntimeError("aidge.torch: this forward was already back-propagated (use retain_graph=... in torch "
                               "terms: run the forward again)")
        wrapper = ctx.wrapper
        engine = wrapper._graph._graph
        count = wrapper._input_count
        wanted = [i for i in range(count) if ctx.needs_input_grad[1 + i]]
        seeds = [None if g is None else from_torch(g.contiguous()) for g in output_gradients]
        engine.reset_grad()
        on_gpu = wrapper._graph.backend == "cuda"
        with _cuda.stream(_torch.cuda.current_stream()) if on_gpu else contextlib.nullcontext():
            input_gradients = engine.backward_recorded(ctx.recording, seeds, inputs=wanted)
        ctx.recording = None  # the activations go as soon as they are used, as torch frees saved tensors
        result: list[_torch.Tensor | None] = [None]
        result += [to_torch(g) if g is not None else None for g in input_gradients]
        for k, node in enumerate(wrapper._parameter_nodes):
            grad = node.producer_tensor.grad if ctx.needs_input_grad[1 + count + k] else None
            result.append(to_torch(grad).reshape(ctx.parameter_shapes[k]) if grad is not None else None)
        return tuple(result)


def _run(wrapper: Any, inputs: Sequence[_torch.Tensor], parameters: Sequence[_torch.Tensor]) -> tuple[_torch.Tensor, ...]:
    """One forward of ``wrapper``'s graph (see ``_EngineRun``): through autograd when a gradient may be asked for,
    otherwise a plain run that keeps no activations (``torch.no_grad()``, inference)."""
    if _torch.is_grad_enabled() and (any(x.requires_grad for x in inputs) or any(p.requires_grad for p in parameters)):
        return _EngineRun.apply(wrapper, *inputs, *parameters)
    outputs, _ = wrapper._graph._graph.run_recorded([from_torch(x) for x in inputs], training=wrapper.training,
                                                     record=False)
    return tuple(to_torch(o) for o in outputs)


class EngineModule(_torch.nn.Module):
    """A ``torch.nn.Module`` whose forward and backward run in the engine, over the wrapped module's own parameters
    and buffers (shared memory, bound by pointer at every forward): optimizers, schedulers, ``state_dict`` and
    ``train()``/``eval()`` act on them as on the original module.

    ``model``: the module's ONNX export (``to_onnx``); ``output_template``: the module's output with each tensor
    replaced by its output index (tuples, lists and dicts come back as the module returns them); ``simplify``:
    fold the graph's constant subgraphs and fuse written-out GELUs and linear layers with the engine's recipes,
    which leave every parameter and buffer as it is."""

    def __init__(self, module: _torch.nn.Module, model: bytes, input_count: int, *,
                 output_template: Any = None, simplify: bool = True) -> None:
        super().__init__()
        # The same submodules, parameters and buffers under the same names: state_dict keys are the module's.
        for name, child in module.named_children():
            self.add_module(name, child)
        for name, parameter in module.named_parameters(recurse=False):
            self.register_parameter(name, parameter)
        for name, buffer in module.named_buffers(recurse=False):
            self.register_buffer(name, buffer)
        self._onnx, self._simplify, self._output_template = model, simplify, output_template
        self._input_count = input_count
        self._load()
        if output_template is not None and len(_pytree.tree_leaves(output_template)) != len(self._graph.outputs):
            self._output_template = None  # outputs that are not all tensors: return the ONNX outputs as they are
        self._check_bound_values()
        self.train(module.training)

    def _load(self) -> None:
        """The engine graph from the ONNX bytes, and the Producers that stand for the module's parameters."""
        graph = _onnx.load(self._onnx)
        if self._simplify:
            graph.train()  # in training mode the recipes keep every variable Producer as it is
            graph.optimize(remove_identity=True, remove_dropout=False, constant_folding=True,
                           fuse_batchnorm=False, fuse_activation=False, fuse_gelu=True)
            graph.apply_recipe("fuse_linear")
        self._graph = graph
        self._bound: dict[str, int] = {}
        state = dict(self.named_parameters())
        self._parameter_names = [p.name() for p in graph.parameters() if p.name() in state]
        self._parameter_nodes = [graph.get_node(name) for name in self._parameter_names]

    def _check_bound_values(self) -> None:
        """Every Producer named after a parameter or buffer holds that tensor's value: nothing was folded or
        renamed on the way through ONNX."""
        for name, tensor in self._state_tensors().items():
            node = self._graph.get_node(name)
            if node is None or node.producer_tensor is None:
                continue
            exported = to_torch(node.producer_tensor)
            if exported.shape != tensor.shape or not _torch.equal(exported, tensor.detach().cpu()):
                raise RuntimeError(f"aidge.torch: the exported graph's {name} differs from the module's tensor")

    def _state_tensors(self) -> dict[str, _torch.Tensor]:
        """Every parameter and buffer by its ``state_dict`` name, read from the modules as they are now (a
        replaced submodule or tensor is seen); a direct walk, a few times cheaper than ``named_parameters()``."""
        tensors: dict[str, _torch.Tensor] = {}
        pending: list[tuple[str, _torch.nn.Module]] = [("", self)]
        while pending:
            prefix, module = pending.pop()
            for table in (module._parameters, module._buffers):
                for name, tensor in table.items():
                    if tensor is not None:
                        tensors[prefix + name] = tensor
            for name, child in module._modules.items():
                if child is not None:
                    pending.append((prefix + name + ".", child))
        return tensors

    def __getstate__(self) -> dict[str, Any]:
        """Pickling (``copy.deepcopy``, ``torch.save``) keeps the ONNX model, not the engine graph."""
        state = self.__dict__.copy()
        state.update(_graph=None, _parameter_nodes=None, _bound={})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._load()

    def _bind(self, state: dict[str, _torch.Tensor]) -> None:
        """Points every Producer named after a parameter or buffer (``state``: ``_state_tensors()``) at that
        tensor's memory (again if torch moved it), after checking that shape, dtype and device allow it."""
        for name, tensor in state.items():
            node = self._graph.get_node(name)
            if node is None or self._bound.get(name) == tensor.data_ptr():
                continue
            current = node.producer_tensor
            if current is None or tuple(current.shape) != tuple(tensor.shape):
                raise ValueError(f"the exported graph's {name} does not match the module's tensor {tuple(tensor.shape)}")
            if tensor.device.type not in ("cpu", "cuda"):
                raise NotImplementedError(f"aidge.torch: {name} is on {tensor.device}: the engine runs on cpu and cuda")
            exported = to_torch(current).dtype
            if tensor.dtype != exported:
                raise TypeError(f"aidge.torch: {name} is {tensor.dtype}, the exported graph has {exported}; wrap the "
                                "module again after changing its dtype")
            node.set_producer_tensor(from_torch(tensor.detach()))
            self._bound[name] = tensor.data_ptr()

    def forward(self, *inputs: _torch.Tensor) -> Any:
        if len(inputs) != self._input_count:
            raise TypeError(f"the wrapped module takes {self._input_count} inputs, got {len(inputs)}")
        for i, x in enumerate(inputs):
            if not isinstance(x, _torch.Tensor):
                raise TypeError(f"input {i} of the wrapped module must be a torch.Tensor, got {type(x).__name__}")
            if x.device != inputs[0].device:
                raise RuntimeError(f"aidge.torch: inputs on {inputs[0].device} and {x.device}: one device per call")
        device = inputs[0].device if inputs else _torch.device("cpu")
        if device.type not in ("cpu", "cuda") or (device.type == "cuda" and (device.index or 0) != 0):
            raise NotImplementedError(f"aidge.torch: inputs on {device}: the engine runs on cpu and cuda:0")
        # The graph runs where the inputs are (the CUDA backend for cuda tensors, on torch's current stream).
        backend = device.type
        if self._graph.backend != backend:
            self._graph.set_backend(backend)
        state = self._state_tensors()
        self._bind(state)
        if backend == "cuda":
            with _cuda.stream(_torch.cuda.current_stream(device)):
                outputs = _run(self, inputs, [state[name] for name in self._parameter_names])
        else:
            outputs = _run(self, inputs, [state[name] for name in self._parameter_names])
        if self.training:
            # The engine updates the running statistics; the batch count is torch's bookkeeping.
            for child in self.modules():
                if isinstance(child, _BatchNorm) and child.num_batches_tracked is not None:
                    child.num_batches_tracked.add_(1)
        template = self._output_template
        if template is None:
            return outputs[0] if len(outputs) == 1 else outputs
        if isinstance(template, int):
            return outputs[template]
        return _pytree.tree_map(lambda index: outputs[index], template)


def wrap(module: _torch.nn.Module, example_inputs: Any, *, dynamic_axes: DynamicAxes | None = None,
         simplify: bool = True, copy: bool = False) -> EngineModule:
    """A module that runs ``module`` in the engine, forward and backward, on its own parameters and buffers (with
    ``copy=True``, on copies), like ``torch.compile``.

    ``example_inputs``: a tensor or a tuple of tensors; ``dynamic_axes``: ``{input_index: {dim: name}}``, by
    default the first dimension of every input; ``simplify``: fold constant subgraphs (never a parameter or a
    buffer) and fuse written-out GELUs and linear layers. The module is exported once to ONNX in memory, nothing
    is written to disk, and neither its mode nor its parameters change. Outputs come back in the module's
    structure (tensor, tuple, list or dict)."""
    import copy as _copy

    inputs = _as_tuple(example_inputs)
    if not isinstance(module, _torch.nn.Module):
        raise TypeError(f"aidge.torch.wrap needs a torch.nn.Module, got {type(module).__name__}")
    for child in module.modules():
        if isinstance(child, _BatchNorm) and child.track_running_stats and child.momentum is None:
            raise NotImplementedError(f"{type(child).__name__} with momentum=None (a cumulative average) is not supported")
    if copy:
        module = _copy.deepcopy(module)
    model, template = _export(module, inputs, 17, dynamic_axes, None)
    return EngineModule(module, model, len(inputs), output_template=template, simplify=simplify)
