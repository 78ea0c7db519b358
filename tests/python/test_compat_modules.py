"""Aidge's own Python API (aidge_core, aidge_backend_cpu, aidge_onnx) on our engine, and the graph-building API
of `aidge`: checked against ONNX Runtime and PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import cuda_support  # noqa: F401  (the CUDA backend on the emulator where there is no GPU)
import aidge
import aidge_backend_cpu  # noqa: F401  (Aidge scripts import it)
import aidge_core
import aidge_onnx

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "examples" / "mnist_cnn" / "model.onnx"
INPUT = ROOT / "examples" / "mnist_cnn" / "input.npy"


def close(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_aidge_script_runs_unchanged() -> None:
    x = np.load(INPUT)
    model = aidge_onnx.load_onnx(str(MODEL))
    model.compile("cpu", aidge_core.dtype.float32, dims=[list(x.shape)])
    scheduler = aidge_core.SequentialScheduler(model)
    out = scheduler.forward(data=[aidge_core.Tensor(x)])
    want = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    close(np.array(out[0]), want)


def test_compile_checks_shapes() -> None:
    model = aidge_onnx.load_onnx(str(MODEL))
    with pytest.raises(ValueError, match="input"):
        model.compile("cpu", aidge_core.dtype.float32, dims=[[1, 3, 28, 28]])
    with pytest.raises(ValueError):
        model.compile("cpu", aidge_core.dtype.float32, dims=[[1, 1, 28, 28], [1]])
    # Aidge's compile picks the backend too: on cuda the model gives the CPU's results.
    model = aidge_onnx.load_onnx(str(MODEL))
    x = np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(np.float32)
    expected = model(x).numpy()
    aidge.cuda.set_options(tf32_convolution=False)
    model.compile("cuda", aidge_core.dtype.float32, dims=[[1, 1, 28, 28]])
    assert model.backend == "cuda"
    np.testing.assert_allclose(model(x).cpu().numpy(), expected, rtol=1e-4, atol=1e-5)


def test_aidge_core_tensor_semantics() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = aidge_core.Tensor(a)
    assert t.dims == [2, 3] and t.dtype == aidge_core.dtype.float32
    assert t.data_ptr != a.ctypes.data  # Aidge's Tensor(array) copies
    a[0, 0] = 99
    assert np.asarray(t)[0, 0] == 0
    assert np.asarray(t).ctypes.data == t.data_ptr  # and numpy sees it without a copy
    with pytest.raises(TypeError, match="list"):
        aidge_core.Tensor([1.0, 2.0])
    scalar = aidge_core.Tensor(3.5)
    assert scalar.dims == [] and float(np.asarray(scalar)) == 3.5
    with pytest.raises(TypeError, match="Tensor"):
        aidge_core.SequentialScheduler(aidge_onnx.load_onnx(str(MODEL))).forward(data=[np.zeros((1, 1, 28, 28))])


def test_factories_name_and_shape_their_producers() -> None:
    conv = aidge_core.Conv2D(3, 8, [3, 3], name="conv1")
    assert conv.type() == "Conv" and conv.name() == "conv1"
    weight, bias = conv.parents[1], conv.parents[2]
    assert weight.name() == "conv1_w" and bias.name() == "conv1_b"
    assert weight.producer_tensor.dims == [8, 3, 3, 3] and bias.producer_tensor.dims == [8]
    assert not np.asarray(weight.producer_tensor).any()  # zero until set, as in Aidge
    fc = aidge_core.FC(16, 4, no_bias=True, name="fc")
    assert [p.name() for p in fc.parents if p is not None] == ["fc_w"]
    assert aidge_core.BatchNorm2D(5, name="bn").parents[1].producer_tensor.dims == [5]
    assert conv == weight.children[0] and hash(conv) == hash(weight.children[0])


def set_weights(node: aidge.Node, *values: np.ndarray) -> None:
    """Writes through the zero-copy view of each producer's tensor."""
    for parent, value in zip(node.parents[1:], values):
        np.asarray(parent.producer_tensor)[...] = value


