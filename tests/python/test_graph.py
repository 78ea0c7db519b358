"""ONNX graphs from Python: loading from a path, bytes or a ModelProto, outputs checked against ONNX Runtime with
NumPy, aidge and torch inputs, output lifetimes, concurrent runs from Python threads, the Scheduler, Mermaid export,
and errors for bad models and bad inputs."""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import aidge
from interop_support import ExportedModel, assert_matches_ort, export_models


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ExportedModel]:
    """The models, exported once per session into a pytest temporary folder."""
    return export_models(tmp_path_factory.mktemp("models"))


def run_np(graph: aidge.GraphView, *inputs) -> np.ndarray:
    out = graph(*inputs)
    assert isinstance(out, aidge.Tensor)
    return out.numpy()


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def test_load_path_bytes_and_proto_agree(exported: dict[str, ExportedModel]) -> None:
    m = exported["mlp"]
    x = m.input(1)
    from_path = aidge.onnx.load(m.path)
    from_str = aidge.onnx.load(str(m.path))
    from_bytes = aidge.onnx.load(m.path.read_bytes())
    from_proto = aidge.onnx.load(onnx.load(str(m.path)))
    reference = run_np(from_path, x)
    for graph in (from_str, from_bytes, from_proto):
        assert isinstance(graph, aidge.GraphView)
        assert graph.inputs == from_path.inputs and graph.outputs == from_path.outputs
        np.testing.assert_array_equal(run_np(graph, x), reference)
    assert_matches_ort(reference, m.reference(x))


def test_graph_description(exported: dict[str, ExportedModel]) -> None:
    g = aidge.onnx.load(exported["mlp"].path)
    assert g.inputs == [("input", "float32", ["batch", 784])]
    assert g.outputs == ["output"]
    assert len(g.get_nodes()) >= 5  # 3 Gemm/MatMul layers, ReLU, GELU (plus weights)


def test_load_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.onnx"
    with pytest.raises(OSError, match="missing.onnx") as info:
        aidge.onnx.load(missing)
    assert isinstance(info.value, aidge.FileError) and isinstance(info.value, aidge.AidgeError)


def test_load_random_bytes() -> None:
    data = np.random.default_rng(0).bytes(4096)
    with pytest.raises(ValueError, match="ONNX") as info:
        aidge.onnx.load(data)
    assert isinstance(info.value, aidge.InvalidValueError)
    with pytest.raises(ValueError):
        aidge.onnx.load(b"")


def test_load_random_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.onnx"
    path.write_bytes(np.random.default_rng(1).bytes(2048))
    with pytest.raises(ValueError, match="ONNX"):
        aidge.onnx.load(path)


def test_load_wrong_argument_type() -> None:
    with pytest.raises(TypeError, match="path, bytes or an onnx.ModelProto"):
        aidge.onnx.load(123)


# --------------------------------------------------------------------------
# Outputs against ONNX Runtime, inputs as NumPy, aidge and torch tensors
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mlp", "resnet18", "mobilenetv2"])
def test_matches_onnxruntime(exported: dict[str, ExportedModel], name: str) -> None:
    m = exported[name]
    g = aidge.onnx.load(m.path)
    x = m.input(2)
    expected = m.reference(x)

    from_numpy = run_np(g, x)
    assert_matches_ort(from_numpy, expected)
    np.testing.assert_array_equal(run_np(g, aidge.Tensor(x)), from_numpy)
    np.testing.assert_array_equal(run_np(g, aidge.from_numpy(x)), from_numpy)
    np.testing.assert_array_equal(run_np(g, torch.from_numpy(x.copy())), from_numpy)  # through DLPack
    np.testing.assert_array_equal(g.run(x)[0].numpy(), from_numpy)


def test_strided_and_readonly_inputs(exported: dict[str, ExportedModel]) -> None:
    m = exported["mlp"]
    g = aidge.onnx.load(m.path)
    x = m.input(3)
    expected = run_np(g, x)
    fortran = np.asfortranarray(x)
    assert not fortran.flags.c_contiguous
    np.testing.assert_allclose(run_np(g, fortran), expected, rtol=0, atol=1e-6)
    transposed_torch = torch.from_numpy(x.T.copy()).t()
    assert not transposed_torch.is_contiguous()
    np.testing.assert_allclose(run_np(g, transposed_torch), expected, rtol=0, atol=1e-6)
    readonly = x.copy()
    readonly.flags.writeable = False
    np.testing.assert_array_equal(run_np(g, readonly), expected)
    np.testing.assert_array_equal(readonly, x)  # inputs are not written


