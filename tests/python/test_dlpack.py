"""DLPack both ways with PyTorch and NumPy: shared memory for every dtype, capsules, read-only flags, release
exactly once whichever side dies first, and no growth of memory over many round trips."""

from __future__ import annotations

import gc
import sys
import weakref

import ml_dtypes
import numpy as np
import pytest
import torch
import torch.utils.dlpack

import aidge
from interop_support import ALL_DTYPES, aidge_dtype, dtype_id, other_value, sample

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
NUMPY_DLPACK_DTYPES = [d for d in ALL_DTYPES if d != BFLOAT16]  # NumPy has no DLPack bfloat16

TORCH_DTYPES = {
    "float16": torch.float16, "float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16,
    "int8": torch.int8, "int16": torch.int16, "int32": torch.int32, "int64": torch.int64,
    "uint8": torch.uint8, "uint16": torch.uint16, "uint32": torch.uint32, "uint64": torch.uint64,
    "bool": torch.bool,
}


def torch_sample(shape: tuple[int, ...], dtype: np.dtype) -> torch.Tensor:
    """A torch tensor with the values of ``sample`` (made through bits so every dtype works)."""
    a = sample(shape, dtype)
    if dtype == BFLOAT16:
        return torch.from_numpy(a.view(np.uint16).astype(np.int16)).view(torch.bfloat16).clone()
    return torch.from_numpy(a).clone()


def torch_values(x: torch.Tensor) -> np.ndarray:
    """A torch tensor's values as a NumPy array (bfloat16 as ml_dtypes), through a copy."""
    if x.dtype == torch.bfloat16:
        return x.view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
    return x.numpy().copy()


# --------------------------------------------------------------------------
# Export: torch.from_dlpack / np.from_dlpack of an aidge tensor
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=dtype_id)
def test_torch_from_dlpack_shares_memory(dtype: np.dtype) -> None:
    a = sample((3, 4), dtype)
    t = aidge.from_numpy(a)
    x = torch.from_dlpack(t)
    assert x.dtype == TORCH_DTYPES[aidge_dtype(dtype).value]
    assert tuple(x.shape) == (3, 4) and x.stride() == (4, 1)
    assert x.data_ptr() == a.ctypes.data == t.data_ptr
    np.testing.assert_array_equal(torch_values(x), a)
    a[2, 1] = other_value(dtype, a[2, 1])
    assert torch_values(x)[2, 1] == a[2, 1]
    # Writes through torch reach the array (bfloat16 and unsigned types through a same-width signed view).
    if dtype == BFLOAT16 or dtype.kind == "u" and dtype.itemsize > 1:
        signed = {2: torch.int16, 4: torch.int32, 8: torch.int64}[dtype.itemsize]
        x.view(signed)[0, 3] = 9
        assert a.view({2: np.int16, 4: np.int32, 8: np.int64}[dtype.itemsize])[0, 3] == 9
    else:
        x[0, 3] = True if dtype == np.bool_ else 9
        assert a[0, 3] == (True if dtype == np.bool_ else 9)


@pytest.mark.parametrize("dtype", NUMPY_DLPACK_DTYPES, ids=dtype_id)
def test_numpy_from_dlpack_shares_memory(dtype: np.dtype) -> None:
    a = sample((2, 3), dtype)
    t = aidge.from_numpy(a)
    n = np.from_dlpack(t)
    assert n.dtype == dtype and n.shape == (2, 3)
    assert n.ctypes.data == a.ctypes.data
    assert n.flags.writeable
    n[1, 2] = other_value(dtype, n[1, 2])
    assert a[1, 2] == n[1, 2]