def test_built_graph_matches_torch() -> None:
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    b1 = rng.standard_normal(4).astype(np.float32)
    w2 = rng.standard_normal((5, 4 * 3 * 3)).astype(np.float32)
    b2 = rng.standard_normal(5).astype(np.float32)
    conv = aidge.Conv2D(2, 4, [3, 3], name="conv", stride_dims=[2, 2])
    fc = aidge.FC(36, 5, name="fc")
    set_weights(conv, w1, b1)
    set_weights(fc, w2, b2)
    graph = aidge.sequential([conv, aidge.ReLU(name="relu"), aidge.MaxPooling2D([2, 2], stride_dims=[2, 2]),
                              aidge.Flatten(), fc])
    assert [n.name() for n in graph.get_input_nodes()] == ["conv"]
    assert [(n.name(), i) for n, i in graph.get_ordered_inputs()] == [("conv", 0)]
    assert [(n.name(), i) for n, i in graph.get_ordered_outputs()] == [("fc", 0)]
    assert [[(c.name(), i) for c, i in out] for out in conv.outputs()] == [[("relu", 0)]]
    assert [[(c.name(), i) for c, i in out] for out in conv.get_parents()[1].outputs()] == [[("conv", 1)]]
    assert [n.name() for n in graph.get_output_nodes()] == ["fc"]
    x = rng.standard_normal((3, 2, 13, 13)).astype(np.float32)
    got = np.asarray(graph(x))
    t = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w1), torch.from_numpy(b1), stride=2)
    t = torch.nn.functional.max_pool2d(torch.relu(t), 2, 2).flatten(1)
    want = torch.nn.functional.linear(t, torch.from_numpy(w2), torch.from_numpy(b2)).numpy()
    close(got, want)


def test_residual_and_parallel_builders() -> None:
    x = np.linspace(-2, 2, 24, dtype=np.float32).reshape(2, 3, 4)
    block = aidge.residual([aidge.ReLU(), aidge.Tanh()])
    close(np.asarray(block(x)), np.tanh(np.maximum(x, 0)) + x)
    branches = aidge.sequential([aidge.Identity(), aidge.parallel([aidge.ReLU(), aidge.Sigmoid()]),
                                 aidge.Concat(2, axis=1)])
    close(np.asarray(branches(x)), np.concatenate([np.maximum(x, 0), 1 / (1 + np.exp(-x))], axis=1))


def test_fuse_batchnorm_keeps_outputs() -> None:
    rng = np.random.default_rng(1)
    conv = aidge_core.Conv2D(3, 6, [3, 3], name="c")
    bn = aidge_core.BatchNorm2D(6, name="bn")
    set_weights(conv, rng.standard_normal((6, 3, 3, 3)), rng.standard_normal(6))
    set_weights(bn, rng.uniform(0.5, 2, 6), rng.standard_normal(6), rng.standard_normal(6), rng.uniform(0.5, 2, 6))
    graph = aidge_core.sequential([conv, bn])
    x = rng.standard_normal((1, 3, 9, 9)).astype(np.float32)
    before = np.asarray(graph(x)).copy()
    assert aidge_core.fuse_batchnorm(graph) == 1
    assert "BatchNormalization" not in [n.type() for n in graph.get_nodes()]
    close(np.asarray(graph(x)), before)


def test_mermaid_save_and_supported_operators(tmp_path: Path) -> None:
    graph = aidge_onnx.load_onnx(MODEL.read_bytes())
    graph.save(tmp_path / "model")
    text = (tmp_path / "model.mmd").read_text()
    assert "flowchart" in text and "Conv" in text
    ops = aidge_onnx.supported_operators()
    assert aidge_onnx.node_import.supported_operators() == ops
    assert {"Conv", "Gemm", "Relu", "MaxPool"} <= set(ops)
    assert aidge_core.Tensor.available_backends() == (["cpu", "cuda"] if aidge.cuda.is_available() else ["cpu"])


def test_unknown_operator_fails_when_run() -> None:
    from onnx import TensorProto, helper

    node = helper.make_node("Frobnicate", ["x"], ["y"], name="strange")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = aidge_onnx.load_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    with pytest.raises(NotImplementedError, match="Frobnicate.*strange"):
        aidge_core.SequentialScheduler(model).forward(data=[aidge_core.Tensor(np.zeros(2, np.float32))])


