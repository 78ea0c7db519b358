"""Training: optimizers, learning-rate schedules and losses (the numerics run in the engine).

A training loop::

    graph.train()
    opt = aidge.learning.SGD(graph.parameters(), lr=0.1, momentum=0.9)
    for x, y in batches:
        pred = graph(x)[0]
        opt.reset_grad()
        loss = aidge.learning.loss.CELoss(pred, y)
        graph.backward()
        opt.update()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from . import _aidge

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "LRScheduler", "constant_lr", "step_lr", "cosine_lr", "loss",
]


@dataclass(frozen=True)
class LRScheduler:
    """A learning-rate schedule: the rate of update ``t`` (0-based) with an optional linear warm-up."""

    kind: str
    lr: float
    step_size: int = 0
    gamma: float = 0.1
    max_steps: int = 0
    min_decay: float = 0.0
    warmup: int = 0


def constant_lr(lr: float, warmup: int = 0) -> LRScheduler:
    return LRScheduler("constant", lr, warmup=warmup)


def step_lr(lr: float, step_size: int, gamma: float = 0.1, warmup: int = 0) -> LRScheduler:
    """``lr * gamma ** (t // step_size)``."""
    return LRScheduler("step", lr, step_size=step_size, gamma=gamma, warmup=warmup)


def cosine_lr(lr: float, max_steps: int, min_decay: float = 0.0, warmup: int = 0) -> LRScheduler:
    """Cosine from ``lr`` down to ``min_decay * lr`` over ``max_steps`` updates (after the warm-up)."""
    return LRScheduler("cosine", lr, max_steps=max_steps, min_decay=min_decay, warmup=warmup)


def _parameter_list(parameters: Any) -> list[Any]:
    """Tensors or Producer nodes; a GraphView (or engine graph) gives its parameters."""
    if hasattr(parameters, "_graph"):
        parameters = parameters._graph
    if isinstance(parameters, _aidge.Graph):
        return parameters.parameters()
    return list(parameters)


class Optimizer:
    """Updates parameters in place from their gradients; PyTorch's update formulas."""

    def __init__(self, handle: Any, parameters: Any = None) -> None:
        self._handle = handle
        if parameters is not None:
            self.set_parameters(parameters)

    def set_parameters(self, parameters: Iterable[Any]) -> None:
        """The tensors (or Producer nodes, or a graph's parameters) to update. Resets the optimizer's state."""
        self._handle.set_parameters(_parameter_list(parameters))

    def parameters(self) -> list[Any]:
        return self._handle.parameters()

    def set_learning_rate_scheduler(self, scheduler: LRScheduler) -> None:
        if not isinstance(scheduler, LRScheduler):
            raise TypeError(f"expected a schedule from constant_lr/step_lr/cosine_lr, got {type(scheduler).__name__}")
        s = scheduler
        self._handle.set_schedule(
            s.kind, s.lr, step_size=s.step_size, gamma=s.gamma, max_steps=s.max_steps, min_decay=s.min_decay,
            warmup=s.warmup,
        )

    def learning_rate(self) -> float:
        """The learning rate of the next update."""
        return self._handle.learning_rate()

    @property
    def step(self) -> int:
        """Updates done so far."""
        return self._handle.step

    def reset_grad(self) -> None:
        """Empties the parameters' gradients (``zero_grad(set_to_none=True)``)."""
        self._handle.reset_grad()

    zero_grad = reset_grad

    def update(self) -> None:
        """One update of every parameter that has a gradient; the schedule advances."""
        self._handle.update()

    def state_dict(self) -> dict[str, Any]:
        """The step and a copy of every per-parameter buffer, as NumPy arrays."""
        step, buffers = self._handle.state()
        return {"step": step, "buffers": [[np.array(b) for b in per] for per in buffers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from . import from_numpy

        buffers = [[from_numpy(np.ascontiguousarray(b)) for b in per] for per in state["buffers"]]
        self._handle.load_state(int(state["step"]), buffers)


class SGD(Optimizer):
    """SGD with momentum, dampening, Nesterov and weight decay (``torch.optim.SGD``'s rule)."""

    def __init__(self, parameters: Any = None, lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(
            _aidge.optimizer("sgd", lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                             nesterov=nesterov),
            parameters,
        )


class Adam(Optimizer):
    """Adam (``torch.optim.Adam``'s rule); weight decay is added to the gradient."""

    def __init__(self, parameters: Any = None, lr: float = 0.001, betas: Sequence[float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(
            _aidge.optimizer("adam", lr, beta1=betas[0], beta2=betas[1], epsilon=eps, weight_decay=weight_decay),
            parameters,
        )


class AdamW(Optimizer):
    """AdamW: Adam with decoupled weight decay (``torch.optim.AdamW``'s rule and default decay 0.01)."""

    def __init__(self, parameters: Any = None, lr: float = 0.001, betas: Sequence[float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01) -> None:
        super().__init__(
            _aidge.optimizer("adam", lr, beta1=betas[0], beta2=betas[1], epsilon=eps, weight_decay=weight_decay,
                             decoupled_weight_decay=True),
            parameters,
        )


class _Losses:
    """Losses: each returns the loss (a 0-d tensor) and writes the prediction's gradient for ``backward()``."""

    @staticmethod
    def _target(prediction: Any, target: Any) -> Any:
        from . import _as_tensor

        return _as_tensor(target, 1)

    def MSE(self, prediction: Any, target: Any) -> Any:
        """Mean squared error over all elements."""
        return _aidge.loss("mse", prediction, self._target(prediction, target))

    def BCE(self, prediction: Any, target: Any) -> Any:
        """Binary cross-entropy of probabilities, mean over all elements."""
        return _aidge.loss("bce", prediction, self._target(prediction, target))

    def BCEWithLogits(self, prediction: Any, target: Any) -> Any:
        """Binary cross-entropy of logits, mean over all elements."""
        return _aidge.loss("bce_with_logits", prediction, self._target(prediction, target))

    def CELoss(self, prediction: Any, target: Any) -> Any:
        """Cross-entropy of logits against one-hot or probability targets of the same shape (batch mean)."""
        return _aidge.loss("ce", prediction, self._target(prediction, target))

    def cross_entropy(self, prediction: Any, target: Any, label_smoothing: float = 0.0,
                      ignore_index: int = -100) -> Any:
        """Cross-entropy of logits ``[N, C, ...]`` against class indices ``[N, ...]``
        (``torch.nn.functional.cross_entropy``)."""
        return _aidge.loss("ce_indices", prediction, self._target(prediction, target),
                           label_smoothing=label_smoothing, ignore_index=ignore_index)


loss = _Losses()
