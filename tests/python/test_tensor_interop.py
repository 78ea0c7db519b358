"""Tensors and NumPy: zero-copy sharing both ways for every dtype, copies, strides, read-only memory, lifetimes,
and inputs that must give a Python exception (never a crash)."""

from __future__ import annotations

import ctypes
import gc
import sys
import weakref

import ml_dtypes
import numpy as np
import pytest

import aidge
from interop_support import ALL_DTYPES, aidge_dtype, dtype_id, other_value, sample

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
BUFFER_DTYPES = [d for d in ALL_DTYPES if d != BFLOAT16]  # bfloat16 has no buffer-protocol format


# --------------------------------------------------------------------------
# Zero-copy, every dtype
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=dtype_id)
def test_from_numpy_shares_memory(dtype: np.dtype) -> None:
    a = sample((3, 4), dtype)
    t = aidge.from_numpy(a)
    assert t.dtype is aidge_dtype(dtype)
    assert t.shape == (3, 4) and t.dims == [3, 4]
    assert t.data_ptr == a.ctypes.data
    assert not t.readonly and t.is_contiguous
    assert t.strides == (4, 1)

    view = np.asarray(t)
    assert view.dtype == dtype
    assert view.ctypes.data == a.ctypes.data
    assert view.flags.writeable
    np.testing.assert_array_equal(view, a)
    numpy_view = t.numpy()
    assert numpy_view.dtype == dtype and numpy_view.ctypes.data == a.ctypes.data

    # Writes through the array are seen by the tensor, and writes through the tensor's view reach the array.
    new = other_value(dtype, a[1, 2])
    a[1, 2] = new
    assert t.numpy()[1, 2] == new and t[1, 2] == new
    newer = other_value(dtype, a[2, 3])
    view[2, 3] = newer
    assert a[2, 3] == newer
    t[0, 0] = other_value(dtype, a[0, 0])
    assert a[0, 0] == view[0, 0] and a[0, 0] != sample((3, 4), dtype)[0, 0]


@pytest.mark.parametrize("dtype", BUFFER_DTYPES, ids=dtype_id)
def test_memoryview_of_tensor(dtype: np.dtype) -> None:
    a = sample((2, 5), dtype)
    t = aidge.from_numpy(a)
    m = memoryview(t)
    assert m.shape == (2, 5) and m.strides == a.strides and m.itemsize == dtype.itemsize
    assert not m.readonly
    assert np.dtype(m.format) == dtype
    from_view = np.asarray(m)
    assert from_view.ctypes.data == a.ctypes.data
    np.testing.assert_array_equal(from_view, a)
    m.release()


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=dtype_id)
def test_tensor_constructor_copies(dtype: np.dtype) -> None:
    a = sample((4, 3), dtype)
    original = a.copy()
    t = aidge.Tensor(a)
    assert t.dtype is aidge_dtype(dtype)
    assert t.data_ptr != a.ctypes.data
    assert not np.shares_memory(t.numpy(), a)
    np.testing.assert_array_equal(t.numpy(), original)
    a[0, 0] = other_value(dtype, a[0, 0])  # later writes to the array are not seen
    np.testing.assert_array_equal(t.numpy(), original)
    t[1, 1] = other_value(dtype, original[1, 1])  # nor do the tensor's reach the array
    assert a[1, 1] == original[1, 1]


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=dtype_id)
def test_clone_copies(dtype: np.dtype) -> None:
    a = sample((5,), dtype)
    t = aidge.from_numpy(a)
    c = t.clone()
    assert c.data_ptr != t.data_ptr and c.dtype is t.dtype
    np.testing.assert_array_equal(c.numpy(), a)
    a[0] = other_value(dtype, a[0])
    assert c.numpy()[0] == sample((5,), dtype)[0]


def test_bfloat16_numpy_is_an_ml_dtypes_view() -> None:
    a = np.array([1.5, -2.25, 3.0, 0.5], dtype=ml_dtypes.bfloat16)
    t = aidge.from_numpy(a)
    assert t.dtype is aidge.dtype.bfloat16 and t.dtype_name == "bfloat16"
    v = t.numpy()
    assert v.dtype == BFLOAT16
    assert v.ctypes.data == a.ctypes.data == t.data_ptr
    v[1] = 8.0
    assert a[1] == 8.0
    a[2] = -1.0
    assert t.numpy()[2] == -1.0
    np.testing.assert_array_equal(np.asarray(t).view(np.uint16), a.view(np.uint16))


