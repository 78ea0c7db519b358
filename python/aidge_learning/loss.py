"""Aidge's losses: each returns the loss and writes the prediction's gradient for ``backward()``."""

from __future__ import annotations

from typing import Any

from aidge.learning import loss as _loss


def MSE(prediction: Any, target: Any) -> Any:
    return _loss.MSE(prediction, target)


def BCE(prediction: Any, target: Any) -> Any:
    return _loss.BCE(prediction, target)


def CELoss(prediction: Any, target: Any) -> Any:
    return _loss.CELoss(prediction, target)
