"""Checks one operator's backward against PyTorch autograd on the same computation."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

import aidge


def assert_matches_torch(ours: np.ndarray, theirs: np.ndarray, what: str, scale: float = 0.0) -> None:
    """The issue's tolerance: |ours - torch| <= 1e-4 |torch| + 1e-5 max|torch|. ``scale`` raises the max|torch|
    term for a tensor whose true value is zero (the bias of a convolution before BatchNorm), where torch's value
    is rounding noise: pass the scale of the tensors it belongs with (all the parameter gradients)."""
    ours = np.asarray(ours)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs torch {theirs.shape}"
    scale = max(float(np.abs(theirs).max()) if theirs.size else 0.0, scale)
    bound = 1e-4 * np.abs(theirs) + 1e-5 * scale
    excess = np.abs(ours.astype(np.float64) - theirs.astype(np.float64)) - bound
    if excess.size and excess.max() > 0:
        worst = np.unravel_index(int(np.argmax(excess)), excess.shape)
        raise AssertionError(
            f"{what}: at {worst} ours {ours[worst]!r} vs torch {theirs[worst]!r} (max|torch| {scale:g})"
        )


def check_gradients(
    op_type: str,
    inputs: Sequence[np.ndarray | None],
    torch_fn: Callable[..., Any],
    *,
    constants: Sequence[int] = (),
    training: bool = False,
    seed: int = 0,
    **attributes: Any,
) -> list[np.ndarray | None]:
    """Runs ``op_type`` forward and backward in aidge and ``torch_fn`` (on torch tensors for the non-constant
    inputs, the constants passed as they are, absent inputs as None) under autograd with the same random output
    gradients; asserts outputs and input gradients agree. Returns our input gradients."""
    rng = np.random.default_rng(seed)
    leaves: list[Any] = []
    for i, x in enumerate(inputs):
        if x is None or i in constants:
            leaves.append(x)
        elif np.issubdtype(x.dtype, np.floating):
            leaves.append(torch.tensor(x, requires_grad=True))
        else:
            leaves.append(torch.tensor(x))
    reference = torch_fn(*leaves)
    if isinstance(reference, torch.Tensor):
        reference = (reference,)
    seeds = [rng.standard_normal(r.shape).astype(r.detach().numpy().dtype) for r in reference]
    outputs, grads = aidge.gradients(op_type, inputs, seeds, constants=constants, training=training, **attributes)
    for k, (ours, theirs) in enumerate(zip(outputs, reference)):
        assert_matches_torch(np.asarray(ours), theirs.detach().numpy(), f"{op_type} output {k}")
    torch.autograd.backward(list(reference), [torch.from_numpy(s) for s in seeds])
    result: list[np.ndarray | None] = []
    for i, (leaf, g) in enumerate(zip(leaves, grads)):
        if isinstance(leaf, torch.Tensor) and leaf.requires_grad:
            expected = leaf.grad.numpy() if leaf.grad is not None else np.zeros(leaf.shape, leaf.detach().numpy().dtype)
            assert g is not None, f"{op_type}: no gradient for input {i}"
            assert_matches_torch(np.asarray(g), expected, f"{op_type} gradient of input {i}")
            result.append(np.asarray(g))
        else:
            result.append(None)
    return result
