"""Backward of the reductions against PyTorch autograd (float32), over axis sets, keepdims, and axes given as an
input (opset 18) or as an attribute."""

import numpy as np
import pytest
import torch

from gradient_support import check_gradients


def prod(t, dims, keepdim):
    # torch.prod takes one dimension at a time; the chain's gradient is the same product rule.
    for d in sorted((d % t.dim() for d in dims), reverse=True):
        t = torch.prod(t, d, keepdim=True)
    return t if keepdim else t.reshape([n for i, n in enumerate(t.shape) if i not in {d % t.dim() for d in dims}])


TORCH = {
    "ReduceSum": lambda t, d, k: torch.sum(t, d, keepdim=k),
    "ReduceMean": lambda t, d, k: torch.mean(t, d, keepdim=k),
    "ReduceMax": lambda t, d, k: torch.amax(t, d, keepdim=k),
    "ReduceMin": lambda t, d, k: torch.amin(t, d, keepdim=k),
    "ReduceProd": prod,
    "ReduceL1": lambda t, d, k: torch.sum(torch.abs(t), d, keepdim=k),
    "ReduceL2": lambda t, d, k: torch.linalg.vector_norm(t, 2, d, keepdim=k),
    "ReduceSumSquare": lambda t, d, k: torch.sum(t * t, d, keepdim=k),
    "ReduceLogSum": lambda t, d, k: torch.log(torch.sum(t, d, keepdim=k)),
    "ReduceLogSumExp": lambda t, d, k: torch.logsumexp(t, d, keepdim=k),
}

AXES = [None, (0,), (1,), (2,), (-1,), (0, 2), (1, 2), (0, 1, 2)]


def data(op, shape, seed):
    rng = np.random.default_rng(seed)
    if op == "ReduceLogSum":
        x = rng.uniform(0.2, 2.0, shape)
    elif op == "ReduceProd":
        x = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
    else:
        x = rng.standard_normal(shape)
    if op == "ReduceL1":
        x = np.where(x < 0, x - 0.05, x + 0.05)
    return np.asarray(x, dtype=np.float32)


def reference(op, rank, axes, keepdims):
    dims = tuple(range(rank)) if axes is None else axes
    fn = TORCH[op]
    return lambda t, *_: fn(t, dims, bool(keepdims))


@pytest.mark.parametrize("op", list(TORCH))
@pytest.mark.parametrize("axes", AXES)
@pytest.mark.parametrize("keepdims", [0, 1])
def test_axes_input(op, axes, keepdims) -> None:
    x = data(op, (3, 4, 5), 1)
    inputs = [x] if axes is None else [x, np.array(axes, dtype=np.int64)]
    constants = () if axes is None else (1,)
    check_gradients(op, inputs, reference(op, 3, axes, keepdims), constants=constants, keepdims=keepdims)


@pytest.mark.parametrize("op", list(TORCH))
@pytest.mark.parametrize("axes", [(1,), (0, 2)])
def test_axes_attribute(op, axes) -> None:
    x = data(op, (3, 4, 5), 2)
    check_gradients(op, [x], reference(op, 3, axes, 0), axes=list(axes), keepdims=0)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceLogSumExp", "ReduceL2"])
@pytest.mark.parametrize("shape, axes", [((64, 520), (0,)), ((64, 520), (1,)), ((40000,), (0,)), ((8, 300, 5), (1,))])
def test_large(op, shape, axes) -> None:
    x = data(op, shape, 3)
    check_gradients(op, [x], reference(op, len(shape), axes, 1), axes=list(axes))


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
@pytest.mark.parametrize("axes", [None, (1,), (0, 2)])
def test_ties_split_evenly(op, axes) -> None:
    # Values on a coarse grid: slices hold their extreme several times; amax / amin share the gradient evenly.
    x = np.asarray(np.random.default_rng(4).integers(-1, 2, (3, 4, 5)), dtype=np.float32)
    kwargs = {} if axes is None else {"axes": list(axes)}
    check_gradients(op, [x], reference(op, 3, axes, 1), **kwargs)


@pytest.mark.parametrize("axes", [None, (0,), (1,)])
def test_prod_with_zeros(axes) -> None:
    x = np.array([[2.0, 0.0, 3.0], [0.0, 0.0, 5.0], [1.5, -2.0, 0.5], [4.0, 0.0, -1.0]], dtype=np.float32)
    kwargs = {} if axes is None else {"axes": list(axes)}
    check_gradients("ReduceProd", [x], reference("ReduceProd", 2, axes, 1), **kwargs)


@pytest.mark.parametrize(
    "op, fn",
    [
        ("ReduceSum", lambda t: t),
        ("ReduceMean", lambda t: t),
        ("ReduceMax", lambda t: t),
        ("ReduceL1", torch.abs),
        ("ReduceL2", torch.abs),
        ("ReduceSumSquare", lambda t: t * t),
        ("ReduceLogSumExp", lambda t: t),
        ("ReduceProd", lambda t: t),
    ],
)
def test_noop_with_empty_axes(op, fn) -> None:
    x = data("ReduceL1", (3, 4), 5)
    check_gradients(op, [x], fn, noop_with_empty_axes=1)
