"""Dropout's training forward and backward: mask statistics (as torch.nn.functional.dropout's), scaling, and the
identity where nothing drops."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import aidge


def _run(x, ratio, training, mode=None, seed=None):
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(x.dtype)
    inputs = [x, np.array(ratio, dtype=np.float32)]
    constants = [1]
    if mode is not None:
        inputs.append(np.array(mode))
        constants.append(2)
    attributes = {} if seed is None else {"seed": seed}
    outputs, grads = aidge.gradients(
        "Dropout", inputs, [dy], constants=constants, training=training, **attributes)
    return np.asarray(outputs[0]), np.asarray(grads[0]), dy


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_statistics(p: float) -> None:
    x = np.random.default_rng(0).uniform(1, 2, (300, 1000)).astype(np.float32)
    y, dx, dy = _run(x, p, training=True)
    kept = y != 0
    n = x.size
    sigma = np.sqrt(n * p * (1 - p))
    assert abs(kept.sum() - n * (1 - p)) < 5 * sigma
    np.testing.assert_allclose(y[kept], x[kept] / (1 - p), rtol=1e-6)
    np.testing.assert_allclose(dx, np.where(kept, dy / (1 - p), 0), rtol=1e-6)
    # torch's dropout keeps the same fraction.
    torch_kept = (F.dropout(torch.from_numpy(x), p, training=True) != 0).numpy().mean()
    assert abs(kept.mean() - torch_kept) < 10 * sigma / n


def test_dropout_identity_without_dropping() -> None:
    x = np.random.default_rng(2).standard_normal((4, 50)).astype(np.float32)
    for p, training in [(0.0, True), (0.5, False)]:
        y, dx, dy = _run(x, p, training)
        np.testing.assert_array_equal(y, x)
        np.testing.assert_array_equal(dx, dy)


def test_dropout_training_mode_input_overrides_the_graph_mode() -> None:
    x = np.ones((2000,), dtype=np.float32)
    y, _, _ = _run(x, 0.5, training=False, mode=True)
    assert (y == 0).any() and (y == 2).any()
    y, dx, dy = _run(x, 0.5, training=True, mode=False)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(dx, dy)


def test_dropout_seed_is_reproducible() -> None:
    x = np.ones((4096,), dtype=np.float64)
    a, _, _ = _run(x, 0.5, training=True, seed=7)
    b, _, _ = _run(x, 0.5, training=True, seed=7)
    c, _, _ = _run(x, 0.5, training=True, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