def test_bfloat16_memoryview_raises_buffer_error() -> None:
    t = aidge.from_numpy(np.zeros(3, dtype=ml_dtypes.bfloat16))
    with pytest.raises(BufferError, match=r"bfloat16.*numpy\(\)"):
        memoryview(t)


def test_bfloat16_tensor_from_float_data() -> None:
    t = aidge.Tensor(np.array([1.0, 2.5, -3.0], dtype=np.float32), dtype=aidge.dtype.bfloat16)
    assert t.dtype is aidge.dtype.bfloat16
    np.testing.assert_array_equal(t.numpy().astype(np.float32), [1.0, 2.5, -3.0])


# --------------------------------------------------------------------------
# Strides
# --------------------------------------------------------------------------


STRIDED = {
    "transposed": lambda: np.arange(12, dtype=np.float32).reshape(3, 4).T,
    "sliced": lambda: np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2],
    "negative": lambda: np.arange(7, dtype=np.float32)[::-1],
    "negative_2d": lambda: np.arange(20, dtype=np.float32).reshape(4, 5)[::-1, ::-2],
    "fortran_3d": lambda: np.asfortranarray(np.arange(24, dtype=np.float32).reshape(2, 3, 4)),
    "broadcast": lambda: np.broadcast_to(np.arange(3, dtype=np.float32), (4, 3)),  # stride 0, read-only
}


@pytest.mark.parametrize("make", STRIDED.values(), ids=STRIDED.keys())
def test_strides_are_honoured(make) -> None:
    a = make()
    t = aidge.from_numpy(a)
    assert t.shape == a.shape
    assert t.strides == tuple(s // a.itemsize for s in a.strides)
    assert t.data_ptr == a.ctypes.data  # the first element, also for negative strides
    assert not t.is_contiguous
    view = np.asarray(t)
    assert view.strides == a.strides and view.ctypes.data == a.ctypes.data
    np.testing.assert_array_equal(view, a)
    assert t.tolist() == a.tolist()

    assert t.readonly == (not a.flags.writeable)
    if a.flags.writeable:  # the view writes the same elements as the array
        index = tuple(n - 1 for n in a.shape)
        view[index] = 1000.0
        assert a[index] == 1000.0

    # Copies come out C-contiguous with the same values.
    for copy in (t.contiguous(), t.clone(), aidge.Tensor(a)):
        assert copy.is_contiguous and copy.data_ptr != a.ctypes.data
        np.testing.assert_array_equal(copy.numpy(), a)
    # A cast of a strided view converts the right elements.
    np.testing.assert_array_equal(t.astype(aidge.dtype.float64).numpy(), a.astype(np.float64))


class _Py_buffer(ctypes.Structure):
    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.c_void_p), ("len", ctypes.c_ssize_t),
                ("itemsize", ctypes.c_ssize_t), ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                ("format", ctypes.c_char_p), ("shape", ctypes.POINTER(ctypes.c_ssize_t)),
                ("strides", ctypes.POINTER(ctypes.c_ssize_t)), ("suboffsets", ctypes.c_void_p),
                ("internal", ctypes.c_void_p)]


_PyBUF_STRIDES = 0x0010 | 0x0008
_CONTIGUITY = {"C": 0x0020 | _PyBUF_STRIDES, "F": 0x0040 | _PyBUF_STRIDES, "ANY": 0x0080 | _PyBUF_STRIDES}


def get_buffer(obj: object, flags: int) -> None:
    """``PyObject_GetBuffer(obj, flags)``, released at once; a refusal propagates."""
    get = ctypes.pythonapi.PyObject_GetBuffer
    get.argtypes = [ctypes.py_object, ctypes.POINTER(_Py_buffer), ctypes.c_int]
    release = ctypes.pythonapi.PyBuffer_Release
    release.argtypes = [ctypes.POINTER(_Py_buffer)]
    view = _Py_buffer()
    get(obj, ctypes.byref(view), flags)
    release(ctypes.byref(view))


