"""DLPack with JAX: both directions share memory (JAX takes the producer object and wants 64-byte alignment, which
the engine's own allocations have)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import aidge


def test_jax_takes_an_aidge_tensor_without_copy() -> None:
    t = aidge.Tensor(np.arange(24, dtype=np.float32).reshape(2, 3, 4))  # engine memory, 64-byte aligned
    assert t.data_ptr % 64 == 0
    j = jax.dlpack.from_dlpack(t)
    assert j.unsafe_buffer_pointer() == t.data_ptr
    np.testing.assert_array_equal(np.asarray(j), np.asarray(t))


def test_aidge_takes_a_jax_array_without_copy() -> None:
    for dtype in (jnp.float32, jnp.int32, jnp.bfloat16):
        x = jnp.arange(12, dtype=dtype).reshape(3, 4)
        t = aidge.from_dlpack(x)
        assert t.data_ptr == x.unsafe_buffer_pointer()
        assert t.dims == [3, 4] and t.dtype_name == jnp.dtype(dtype).name
        np.testing.assert_array_equal(t.numpy().astype(np.float32), np.asarray(x).astype(np.float32))


def test_graph_runs_on_jax_input() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    graph = aidge.onnx.load(root / "examples" / "mnist_cnn" / "model.onnx")
    x = np.load(root / "examples" / "mnist_cnn" / "input.npy")
    np.testing.assert_allclose(np.asarray(graph(jnp.asarray(x))), np.asarray(graph(x)), rtol=0, atol=0)
