"""Keras interop: TensorFlow tensors shared without copies, and a Keras model run and trained by the engine inside
Keras (Keras 3 on the TensorFlow backend).

``wrap(model)`` converts the model to ONNX in memory with every variable as a graph input (tf2onnx on
``model.stateless_call``), so nothing is folded and the engine reads the model's own variables at every call: one
graph for inference, one for training, where BatchNormalization uses batch statistics and returns the new moving
statistics, which the wrapper assigns to the model's variables as Keras does.
"""

from __future__ import annotations

import collections
import contextlib
import inspect
import itertools
from typing import Any, Iterator, Sequence

import keras as _keras
import tensorflow as _tf

from . import GraphView, Tensor, from_dlpack
from . import onnx as _onnx

__all__ = ["from_tf", "to_tf", "to_onnx", "wrap", "EngineModel"]

_OPSET = 17

_KEPT_RECORDINGS = 64
"""Training-mode forwards whose activations are kept for a backward: beyond this many without one (forwards
outside a gradient tape), the oldest are dropped."""


def from_tf(tensor: Any) -> Tensor:
    """A ``Tensor`` sharing the memory of a TensorFlow tensor (CPU), through DLPack.

    A Keras or TensorFlow variable gives a view of the value it holds now: TensorFlow may give the variable a new
    buffer when it is assigned while a view of the old one is alive, so read it again after an update."""
    if isinstance(tensor, _keras.Variable):
        tensor = tensor.value
    if isinstance(tensor, _tf.Variable):
        tensor = tensor.read_value()
    if not isinstance(tensor, _tf.Tensor):
        raise TypeError(f"from_tf() takes a TensorFlow tensor or a Keras variable, got {type(tensor).__name__}")
    return from_dlpack(tensor)


def to_tf(tensor: Tensor) -> _tf.Tensor:
    """A TensorFlow tensor sharing the memory of a ``Tensor``, through DLPack.

    TensorFlow takes only contiguous tensors: a strided view (a transposition, a slice) is copied into a contiguous
    tensor first, and the result does not share memory with the view."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_tf() takes an aidge.Tensor, got {type(tensor).__name__}")
    if not tensor.is_contiguous:
        tensor = tensor.contiguous()
    return _tf.experimental.dlpack.from_dlpack(tensor.to_dlpack())


def _require_tensorflow_backend() -> None:
    backend = _keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(f"aidge.keras needs Keras on the TensorFlow backend, this Keras runs on {backend!r} "
                           "(set KERAS_BACKEND=tensorflow before importing keras)")


def _input_specs(model: _keras.Model, input_signature: Any) -> list[_tf.TensorSpec]:
    """One ``TensorSpec`` per model input, with a dynamic batch dimension; a model that was never built is built
    from ``input_signature`` first."""
    if input_signature is not None:
        specs = [s if isinstance(s, _tf.TensorSpec) else _tf.TensorSpec(s.shape, s.dtype)
                 for s in _tf.nest.flatten(input_signature)]
        if not model.built or not all(layer.built for layer in model._flatten_layers()):
            # Called once on zeros: a subclassed model's layers make their variables on their first call.
            zeros = [_tf.zeros([1 if d is None else d for d in s.shape], s.dtype) for s in specs]
            model(zeros[0] if len(zeros) == 1 else zeros)
    else:
        if not model.built:
            raise ValueError("aidge.keras.wrap: the model was never built; give input_signature (a tf.TensorSpec "
                             "per input) or call the model once")
        try:
            inputs = model.inputs
        except (AttributeError, ValueError):
            inputs = None
        if not inputs:
            raise ValueError("aidge.keras.wrap: this model does not declare its inputs (a subclassed model); give "
                             "input_signature (a tf.TensorSpec per input)")
        specs = [_tf.TensorSpec(tuple(i.shape), i.dtype) for i in inputs]
    return [_tf.TensorSpec((None,) + tuple(s.shape[1:]), s.dtype, name=f"input_{k}") for k, s in enumerate(specs)]


@contextlib.contextmanager
def _unrolled_recurrences(model: _keras.Model) -> Iterator[None]:
    """Recurrent layers traced unrolled over their (fixed) time steps: tf2onnx turns their while loops into ONNX
    ``Loop`` nodes when the weights are graph inputs; unrolled, they are plain operators with backward kernels. The
    layers get their setting back afterwards."""
    layers = [layer for layer in model._flatten_layers(include_self=False) if hasattr(layer, "unroll")]
    saved = [layer.unroll for layer in layers]
    try:
        for layer in layers:
            layer.unroll = True
        yield
    finally:
        for layer, unroll in zip(layers, saved):
            layer.unroll = unroll


class _Export:
    """The ONNX bytes of one mode, with how its inputs and outputs map to the model's."""

    def __init__(self, model: _keras.Model, specs: list[_tf.TensorSpec], training: bool) -> None:
        import tf2onnx

        trainable, non_trainable = model.trainable_variables, model.non_trainable_variables
        count = len(specs)
        structure: list[Any] = []
        # stateless_call passes keyword arguments to `call` as they are: `training` only where `call` takes it.
        parameters = inspect.signature(model.call).parameters
        takes_training = "training" in parameters or any(p.kind == p.VAR_KEYWORD for p in parameters.values())
        mode = {"training": training} if takes_training else {}

        def forward(*args: _tf.Tensor) -> tuple[_tf.Tensor, ...]:
            inputs = args[0] if count == 1 else list(args[:count])
            values = args[count:]
            outputs, state = model.stateless_call(
                list(values[:len(trainable)]), list(values[len(trainable):]), inputs, **mode)
            structure.append(outputs)
            flat = _tf.nest.flatten(outputs)
            return tuple(flat) + (tuple(state) if training else ())

        signature = list(specs) + [
            _tf.TensorSpec(v.shape, v.dtype, name=f"variable_{k}")
            for k, v in enumerate(itertools.chain(trainable, non_trainable))]
        try:
            with _unrolled_recurrences(model):
                proto, _ = tf2onnx.convert.from_function(
                    _tf.function(forward), input_signature=signature, opset=_OPSET)
        except Exception as error:
            raise RuntimeError(f"aidge.keras: the model could not be converted to ONNX: {error}") from error
        self.model = proto.SerializeToString()
        # The outputs' structure (tensor, list, dict, ...) with a spec per tensor, the batch dimension dynamic.
        self.structure = _tf.nest.map_structure(
            lambda t: _tf.TensorSpec([None] + list(t.shape[1:]), t.dtype), structure[-1])
        self.output_specs: list[_tf.TensorSpec] = _tf.nest.flatten(self.structure)
        self.output_count = len(self.output_specs)
        names = [i.name for i in proto.graph.input]
        expected = [s.name for s in signature]
        if sorted(names) != sorted(expected):
            raise RuntimeError(f"aidge.keras: the ONNX graph's inputs {names} are not the model's {expected}")
        # Position in the graph of each signature entry.
        self.order = [names.index(name) for name in expected]