@pytest.mark.parametrize("make", [
    lambda: np.arange(12, dtype=np.float32).reshape(3, 4).T,
    lambda: np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2],
], ids=["transposed", "sliced"])
def test_strided_export_to_torch(make) -> None:
    a = make()
    x = torch.from_dlpack(aidge.from_numpy(a))
    assert x.data_ptr() == a.ctypes.data
    assert x.stride() == tuple(s // a.itemsize for s in a.strides)
    np.testing.assert_array_equal(x.numpy(), a)


def test_negative_strides_are_exported_as_a_copy() -> None:
    # PyTorch's from_dlpack aborts the process on negative strides, so they leave as a contiguous copy.
    a = np.arange(12, dtype=np.float64).reshape(3, 4)[::-1, ::-1]
    t = aidge.from_numpy(a)
    n = np.from_dlpack(t)
    assert n.ctypes.data != a.ctypes.data
    np.testing.assert_array_equal(n, a)
    x = torch.from_dlpack(t)
    np.testing.assert_array_equal(x.numpy(), a)
    with pytest.raises(BufferError, match="negative strides"):
        t.__dlpack__(copy=False)


def test_zero_dim_and_empty_export() -> None:
    a = np.array(1.25, np.float32)
    x = torch.from_dlpack(aidge.from_numpy(a))
    assert x.shape == () and x.item() == 1.25 and x.data_ptr() == a.ctypes.data
    empty = torch.from_dlpack(aidge.from_numpy(np.zeros((0, 5), np.float32)))
    assert tuple(empty.shape) == (0, 5)


def test_dlpack_device_and_bad_requests() -> None:
    t = aidge.from_numpy(np.arange(4.0))
    assert t.__dlpack_device__() == (1, 0)
    with pytest.raises(BufferError, match="stream"):
        t.__dlpack__(stream=5)
    with pytest.raises(BufferError, match="device"):
        t.__dlpack__(dl_device=(2, 0))
    with pytest.raises(TypeError):
        t.__dlpack__(unknown=1)


def test_copy_true_gives_own_memory() -> None:
    a = np.arange(4, dtype=np.float32)
    x = torch.from_dlpack(aidge.from_numpy(a), copy=True)
    assert x.data_ptr() != a.ctypes.data
    a[0] = 10.0
    assert x[0].item() == 0.0


# --------------------------------------------------------------------------
# Import: aidge.from_dlpack of torch tensors, NumPy arrays and capsules
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=dtype_id)
def test_from_dlpack_torch_shares_memory(dtype: np.dtype) -> None:
    x = torch_sample((4, 2), dtype)
    t = aidge.from_dlpack(x)
    assert t.dtype is aidge_dtype(dtype)
    assert t.shape == (4, 2) and t.data_ptr == x.data_ptr()
    assert not t.readonly
    np.testing.assert_array_equal(t.numpy(), torch_values(x))
    t.numpy()[3, 1] = other_value(dtype, t.numpy()[3, 1])
    assert torch_values(x)[3, 1] == t.numpy()[3, 1]


@pytest.mark.parametrize("dtype", NUMPY_DLPACK_DTYPES, ids=dtype_id)
def test_from_dlpack_numpy_shares_memory(dtype: np.dtype) -> None:
    a = sample((3, 3), dtype)
    t = aidge.from_dlpack(a)
    assert t.dtype is aidge_dtype(dtype) and t.data_ptr == a.ctypes.data
    a[0, 1] = other_value(dtype, a[0, 1])
    assert t.numpy()[0, 1] == a[0, 1]


def test_from_dlpack_torch_strided() -> None:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    for x in (base.t(), base[:, ::2], base[1:, 2:], base[0].expand(3, 6)):
        t = aidge.from_dlpack(x)
        assert t.strides == x.stride() and t.data_ptr == x.data_ptr()
        np.testing.assert_array_equal(np.asarray(t), x.numpy())


def test_from_dlpack_zero_dim_and_empty() -> None:
    x = torch.tensor(3.5)
    t = aidge.from_dlpack(x)
    assert t.shape == () and float(t.numpy()) == 3.5
    assert aidge.from_dlpack(torch.zeros(0, 3)).shape == (0, 3)


def test_from_dlpack_of_empty_torch_tensor_releases_it() -> None:
    """PyTorch gives an empty tensor no memory (a null data pointer); its capsule must still be released."""
    x = torch.zeros(0, 3)
    assert x.data_ptr() == 0
    ref = weakref.ref(x)
    t = aidge.from_dlpack(x)
    assert t.shape == (0, 3) and t.dtype is aidge.dtype.float32
    del x
    gc.collect()
    assert ref() is None
    assert np.asarray(t).shape == (0, 3)


