"""aidge_interop_torch: Aidge's names (wrap, AidgeModule, tensor helpers) over aidge.torch."""

from __future__ import annotations

import copy
import os

import numpy as np
import torch

import aidge
import aidge_interop_torch
from gradient_support import assert_matches_torch


def test_wrap_with_aidge_signature_trains_with_a_torch_optimizer(tmp_path) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    reference = copy.deepcopy(model)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        wrapped = aidge_interop_torch.wrap(model, [4, 6])
        assert os.listdir(tmp_path) == [], "no file is left behind"
    finally:
        os.chdir(cwd)
    x, y = torch.randn(4, 6), torch.randn(4, 3)
    ours = torch.optim.SGD(wrapped.parameters(), lr=0.1)
    theirs = torch.optim.SGD(reference.parameters(), lr=0.1)
    for _ in range(3):
        for module, optimizer in ((wrapped, ours), (reference, theirs)):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(module(x), y).backward()
            optimizer.step()
    for a, b in zip(model.parameters(), reference.parameters()):
        assert_matches_torch(a.detach().numpy(), b.detach().numpy(), "trained weight")


def test_aidge_module_trains_a_graph_with_torch() -> None:
    graph = aidge.sequential([aidge.FC(5, 2)])
    for node in graph.parameters():
        np.asarray(node.producer_tensor)[...] = np.random.default_rng(1).standard_normal(node.producer_tensor.shape)
    module = aidge_interop_torch.AidgeModule(graph)
    weight = [p for p in module.parameters() if p.dim() == 2][0]
    assert weight.data_ptr() == graph.parameters()[0].producer_tensor.data_ptr
    x = torch.randn(3, 5, requires_grad=True)
    out = module(x)
    reference = torch.nn.functional.linear(x, weight.detach(), [p for p in module.parameters() if p.dim() == 1][0].detach())
    assert_matches_torch(out.detach().numpy(), reference.detach().numpy(), "AidgeModule forward")
    out.sum().backward()
    assert_matches_torch(weight.grad.numpy(), np.tile(x.detach().numpy().sum(0), (2, 1)), "weight gradient")
    assert_matches_torch(x.grad.numpy(), np.tile(weight.detach().numpy().sum(0), (3, 1)), "input gradient")


def test_tensor_helpers_share_memory() -> None:
    t = torch.arange(6.0).reshape(2, 3)
    a = aidge_interop_torch.torch_tensor_to_aidge(t)
    assert a.data_ptr == t.data_ptr()
    assert aidge_interop_torch.aidge_tensor_to_torch(a).data_ptr() == t.data_ptr()