def test_outputs_share_memory_with_numpy_and_torch(exported: dict[str, ExportedModel]) -> None:
    g = aidge.onnx.load(exported["mlp"].path)
    out = g(exported["mlp"].input())
    assert np.asarray(out).ctypes.data == out.data_ptr
    assert torch.from_dlpack(out).data_ptr() == out.data_ptr


def test_outputs_stay_valid_after_later_runs(exported: dict[str, ExportedModel]) -> None:
    m = exported["mlp"]
    g = aidge.onnx.load(m.path)
    x1, x2 = m.input(10), m.input(11)
    first = g(x1)
    kept = first.numpy().copy()
    second = g(x2)
    third = g(np.zeros_like(x1))
    assert first.data_ptr != second.data_ptr
    np.testing.assert_array_equal(first.numpy(), kept)
    assert_matches_ort(first.numpy(), m.reference(x1))
    assert_matches_ort(second.numpy(), m.reference(x2))
    assert_matches_ort(third.numpy(), m.reference(np.zeros_like(x1)))


def test_outputs_outlive_the_graph(exported: dict[str, ExportedModel]) -> None:
    m = exported["mlp"]
    x = m.input(4)
    g = aidge.onnx.load(m.path)
    out = g(x)
    view = np.asarray(out)
    as_torch = torch.from_dlpack(out)
    del g
    gc.collect()
    _ = [np.full((256, 256), np.nan, np.float32) for _ in range(16)]  # would reuse freed memory
    assert_matches_ort(out.numpy(), m.reference(x))
    np.testing.assert_array_equal(view, out.numpy())
    np.testing.assert_array_equal(as_torch.numpy(), out.numpy())


def test_dynamic_batch(exported: dict[str, ExportedModel]) -> None:
    m = exported["mlp"]
    g = aidge.onnx.load(m.path)
    for batch in (1, 5, 2):
        x = np.random.default_rng(batch).standard_normal((batch, 784)).astype(np.float32)
        assert_matches_ort(run_np(g, x), m.reference(x))


# --------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------


def test_wrong_input_shape(exported: dict[str, ExportedModel]) -> None:
    g = aidge.onnx.load(exported["mlp"].path)
    with pytest.raises(ValueError, match=r"input 'input' has shape 1x783.*batchx784") as info:
        g(np.zeros((1, 783), np.float32))
    assert isinstance(info.value, aidge.InvalidValueError)
    with pytest.raises(ValueError, match="shape 784"):
        g(np.zeros(784, np.float32))


def test_wrong_input_dtype(exported: dict[str, ExportedModel]) -> None:
    g = aidge.onnx.load(exported["mlp"].path)
    # A dtype the model does not take is an UnsupportedTypeError (an AidgeError and a TypeError).
    with pytest.raises(aidge.UnsupportedTypeError, match="input 'input' must be float32, got float64") as info:
        g(np.zeros((1, 784), np.float64))
    assert isinstance(info.value, TypeError)
    with pytest.raises(TypeError, match="got int64"):
        g(torch.zeros((1, 784), dtype=torch.int64))


def test_wrong_number_of_inputs(exported: dict[str, ExportedModel]) -> None:
    g = aidge.onnx.load(exported["mlp"].path)
    x = exported["mlp"].input()
    with pytest.raises(ValueError, match="takes 1 inputs"):
        g(x, x)
    with pytest.raises(ValueError, match="takes 1 inputs"):
        g()


def test_input_that_is_no_tensor(exported: dict[str, ExportedModel]) -> None:
    g = aidge.onnx.load(exported["mlp"].path)
    with pytest.raises(TypeError):
        g("not a tensor")
    with pytest.raises(TypeError):
        g(np.array([object()] * 784).reshape(1, 784))


def test_error_then_good_run(exported: dict[str, ExportedModel]) -> None:
    m = exported["mlp"]
    g = aidge.onnx.load(m.path)
    with pytest.raises(ValueError):
        g(np.zeros((1, 7), np.float32))
    x = m.input(5)
    assert_matches_ort(run_np(g, x), m.reference(x))


# --------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------