def test_from_dlpack_refuses_non_producers() -> None:
    for bad in (3, None, "abc", [1.0, 2.0]):
        with pytest.raises(TypeError, match="DLPack"):
            aidge.from_dlpack(bad)
    with pytest.raises(ValueError, match="64"):
        aidge.from_dlpack(torch.zeros([1] * 65))


def test_legacy_capsule_consumed_by_torch() -> None:
    a = np.arange(6, dtype=np.float32)
    capsule = aidge.from_numpy(a).to_dlpack()
    x = torch.utils.dlpack.from_dlpack(capsule)
    assert x.data_ptr() == a.ctypes.data
    a[3] = 30.0
    assert x[3].item() == 30.0
    # torch marked it used: importing it again is a clear error.
    with pytest.raises(ValueError, match="already consumed"):
        aidge.from_dlpack(capsule)


def test_capsule_consumed_twice() -> None:
    a = np.arange(6, dtype=np.float32)
    t = aidge.from_numpy(a)
    for capsule in (t.to_dlpack(), t.__dlpack__(), t.__dlpack__(max_version=(1, 0))):
        first = aidge.from_dlpack(capsule)
        assert first.data_ptr == a.ctypes.data
        with pytest.raises(ValueError, match="already consumed"):
            aidge.from_dlpack(capsule)
        np.testing.assert_array_equal(first.numpy(), a)  # the failed import did not release the first


def test_capsule_of_another_kind_is_refused() -> None:
    import ctypes

    PyCapsule_New = ctypes.pythonapi.PyCapsule_New
    PyCapsule_New.restype = ctypes.py_object
    PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    name = ctypes.c_char_p(b"not_a_tensor")
    capsule = PyCapsule_New(ctypes.addressof(ctypes.c_int(1)), name, None)
    with pytest.raises(ValueError, match="not a DLPack capsule"):
        aidge.from_dlpack(capsule)


def test_unconsumed_capsules_release_their_tensor() -> None:
    a = np.arange(8, dtype=np.float32)
    baseline = sys.getrefcount(a)
    ref = weakref.ref(a)
    t = aidge.from_numpy(a)
    capsules = [t.to_dlpack(), t.__dlpack__(max_version=(1, 0))]
    del t
    gc.collect()
    assert ref() is not None
    del capsules
    gc.collect()
    assert sys.getrefcount(a) == baseline
    del a
    gc.collect()
    assert ref() is None


# --------------------------------------------------------------------------
# Read-only memory
# --------------------------------------------------------------------------


def readonly_array() -> np.ndarray:
    a = np.arange(5, dtype=np.float64)
    a.flags.writeable = False
    return a


def test_from_dlpack_readonly_numpy_gives_readonly_tensor() -> None:
    a = readonly_array()
    t = aidge.from_dlpack(a)
    assert t.readonly and t.data_ptr == a.ctypes.data
    assert not np.asarray(t).flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        t[0] = 1.0


def test_readonly_tensor_exports_readonly() -> None:
    a = readonly_array()
    t = aidge.from_numpy(a)
    n = np.from_dlpack(t)  # a DLPack 1.x consumer: shared, flagged read-only
    assert n.ctypes.data == a.ctypes.data
    assert not n.flags.writeable
    capsule = t.__dlpack__(max_version=(1, 0))
    again = aidge.from_dlpack(capsule)
    assert again.readonly and again.data_ptr == a.ctypes.data


def test_readonly_tensor_to_legacy_consumer_is_a_copy() -> None:
    a = readonly_array()
    t = aidge.from_numpy(a)
    # A legacy capsule cannot say "read-only": the consumer gets a copy it may write.
    x = torch.utils.dlpack.from_dlpack(t.to_dlpack())
    assert x.data_ptr() != a.ctypes.data
    x[0] = 100.0
    assert a[0] == 0.0
    with pytest.raises(BufferError, match="read-only"):
        t.__dlpack__(copy=False)


