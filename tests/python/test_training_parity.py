"""Whole training runs against PyTorch: an MLP, a CNN with BatchNorm, and a LayerNorm + attention block, each built
in PyTorch, exported to ONNX (nothing folded), imported, and trained 20 steps from the same weights in both
frameworks. Losses must agree at every step (SGD + momentum: 1e-4 relative; AdamW: 1e-3). With SGD the final
weights and BatchNorm running statistics must agree within the gradient tolerance scaled by 10; AdamW's are not
compared: on parameters whose true gradient is zero (a convolution bias before BatchNorm, the key bias of an
attention) it divides rounding noise by its own square root, so both frameworks take sign-like steps of lr in
arbitrary directions."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
import torch

import aidge
import aidge.torch
from gradient_support import assert_matches_torch

STEPS = 20


class MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.bn2 = torch.nn.BatchNorm2d(8)
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(8 * 3 * 3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = torch.nn.functional.avg_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(torch.flatten(x, 1))


class AttentionBlock(torch.nn.Module):
    def __init__(self, d: int = 16, classes: int = 4) -> None:
        super().__init__()
        self.norm = torch.nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (torch.nn.Linear(d, d) for _ in range(4))
        self.head = torch.nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        attention = torch.softmax(self.q(h) @ self.k(h).transpose(1, 2) / 4.0, dim=-1)
        x = x + self.o(attention @ self.v(h))
        return self.head(x.mean(dim=1))


def data(model: str, rng: np.random.Generator) -> np.ndarray:
    shape = {"mlp": (16, 20), "cnn": (8, 1, 12, 12), "attention": (8, 6, 16)}[model]
    return rng.standard_normal(shape).astype(np.float32)


MODELS: dict[str, Callable[[], torch.nn.Module]] = {"mlp": MLP, "cnn": CNN, "attention": AttentionBlock}
OPTIMIZERS = {
    "sgd": (lambda p: aidge.learning.SGD(p, lr=0.05, momentum=0.9),
            lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), 1e-4),
    "adamw": (lambda p: aidge.learning.AdamW(p, lr=0.01),
              lambda p: torch.optim.AdamW(p, lr=0.01), 1e-3),
}


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_training_matches_torch(model_name: str, optimizer: str) -> None:
    rng = np.random.default_rng(11)
    torch.manual_seed(5)
    reference = MODELS[model_name]()
    batches = [data(model_name, rng) for _ in range(4)]
    labels = [rng.integers(0, 4, len(b)).astype(np.int64) for b in batches]
    graph = aidge.torch.to_graph(reference, torch.from_numpy(batches[0]))
    graph.train()
    reference.train()
    named = dict(reference.named_parameters())
    ours_parameters = graph.parameters()
    assert sorted(p.name() for p in ours_parameters) == sorted(named), "the graph keeps every parameter by name"
    make_ours, make_theirs, tolerance = OPTIMIZERS[optimizer]
    ours, theirs = make_ours(ours_parameters), make_theirs(reference.parameters())
    for step in range(STEPS):
        x, y = batches[step % 4], labels[step % 4]
        pred = graph(x)
        ours.reset_grad()
        loss = aidge.learning.loss.cross_entropy(pred, y)
        graph.backward()
        ours.update()
        theirs.zero_grad()
        expected = torch.nn.functional.cross_entropy(reference(torch.from_numpy(x)), torch.from_numpy(y))
        expected.backward()
        theirs.step()
        assert float(np.asarray(loss)) == pytest.approx(expected.item(), rel=tolerance), f"step {step}"
    if optimizer != "sgd":
        return
    for node in ours_parameters:
        mine = np.asarray(node.producer_tensor)
        theirs_value = named[node.name()].detach().numpy()
        assert_close_scaled(mine, theirs_value, f"{model_name} {node.name()}")
    for name, buffer in reference.named_buffers():
        node = graph.get_node(name)
        if node is not None and buffer.dtype.is_floating_point:
            assert_close_scaled(np.asarray(node.producer_tensor), buffer.numpy(), f"{model_name} buffer {name}")


def assert_close_scaled(ours: np.ndarray, theirs: np.ndarray, what: str) -> None:
    """The per-operator gradient tolerance scaled by 10: |d| <= 1e-3 |torch| + 1e-4 max|torch|."""
    ours = ours.reshape(theirs.shape)
    bound = 1e-3 * np.abs(theirs) + 1e-4 * float(np.abs(theirs).max())
    excess = np.abs(ours - theirs) - bound
    assert excess.max() <= 0, f"{what}: max excess {excess.max():g}"