def buffer_granted(obj: object, flags: int) -> bool:
    try:
        get_buffer(obj, flags)
    except (BufferError, ValueError):  # NumPy refuses with ValueError
        return False
    return True


# Layout -> whether C, Fortran and any contiguous buffers are granted.
LAYOUTS = {
    "c": (lambda: np.arange(12, dtype=np.float32).reshape(3, 4), (True, False, True)),
    "fortran": (lambda: np.arange(12, dtype=np.float32).reshape(3, 4).T, (False, True, True)),
    "sliced": (lambda: np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2], (False, False, False)),
    "negative": (lambda: np.arange(6, dtype=np.float32)[::-1], (False, False, False)),
    "column": (lambda: np.arange(8, dtype=np.float32).reshape(4, 2)[:, :1], (False, False, False)),
    "row": (lambda: np.arange(8, dtype=np.float32).reshape(2, 4)[:1], (True, True, True)),
}


@pytest.mark.parametrize("make,expected", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_contiguous_buffer_requests(make, expected: tuple[bool, bool, bool]) -> None:
    """A consumer asking for C, Fortran or any contiguous memory gets it only when the layout is so, as from
    NumPy (it would read a strided view as one block)."""
    a = make()
    t = aidge.from_numpy(a)
    granted = tuple(buffer_granted(t, _CONTIGUITY[order]) for order in ("C", "F", "ANY"))
    assert granted == expected
    assert granted == tuple(buffer_granted(a, _CONTIGUITY[order]) for order in ("C", "F", "ANY"))
    if not expected[0]:
        with pytest.raises(BufferError, match="contiguous"):
            get_buffer(t, _CONTIGUITY["C"])


def test_contiguous_of_contiguous_tensor_is_itself() -> None:
    t = aidge.from_numpy(np.arange(6.0))
    assert t.contiguous() is t


def test_misaligned_array_is_shared_and_readable() -> None:
    buffer = bytearray(4 * 9 + 1)
    a = np.ndarray(shape=(9,), dtype=np.float32, buffer=buffer, offset=1)
    a[:] = np.linspace(-1, 1, 9, dtype=np.float32)
    assert not a.flags.aligned
    t = aidge.from_numpy(a)
    assert t.data_ptr == a.ctypes.data
    np.testing.assert_array_equal(t.clone().numpy(), a)
    np.testing.assert_array_equal(t.astype("float64").numpy(), a.astype(np.float64))


# --------------------------------------------------------------------------
# Read-only memory
# --------------------------------------------------------------------------


def readonly_array() -> np.ndarray:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    a.flags.writeable = False
    return a


def test_readonly_array_gives_readonly_tensor() -> None:
    a = readonly_array()
    t = aidge.from_numpy(a)
    assert t.readonly
    assert t.data_ptr == a.ctypes.data
    view = np.asarray(t)
    assert not view.flags.writeable
    assert view.ctypes.data == a.ctypes.data
    with pytest.raises(ValueError, match="read-only"):
        view[0, 0] = 5.0
    m = memoryview(t)
    assert m.readonly
    with pytest.raises(TypeError):
        m[0, 0] = 5.0
    with pytest.raises(ValueError, match="read-only"):
        t[0, 0] = 5.0
    np.testing.assert_array_equal(a, np.arange(6, dtype=np.float32).reshape(2, 3))


def test_writable_buffer_requests() -> None:
    """readinto() asks for a writable buffer: it fills a writable tensor's array, a read-only tensor refuses."""
    import io

    payload = np.arange(6, dtype=np.float32).tobytes()
    target = np.zeros((2, 3), np.float32)
    assert io.BytesIO(payload).readinto(aidge.from_numpy(target)) == 24
    np.testing.assert_array_equal(target.ravel(), np.arange(6))

    a = readonly_array()
    with pytest.raises(TypeError, match="read-write"):
        io.BytesIO(b"x" * 24).readinto(aidge.from_numpy(a))
    np.testing.assert_array_equal(a.ravel(), np.arange(6))


def test_bytes_give_readonly_tensor() -> None:
    data = np.arange(4, dtype=np.int32).tobytes()
    t = aidge.from_numpy(np.frombuffer(data, dtype=np.int32))
    assert t.readonly
    np.testing.assert_array_equal(t.numpy(), [0, 1, 2, 3])


def test_copy_of_readonly_tensor_is_writable() -> None:
    t = aidge.from_numpy(readonly_array())
    c = t.clone()
    assert not c.readonly
    c[0, 0] = 42.0
    assert c.numpy()[0, 0] == 42.0 and t.numpy()[0, 0] == 0.0


# --------------------------------------------------------------------------
# Lifetimes
# --------------------------------------------------------------------------


def test_tensor_keeps_array_alive() -> None:
    t = aidge.from_numpy(np.arange(100_000, dtype=np.int64))
    gc.collect()
    _ = [np.full(100_000, -1, dtype=np.int64) for _ in range(8)]  # would reuse freed memory
    np.testing.assert_array_equal(t.numpy(), np.arange(100_000))


def test_array_dies_after_tensor() -> None:
    a = np.arange(1000, dtype=np.float64)
    ref = weakref.ref(a)
    t = aidge.from_numpy(a)
    del a
    gc.collect()
    assert ref() is not None
    assert t.numpy()[999] == 999.0
    del t
    gc.collect()
    assert ref() is None


def test_numpy_view_keeps_array_alive_after_tensor_dies() -> None:
    a = np.arange(10, dtype=np.float32)
    ref = weakref.ref(a)
    t = aidge.from_numpy(a)
    view = np.asarray(t)
    del a, t
    gc.collect()
    assert ref() is not None
    np.testing.assert_array_equal(view, np.arange(10))
    del view
    gc.collect()
    assert ref() is None


def test_bfloat16_view_keeps_array_alive() -> None:
    a = np.arange(8, dtype=np.float32).astype(ml_dtypes.bfloat16)
    ref = weakref.ref(a)
    view = aidge.from_numpy(a).numpy()
    del a
    gc.collect()
    assert ref() is not None
    np.testing.assert_array_equal(view.astype(np.float32), np.arange(8))
    del view
    gc.collect()
    assert ref() is None


def test_sharing_leaves_refcount_unchanged() -> None:
    a = np.arange(16, dtype=np.float32)
    before = sys.getrefcount(a)
    for _ in range(1000):
        t = aidge.from_numpy(a)
        v = np.asarray(t)
        m = memoryview(t)
        m.release()
        del t, v
    gc.collect()
    assert sys.getrefcount(a) == before


def test_from_data_ptr_keeps_owner_alive() -> None:
    a = np.arange(12, dtype=np.float32)
    ref = weakref.ref(a)
    t = aidge.Tensor.from_data_ptr([3, 4], a.ctypes.data, dtype=aidge.dtype.float32, owner=a)
    assert t.shape == (3, 4) and t.data_ptr == a.ctypes.data
    a[5] = -5.0
    assert t.numpy()[1, 1] == -5.0
    del a
    gc.collect()
    assert ref() is not None
    del t
    gc.collect()
    assert ref() is None


# --------------------------------------------------------------------------
# Nasty inputs: Python exceptions, never a crash
# --------------------------------------------------------------------------


def test_object_array_is_refused() -> None:
    with pytest.raises(TypeError, match="object"):
        aidge.from_numpy(np.array([1, None], dtype=object))
    with pytest.raises(TypeError, match="object"):
        aidge.Tensor(np.array([1, "a"], dtype=object))


@pytest.mark.parametrize("array", [np.zeros(3, np.complex64), np.zeros(2, dtype=[("a", "f4"), ("b", "i4")]),
                                   np.array(["ab", "c"]), np.zeros(2, np.longdouble)],
                         ids=["complex", "structured", "unicode", "longdouble"])
def test_unsupported_element_types_are_type_errors(array: np.ndarray) -> None:
    with pytest.raises(TypeError):
        aidge.from_numpy(array)


def test_not_an_array() -> None:
    with pytest.raises(TypeError, match="numpy.ndarray"):
        aidge.from_numpy([1.0, 2.0])


def test_zero_dim_array() -> None:
    a = np.array(2.5)
    t = aidge.from_numpy(a)
    assert t.shape == () and t.dims == [] and t.size == 1
    assert t.data_ptr == a.ctypes.data
    assert np.asarray(t).shape == () and float(np.asarray(t)) == 2.5
    a[()] = 4.0
    assert float(t.numpy()) == 4.0
    assert aidge.Tensor(3.0).shape == ()
    with pytest.raises(TypeError):
        len(t)


def test_size_zero_array() -> None:
    a = np.zeros((0, 3), np.float32)
    t = aidge.from_numpy(a)
    assert t.shape == (0, 3) and t.size == 0
    assert np.asarray(t).shape == (0, 3)
    assert t.clone().shape == (0, 3)
    assert aidge.Tensor(a).shape == (0, 3)


def test_64_dimensions() -> None:
    a = np.arange(1.0).reshape((1,) * 64)
    t = aidge.from_numpy(a)
    assert t.shape == (1,) * 64
    assert np.asarray(t).shape == (1,) * 64
    assert np.asarray(t).ctypes.data == a.ctypes.data
    assert aidge.Tensor(dims=[1] * 64).shape == (1,) * 64


def test_65_dimensions_give_clear_errors() -> None:
    with pytest.raises(ValueError, match="64"):
        aidge.Tensor(dims=[1] * 65)
    # Reachable through reshape and from_data_ptr: the tensor exists, but NumPy cannot view it.
    t = aidge.Tensor(dims=[1]).reshape([1] * 65)
    assert t.shape == (1,) * 65
    for to_numpy in (np.asarray, np.array, aidge.Tensor.numpy, memoryview):
        with pytest.raises(ValueError, match="64"):
            to_numpy(t)


def test_byte_swapped_array_is_refused() -> None:
    a = np.arange(4, dtype=np.float32).astype(">f4")
    with pytest.raises(ValueError, match="byte-swapped"):
        aidge.from_numpy(a)
    # The conversion the message suggests works.
    t = aidge.from_numpy(a.astype(a.dtype.newbyteorder("=")))
    np.testing.assert_array_equal(t.numpy(), [0, 1, 2, 3])


@pytest.mark.parametrize("name", ["complex64", "float8", "str", "object"])
def test_unsupported_dtype_names_are_type_errors(name: str) -> None:
    with pytest.raises(TypeError):
        aidge.Tensor(dims=[2], dtype=name)
    with pytest.raises(TypeError):
        aidge.Tensor(np.zeros(2, np.float32)).astype(name)


def test_unsupported_dtype_error_is_aidge_error() -> None:
    with pytest.raises(aidge.UnsupportedTypeError, match="unsupported dtype 'complex64'"):
        aidge.Tensor(np.zeros(2, np.float32)).astype("complex64")


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=dtype_id)
def test_dtype_by_enum_name_and_numpy(dtype: np.dtype) -> None:
    member = aidge_dtype(dtype)
    for spelling in (member, member.value, dtype):
        t = aidge.Tensor(dims=[2, 2], dtype=spelling)
        assert t.dtype is member
        assert t.numpy().dtype == dtype
        np.testing.assert_array_equal(t.numpy(), np.zeros((2, 2), dtype))


def test_astype_matches_numpy() -> None:
    a = np.array([-2.7, -0.5, 0.0, 0.5, 1.5, 2.5, 300.0], dtype=np.float32)
    t = aidge.from_numpy(a)
    np.testing.assert_array_equal(t.astype(aidge.dtype.float64).numpy(), a.astype(np.float64))
    np.testing.assert_array_equal(t.astype(aidge.dtype.float16).numpy(), a.astype(np.float16))
    np.testing.assert_array_equal(t.astype(aidge.dtype.int32).numpy(), a.astype(np.int32))
    np.testing.assert_array_equal(t.astype(aidge.dtype.boolean).numpy(), a.astype(np.bool_))


def test_reshape_is_a_view() -> None:
    a = np.arange(12, dtype=np.int32)
    r = aidge.from_numpy(a).reshape([3, 4])
    assert r.shape == (3, 4) and r.data_ptr == a.ctypes.data
    a[5] = 50
    assert r.numpy()[1, 1] == 50
    with pytest.raises(ValueError):
        aidge.from_numpy(a).reshape([5, 5])
