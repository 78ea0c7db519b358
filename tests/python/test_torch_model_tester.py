"""The PyTorch interop ModelTester: for each model, the wrapped module against the native one (same initial
weights) in eval and train mode, then 10 SGD+momentum steps where the loss, the input gradients, the parameter
gradients and the updated parameters match at every step, and the parameters keep their memory; then 10 AdamW steps
whose losses match (AdamW's first steps act like a sign function on tiny gradients, so only the losses are held to
a tolerance)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch

import aidge.torch
from gradient_support import assert_matches_torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from torch_interop import AttentionBlock, BasicBlock, LeNet5  # noqa: E402


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Dropout(0.0), torch.nn.Linear(32, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TwoInTwoOut(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(6, 4), torch.nn.Linear(3, 4)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.a(x) + self.b(y)
        return torch.tanh(h), h.sum(dim=1)


class Mixed(torch.nn.Module):
    """Torch layers before and after a submodule that the test wraps."""

    def __init__(self) -> None:
        super().__init__()
        self.pre = torch.nn.Linear(12, 16)
        self.core = torch.nn.Sequential(torch.nn.Linear(16, 24), torch.nn.BatchNorm1d(24), torch.nn.GELU(),
                                        torch.nn.Linear(24, 16))
        self.post = torch.nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(torch.relu(self.core(self.pre(x))))


def wrap_core(module: Mixed, inputs: tuple[torch.Tensor, ...]) -> torch.nn.Module:
    with torch.no_grad():
        module.core = aidge.torch.wrap(module.core, module.pre(inputs[0]))
    return module


MODELS: dict[str, tuple[Callable[[], torch.nn.Module], Callable[[], tuple[torch.Tensor, ...]]]] = {
    "linear": (lambda: torch.nn.Linear(16, 4), lambda: (torch.randn(5, 16),)),
    "mlp": (MLP, lambda: (torch.randn(5, 16),)),
    "lenet5": (LeNet5, lambda: (torch.randn(4, 1, 28, 28),)),
    "resnet_block": (BasicBlock, lambda: (torch.randn(4, 32, 6, 6),)),
    "transformer_layer": (
        lambda: torch.nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0, batch_first=True),
        lambda: (torch.randn(3, 5, 16),)),
    "attention": (AttentionBlock, lambda: (torch.randn(3, 5, 64),)),
    "two_in_two_out": (TwoInTwoOut, lambda: (torch.randn(5, 6), torch.randn(5, 3))),
    "torch_layers_around": (Mixed, lambda: (torch.randn(6, 12),)),
}
WRAPPERS = {"torch_layers_around": wrap_core}


def as_tuple(value: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return value if isinstance(value, tuple) else (value,)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_model(name: str, optimizer: str) -> None:
    make, make_inputs = MODELS[name]
    torch.manual_seed(0)
    module = make()
    reference = copy.deepcopy(module)
    inputs = make_inputs()
    wrapped = WRAPPERS.get(name, aidge.torch.wrap)(module, inputs)
    for mode in ("eval", "train"):
        getattr(wrapped, mode)()
        getattr(reference, mode)()
        with torch.no_grad():
            for ours, theirs in zip(as_tuple(wrapped(*inputs)), as_tuple(reference(*inputs))):
                scale = float(theirs.abs().max())
                assert (ours - theirs).abs().max().item() <= 1e-5 + 1e-5 * scale, f"{mode} forward"
    if optimizer == "adamw":
        ours_opt, theirs_opt = (torch.optim.AdamW(m.parameters(), lr=1e-3) for m in (wrapped, reference))
    else:
        ours_opt, theirs_opt = (torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for m in (wrapped, reference))
    for step in range(10):
        pointers = [p.data_ptr() for p in wrapped.parameters()]
        runs = []
        for m, opt in ((wrapped, ours_opt), (reference, theirs_opt)):
            xs = [x.clone().requires_grad_(True) for x in inputs]
            opt.zero_grad()
            # sin: not invariant under a final LayerNorm (whose outputs have a fixed sum of squares).
            loss = sum((o.square() + o.sin()).mean() for o in as_tuple(m(*xs)))
            loss.backward()
            runs.append((loss, xs, [p.grad.clone() for p in m.parameters()]))
            opt.step()
        (lo, xo, go), (lt, xt, gt) = runs
        assert [p.data_ptr() for p in wrapped.parameters()] == pointers, "the engine reads the parameters in place"
        if optimizer == "adamw":
            assert lo.item() == pytest.approx(lt.item(), rel=1e-3), f"AdamW loss at step {step}"
            continue
        assert lo.item() == pytest.approx(lt.item(), rel=1e-4), f"loss at step {step}"
        for a, b in zip(xo, xt):
            assert_matches_torch(a.grad.numpy(), b.grad.numpy(), f"input gradient at step {step}")
        scale = max(float(g.abs().max()) for g in gt)
        for a, b in zip(go, gt):
            assert_matches_torch(a.numpy(), b.numpy(), f"parameter gradient at step {step}", scale)
    if optimizer == "adamw":
        return
    scale = max(float(p.detach().abs().max()) for p in reference.parameters())
    for a, b in zip(module.parameters(), reference.parameters()):
        assert_matches_torch(a.detach().numpy(), b.detach().numpy(), "updated parameter", scale)
    for (buffer_name, a), b in zip(module.named_buffers(), reference.buffers()):
        if b.dtype.is_floating_point:
            assert_matches_torch(a.numpy(), b.numpy(), buffer_name, float(b.abs().max()))
        else:
            assert torch.equal(a, b), buffer_name
