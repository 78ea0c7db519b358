"""PyTorch interop: tensors shared without copies, and ``torch.nn.Module`` -> engine graph through an in-memory ONNX
export.

``from_torch(t)`` / ``to_torch(tensor)`` share memory (DLPack) for every dtype both have, strided views included.
``to_graph(module, example_inputs)`` gives a ``GraphView`` whose Producers are named after the module's
``state_dict`` entries, with nothing folded: BatchNormalization stays a node (exported in training form), so the
graph can be trained and its parameters matched with the module's by name.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any, Iterator, Sequence

import torch as _torch
from torch.nn.modules.batchnorm import _BatchNorm

from . import GraphView, Tensor, from_dlpack
from . import onnx as _onnx

__all__ = ["from_torch", "to_torch", "to_onnx", "to_graph", "wrap", "EngineModule"]


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
    """Exports ``module`` to ONNX in memory (see ``to_onnx``) and imports it. The graph starts in evaluation mode;
    its own ``train()`` / ``eval()`` switch BatchNorm and Dropout."""
    return _onnx.load(to_onnx(module, example_inputs, opset=opset, dynamic_batch=dynamic_batch,
                              input_names=input_names))


def to_onnx(module: _torch.nn.Module, example_inputs: Any, *, opset: int = 17,
            dynamic_batch: bool = True, input_names: Sequence[str] | None = None) -> bytes:
    """The ONNX model of ``module`` as bytes, made in memory: TorchScript exporter, training form, no constant
    folding, so every parameter and buffer stays its own initializer named as in ``state_dict``, and nothing is
    fused. The exporter's fixed training flags are removed (the engine's mode decides). The module's mode and
    buffers are left as they were."""
    if not isinstance(module, _torch.nn.Module):
        raise TypeError(f"aidge.torch needs a torch.nn.Module, got {type(module).__name__}")
    inputs = _as_tuple(example_inputs)
    names = list(input_names) if input_names is not None else [f"input_{i}" for i in range(len(inputs))]
    dynamic_axes = {name: {0: "batch"} for name in names} if dynamic_batch else None
    buffer = io.BytesIO()
    was_training = module.training
    # Tracing runs the module in training form, which would update BatchNorm's running statistics: keep them.
    saved_buffers = {name: b.detach().clone() for name, b in module.named_buffers()}
    try:
        with warnings.catch_warnings(), _traceable_attention():
            warnings.simplefilter("ignore")
            _torch.onnx.export(
                module, inputs, buffer, dynamo=False, opset_version=opset, input_names=names,
                dynamic_axes=dynamic_axes, training=_torch.onnx.TrainingMode.TRAINING, do_constant_folding=False,
            )
    except Exception as error:  # noqa: BLE001 - whatever the exporter raises, say which module failed
        raise RuntimeError(
            f"aidge.torch: {type(module).__name__} could not be exported to ONNX: {type(error).__name__}: {error}"
        ) from error
    finally:
        module.train(was_training)
        with _torch.no_grad():
            for name, b in module.named_buffers():
                if name in saved_buffers:
                    b.copy_(saved_buffers[name])
    return _mode_free(buffer.getvalue(), saved_buffers)


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
        """``wrapper``: a module with ``_graph``, ``_input_count``, ``_parameter_nodes`` and
        ``_parameters_in_order`` (the torch tensors of those Producers, in order)."""
        inputs = tensors[: wrapper._input_count]
        engine = wrapper._graph._graph
        outputs, recording = engine.run_recorded([from_torch(x) for x in inputs], training=wrapper.training)
        ctx.wrapper, ctx.recording = wrapper, recording
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
        input_gradients = engine.backward_recorded(ctx.recording, seeds, inputs=wanted)
        ctx.recording = None  # the activations go as soon as they are used, as torch frees saved tensors
        parameters = wrapper._parameters_in_order
        result: list[_torch.Tensor | None] = [None]
        result += [to_torch(g) if g is not None else None for g in input_gradients]
        for k, node in enumerate(wrapper._parameter_nodes):
            grad = node.producer_tensor.grad if ctx.needs_input_grad[1 + count + k] else None
            result.append(to_torch(grad).reshape(parameters[k].shape) if grad is not None else None)
        return tuple(result)


class EngineModule(_torch.nn.Module):
    """A ``torch.nn.Module`` whose forward and backward run in the engine, over the wrapped module's own parameters
    and buffers (shared memory, bound by pointer at every forward): optimizers, schedulers, ``state_dict`` and
    ``train()``/``eval()`` act on them as on the original module."""

    def __init__(self, module: _torch.nn.Module, model: bytes, input_count: int) -> None:
        super().__init__()
        # The same submodules, parameters and buffers under the same names: state_dict keys are the module's.
        for name, child in module.named_children():
            self.add_module(name, child)
        for name, parameter in module.named_parameters(recurse=False):
            self.register_parameter(name, parameter)
        for name, buffer in module.named_buffers(recurse=False):
            self.register_buffer(name, buffer)
        self._onnx = model
        self._graph = _onnx.load(model)
        graph = self._graph
        self._input_count = input_count
        self._bound: dict[str, int] = {}
        state = dict(self.named_parameters())
        self._parameter_names = [p.name() for p in graph.parameters() if p.name() in state]
        self._parameter_nodes = [graph.get_node(name) for name in self._parameter_names]
        self.train(module.training)
        self._bind()

    def __getstate__(self) -> dict[str, Any]:
        """Pickling (``copy.deepcopy``, ``torch.save``) keeps the ONNX model, not the engine graph."""
        state = self.__dict__.copy()
        state.update(_graph=None, _parameter_nodes=None, _bound={})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._graph = _onnx.load(self._onnx)
        self._parameter_nodes = [self._graph.get_node(name) for name in self._parameter_names]
        self._bind()

    @property
    def _parameters_in_order(self) -> list[_torch.Tensor]:
        state = dict(self.named_parameters())
        return [state[name] for name in self._parameter_names]

    def _bind(self) -> None:
        """Points every Producer named after a parameter or buffer at that tensor's memory (again if torch moved
        it), after checking that shape and dtype agree."""
        tensors = dict(self.named_parameters())
        tensors.update(dict(self.named_buffers()))
        for name, tensor in tensors.items():
            node = self._graph.get_node(name)
            if node is None or self._bound.get(name) == tensor.data_ptr():
                continue
            current = node.producer_tensor
            if current is None or tuple(current.shape) != tuple(tensor.shape):
                raise ValueError(f"the exported graph's {name} does not match the module's tensor {tuple(tensor.shape)}")
            if tensor.device.type != "cpu":
                raise NotImplementedError(
                    f"{name} is on {tensor.device}: running it needs the CUDA backend, which is not available")
            node.set_producer_tensor(from_torch(tensor.detach()))
            self._bound[name] = tensor.data_ptr()

    def forward(self, *inputs: _torch.Tensor) -> Any:
        if len(inputs) != self._input_count:
            raise TypeError(f"the wrapped module takes {self._input_count} inputs, got {len(inputs)}")
        self._bind()
        outputs = _EngineRun.apply(self, *inputs, *self._parameters_in_order)
        if self.training:
            # The engine updates the running statistics; the batch count is torch's bookkeeping.
            for child in self.modules():
                if isinstance(child, _BatchNorm) and child.num_batches_tracked is not None:
                    child.num_batches_tracked.add_(1)
        return outputs[0] if len(outputs) == 1 else outputs


def wrap(module: _torch.nn.Module, example_inputs: Any, *, copy: bool = False) -> EngineModule:
    """A module that runs ``module`` in the engine, forward and backward, on its own parameters and buffers (with
    ``copy=True``, on copies). The module is exported once to ONNX in memory; neither its mode nor its parameters
    change."""
    import copy as _copy

    inputs = _as_tuple(example_inputs)
    for child in module.modules():
        if isinstance(child, _BatchNorm) and child.track_running_stats and child.momentum is None:
            raise NotImplementedError(f"{type(child).__name__} with momentum=None (a cumulative average) is not supported")
    if copy:
        module = _copy.deepcopy(module)
    return EngineModule(module, to_onnx(module, inputs), len(inputs))
