"""Recorded runs: each run keeps its own activations, so runs back-propagate in any order, with input gradients
and parameter gradients that add up as PyTorch's autograd does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import aidge
import aidge.torch
from gradient_support import assert_matches_torch


def test_two_runs_back_propagate_in_any_order() -> None:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((4, 5)).astype(np.float32) for _ in range(2))
    ga, gb = (rng.standard_normal((4, 3)).astype(np.float32) for _ in range(2))
    graph = aidge.torch.to_graph(module, torch.from_numpy(a))
    engine = graph._graph
    outs_a, rec_a = engine.run_recorded([aidge.from_numpy(a)])
    outs_b, rec_b = engine.run_recorded([aidge.from_numpy(b)])
    grads_b = engine.backward_recorded(rec_b, [aidge.from_numpy(gb)], inputs=[0])
    grads_a = engine.backward_recorded(rec_a, [aidge.from_numpy(ga)], inputs=[0])

    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    ya, yb = module(ta), module(tb)
    torch.autograd.backward([ya, yb], [torch.from_numpy(ga), torch.from_numpy(gb)])
    assert_matches_torch(np.asarray(outs_a[0]), ya.detach().numpy(), "output of run a")
    assert_matches_torch(np.asarray(outs_b[0]), yb.detach().numpy(), "output of run b")
    assert_matches_torch(np.asarray(grads_a[0]), ta.grad.numpy(), "input gradient of run a")
    assert_matches_torch(np.asarray(grads_b[0]), tb.grad.numpy(), "input gradient of run b")
    for name, parameter in module.named_parameters():
        tensor = graph.get_node(name).producer_tensor
        assert_matches_torch(np.asarray(tensor.grad).reshape(parameter.shape), parameter.grad.numpy(), name)


def test_recorded_backward_errors() -> None:
    graph = aidge.sequential([aidge.FC(3, 2)])
    other = aidge.sequential([aidge.FC(3, 2)])
    x = aidge.from_numpy(np.ones((1, 3), np.float32))
    _, recording = graph._graph.run_recorded([x])
    with pytest.raises(ValueError, match="another graph"):
        other._graph.backward_recorded(recording, [None])
    with pytest.raises(ValueError, match="one gradient per output"):
        graph._graph.backward_recorded(recording, [])
    with pytest.raises(ValueError, match="shape"):
        graph._graph.backward_recorded(recording, [aidge.from_numpy(np.ones((2, 2), np.float32))])