def run_in_threads(jobs: list) -> tuple[list, float]:
    """Runs each zero-argument callable in its own thread; returns their results (re-raising errors) and the
    wall time."""
    results: list = [None] * len(jobs)
    errors: list = []

    def work(i: int) -> None:
        try:
            results[i] = jobs[i]()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    elapsed = time.perf_counter() - start
    assert not any(t.is_alive() for t in threads), "a run did not finish"
    if errors:
        raise errors[0]
    return results, elapsed


def test_two_models_in_two_threads(exported: dict[str, ExportedModel]) -> None:
    resnet, mobilenet = exported["resnet18"], exported["mobilenetv2"]
    g1, g2 = aidge.onnx.load(resnet.path), aidge.onnx.load(mobilenet.path)
    x1, x2 = resnet.input(20), mobilenet.input(21)
    e1, e2 = resnet.reference(x1), mobilenet.reference(x2)
    runs = 3

    def job(graph, x):
        return lambda: [graph(x).numpy() for _ in range(runs)]

    job(g1, x1)(), job(g2, x2)()  # warm both plans

    # One kernel thread per run, so that two runs at once can use two cores.
    threads = aidge.get_num_threads()
    aidge.set_num_threads(1)
    try:
        start = time.perf_counter()
        serial = [job(g1, x1)(), job(g2, x2)()]
        serial_time = time.perf_counter() - start
        (out1, out2), parallel_time = run_in_threads([job(g1, x1), job(g2, x2)])
    finally:
        aidge.set_num_threads(threads)
    for outs, expected in ((out1, e1), (out2, e2), (serial[0], e1), (serial[1], e2)):
        for out in outs:
            assert_matches_ort(out, expected)
    print(f"\n{runs} runs each of ResNet-18 and MobileNetV2: serial {serial_time * 1e3:.0f} ms, "
          f"two threads {parallel_time * 1e3:.0f} ms (one kernel thread each)")


def test_same_graph_in_two_threads(exported: dict[str, ExportedModel]) -> None:
    m = exported["mlp"]
    g = aidge.onnx.load(m.path)
    inputs = [m.input(30 + i) for i in range(8)]
    expected = [m.reference(x) for x in inputs]

    def job(offset: int):
        return lambda: [(i, g(inputs[i]).numpy()) for _ in range(10) for i in range(offset, len(inputs), 2)]

    results, _ = run_in_threads([job(0), job(1)])
    seen = 0
    for outs in results:
        for i, out in outs:
            assert_matches_ort(out, expected[i])
            seen += 1
    assert seen == 10 * len(inputs)


def test_same_graph_different_batches_in_two_threads(exported: dict[str, ExportedModel]) -> None:
    m = exported["mlp"]
    g = aidge.onnx.load(m.path)
    xs = [np.random.default_rng(b).standard_normal((b, 784)).astype(np.float32) for b in (1, 6)]
    expected = [m.reference(x) for x in xs]
    results, _ = run_in_threads([lambda x=x: [g(x).numpy() for _ in range(20)] for x in xs])
    for outs, e in zip(results, expected):
        for out in outs:
            assert_matches_ort(out, e)


# --------------------------------------------------------------------------
# Scheduler and Mermaid export
# --------------------------------------------------------------------------


def test_scheduler_forward(exported: dict[str, ExportedModel]) -> None:
    m = exported["mlp"]
    g = aidge.onnx.load(m.path)
    x = m.input(40)
    outputs = aidge.Scheduler(g).forward(data=[aidge.Tensor(x)])
    assert isinstance(outputs, list) and len(outputs) == 1
    assert isinstance(outputs[0], aidge.Tensor)
    assert_matches_ort(outputs[0].numpy(), m.reference(x))
    np.testing.assert_array_equal(outputs[0].numpy(), run_np(g, x))
    with pytest.raises(TypeError):
        aidge.Scheduler("not a graph")


def test_save_writes_mermaid(exported: dict[str, ExportedModel], tmp_path: Path) -> None:
    g = aidge.onnx.load(exported["mlp"].path)
    g.save(tmp_path / "mlp")
    written = tmp_path / "mlp.mmd"
    assert written.is_file()
    text = written.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0].startswith("%%{init:") and lines[0].rstrip().endswith("}%%")
    assert lines[1].startswith("flowchart")
    assert text == g.mermaid()
    assert "Producer" in text
