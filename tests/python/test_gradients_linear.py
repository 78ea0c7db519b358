"""Backward of Gemm and MatMul against PyTorch autograd."""

import numpy as np
import pytest
import torch

from gradient_support import check_gradients


def _random(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_transposes(trans_a: int, trans_b: int) -> None:
    rng = np.random.default_rng(1)
    a = _random(rng, 4, 3) if trans_a else _random(rng, 3, 4)
    b = _random(rng, 5, 4) if trans_b else _random(rng, 4, 5)
    c = _random(rng, 3, 5)

    def gemm(a, b, c):
        return 0.5 * ((a.T if trans_a else a) @ (b.T if trans_b else b)) + 1.5 * c

    check_gradients("Gemm", [a, b, c], gemm, transA=trans_a, transB=trans_b, alpha=0.5, beta=1.5)


@pytest.mark.parametrize("c_shape", [(7,), (1, 7), (6, 1), (1,), (6, 7)])
def test_gemm_broadcast_c(c_shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(2)
    a, b, c = _random(rng, 6, 5), _random(rng, 7, 5), _random(rng, *c_shape)
    check_gradients("Gemm", [a, b, c], lambda a, b, c: a @ b.T + 2.0 * c, transB=1, beta=2.0)


def test_gemm_without_c() -> None:
    rng = np.random.default_rng(3)
    check_gradients("Gemm", [_random(rng, 6, 5), _random(rng, 5, 4)], lambda a, b: a @ b)


def test_linear_layer() -> None:
    """A fully-connected layer, torch.nn.functional.linear = Gemm with transB."""
    rng = np.random.default_rng(4)
    x, w, b = _random(rng, 32, 784), _random(rng, 256, 784) * 0.05, _random(rng, 256)
    check_gradients("Gemm", [x, w, b], torch.nn.functional.linear, transB=1)


def test_linear_layer_first() -> None:
    """The input is a constant (a first layer): only W and B get gradients."""
    rng = np.random.default_rng(5)
    x, w, b = _random(rng, 16, 40), _random(rng, 24, 40), _random(rng, 24)
    def linear(x, w, b):
        return torch.nn.functional.linear(torch.from_numpy(x), w, b)

    check_gradients("Gemm", [x, w, b], linear, constants=[0], transB=1)


@pytest.mark.parametrize(
    "a_shape, b_shape",
    [
        ((3, 4), (4, 5)),
        ((4,), (4, 5)),
        ((3, 4), (4,)),
        ((4,), (4,)),
        ((4,), (2, 4, 3)),
        ((2, 3, 4), (4,)),
        ((2, 3, 4, 5), (5, 6)),
        ((4, 5), (2, 3, 5, 6)),
        ((3, 1, 4, 5), (1, 2, 5, 6)),
        ((2, 3, 4), (2, 4, 5)),
        ((1, 3, 4), (2, 1, 4, 2)),
        ((64, 96), (96, 80)),
        ((8, 40, 30), (30, 50)),
    ],
)
def test_matmul(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(6)
    check_gradients("MatMul", [_random(rng, *a_shape), _random(rng, *b_shape)], torch.matmul)
