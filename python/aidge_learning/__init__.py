"""Aidge's ``aidge_learning`` names over the engine's training (see ``aidge.learning``).

Aidge's loop runs unchanged::

    opt = aidge_learning.SGD(momentum=0.9)
    opt.set_learning_rate_scheduler(aidge_learning.constant_lr(0.01))
    opt.set_parameters(list(aidge_core.producers(model)))
    pred = scheduler.forward(data=[x])[0]; opt.reset_grad()
    loss = aidge_learning.loss.MSE(pred, target); scheduler.backward(); opt.update()
"""

from __future__ import annotations

from typing import Any, Iterable

from aidge import learning as _learning
from aidge.learning import LRScheduler, constant_lr, cosine_lr, step_lr  # noqa: F401  (re-exports)

from . import loss  # noqa: F401

__all__ = ["SGD", "Adam", "constant_lr", "step_lr", "cosine_lr", "loss", "LRScheduler"]


def _trainable(parameters: Iterable[Any]) -> list[Any]:
    """Aidge hands every Producer's tensor to the optimizer: the ones that cannot train (integer shapes,
    constants) are left out here; the others are updated when they have a gradient."""
    kept = []
    for p in parameters:
        tensor = p.producer_tensor if hasattr(p, "producer_tensor") else p
        if tensor is not None and tensor.dtype_name in ("float32", "float64") and not tensor.readonly:
            kept.append(p)
    return kept


class SGD(_learning.SGD):
    """``SGD(momentum=0.0, dampening=0.0, weight_decay=0.0)``; the rate comes from the scheduler."""

    def __init__(self, momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0) -> None:
        super().__init__(None, lr=0.01, momentum=momentum, dampening=dampening, weight_decay=weight_decay)

    def set_parameters(self, parameters: Iterable[Any]) -> None:
        super().set_parameters(_trainable(parameters))


class Adam(_learning.Adam):
    """``Adam(beta1=0.9, beta2=0.999, epsilon=1e-8)``; the rate comes from the scheduler."""

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8) -> None:
        super().__init__(None, lr=0.001, betas=(beta1, beta2), eps=epsilon)

    def set_parameters(self, parameters: Iterable[Any]) -> None:
        super().set_parameters(_trainable(parameters))
