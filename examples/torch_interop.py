#!/usr/bin/env python3
"""Runs and trains a torchvision-style CNN in the engine from PyTorch: ``aidge.torch.wrap`` gives an ``nn.Module``
whose forward and backward run in Swift on the model's own parameters; a torch optimizer (AdamW) trains it.

Usage: .venv/bin/python examples/torch_interop.py
"""

import copy

import torch

import aidge.torch


class SmallCNN(torch.nn.Module):
    """Conv-BN-ReLU blocks, a residual block and a classifier, as torchvision builds them."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1, bias=False), torch.nn.BatchNorm2d(16), torch.nn.ReLU())
        self.block = torch.nn.Sequential(
            torch.nn.Conv2d(16, 16, 3, padding=1, bias=False), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
            torch.nn.Conv2d(16, 16, 3, padding=1, bias=False), torch.nn.BatchNorm2d(16))
        self.head = torch.nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.block(x))
        return self.head(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))


torch.manual_seed(0)
model = SmallCNN().eval()
reference = copy.deepcopy(model)
images, labels = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))

engine = aidge.torch.wrap(model, images)            # shares model's parameters and buffers
with torch.no_grad():
    difference = (engine(images) - reference(images)).abs().max().item()
print(f"inference: max |engine - torch| = {difference:.2e}")

engine.train()
reference.train()
ours = torch.optim.AdamW(engine.parameters(), lr=1e-3)
theirs = torch.optim.AdamW(reference.parameters(), lr=1e-3)
for step in range(5):
    for module, optimizer in ((engine, ours), (reference, theirs)):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(module(images), labels)
        loss.backward()
        optimizer.step()
        if module is engine:
            engine_loss = loss.item()
    print(f"step {step}: loss {engine_loss:.6f} (PyTorch {loss.item():.6f})")