# --------------------------------------------------------------------------
# Release exactly once, whichever side dies first
# --------------------------------------------------------------------------


@pytest.mark.parametrize("consumer_dies_first", [True, False], ids=["consumer_first", "producer_first"])
def test_import_from_numpy_releases_once(consumer_dies_first: bool) -> None:
    a = np.arange(64, dtype=np.float32)
    baseline = sys.getrefcount(a)
    ref = weakref.ref(a)
    t = aidge.from_dlpack(a)
    assert sys.getrefcount(a) > baseline  # the capsule's context holds the array
    if consumer_dies_first:
        del t
        gc.collect()
        assert sys.getrefcount(a) == baseline
        del a
    else:
        del a
        gc.collect()
        assert ref() is not None
        np.testing.assert_array_equal(t.numpy(), np.arange(64))
        del t
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("consumer_dies_first", [True, False], ids=["consumer_first", "producer_first"])
def test_import_from_torch_releases_once(consumer_dies_first: bool) -> None:
    x = torch.arange(64, dtype=torch.float32)
    ref = weakref.ref(x)  # torch keeps the Python object while its tensor is referenced
    t = aidge.from_dlpack(x)
    if consumer_dies_first:
        del t
        gc.collect()
        assert ref() is not None and x.sum().item() == sum(range(64))
        del x
    else:
        del x
        gc.collect()
        assert ref() is not None
        np.testing.assert_array_equal(t.numpy(), np.arange(64))
        del t
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("legacy", [False, True], ids=["versioned", "legacy"])
@pytest.mark.parametrize("order", ["torch_first", "aidge_first", "array_last"])
def test_export_to_torch_releases_once(order: str, legacy: bool) -> None:
    a = np.arange(32, dtype=np.float64)
    baseline = sys.getrefcount(a)
    ref = weakref.ref(a)
    t = aidge.from_numpy(a)
    x = torch.utils.dlpack.from_dlpack(t.to_dlpack()) if legacy else torch.from_dlpack(t)
    assert x.data_ptr() == a.ctypes.data
    if order == "torch_first":
        del x
        gc.collect()
        assert ref() is not None and t.numpy()[31] == 31.0
        del t
    elif order == "aidge_first":
        del t
        gc.collect()
        assert ref() is not None and x[31].item() == 31.0
        del x
    else:
        del t, x
    gc.collect()
    if order != "array_last":
        assert sys.getrefcount(a) == baseline
    del a
    gc.collect()
    assert ref() is None


def test_round_trip_chain_releases_once() -> None:
    """numpy -> aidge -> torch -> aidge -> numpy: the array lives until the last view dies."""
    a = np.arange(16, dtype=np.int32)
    ref = weakref.ref(a)
    view = np.from_dlpack(aidge.from_dlpack(torch.from_dlpack(aidge.from_numpy(a))))
    assert view.ctypes.data == a.ctypes.data
    del a
    gc.collect()
    assert ref() is not None
    np.testing.assert_array_equal(view, np.arange(16))
    del view
    gc.collect()
    assert ref() is None


# --------------------------------------------------------------------------
# No growth over many round trips
# --------------------------------------------------------------------------


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_round_trips_do_not_leak() -> None:
    a = np.ones(1024, np.float32)
    x = torch.ones(1024)
    baseline_a, baseline_x = sys.getrefcount(a), sys.getrefcount(x)

    def cycle(n: int) -> None:
        for _ in range(n):
            y = torch.from_dlpack(aidge.from_numpy(a))  # numpy -> aidge -> torch
            t = aidge.from_dlpack(x)  # torch -> aidge
        del y, t

    cycle(2_000)  # warm allocator caches
    gc.collect()
    before = resident_bytes()
    cycle(100_000)
    gc.collect()
    growth = resident_bytes() - before
    print(f"RSS growth over 100,000 round trips: {growth / 1e6:.2f} MB")
    assert growth < 20e6, f"RSS grew by {growth / 1e6:.1f} MB"
    assert sys.getrefcount(a) == baseline_a and sys.getrefcount(x) == baseline_x