def to_onnx(model: _keras.Model, *, input_signature: Any = None, training: bool = False) -> bytes:
    """The model as ONNX bytes, every variable a graph input named ``variable_<k>`` (trainable variables, then
    non-trainable ones, in Keras' order), the inputs ``input_<k>``; in training mode the new non-trainable values
    follow the outputs."""
    _require_tensorflow_backend()
    return _Export(model, _input_specs(model, input_signature), training).model


class _Engine:
    """One mode's engine graph and the recordings of its forwards that backward has not used yet."""

    def __init__(self, export: _Export) -> None:
        self.export = export
        self.graph: GraphView = _onnx.load(export.model)
        self.graph.optimize(remove_identity=False, remove_dropout=False, constant_folding=True, fuse_batchnorm=False,
                            fuse_activation=False)
        self.recordings: collections.OrderedDict[int, Any] = collections.OrderedDict()
        self.tokens = itertools.count()

    def arrange(self, tensors: Sequence[Tensor]) -> list[Tensor]:
        """Signature order -> graph input order."""
        arranged: list[Tensor] = [None] * len(tensors)  # type: ignore[list-item]
        for tensor, position in zip(tensors, self.export.order):
            arranged[position] = tensor
        return arranged

    def run(self, tensors: Sequence[_tf.Tensor], record: bool) -> tuple[list[Tensor], int]:
        """One forward on ``tensors`` (signature order); a recorded one is kept under the returned token."""
        outputs, recording = self.graph._graph.run_recorded(
            self.arrange([from_tf(t) for t in tensors]), training=False, record=record)
        token = -1
        if record:
            token = next(self.tokens)
            self.recordings[token] = (recording, [(t.shape, t.dtype) for t in tensors])
            while len(self.recordings) > _KEPT_RECORDINGS:
                self.recordings.popitem(last=False)
        return outputs, token

    def backward(self, token: int, seeds: Sequence[_tf.Tensor], wanted: Sequence[int]) -> list[_tf.Tensor]:
        """The gradients of the signature entries ``wanted`` (zeros where none flows) for the forward ``token``."""
        recording, inputs = self.recordings.pop(token, (None, []))
        if recording is None:
            raise RuntimeError(
                "aidge.keras: this forward's activations are gone: it was already back-propagated, or more than "
                f"{_KEPT_RECORDINGS} training-mode forwards ran after it without a backward")
        engine = self.graph._graph
        engine.reset_grad()
        positions = [self.export.order[k] for k in wanted]
        seeds = [from_tf(s) for s in seeds] + [None] * (len(self.graph.outputs) - len(seeds))  # no seed for the state
        grads = engine.backward_recorded(recording, seeds, inputs=positions)
        return [to_tf(g) if g is not None else _tf.zeros(*inputs[k]) for k, g in zip(wanted, grads)]


