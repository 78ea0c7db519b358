"""Backward of the normalisations against PyTorch autograd; BatchNormalization's running statistics against
torch's running_mean / running_var."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import aidge
from gradient_support import assert_matches_torch, check_gradients


def _rng(seed):
    return np.random.default_rng(seed)


def _batch_norm_inputs(shape, seed=0, dtype=np.float32):
    rng = _rng(seed)
    c = shape[1]
    return (
        (rng.standard_normal(shape) * 2 + 0.5).astype(dtype),
        (rng.standard_normal(c) + 1).astype(dtype),
        rng.standard_normal(c).astype(dtype),
        rng.standard_normal(c).astype(dtype),
        (rng.random(c) + 0.5).astype(dtype),
    )


@pytest.mark.parametrize("shape", [(8, 4, 5, 5), (16, 3), (4, 6, 33)])
def test_batch_norm_training(shape) -> None:
    x, w, b, mean, var = _batch_norm_inputs(shape, seed=len(shape))
    torch_momentum = 0.1
    running_mean, running_var = mean.copy(), var.copy()
    seed = _rng(10).standard_normal(shape).astype(np.float32)

    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    torch_mean, torch_var = torch.tensor(mean), torch.tensor(var)
    y = F.batch_norm(xt, torch_mean, torch_var, wt, bt, training=True, momentum=torch_momentum, eps=1e-5)
    y.backward(torch.from_numpy(seed))

    # An ONNX model exported from PyTorch carries momentum = 1 - torch_momentum.
    outputs, grads = aidge.gradients(
        "BatchNormalization", [x, w, b, running_mean, running_var], [seed], training=True,
        momentum=1 - torch_momentum, epsilon=1e-5,
    )
    assert_matches_torch(np.asarray(outputs[0]), y.detach().numpy(), "BatchNormalization output")
    for i, leaf in enumerate((xt, wt, bt)):
        assert_matches_torch(np.asarray(grads[i]), leaf.grad.numpy(), f"BatchNormalization gradient {i}")
    # The running statistics are updated in the arrays passed.
    assert_matches_torch(running_mean, torch_mean.numpy(), "running_mean")
    assert_matches_torch(running_var, torch_var.numpy(), "running_var")


def test_batch_norm_eval() -> None:
    x, w, b, mean, var = _batch_norm_inputs((4, 5, 6, 7), seed=3)
    check_gradients(
        "BatchNormalization", [x, w, b, mean, var],
        lambda x, w, b, m, v: F.batch_norm(x, torch.from_numpy(m), torch.from_numpy(v), w, b, training=False, eps=1e-3),
        constants=(3, 4), epsilon=1e-3,
    )
    # Fed running statistics are left unchanged in evaluation.
    before = (mean.copy(), var.copy())
    aidge.gradients("BatchNormalization", [x, w, b, mean, var], [np.ones_like(x)])
    np.testing.assert_array_equal(mean, before[0])
    np.testing.assert_array_equal(var, before[1])


def _layer_norm_reference(axis, eps):
    """Y, Mean and InvStdDev as LayerNormalization defines them, in torch."""
    def fn(x, w, b=None):
        dims = tuple(range(axis % x.dim(), x.dim()))
        mean = x.mean(dim=dims, keepdim=True)
        inv = torch.rsqrt(x.var(dim=dims, unbiased=False, keepdim=True) + eps)
        shape = x.shape[axis % x.dim():]
        y = F.layer_norm(x, shape, w.expand(shape) if w is not None else None,
                         b.expand(shape) if b is not None else None, eps)
        return y, mean, inv
    return fn


def test_layer_norm() -> None:
    rng = _rng(4)
    x = rng.standard_normal((4, 6, 20)).astype(np.float32)
    w = (rng.standard_normal(20) + 1).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    check_gradients("LayerNormalization", [x, w, b], _layer_norm_reference(-1, 1e-5), axis=-1)


def test_layer_norm_two_axes_broadcast_scale_no_bias() -> None:
    rng = _rng(5)
    x = rng.standard_normal((3, 5, 4, 9)).astype(np.float32)
    w = (rng.standard_normal((1, 9)) + 1).astype(np.float32)
    check_gradients(
        "LayerNormalization", [x, w], lambda x, w: _layer_norm_reference(2, 1e-3)(x, w), axis=2, epsilon=1e-3,
    )


def test_instance_norm() -> None:
    rng = _rng(6)
    x = (rng.standard_normal((3, 4, 7, 6)) * 3 + 1).astype(np.float32)
    w = (rng.standard_normal(4) + 1).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    check_gradients(
        "InstanceNormalization", [x, w, b], lambda x, w, b: F.instance_norm(x, weight=w, bias=b, eps=1e-5),
    )
    x1 = rng.standard_normal((2, 3, 40)).astype(np.float64)
    check_gradients(
        "InstanceNormalization", [x1, w[:3].astype(np.float64), b[:3].astype(np.float64)],
        lambda x, w, b: F.instance_norm(x, weight=w, bias=b, eps=1e-2), epsilon=1e-2,
    )
