"""GPU memory with the CPU engine: a CUDA tensor keeps its device (no copy, its memory never read on the host) and
running it is a clear error until the CUDA backend exists.

The first test needs no GPU: it hands the engine a DLPack capsule that says CUDA and points at an address the
host cannot read, so any host access would crash the interpreter. The others run where torch sees a GPU."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import aidge
import aidge.torch
from interop_support import dlpack_capsule


def test_a_cuda_tensor_keeps_its_device_and_is_never_read_on_the_host() -> None:
    # A 2x3 float32 tensor on CUDA device 1 at an address the host cannot read.
    keep: list[object] = []
    tensor = aidge.from_dlpack(dlpack_capsule(0x10, (2, 3), None, device=(2, 1), keep=keep))
    assert tensor.__dlpack_device__() == (2, 1)
    assert tuple(tensor.shape) == (2, 3) and tensor.data_ptr == 0x10, "shared, not copied"
    assert "cuda:1" in repr(tensor)
    for attempt in (lambda: np.asarray(tensor), tensor.clone, lambda: tensor.astype("float64")):
        with pytest.raises((NotImplementedError, BufferError), match="cuda:1"):
            attempt()
    graph = aidge.torch.to_graph(torch.nn.Linear(3, 4), torch.randn(2, 3))
    with pytest.raises(NotImplementedError, match="cuda:1.*CUDA backend"):
        graph.run(tensor)
    # A Producer may hold device memory (graphs on the CUDA backend read it there); the CPU backend refuses it.
    node = graph.get_node("weight")
    original = node.producer_tensor
    node.set_producer_tensor(aidge.from_dlpack(dlpack_capsule(0x10, (4, 3), None, device=(2, 1), keep=keep)))
    with pytest.raises(NotImplementedError, match="cuda:1"):
        graph.run(np.ones((2, 3), np.float32))
    node.set_producer_tensor(original)
    assert tuple(graph.run(np.ones((2, 3), np.float32))[0].shape) == (2, 4), "the session stays usable"


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
def test_torch_cuda_tensors_round_trip_on_their_gpu() -> None:
    t = torch.arange(24, dtype=torch.float32, device="cuda").reshape(4, 6)[:, 1:5]
    ours = aidge.torch.from_torch(t)
    assert ours.__dlpack_device__() == (2, t.device.index or 0)
    assert ours.data_ptr == t.data_ptr() and tuple(ours.strides) == t.stride()
    back = aidge.torch.to_torch(ours)
    assert back.device == t.device and back.data_ptr() == t.data_ptr()
    back.mul_(2)
    assert torch.equal(t, torch.arange(24, device="cuda").reshape(4, 6)[:, 1:5].float() * 2)


@cuda
def test_a_wrapped_module_trains_on_its_gpu() -> None:
    """A wrapped module on a CUDA device runs forward and backward on the GPU, on torch's parameters (shared), and
    an optimizer step gives PyTorch's parameters."""
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).cuda()
    reference = copy.deepcopy(module)
    wrapped = aidge.torch.wrap(module, torch.randn(2, 4, device="cuda"))
    x = torch.randn(5, 4, device="cuda")
    ours, theirs = wrapped(x), reference(x)
    assert ours.device == x.device and wrapped._graph.backend == "cuda"
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    optimizer = torch.optim.SGD(wrapped.parameters(), lr=0.1)
    native_optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    ours.square().sum().backward()
    theirs.square().sum().backward()
    optimizer.step()
    native_optimizer.step()
    for (name, p), q in zip(module.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
    wrapped.cpu()
    y = torch.randn(3, 4)
    with torch.no_grad():
        torch.testing.assert_close(wrapped(y), reference.cpu()(y), rtol=1e-4, atol=1e-5)