def test_tensor_arithmetic_matches_numpy() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    y = rng.standard_normal((4,)).astype(np.float32) + 3  # broadcast, no zero divisor
    a, b = aidge.Tensor(x), aidge.Tensor(y)
    close(np.asarray(a + b), x + y)
    close(np.asarray(a - b), x - y)
    close(np.asarray(a * b), x * y)
    close(np.asarray(a / b), x / y)
    close(np.asarray(2 - a), 2 - x)
    close(np.asarray(1 / b), 1 / y)
    close(np.asarray(-a), -x)
    close(np.asarray(a @ aidge.Tensor(x.T.copy())), x @ x.T)
    close(np.asarray(aidge.apply("Softmax", x, axis=1)[0]), np.exp(x) / np.exp(x).sum(1, keepdims=True))
    with pytest.raises(TypeError, match="float64"):
        a + aidge.Tensor(y.astype(np.float64))  # dtypes are never changed silently
    with pytest.raises(ValueError):
        a + aidge.Tensor(np.ones(5, np.float32))  # shapes that do not broadcast


def test_aidge_core_tensor_in_place_methods() -> None:
    t = aidge_core.Tensor(np.arange(6, dtype=np.float32))
    assert isinstance(t, aidge_core.Tensor)
    pointer = t.data_ptr
    t.reshape([2, 3])
    assert t.dims == [2, 3] and t.data_ptr == pointer  # in place, same memory
    t.set_datatype(aidge_core.dtype.int32)
    assert t.dtype == aidge_core.dtype.int32
    np.testing.assert_array_equal(np.asarray(t), np.arange(6).reshape(2, 3))
    t.ones()
    assert (np.asarray(t) == 1).all()
    t.zeros()
    assert not np.asarray(t).any()
    t[4] = 7  # a flat index, as in Aidge
    assert t[4] == 7 and t[(1, 1)] == 7 and np.asarray(t)[1, 1] == 7
    with pytest.raises(IndexError):
        t[6]
    t.set_backend("cpu")
    with pytest.raises(NotImplementedError):
        t.set_backend("cuda")


def test_get_operator_and_fillers() -> None:
    conv = aidge_core.Conv2D(4, 16, [3, 3], name="conv")
    op = conv.get_operator()
    assert op.type() == "Conv" and op.nb_inputs() == 3
    weight = op.get_input(1)
    assert weight.dims == [16, 4, 3, 3]
    assert conv.get_parents()[1].get_operator().get_output(0).data_ptr == weight.data_ptr

    aidge_core.he_filler(weight)  # normal, variance 2 / fan_in, fan_in = 4 * 3 * 3
    w = np.asarray(weight)
    assert abs(w.mean()) < 0.1 and abs(w.std() - np.sqrt(2 / 36)) < 0.03
    aidge_core.xavier_uniform_filler(weight)
    bound = np.sqrt(3 / 36)
    assert np.abs(np.asarray(weight)).max() <= bound and np.abs(np.asarray(weight)).max() > 0.9 * bound
    aidge_core.uniform_filler(weight, -0.5, 0.25)
    assert np.asarray(weight).min() >= -0.5 and np.asarray(weight).max() < 0.25
    aidge_core.normal_filler(weight, mean=3.0, std_dev=0.5)
    assert abs(np.asarray(weight).mean() - 3) < 0.1
    aidge_core.constant_filler(weight, 0.125)
    assert (np.asarray(weight) == 0.125).all()
    # Seeded fills repeat; integer tensors are refused.
    a, b = aidge.Tensor(dims=[100]), aidge.Tensor(dims=[100])
    aidge._aidge.fill(a, "normal", seed=7)
    aidge._aidge.fill(b, "normal", seed=7)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(TypeError):
        aidge_core.constant_filler(aidge.Tensor(np.zeros(3, np.int32)), 1)
    with pytest.raises(TypeError):
        aidge._aidge.fill(None, "he")  # None never reaches the engine


