#!/usr/bin/env python3
"""Training benchmark: one step (forward, loss, backward, optimizer update) of a small CNN with BatchNorm and of an
MLP at batch 32, the engine against PyTorch CPU with the same thread count, measured in the same run.

Both sides train the same model from the same weights on the same batch (cross-entropy on class indices, SGD with
momentum); the engine's graph comes from ``aidge.torch.to_graph`` (nothing folded). Times are medians of timed
rounds that alternate between the two frameworks; the ratio is engine / PyTorch (below 1: faster).

Usage:
    .venv/bin/python benchmarks/training.py [--threads 2] [--batch 32] [--steps 30] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

import aidge
import aidge.torch


class CNN(torch.nn.Module):
    """Two convolution blocks (Conv 3x3, BatchNorm, ReLU, MaxPool) and a classifier, for 1x28x28 images."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        )
        self.classifier = torch.nn.Linear(32 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def mlp() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128), torch.nn.ReLU(),
        torch.nn.Linear(128, 10),
    )


MODELS = {"cnn": CNN, "mlp": mlp}


def time_steps(step, steps: int) -> float:  # noqa: ANN001
    """Median seconds of one call of ``step`` over ``steps`` calls."""
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def benchmark(name: str, batch: int, steps: int, rounds: int) -> dict[str, float]:
    torch.manual_seed(0)
    reference = MODELS[name]()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, batch).astype(np.int64)
    graph = aidge.torch.to_graph(reference, torch.from_numpy(x))
    graph.train()
    reference.train()
    ours = aidge.learning.SGD(graph.parameters(), lr=0.01, momentum=0.9)
    theirs = torch.optim.SGD(reference.parameters(), lr=0.01, momentum=0.9)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def our_step() -> None:
        pred = graph(x)
        ours.reset_grad()
        aidge.learning.loss.cross_entropy(pred, y)
        graph.backward()
        ours.update()

    def their_step() -> None:
        theirs.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(reference(tx), ty).backward()
        theirs.step()

    for _ in range(3):  # warm-up: plans, caches, allocator
        our_step()
        their_step()
    ours_times, theirs_times = [], []
    for _ in range(rounds):
        ours_times.append(time_steps(our_step, steps))
        theirs_times.append(time_steps(their_step, steps))
    ours_ms, theirs_ms = statistics.median(ours_times) * 1e3, statistics.median(theirs_times) * 1e3
    return {"aidge_ms": ours_ms, "torch_ms": theirs_ms, "ratio": ours_ms / theirs_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=sorted(MODELS), choices=sorted(MODELS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    aidge.set_num_threads(args.threads)
    results = {name: benchmark(name, args.batch, args.steps, args.rounds) for name in args.models}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"one training step at batch {args.batch}, {args.threads} threads (torch {torch.__version__})")
    for name, r in results.items():
        print(f"  {name:4s}  aidge {r['aidge_ms']:8.2f} ms   torch {r['torch_ms']:8.2f} ms   ratio {r['ratio']:.2f}x")


if __name__ == "__main__":
    main()
