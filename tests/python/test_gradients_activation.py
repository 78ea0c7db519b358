"""Backward of the activations against PyTorch autograd (float32)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradient_support import check_gradients


def values(shape, seed, scale=3.0, kinks=(0.0,), gap=1e-3):
    """Random values, none within ``gap`` of a kink (where the one-sided choice would decide the comparison)."""
    x = np.random.default_rng(seed).standard_normal(shape) * scale
    for k in kinks:
        near = np.abs(x - k) < gap
        x[near] = k + np.where(x[near] < k, -gap, gap)
    return np.asarray(x, dtype=np.float32)


SHAPES = [(4, 5, 6), (1000,), (3, 37)]


@pytest.mark.parametrize("shape", SHAPES)
def test_relu(shape) -> None:
    check_gradients("Relu", [values(shape, 1)], torch.relu)


@pytest.mark.parametrize("shape", SHAPES)
def test_smooth(shape) -> None:
    x = values(shape, 2)
    check_gradients("Sigmoid", [x], torch.sigmoid)
    check_gradients("Tanh", [x], torch.tanh)
    check_gradients("Softplus", [x], F.softplus)
    check_gradients("Gelu", [x], F.gelu)
    check_gradients("Gelu", [x], lambda t: F.gelu(t, approximate="tanh"), approximate="tanh")
    wide = values(shape, 3, scale=8.0)
    check_gradients("Gelu", [wide], F.gelu)
    check_gradients("Gelu", [wide], lambda t: F.gelu(t, approximate="tanh"), approximate="tanh")


@pytest.mark.parametrize("alpha", [0.01, 0.3])
def test_leaky_relu(alpha) -> None:
    x = values((4, 5, 6), 4)
    check_gradients("LeakyRelu", [x], lambda t: F.leaky_relu(t, alpha), alpha=alpha)


@pytest.mark.parametrize("alpha", [1.0, 0.4])
def test_elu(alpha) -> None:
    x = values((4, 5, 6), 5)
    check_gradients("Elu", [x], lambda t: F.elu(t, alpha), alpha=alpha)


def test_selu() -> None:
    x = values((4, 5, 6), 6)
    check_gradients("Selu", [x], F.selu)
    check_gradients(
        "Selu", [x], lambda t: 2.0 * torch.where(t > 0, t, 1.5 * torch.expm1(t)), alpha=1.5, gamma=2.0
    )


def test_hard_swish() -> None:
    check_gradients("HardSwish", [values((4, 5, 6), 7, kinks=(-3.0, 3.0))], F.hardswish)


@pytest.mark.parametrize("alpha, beta", [(0.2, 0.5), (1 / 6, 0.5), (0.5, 0.25)])
def test_hard_sigmoid(alpha, beta) -> None:
    kinks = (-beta / alpha, (1 - beta) / alpha)
    x = values((4, 5, 6), 8, kinks=kinks)
    check_gradients(
        "HardSigmoid", [x], lambda t: torch.clamp(alpha * t + beta, 0.0, 1.0), alpha=alpha, beta=beta
    )


def test_hard_sigmoid_matches_torch_hardsigmoid() -> None:
    x = values((4, 5, 6), 9, kinks=(-3.0, 3.0))
    check_gradients("HardSigmoid", [x], F.hardsigmoid, alpha=1 / 6, beta=0.5)


@pytest.mark.parametrize("bounds", [(-1.0, 0.5), (None, 0.5), (-1.0, None), (None, None), (0.5, -1.0)])
def test_clip(bounds) -> None:
    lo, hi = bounds
    x = values((4, 5, 6), 10, kinks=tuple(b for b in bounds if b is not None))
    # Exact bound values too: torch.clamp passes the gradient there.
    x.flat[:4] = [lo if lo is not None else 0.0, hi if hi is not None else 0.0, 7.0, -7.0]
    inputs = [x, None if lo is None else np.float32(lo), None if hi is None else np.float32(hi)]
    while inputs[-1] is None and len(inputs) > 1:
        inputs.pop()
    constants = tuple(i for i in (1, 2) if i < len(inputs) and inputs[i] is not None)

    def clamp(t, lo_value=None, hi_value=None):
        # With min > max every element becomes max, and no gradient passes (as ONNX's Clip).
        if lo_value is None and hi_value is None:
            return t.clone()
        lo_f = None if lo_value is None else float(lo_value)
        hi_f = None if hi_value is None else float(hi_value)
        # The gradient passes at the bounds themselves (torch 2.13's clamp; 2.15's gives 0 there): built by
        # hand so the reference does not depend on the torch version.
        inside = torch.ones_like(t, dtype=torch.bool)
        if lo_f is not None:
            inside &= t >= lo_f
        if hi_f is not None:
            inside &= t <= hi_f
        return torch.where(inside, t, torch.clamp(t, lo_f, hi_f).detach())

    check_gradients("Clip", inputs, clamp, constants=constants)


@pytest.mark.parametrize("x_shape, slope_shape", [((2, 3, 4, 4), (3, 1, 1)), ((2, 3, 4, 4), (1,)), ((5, 6), (6,)), ((5, 6), (5, 6))])
def test_prelu(x_shape, slope_shape) -> None:
    x = values(x_shape, 11)
    slope = np.asarray(np.random.default_rng(12).standard_normal(slope_shape) * 0.5, dtype=np.float32)
    check_gradients("PRelu", [x, slope], lambda t, s: torch.where(t > 0, t, t * s))


def test_prelu_channels_matches_torch_prelu() -> None:
    x = values((2, 3, 4, 4), 13)
    slope = np.asarray([0.1, -0.2, 0.3], dtype=np.float32)
    check_gradients("PRelu", [x, slope.reshape(3, 1, 1)], lambda t, s: F.prelu(t, s.reshape(3)))


@pytest.mark.parametrize("op, fn", [("Softmax", torch.softmax), ("LogSoftmax", torch.log_softmax)])
@pytest.mark.parametrize("shape, axis", [((3, 4, 5), 0), ((3, 4, 5), 1), ((3, 4, 5), 2), ((3, 4, 5), -1), ((7,), 0), ((2, 300, 3), 1), ((4, 70), -1), ((300, 3), 0)])
def test_softmax(op, fn, shape, axis) -> None:
    x = values(shape, 14)
    check_gradients(op, [x], lambda t: fn(t, axis), axis=axis)


def test_softmax_default_axis() -> None:
    x = values((3, 4, 5), 15)
    check_gradients("Softmax", [x], lambda t: torch.softmax(t, -1))
    check_gradients("LogSoftmax", [x], lambda t: torch.log_softmax(t, -1))
