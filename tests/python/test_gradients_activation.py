"""Backward of the activations against PyTorch autograd."""

import numpy as np
import torch

from gradient_support import check_gradients


def test_relu() -> None:
    x = np.random.default_rng(1).standard_normal((4, 5, 6)).astype(np.float32)
    check_gradients("Relu", [x], torch.relu)
