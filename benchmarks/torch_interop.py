#!/usr/bin/env python3
"""PyTorch interop benchmark: a module wrapped by ``aidge.torch.wrap`` (forward and backward in the engine) against
the same native torch module, both on the same threads, measured in the same run.

For a ResNet basic block with BatchNorm, a LeNet-5, a Transformer layer written out (``attention``) and PyTorch's
``nn.TransformerEncoderLayer`` it times inference (eval mode, no grad) and one training step (train mode: forward,
cross-entropy or MSE, backward, SGD update by a torch optimizer), as medians over alternating rounds; the ratio is
wrapped / native (below 1: faster).

Usage:
    .venv/bin/python benchmarks/torch_interop.py [--threads 2] [--batch 32] [--steps 30] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import copy
import json
from typing import Callable

import torch

import aidge
import aidge.torch
from timing import alternating


class BasicBlock(torch.nn.Module):
    """ResNet's basic block: two 3x3 convolutions with BatchNorm and a residual connection."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(channels)
        self.conv2 = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class LeNet5(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = torch.nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = torch.nn.Linear(400, 120), torch.nn.Linear(120, 84), torch.nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.flatten(torch.max_pool2d(torch.relu(self.conv2(x)), 2), 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class AttentionBlock(torch.nn.Module):
    """LayerNorm, single-head self-attention and a feed-forward layer, with residuals (a Transformer layer)."""

    def __init__(self, d: int = 64) -> None:
        super().__init__()
        self.norm1, self.norm2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (torch.nn.Linear(d, d) for _ in range(4))
        self.ff1, self.ff2 = torch.nn.Linear(d, 4 * d), torch.nn.Linear(4 * d, d)
        self.scale = d ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        attention = torch.softmax(self.q(h) @ self.k(h).transpose(1, 2) * self.scale, dim=-1)
        x = x + self.o(attention @ self.v(h))
        return x + self.ff2(torch.nn.functional.gelu(self.ff1(self.norm2(x))))


def EncoderLayer() -> torch.nn.Module:
    """PyTorch's own Transformer layer (4 heads); in inference torch runs it on its fused fast path."""
    return torch.nn.TransformerEncoderLayer(64, 4, dim_feedforward=256, dropout=0.0, batch_first=True)


def cases(batch: int) -> dict[str, tuple[Callable[[], torch.nn.Module], torch.Tensor]]:
    return {
        "resnet_block": (BasicBlock, torch.randn(batch, 32, 16, 16)),
        "lenet5": (LeNet5, torch.randn(batch, 1, 28, 28)),
        "attention": (AttentionBlock, torch.randn(batch, 16, 64)),
        "encoder_layer": (EncoderLayer, torch.randn(batch, 16, 64)),
    }


def benchmark(make: Callable[[], torch.nn.Module], x: torch.Tensor, steps: int, rounds: int) -> dict[str, float]:
    torch.manual_seed(0)
    native = make()
    wrapped = aidge.torch.wrap(copy.deepcopy(native), x)

    def infer(module: torch.nn.Module) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad():
                return module(x)
        return run

    def train_step(module: torch.nn.Module) -> Callable[[], None]:
        optimizer = torch.optim.SGD(module.parameters(), lr=1e-3, momentum=0.9)

        def run() -> None:
            optimizer.zero_grad(set_to_none=True)
            module(x).square().mean().backward()
            optimizer.step()
        return run

    results: dict[str, float] = {}
    for phase in ("inference", "training"):
        for module in (native, wrapped):
            module.train(phase == "training")
        make_call = infer if phase == "inference" else train_step
        n, w = alternating(make_call(native), make_call(wrapped), steps, rounds)
        results[f"{phase}_torch_ms"], results[f"{phase}_aidge_ms"], results[f"{phase}_ratio"] = n, w, w / n
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    aidge.set_num_threads(args.threads)
    results = {name: benchmark(make, x, args.steps, args.rounds) for name, (make, x) in cases(args.batch).items()}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"wrapped module vs native torch {torch.__version__}, batch {args.batch}, {args.threads} threads")
    for name, r in results.items():
        print(f"  {name:13s} inference {r['inference_aidge_ms']:7.2f} vs {r['inference_torch_ms']:7.2f} ms "
              f"({r['inference_ratio']:.2f}x)   training step {r['training_aidge_ms']:7.2f} vs "
              f"{r['training_torch_ms']:7.2f} ms ({r['training_ratio']:.2f}x)")


if __name__ == "__main__":
    main()
