"""Backward of the element-wise operators against PyTorch autograd (float32), with NumPy broadcasting."""

import functools

import numpy as np
import pytest
import torch

from gradient_support import check_gradients

# Same shapes, trailing, middle and two-sided broadcasting, and scalars on either side.
SHAPES = [
    ((3, 4), (3, 4)),
    ((3, 4), (4,)),
    ((4,), (3, 4)),
    ((2, 1, 5), (3, 1)),
    ((4, 1), (1, 3)),
    ((), (2, 3)),
    ((2, 3), ()),
    ((2, 3, 4), (1, 3, 1)),
    ((64, 33), (33,)),
    # A short kept innermost run (per-channel operands of channels-last tensors) under several broadcast
    # dimensions, and large enough to be split between threads at uneven points.
    ((8, 3, 16, 5), (3, 1, 5)),
    ((2, 33, 17, 3), (33, 1, 3)),
    ((37, 29, 31, 3), (3,)),
]


def normal(shape, seed, scale=1.0, shift=0.0):
    rng = np.random.default_rng(seed)
    return np.asarray(rng.standard_normal(shape) * scale + shift, dtype=np.float32)


def away_from_zero(shape, seed, gap=0.3):
    x = normal(shape, seed)
    return np.where(x < 0, x - gap, x + gap).astype(np.float32)


@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("op, fn", [("Add", torch.add), ("Sub", torch.sub), ("Mul", torch.mul)])
def test_arithmetic(op, fn, shapes) -> None:
    check_gradients(op, [normal(shapes[0], 1), normal(shapes[1], 2)], fn)


@pytest.mark.parametrize("shapes", SHAPES)
def test_div(shapes) -> None:
    check_gradients("Div", [normal(shapes[0], 3), away_from_zero(shapes[1], 4, gap=0.5)], torch.div)


@pytest.mark.parametrize("shapes", SHAPES)
def test_pow(shapes) -> None:
    rng = np.random.default_rng(5)
    base = np.asarray(rng.uniform(0.3, 2.0, shapes[0]), dtype=np.float32)
    check_gradients("Pow", [base, normal(shapes[1], 6)], torch.pow)


def test_pow_negative_base_integer_exponents() -> None:
    base = away_from_zero((3, 4), 7)
    exponent = np.array([2.0, 3.0, 0.0, 1.0], dtype=np.float32)
    check_gradients("Pow", [base, exponent], lambda a, b: torch.pow(a, torch.from_numpy(b)), constants=(1,))
    check_gradients("Pow", [base, np.array(3, dtype=np.int64)], torch.pow)


def test_same_value_read_twice() -> None:
    x = normal((4, 5), 8)
    check_gradients("Mul", [x, x], lambda a, b: a * b)


def broadcast_stack(xs):
    return torch.stack(torch.broadcast_tensors(*xs))


VARIADIC_SHAPES = [[(2, 3, 4)], [(2, 3, 4), (3, 1)], [(2, 3, 4), (3, 1), (4,)], [(5,), (5,), (5,), ()]]


@pytest.mark.parametrize("shapes", VARIADIC_SHAPES)
def test_sum_mean(shapes) -> None:
    xs = [normal(s, 10 + i) for i, s in enumerate(shapes)]
    check_gradients("Sum", xs, lambda *ts: functools.reduce(torch.add, ts))
    check_gradients("Mean", xs, lambda *ts: broadcast_stack(ts).mean(0))


@pytest.mark.parametrize("shapes", VARIADIC_SHAPES)
@pytest.mark.parametrize("ties", [False, True])
def test_max_min(shapes, ties) -> None:
    rng = np.random.default_rng(20)
    if ties:
        # Values on a coarse grid: many elements tie between inputs.
        xs = [np.asarray(rng.integers(-2, 3, s) / 2, dtype=np.float32) for s in shapes]
    else:
        xs = [normal(s, 20 + i) for i, s in enumerate(shapes)]
    if len(xs) == 2:
        # torch.maximum / minimum: equal inputs get half the gradient each.
        check_gradients("Max", xs, torch.maximum)
        check_gradients("Min", xs, torch.minimum)
    else:
        # amax / amin over the stacked inputs: ties share the gradient evenly.
        check_gradients("Max", xs, lambda *ts: broadcast_stack(ts).amax(0))
        check_gradients("Min", xs, lambda *ts: broadcast_stack(ts).amin(0))


@pytest.mark.parametrize(
    "shapes", [((3, 4), (3, 4), (3, 4)), ((3, 4), (4,), (3, 1)), ((3, 1), (), (2, 3, 4)), ((4,), (3, 4), ())]
)
def test_where(shapes) -> None:
    rng = np.random.default_rng(30)
    condition = np.asarray(rng.random(shapes[0]) > 0.5)
    check_gradients("Where", [condition, normal(shapes[1], 31), normal(shapes[2], 32)], torch.where)


UNARY = [
    ("Neg", torch.neg, "any"),
    ("Abs", torch.abs, "nonzero"),
    ("Sqrt", torch.sqrt, "positive"),
    ("Reciprocal", torch.reciprocal, "nonzero"),
    ("Exp", torch.exp, "any"),
    ("Log", torch.log, "positive"),
    ("Erf", torch.erf, "wide"),
    ("Sin", torch.sin, "wide"),
    ("Cos", torch.cos, "wide"),
    ("Floor", torch.floor, "any"),
    ("Ceil", torch.ceil, "any"),
    ("Round", torch.round, "any"),
    ("Sign", torch.sign, "any"),
]


@pytest.mark.parametrize("op, fn, domain", UNARY)
@pytest.mark.parametrize("shape", [(3, 5, 7), (1000,), ()])
def test_unary(op, fn, domain, shape) -> None:
    x = {
        "any": normal(shape, 40),
        "nonzero": away_from_zero(shape, 41),
        "positive": np.asarray(np.random.default_rng(42).uniform(0.2, 3.0, shape), dtype=np.float32),
        "wide": normal(shape, 43, scale=3.0),
    }[domain]
    check_gradients(op, [np.asarray(x, dtype=np.float32)], fn)