def test_graph_replace_and_set_datatype() -> None:
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    relu = aidge_core.ReLU(name="act")
    graph = aidge_core.sequential([aidge_core.Identity(name="in"), relu, aidge_core.Identity(name="out")])
    close(np.asarray(graph(x)), np.maximum(x, 0))
    assert aidge_core.GraphView.replace([relu], [aidge_core.Sigmoid(name="sig")])
    assert graph.get_node("act") is None and graph.get_node("sig") is not None
    close(np.asarray(graph(x)), 1 / (1 + np.exp(-x)))
    assert not aidge_core.GraphView.replace([aidge_core.ReLU()], [aidge_core.Tanh()])  # in no graph

    fc = aidge_core.FC(4, 2, name="fc")
    set_weights(fc, np.arange(8, dtype=np.float32).reshape(2, 4), np.ones(2, np.float32))
    model = aidge_core.sequential([fc])
    model.set_datatype(aidge_core.dtype.float64)
    assert fc.get_operator().get_input(1).dtype == aidge_core.dtype.float64
    y = model(x.astype(np.float64))
    assert y.dtype == aidge_core.dtype.float64
    np.testing.assert_allclose(np.asarray(y), x.astype(np.float64) @ np.arange(8.0).reshape(2, 4).T + 1)


def test_scheduling_diagram_lists_every_kernel(tmp_path: Path) -> None:
    model = aidge_onnx.load_onnx(str(MODEL))
    scheduler = aidge_core.SequentialScheduler(model)
    with pytest.raises(RuntimeError):
        scheduler.save_scheduling_diagram(str(tmp_path / "early"))
    scheduler.forward(data=[aidge_core.Tensor(np.load(INPUT))])
    scheduler.save_scheduling_diagram(str(tmp_path / "sched"))
    lines = (tmp_path / "sched.mmd").read_text().splitlines()
    assert lines[0] == "gantt"
    steps = model.profile(np.load(INPUT))
    assert len([line for line in lines if ":" in line and "(" in line]) == len(steps)
    assert {t for _, t, _ in steps} >= {"Conv", "Gemm"} and all(s >= 0 for _, _, s in steps)


def test_matmul_to_fc_keeps_outputs() -> None:
    rng = np.random.default_rng(3)
    w1, b1 = rng.standard_normal((12, 5)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    w2 = rng.standard_normal((5, 3)).astype(np.float32)
    graph = aidge_core.sequential([
        aidge_core.Flatten(),
        aidge_core.MatMul(name="mm1"), aidge_core.Add(name="add1"), aidge_core.ReLU(),
        aidge_core.Flatten(), aidge_core.MatMul(name="mm2"),
    ])
    for node, value in (("mm1", w1), ("add1", b1), ("mm2", w2)):
        producer = aidge_core.Producer(aidge_core.Tensor(value), name=f"{node}_p")
        graph.get_node(node).set_input(1, producer)
        graph.add(producer)  # recomputes the graph's inputs: only the data input is left
    assert len(graph.inputs) == 1
    x = rng.standard_normal((4, 3, 4)).astype(np.float32)
    want = np.maximum(x.reshape(4, 12) @ w1 + b1, 0) @ w2
    close(np.asarray(graph(x)), want)
    assert aidge_core.matmul_to_fc(graph) == 2
    types = [n.type() for n in graph.get_nodes()]
    assert "MatMul" not in types and "Add" not in types and types.count("Gemm") == 2
    close(np.asarray(graph(x)), want)


def test_register_import_replaces_the_generic_operator() -> None:
    from onnx import TensorProto, helper

    node = helper.make_node("Swish", ["x"], ["y"], name="act")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    seen = []

    def convert(onnx_node, input_nodes, opset):  # noqa: ANN001, ANN202
        seen.append((onnx_node.op_type, len(input_nodes), opset))
        return aidge_core.Sigmoid(name="swish_as_sigmoid")

    aidge_onnx.register_import("Swish", convert)
    try:
        graph = aidge_onnx.load_onnx(model)
    finally:
        aidge_onnx._CONVERTERS.pop("Swish")
    assert seen == [("Swish", 1, 17)]
    assert [n.type() for n in graph.get_nodes()] == ["Sigmoid"]
    x = np.linspace(-2, 2, 6, dtype=np.float32).reshape(2, 3)
    close(np.asarray(graph(x)), 1 / (1 + np.exp(-x)))


def test_array_protocol_copy_rules() -> None:
    t = aidge.Tensor(np.arange(4, dtype=np.float32))
    assert np.asarray(t).ctypes.data == t.data_ptr
    assert np.array(t, copy=True).ctypes.data != t.data_ptr
    np.testing.assert_array_equal(np.asarray(t, dtype=np.float64), np.arange(4.0))
    with pytest.raises(ValueError, match="without a copy"):
        t.__array__(np.float64, copy=False)
