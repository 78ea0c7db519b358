"""Backward of the pooling operators against PyTorch autograd."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradient_support import check_gradients


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool2d(ceil_mode: bool) -> None:
    check_gradients(
        "MaxPool",
        [_x((2, 3, 9, 10))],
        lambda x: F.max_pool2d(x, 3, 2, padding=1, ceil_mode=ceil_mode),
        kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=int(ceil_mode),
    )


def test_max_pool2d_dilations_and_rectangular_window() -> None:
    check_gradients(
        "MaxPool",
        [_x((2, 2, 11, 9), seed=1)],
        lambda x: F.max_pool2d(x, (2, 3), (1, 2), padding=(1, 0), dilation=(2, 1)),
        kernel_shape=[2, 3], strides=[1, 2], pads=[1, 0, 1, 0], dilations=[2, 1],
    )


def test_max_pool1d() -> None:
    check_gradients(
        "MaxPool",
        [_x((3, 4, 17), seed=2)],
        lambda x: F.max_pool1d(x, 3, 2, padding=1, ceil_mode=True),
        kernel_shape=[3], strides=[2], pads=[1, 1], ceil_mode=1,
    )


def test_max_pool_ties_go_to_the_first_maximum() -> None:
    # Few distinct values: many windows hold their maximum twice.
    x = np.random.default_rng(3).integers(0, 3, (2, 3, 8, 8)).astype(np.float32)
    check_gradients(
        "MaxPool", [x], lambda x: F.max_pool2d(x, 3, 1), kernel_shape=[3, 3], strides=[1, 1],
    )
    check_gradients(
        "MaxPool", [x], lambda x: F.max_pool2d(x, 2, 2), kernel_shape=[2, 2], strides=[2, 2],
    )


@pytest.mark.parametrize("count_include_pad", [False, True])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_avg_pool2d(count_include_pad: bool, ceil_mode: bool) -> None:
    check_gradients(
        "AveragePool",
        [_x((2, 3, 10, 9), seed=4)],
        lambda x: F.avg_pool2d(x, 3, 2, padding=1, ceil_mode=ceil_mode, count_include_pad=count_include_pad),
        kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=int(ceil_mode),
        count_include_pad=int(count_include_pad),
    )


def test_avg_pool1d_and_rectangular() -> None:
    check_gradients(
        "AveragePool",
        [_x((2, 3, 13), seed=5)],
        lambda x: F.avg_pool1d(x, 4, 3, ceil_mode=True),
        kernel_shape=[4], strides=[3], ceil_mode=1,
    )
    check_gradients(
        "AveragePool",
        [_x((2, 2, 8, 12), seed=6)],
        lambda x: F.avg_pool2d(x, (2, 4), (2, 3), padding=(1, 2), count_include_pad=True),
        kernel_shape=[2, 4], strides=[2, 3], pads=[1, 2, 1, 2], count_include_pad=1,
    )


def test_global_pools() -> None:
    x = _x((3, 4, 5, 6), seed=7)
    check_gradients("GlobalAveragePool", [x], lambda x: x.mean(dim=(2, 3), keepdim=True))
    check_gradients("GlobalMaxPool", [x], lambda x: F.adaptive_max_pool2d(x, 1))


def test_float64() -> None:
    x = np.random.default_rng(8).standard_normal((2, 2, 7, 7))
    check_gradients(
        "MaxPool", [x], lambda x: F.max_pool2d(x, 2, 2, ceil_mode=True), kernel_shape=[2, 2], strides=[2, 2],
        ceil_mode=1,
    )
    check_gradients(
        "AveragePool", [x], lambda x: F.avg_pool2d(x, 3, 2, padding=1, count_include_pad=False), kernel_shape=[3, 3], strides=[2, 2],
        pads=[1, 1, 1, 1],
    )
