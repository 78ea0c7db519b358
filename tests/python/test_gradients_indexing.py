"""Backward of Gather and GatherElements against PyTorch autograd (repeated indices accumulate)."""

import numpy as np
import torch

from gradient_support import check_gradients


def rand(*shape: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_gather_axis0_embedding() -> None:
    table = rand(10, 16)
    ids = np.array([[1, 3, 3, -1], [0, 9, 1, 1]], dtype=np.int64)
    check_gradients("Gather", [table, ids], lambda t, i: t[i % 10])


def test_gather_index_select() -> None:
    x = rand(3, 5, 4)
    idx = np.array([4, 0, 4, -2], dtype=np.int32)
    check_gradients("Gather", [x, idx], lambda x, i: torch.index_select(x, 1, i.long() % 5), axis=1)
    check_gradients("Gather", [x, idx % 4], lambda x, i: torch.index_select(x, -1, i.long()), axis=-1)


def test_gather_as_constant_indices() -> None:
    x = rand(6, 3)
    idx = np.array([5, 5, 0], dtype=np.int64)
    check_gradients("Gather", [x, idx], lambda x, i: x[torch.from_numpy(i)], constants=(1,))


def test_gather_elements() -> None:
    x = rand(3, 4, 5)
    rng = np.random.default_rng(3)
    for axis in (0, 1, 2, -1):
        size = x.shape[axis]
        shape = list(x.shape)
        shape[axis] = 6  # more indices than the axis holds: repeats
        shape[0 if axis % 3 != 0 else 1] -= 1  # smaller than the data outside the axis
        idx = rng.integers(-size, size, size=shape).astype(np.int64)
        check_gradients(
            "GatherElements", [x, idx], lambda x, i, axis=axis, size=size: torch.gather(x, axis, i % size), axis=axis
        )
