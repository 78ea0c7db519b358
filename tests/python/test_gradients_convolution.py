"""Backward of Conv and ConvTranspose against PyTorch autograd (torch.nn.functional.conv1d/2d/3d and
conv_transpose1d/2d; ONNX's asymmetric and automatic pads as an explicit torch pad or crop)."""

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradient_support import check_gradients

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _random(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _same_pads(size: list[int], kernel: list[int], strides: list[int], dilations: list[int], upper: bool) -> list[int]:
    begin, end = [], []
    for n, k, s, d in zip(size, kernel, strides, dilations):
        out = (n + s - 1) // s
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - n)
        small = total // 2
        begin.append(small if upper else total - small)
        end.append(total - begin[-1])
    return begin + end


def _torch_pad(pads: list[int]) -> list[int]:
    """ONNX pads (begins, then ends) as torch.nn.functional.pad's (last axis first)."""
    n = len(pads) // 2
    out: list[int] = []
    for i in reversed(range(n)):
        out += [pads[i], pads[n + i]]
    return out


def check_conv(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...], *, bias: bool = True, constants: tuple[int, ...] = (),
    seed: int = 0, **attributes: Any,
) -> None:
    rng = np.random.default_rng(seed)
    rank = len(x_shape) - 2
    x = _random(rng, *x_shape)
    w = _random(rng, *w_shape, scale=0.3)
    inputs = [x, w] + ([_random(rng, w_shape[0])] if bias else [])
    strides = attributes.get("strides", [1] * rank)
    dilations = attributes.get("dilations", [1] * rank)
    auto_pad = attributes.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = _same_pads(list(x_shape[2:]), list(w_shape[2:]), strides, dilations, auto_pad == "SAME_UPPER")
    else:
        pads = attributes.get("pads", [0] * 2 * rank) if auto_pad == "NOTSET" else [0] * 2 * rank
    group = attributes.get("group", 1)

    def conv(x, w, b=None):
        x = torch.as_tensor(x)
        return CONV[rank](F.pad(x, _torch_pad(pads)), w, b, stride=strides, dilation=dilations, groups=group)

    check_gradients("Conv", inputs, conv, constants=constants, **attributes)


def test_conv2d_benchmark_layer() -> None:
    check_conv((32, 16, 14, 14), (32, 16, 3, 3), pads=[1, 1, 1, 1])


def test_conv2d_3x3_input_gradient_by_winograd() -> None:
    # 3x3 stride-1 layers of at least 16 channels: dX is a Winograd convolution of dY; any pads up to 2, one
    # image or several per thread, odd sizes.
    check_conv((1, 16, 9, 11), (17, 16, 3, 3), pads=[0, 1, 2, 0])
    check_conv((5, 20, 8, 9), (16, 20, 3, 3), pads=[2, 2, 2, 2], bias=False)
    check_conv((4, 16, 6, 7), (16, 16, 3, 3))


def test_conv2d_strides_dilations_asymmetric_pads() -> None:
    check_conv((2, 3, 9, 8), (4, 3, 3, 2), strides=[2, 3], dilations=[2, 1], pads=[0, 1, 2, 0])


@pytest.mark.parametrize("mode", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_conv2d_auto_pad(mode: str) -> None:
    check_conv((2, 3, 8, 7), (4, 3, 3, 2), auto_pad=mode, strides=[2, 1])


def test_conv2d_groups() -> None:
    check_conv((2, 6, 7, 7), (9, 2, 3, 3), group=3, pads=[1, 1, 1, 1])


@pytest.mark.parametrize("multiplier", [1, 2])
def test_conv2d_depthwise(multiplier: int) -> None:
    check_conv((4, 8, 12, 12), (8 * multiplier, 1, 3, 3), group=8, pads=[1, 1, 1, 1])
    check_conv((2, 4, 11, 10), (4 * multiplier, 1, 3, 3), group=4, strides=[2, 2], dilations=[1, 2], pads=[1, 2, 0, 1])


def test_conv2d_pointwise() -> None:
    check_conv((4, 16, 7, 7), (24, 16, 1, 1))


def test_conv2d_first_layer() -> None:
    """One input channel, the image a constant: gradients of W and B only."""
    check_conv((8, 1, 28, 28), (16, 1, 5, 5), constants=(0,), pads=[2, 2, 2, 2])


def test_conv2d_single_image_no_bias() -> None:
    check_conv((1, 8, 10, 10), (12, 8, 3, 3), bias=False, pads=[1, 1, 1, 1])


def test_conv1d() -> None:
    check_conv((3, 4, 20), (6, 4, 5), strides=[2], pads=[2, 1], dilations=[2])
    check_conv((3, 4, 20), (4, 1, 3), group=4, pads=[1, 1])


def test_conv3d() -> None:
    check_conv((2, 3, 5, 6, 5), (4, 3, 2, 3, 2), pads=[1, 0, 1, 0, 1, 0], strides=[1, 2, 1])


def check_conv_transpose(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...], *, bias: bool = True, seed: int = 0, **attributes: Any,
) -> None:
    rng = np.random.default_rng(seed)
    rank = len(x_shape) - 2
    group = attributes.get("group", 1)
    x = _random(rng, *x_shape)
    w = _random(rng, *w_shape, scale=0.3)
    inputs = [x, w] + ([_random(rng, w_shape[1] * group)] if bias else [])
    strides = attributes.get("strides", [1] * rank)
    dilations = attributes.get("dilations", [1] * rank)
    output_padding = attributes.get("output_padding", [0] * rank)
    pads = attributes.get("pads", [0] * 2 * rank)

    def conv_transpose(x, w, b=None):
        # The full result, then ONNX's (possibly asymmetric) crop.
        y = CONV_TRANSPOSE[rank](
            x, w, b, stride=strides, output_padding=output_padding, groups=group, dilation=dilations
        )
        index = [slice(None), slice(None)] + [
            slice(pads[i], y.shape[2 + i] - pads[rank + i]) for i in range(rank)
        ]
        return y[tuple(index)]

    check_gradients("ConvTranspose", inputs, conv_transpose, **attributes)


def test_conv_transpose2d() -> None:
    check_conv_transpose((4, 16, 7, 7), (16, 8, 3, 3), pads=[1, 1, 1, 1])


def test_conv_transpose2d_strides_output_padding() -> None:
    check_conv_transpose((2, 3, 5, 6), (3, 4, 3, 3), strides=[2, 3], pads=[1, 0, 0, 1], output_padding=[1, 2])


def test_conv_transpose2d_dilations_groups() -> None:
    check_conv_transpose((2, 6, 5, 5), (6, 2, 3, 2), group=3, dilations=[2, 1], strides=[2, 2], pads=[1, 1, 1, 0])
    check_conv_transpose((2, 4, 6, 6), (4, 1, 3, 3), group=4, pads=[1, 1, 1, 1], bias=False)


def test_conv_transpose1d() -> None:
    check_conv_transpose((3, 4, 9), (4, 3, 4), strides=[2], pads=[1, 1], output_padding=[1])
