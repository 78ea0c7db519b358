#!/usr/bin/env python3
"""Trains a small CNN with BatchNorm in the engine: a PyTorch module becomes an engine graph (in-memory ONNX,
nothing folded), then forward, loss, backward and SGD updates run in Swift. The same steps in PyTorch, from the
same weights, give the same losses.

Usage: .venv/bin/python examples/training.py
"""

import numpy as np
import torch

import aidge
import aidge.torch

torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Flatten(), torch.nn.Linear(8 * 14 * 14, 10),
)
rng = np.random.default_rng(0)
images = rng.standard_normal((32, 1, 28, 28)).astype(np.float32)
labels = rng.integers(0, 10, 32).astype(np.int64)

graph = aidge.torch.to_graph(model, torch.from_numpy(images))
graph.train()
optimizer = aidge.learning.SGD(graph.parameters(), lr=0.01, momentum=0.9)
reference = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
for step in range(10):
    prediction = graph(images)
    optimizer.reset_grad()
    loss = aidge.learning.loss.cross_entropy(prediction, labels)
    graph.backward()
    optimizer.update()

    reference.zero_grad()
    expected = torch.nn.functional.cross_entropy(model(torch.from_numpy(images)), torch.from_numpy(labels))
    expected.backward()
    reference.step()
    print(f"step {step}: loss {float(np.asarray(loss)):.6f} (PyTorch {expected.item():.6f})")
