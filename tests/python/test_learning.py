"""Losses, optimizers and schedules against PyTorch (aidge.learning and the aidge_learning compat module)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import aidge
import aidge_core
import aidge_learning
from gradient_support import assert_matches_torch


def prediction(values: np.ndarray) -> aidge.Tensor:
    """A tensor that a graph returned (so that a loss can write its gradient)."""
    graph = aidge.sequential([aidge.Identity()])
    return graph(values)


RNG = np.random.default_rng(3)


@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 2)])
def test_mse(shape: tuple[int, ...]) -> None:
    p, y = RNG.standard_normal(shape).astype(np.float32), RNG.standard_normal(shape).astype(np.float32)
    pred = prediction(p)
    value = aidge.learning.loss.MSE(pred, y)
    tp = torch.tensor(p, requires_grad=True)
    expected = torch.nn.functional.mse_loss(tp, torch.tensor(y))
    expected.backward()
    assert_matches_torch(np.asarray(value), expected.detach().numpy(), "MSE value")
    assert_matches_torch(np.asarray(pred.grad), tp.grad.numpy(), "MSE gradient")


def test_bce_and_bce_with_logits() -> None:
    logits = RNG.standard_normal((6, 4)).astype(np.float32) * 3
    t = (RNG.random((6, 4)) > 0.5).astype(np.float32)
    probabilities = 1 / (1 + np.exp(-logits))
    for name, x, fn in [
        ("BCE", probabilities, torch.nn.functional.binary_cross_entropy),
        ("BCEWithLogits", logits, torch.nn.functional.binary_cross_entropy_with_logits),
    ]:
        pred = prediction(x)
        value = getattr(aidge.learning.loss, name)(pred, t)
        tx = torch.tensor(x, requires_grad=True)
        expected = fn(tx, torch.tensor(t))
        expected.backward()
        assert_matches_torch(np.asarray(value), expected.detach().numpy(), f"{name} value")
        assert_matches_torch(np.asarray(pred.grad), tx.grad.numpy(), f"{name} gradient")


@pytest.mark.parametrize("shape", [(8, 10), (4, 5, 3)])
def test_celoss_with_probability_targets(shape: tuple[int, ...]) -> None:
    logits = RNG.standard_normal(shape).astype(np.float32) * 2
    target = RNG.random(shape).astype(np.float32)
    target /= target.sum(axis=1, keepdims=True)
    pred = prediction(logits)
    value = aidge_learning.loss.CELoss(pred, target)
    tl = torch.tensor(logits, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(tl, torch.tensor(target))
    expected.backward()
    assert_matches_torch(np.asarray(value), expected.detach().numpy(), "CELoss value")
    assert_matches_torch(np.asarray(pred.grad), tl.grad.numpy(), "CELoss gradient")


@pytest.mark.parametrize("smoothing, ignore", [(0.0, -100), (0.1, -100), (0.2, 2)])
def test_cross_entropy_with_class_indices(smoothing: float, ignore: int) -> None:
    logits = RNG.standard_normal((12, 5)).astype(np.float32)
    labels = RNG.integers(0, 5, 12).astype(np.int64)
    pred = prediction(logits)
    value = aidge.learning.loss.cross_entropy(pred, labels, label_smoothing=smoothing, ignore_index=ignore)
    tl = torch.tensor(logits, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(
        tl, torch.tensor(labels), label_smoothing=smoothing, ignore_index=ignore
    )
    expected.backward()
    assert_matches_torch(np.asarray(value), expected.detach().numpy(), "cross-entropy value")
    assert_matches_torch(np.asarray(pred.grad), tl.grad.numpy(), "cross-entropy gradient")


def test_grad_is_a_zero_copy_view() -> None:
    pred = prediction(RNG.standard_normal((3, 4)).astype(np.float32))
    aidge.learning.loss.MSE(pred, np.zeros((3, 4), np.float32))
    first, second = np.asarray(pred.grad), np.asarray(pred.grad)
    assert np.shares_memory(first, second)
    assert first.__array_interface__["data"][0] == pred.grad.data_ptr


def test_loss_errors_are_clear() -> None:
    pred = prediction(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="shape"):
        aidge.learning.loss.MSE(pred, np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="out of range"):
        aidge.learning.loss.cross_entropy(pred, np.array([0, 7, 1], np.int64))


def test_schedules_match_their_formulas() -> None:
    graph = aidge.sequential([aidge.FC(3, 2)])
    opt = aidge.learning.SGD(graph.parameters(), lr=1.0)
    cases = [
        (aidge.learning.constant_lr(0.5), lambda t: 0.5),
        (aidge.learning.step_lr(0.5, 3, gamma=0.1), lambda t: 0.5 * 0.1 ** (t // 3)),
        (aidge.learning.cosine_lr(0.5, 10, min_decay=0.1),
         lambda t: 0.5 * (0.1 + 0.9 * (1 + math.cos(math.pi * min(t, 10) / 10)) / 2)),
        (aidge.learning.cosine_lr(0.5, 10, warmup=4),
         lambda t: 0.5 * (t + 1) / 4 if t < 4 else 0.5 * (1 + math.cos(math.pi * min(t - 4, 10) / 10)) / 2),
    ]
    for schedule, formula in cases:
        opt.set_learning_rate_scheduler(schedule)
        opt.set_parameters(graph.parameters())  # resets the step
        for t in range(14):
            assert opt.learning_rate() == pytest.approx(formula(t), rel=1e-12), (schedule, t)
            opt.update()


def test_optimizer_errors_are_clear() -> None:
    graph = aidge.sequential([aidge.FC(3, 2), aidge.ReLU()])
    relu = [n for n in graph.get_nodes() if n.type() == "Relu"][0]
    with pytest.raises(ValueError, match="not a Producer"):
        aidge.learning.SGD([relu])
    with pytest.raises(ValueError, match="NaN"):
        aidge.learning.SGD(graph.parameters(), lr=float("nan"))
    opt = aidge.learning.SGD(graph.parameters())
    with pytest.raises(ValueError, match="NaN"):
        opt.set_learning_rate_scheduler(aidge.learning.constant_lr(float("nan")))


def linear_model(seed: int) -> tuple[aidge.GraphView, torch.nn.Module]:
    """The same two-layer perceptron in both frameworks, with the same initial weights."""
    torch.manual_seed(seed)
    reference = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    graph = aidge.sequential([aidge.FC(6, 8), aidge.Tanh(), aidge.FC(8, 3)])
    fcs = [n for n in graph.get_nodes() if n.type() not in ("Producer", "Tanh")]
    for node, layer in zip(fcs, [reference[0], reference[2]]):
        weight, bias = node.parents[1].producer_tensor, node.parents[2].producer_tensor
        np.asarray(weight)[...] = layer.weight.detach().numpy().reshape(np.asarray(weight).shape)
        np.asarray(bias)[...] = layer.bias.detach().numpy()
    return graph, reference


@pytest.mark.parametrize(
    "make_ours, make_theirs",
    [
        (lambda p: aidge.learning.SGD(p, lr=0.1),
         lambda p: torch.optim.SGD(p, lr=0.1)),
        (lambda p: aidge.learning.SGD(p, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
         lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
        (lambda p: aidge.learning.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
         lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True)),
        (lambda p: aidge.learning.Adam(p, lr=0.01, weight_decay=0.01),
         lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.01)),
        (lambda p: aidge.learning.AdamW(p, lr=0.01),
         lambda p: torch.optim.AdamW(p, lr=0.01)),
    ],
)
def test_optimizers_follow_torch(make_ours, make_theirs) -> None:  # noqa: ANN001
    graph, reference = linear_model(0)
    graph.train()
    ours, theirs = make_ours(graph), make_theirs(reference.parameters())
    x = RNG.standard_normal((16, 6)).astype(np.float32)
    y = RNG.standard_normal((16, 3)).astype(np.float32)
    for step in range(10):
        pred = graph(x)
        ours.reset_grad()
        loss = aidge.learning.loss.MSE(pred, y)
        graph.backward()
        ours.update()
        theirs.zero_grad()
        expected = torch.nn.functional.mse_loss(reference(torch.tensor(x)), torch.tensor(y))
        expected.backward()
        theirs.step()
        assert float(np.asarray(loss)) == pytest.approx(expected.item(), rel=1e-4), step
    final = [np.asarray(t) for t in ours.parameters()]
    for mine, param in zip(final, reference.parameters()):
        assert_matches_torch(mine.reshape(param.shape), param.detach().numpy(), "trained parameter")


def test_optimizer_state_round_trip() -> None:
    graph, _ = linear_model(1)
    graph.train()
    x = RNG.standard_normal((4, 6)).astype(np.float32)
    y = RNG.standard_normal((4, 3)).astype(np.float32)
    opt = aidge.learning.Adam(graph.parameters(), lr=0.01)

    def step() -> None:
        pred = graph(x)
        opt.reset_grad()
        aidge.learning.loss.MSE(pred, y)
        graph.backward()
        opt.update()

    step()
    saved = opt.state_dict()
    weights = [np.array(t) for t in opt.parameters()]
    step()
    after_one = [np.array(t) for t in opt.parameters()]
    for t, w in zip(opt.parameters(), weights):
        np.asarray(t)[...] = w
    opt.load_state_dict(saved)
    step()
    for t, w in zip(opt.parameters(), after_one):
        np.testing.assert_array_equal(np.asarray(t), w)
    assert saved["step"] == 1 and len(saved["buffers"]) == len(weights)


def test_aidge_training_loop_runs_unchanged() -> None:
    """Aidge's documented loop: compat scheduler, producers(), a scheduler-driven learning rate."""
    graph, reference = linear_model(2)
    scheduler = aidge_core.SequentialScheduler(graph)
    opt = aidge_learning.SGD(momentum=0.9)
    opt.set_learning_rate_scheduler(aidge_learning.constant_lr(0.05))
    opt.set_parameters(list(aidge_core.producers(graph)))
    theirs = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9)
    x = RNG.standard_normal((8, 6)).astype(np.float32)
    target = np.eye(3, dtype=np.float32)[RNG.integers(0, 3, 8)]
    for _ in range(5):
        pred = scheduler.forward(data=[aidge_core.Tensor(x)])[0]
        opt.reset_grad()
        loss = aidge_learning.loss.CELoss(pred, aidge_core.Tensor(target))
        scheduler.backward()
        opt.update()
        theirs.zero_grad()
        expected = torch.nn.functional.cross_entropy(reference(torch.tensor(x)), torch.tensor(target))
        expected.backward()
        theirs.step()
        assert float(np.asarray(loss)) == pytest.approx(expected.item(), rel=1e-4)
    tensors = aidge_core.producers(graph)
    assert all(t.grad is not None for t in tensors)


def test_backward_errors_are_clear() -> None:
    graph = aidge.sequential([aidge.FC(3, 2)])
    with pytest.raises(ValueError, match="forward"):
        graph.backward()
    graph(np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="loss"):
        graph.backward()