class EngineModel(_keras.Model):
    """A Keras model whose forward and backward run in the engine over the wrapped model's own variables:
    ``fit``, ``predict``, ``evaluate``, any optimizer, ``save_weights``/``load_weights`` act on them."""

    def __init__(self, model: _keras.Model, specs: list[_tf.TensorSpec], **kwargs: Any) -> None:
        super().__init__(name=kwargs.pop("name", f"aidge_{model.name}"), **kwargs)
        self.wrapped = model
        self._specs = specs
        self._inference = _Engine(_Export(model, specs, training=False))
        self._training = _Engine(_Export(model, specs, training=True))
        # Planned once now, on a batch of one: an operator the engine lacks is reported by wrap().
        variables = [v.value for v in model.trainable_variables + model.non_trainable_variables]
        for engine in (self._inference, self._training):
            zeros = [_tf.zeros([1] + list(s.shape[1:]), s.dtype) for s in specs]
            engine.run(zeros + variables, record=False)

    def _check(self, inputs: Any) -> list[_tf.Tensor]:
        flat = _tf.nest.flatten(inputs)
        if len(flat) != len(self._specs):
            raise ValueError(f"the wrapped model takes {len(self._specs)} inputs, got {len(flat)}")
        tensors = []
        for k, (x, spec) in enumerate(zip(flat, self._specs)):
            x = _tf.convert_to_tensor(x)
            if x.dtype != spec.dtype:
                x = _tf.cast(x, spec.dtype)
            if not spec.shape.is_compatible_with(x.shape):
                raise ValueError(f"input {k} of the wrapped model has shape {tuple(x.shape)}, the model expects "
                                 f"{tuple(spec.shape)}")
            tensors.append(x)
        return tensors

    def _pack(self, engine: _Engine, flat: Sequence[_tf.Tensor]) -> Any:
        return _tf.nest.pack_sequence_as(engine.export.structure, list(flat))

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        xs = self._check(inputs)
        trainable = list(self.wrapped.trainable_variables)
        non_trainable = list(self.wrapped.non_trainable_variables)
        values = [v.value for v in trainable + non_trainable]
        if not training:
            engine = self._inference
            outputs = _tf.py_function(lambda *t: self._infer(engine, t), xs + values,
                                      Tout=[s.dtype for s in engine.export.output_specs])
            return self._pack(engine, self._shaped(engine, outputs))
        engine = self._training
        count, n_x, n_t = engine.export.output_count, len(xs), len(trainable)
        input_shapes = [x.shape for x in xs] + [v.shape for v in values]
        wanted = list(range(n_x + n_t))

        @_tf.custom_gradient
        def run(*tensors: _tf.Tensor) -> Any:
            results = _tf.py_function(
                lambda *t: self._forward(engine, t), list(tensors),
                Tout=[s.dtype for s in engine.export.output_specs] + [v.dtype for v in non_trainable] + [_tf.int64])
            token = results[-1]
            outs = self._shaped(engine, results[:count])
            state = [_tf.ensure_shape(s, v.shape) for s, v in zip(results[count:-1], non_trainable)]

            def grad(*upstream: _tf.Tensor) -> list[_tf.Tensor | None]:
                grads = _tf.py_function(
                    lambda token, *seeds: engine.backward(int(token.numpy()), seeds, wanted),
                    [token] + list(upstream[:count]), Tout=[t.dtype for t in tensors[:n_x + n_t]])
                shaped = [_tf.ensure_shape(g, s) for g, s in zip(grads, input_shapes)]
                return shaped + [None] * (len(tensors) - len(shaped))

            return tuple(outs) + tuple(state), grad

        results = run(*xs, *values)
        for variable, value in zip(non_trainable, results[count:]):
            variable.assign(value)
        return self._pack(engine, results[:count])

    @staticmethod
    def _shaped(engine: _Engine, outputs: Sequence[_tf.Tensor]) -> list[_tf.Tensor]:
        """``py_function``'s outputs with their static shapes (it knows none)."""
        for o, spec in zip(outputs, engine.export.output_specs):
            o.set_shape(spec.shape)
        return list(outputs)

    @staticmethod
    def _infer(engine: _Engine, tensors: Sequence[_tf.Tensor]) -> list[_tf.Tensor]:
        outputs, _ = engine.run(tensors, record=False)
        return [to_tf(o) for o in outputs]

    @staticmethod
    def _forward(engine: _Engine, tensors: Sequence[_tf.Tensor]) -> list[_tf.Tensor]:
        outputs, token = engine.run(tensors, record=True)
        return [to_tf(o) for o in outputs] + [_tf.constant(token, _tf.int64)]


def wrap(model: _keras.Model, *, input_signature: Any = None) -> EngineModel:
    """A Keras model that runs ``model`` in the engine, forward and backward, over ``model``'s own variables.

    ``input_signature``: a ``tf.TensorSpec`` (or ``keras.InputSpec``) per input, needed for a model that was never
    built or does not declare its inputs (a subclassed model); the batch dimension is always dynamic."""
    _require_tensorflow_backend()
    if not isinstance(model, _keras.Model):
        raise TypeError(f"aidge.keras.wrap takes a keras.Model, got {type(model).__name__}")
    return EngineModel(model, _input_specs(model, input_signature))
