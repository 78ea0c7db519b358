"""aidge.torch.from_torch / to_torch: shared memory for every dtype both frameworks have, strided views kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import aidge
import aidge.torch

DTYPES = [
    torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.int16, torch.int32, torch.int64,
    torch.uint8, torch.uint16, torch.uint32, torch.uint64, torch.bool,
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_round_trip_shares_memory(dtype: torch.dtype) -> None:
    t = (torch.arange(24).reshape(2, 3, 4) % 3).to(dtype)
    for view in (t, t.permute(2, 0, 1), t[:, 1:, ::2]):
        ours = aidge.torch.from_torch(view)
        assert ours.data_ptr == view.data_ptr()
        assert ours.shape == tuple(view.shape) and ours.strides == tuple(view.stride())
        back = aidge.torch.to_torch(ours)
        assert back.data_ptr() == view.data_ptr() and back.dtype == dtype
        assert torch.equal(back, view)


def test_writes_are_seen_on_both_sides() -> None:
    t = torch.zeros(3, 4)
    back = aidge.torch.to_torch(aidge.torch.from_torch(t))
    back[1, 2] = 5.0
    assert t[1, 2].item() == 5.0


def test_a_tensor_that_requires_grad_is_shared_too() -> None:
    p = torch.nn.Parameter(torch.randn(4, 5))
    assert aidge.torch.from_torch(p).data_ptr == p.data_ptr()


def test_bad_input() -> None:
    with pytest.raises(TypeError, match="torch.Tensor"):
        aidge.torch.from_torch([1, 2, 3])  # type: ignore[arg-type]


@pytest.mark.skipif(not hasattr(torch.utils.dlpack, "ReadOnlyTensorWrapper"), reason="torch 2.15 and later")
def test_a_read_only_wrapper_is_shared_read_only() -> None:
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    ours = aidge.torch.from_torch(torch.utils.dlpack.ReadOnlyTensorWrapper(t))
    assert ours.data_ptr == t.data_ptr() and ours.readonly
    np.testing.assert_array_equal(np.asarray(ours), t.numpy())
