"""ONNX export: import → export → import of the engine's test models gives the same outputs and weights bit for
bit, the exported files pass the ONNX checker (full check) and ONNX Runtime runs them as it runs the originals."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import aidge
import aidge.onnx
import aidge_onnx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
import models  # noqa: E402

MODEL_NAMES = ["resnet18", "mobilenetv2", "transformer", "mlp", "small_cnn"]
CASES = [f"{name}-{exporter}" for name in MODEL_NAMES for exporter in ("dynamo", "torchscript")] + ["mnist_cnn"]


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each engine test model as PyTorch's exporters write it (and the MNIST example)."""
    folder = tmp_path_factory.mktemp("models")
    files = {"mnist_cnn": ROOT / "examples" / "mnist_cnn" / "model.onnx"}
    return _Lazy(folder, files)


class _Lazy(dict):
    """Exports a model the first time a test asks for it."""

    def __init__(self, folder: Path, files: dict[str, Path]) -> None:
        super().__init__(files)
        self.folder = folder

    def __missing__(self, case: str) -> Path:
        name, exporter = case.split("-")
        model, example = models.MODELS[name]()
        path = models.export(model, example, self.folder / f"{case}.onnx", dynamo=exporter == "dynamo")
        self[case] = path
        return path


def random_input(path: Path, batch: int = 3, seed: int = 7) -> np.ndarray:
    proto = onnx.load(str(path), load_external_data=False)
    dims = [d.dim_value if d.HasField("dim_value") else batch for d in proto.graph.input[0].type.tensor_type.shape.dim]
    return np.random.default_rng(seed).standard_normal(dims).astype(np.float32)


def run(graph: aidge.GraphView, x: np.ndarray) -> list[np.ndarray]:
    return [np.array(t) for t in graph.run([x])]


def run_ort(path: Path, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


def initializers(path: Path) -> dict[str, np.ndarray]:
    proto = onnx.load(str(path))
    return {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}


@pytest.mark.parametrize("case", CASES)
def test_round_trip_is_bit_identical(model_files: dict[str, Path], tmp_path: Path, case: str) -> None:
    original = model_files[case]
    graph = aidge.onnx.load(original)
    exported = tmp_path / "exported.onnx"
    aidge.onnx.export(graph, exported)

    proto = onnx.load(str(exported))
    onnx.checker.check_model(proto, full_check=True)
    source = onnx.load(str(original), load_external_data=False)
    assert [o.version for o in proto.opset_import if o.domain == ""] == \
        [o.version for o in source.opset_import if o.domain in ("", "ai.onnx")], "the imported opset is kept"
    assert [n.name for n in proto.graph.node if n.op_type != "Constant"] == \
        [n.name for n in source.graph.node if n.op_type != "Constant"], "nodes keep their names and order"

    weights, written = initializers(original), initializers(exported)
    assert weights, "the model has initializers"
    for name, value in weights.items():
        assert name in written, f"initializer '{name}' is missing"
        assert written[name].dtype == value.dtype and np.array_equal(written[name], value), name

    again = aidge.onnx.load(exported)
    x = random_input(original)
    ours, theirs = run(graph, x), run(again, x)
    assert len(ours) == len(theirs) == len(proto.graph.output)
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype and np.array_equal(a, b)

    for a, b in zip(run_ort(exported, x), run_ort(original, x)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["small_cnn-torchscript", "resnet18-dynamo", "transformer-torchscript", "mlp-torchscript", "mlp-dynamo"])
def test_graph_after_recipes_exports_valid_onnx(model_files: dict[str, Path], tmp_path: Path, case: str) -> None:
    original = model_files[case]
    x = random_input(original, batch=2)
    reference = run_ort(original, x)
    graph = aidge.onnx.load(original)
    changes = graph.optimize()
    changes["fuse_linear"] = graph.apply_recipe("fuse_linear")
    assert sum(changes.values()) > 0, changes
    before = run(graph, x)
    types = {n.type() for n in graph.get_nodes()}
    exported = tmp_path / "optimized.onnx"
    aidge.onnx.export(graph, exported)

    proto = onnx.load(str(exported))
    onnx.checker.check_model(proto, full_check=True)
    assert "Linear" not in {n.op_type for n in proto.graph.node}
    assert all(not any(a.name == "activation" for a in n.attribute) for n in proto.graph.node)
    after = run(aidge.onnx.load(exported), x)
    for a, b, r, o in zip(after, before, reference, run_ort(exported, x)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(o, r, rtol=1e-4, atol=1e-4)
    assert types, "the optimized graph has nodes"


@pytest.mark.parametrize("shape", [(2, 3, 4), (2, 4)])
def test_linear_is_written_back_as_onnx(tmp_path: Path, shape: tuple[int, ...]) -> None:
    """MatMul(X, Transpose(W)) + B fused into the engine's Linear comes back as Gemm (2-D X) or MatMul + Add."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(3)
    w, b = rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    graph_proto = helper.make_graph(
        [helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]), helper.make_node("MatMul", ["x", "wt"], ["p"]),
         helper.make_node("Add", ["p", "b"], ["y"])],
        "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [*shape[:-1], 5])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    original = tmp_path / "linear.onnx"
    onnx.save(helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", 17)]), str(original))
    graph = aidge.onnx.load(original)
    assert graph.apply_recipe("fuse_linear") == 1
    assert "Linear" in {n.type() for n in graph.get_nodes()}
    exported = tmp_path / "exported.onnx"
    aidge.onnx.export(graph, exported)
    proto = onnx.load(str(exported))
    onnx.checker.check_model(proto, full_check=True)
    types = [n.op_type for n in proto.graph.node]
    assert types == (["Gemm"] if len(shape) == 2 else ["Transpose", "MatMul", "Add"])
    x = rng.standard_normal(shape).astype(np.float32)
    expected = x @ w.T + b
    np.testing.assert_allclose(run_ort(exported, x)[0], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(run(aidge.onnx.load(exported), x)[0], expected, rtol=1e-5, atol=1e-5)


def test_older_opset_and_clear_errors(model_files: dict[str, Path], tmp_path: Path) -> None:
    original = model_files["mnist_cnn"]
    graph = aidge.onnx.load(original)
    exported = tmp_path / "opset13.onnx"
    aidge.onnx.export(graph, exported, opset=13)
    proto = onnx.load(str(exported))
    onnx.checker.check_model(proto, full_check=True)
    assert [o.version for o in proto.opset_import if o.domain == ""] == [13]
    x = random_input(original)
    for a, b in zip(run_ort(exported, x), run_ort(original, x)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)

    transformer = aidge.onnx.load(model_files["transformer-torchscript"])
    with pytest.raises(Exception, match=r"LayerNormalization\) cannot be written at opset 12"):
        aidge.onnx.export(transformer, tmp_path / "old.onnx", opset=12)


def test_external_data(model_files: dict[str, Path], tmp_path: Path) -> None:
    original = model_files["small_cnn-dynamo"]
    graph = aidge.onnx.load(original)
    exported = tmp_path / "external.onnx"
    aidge.onnx.export(graph, exported, external_data=True, size_threshold=1024)
    assert (tmp_path / "external.onnx.data").stat().st_size > 0
    proto = onnx.load(str(exported), load_external_data=False)
    external = {t.name for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL}
    assert external and all(numpy_helper.to_array(t).nbytes < 1024 for t in proto.graph.initializer
                            if t.name not in external)
    onnx.checker.check_model(str(exported), full_check=True)
    weights, written = initializers(original), initializers(exported)
    for name, value in weights.items():
        assert np.array_equal(written[name], value), name
    x = random_input(original)
    assert all(np.array_equal(a, b) for a, b in zip(run(aidge.onnx.load(exported), x), run(graph, x)))


def test_serialize_to_bytes(model_files: dict[str, Path]) -> None:
    graph = aidge.onnx.load(model_files["mnist_cnn"])
    data = aidge.onnx.export(graph)
    assert isinstance(data, bytes)
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)


def test_compat_export_onnx_with_inputs_dims(model_files: dict[str, Path], tmp_path: Path) -> None:
    original = model_files["mnist_cnn"]
    graph = aidge_onnx.load_onnx(str(original))
    aidge_onnx.export_onnx(graph, str(tmp_path / "compat"), inputs_dims=[[1, 1, 28, 28]])
    path = tmp_path / "compat.onnx"
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    dims = lambda v: [d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert dims(proto.graph.input[0]) == [1, 1, 28, 28]
    assert dims(proto.graph.output[0]) == [1, 10], "fixed input dims give fixed output dims"
    x = np.load(ROOT / "examples" / "mnist_cnn" / "input.npy").astype(np.float32)
    np.testing.assert_allclose(run_ort(path, x)[0], run_ort(original, x)[0], rtol=1e-6, atol=1e-6)

    aidge_onnx.export_onnx(graph, str(tmp_path / "named.onnx"), outputs_dims=[["batch", 10]], opset=17)
    out = onnx.load(str(tmp_path / "named.onnx")).graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in out] == ["batch", 10]


def test_if_branches_reading_outer_values_round_trip(tmp_path: Path) -> None:
    """Subgraphs are written with their nodes; the values they read from the enclosing graph stay names there."""
    from onnx import TensorProto, helper

    then = helper.make_graph([helper.make_node("Add", ["x", "one"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])])
    other = helper.make_graph([helper.make_node("Mul", ["x", "x"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, [2])])
    graph_proto = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0), helper.make_node("Greater", ["s", "zero"], ["c"]),
         helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other, name="if")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.array(1, np.float32), "one"), numpy_helper.from_array(np.array(0, np.float32), "zero")])
    original = tmp_path / "if.onnx"
    onnx.save(helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", 17)]), str(original))
    graph = aidge.onnx.load(original)
    exported = tmp_path / "exported.onnx"
    aidge.onnx.export(graph, exported)
    proto = onnx.load(str(exported))
    onnx.checker.check_model(proto, full_check=True)
    assert [n.op_type for n in proto.graph.node] == ["ReduceSum", "Greater", "If"]
    assert list(proto.graph.node[2].input) == ["c"]
    again = aidge.onnx.load(exported)
    for x, expected in [([1, 2], [2, 3]), ([-1, -2], [1, 4])]:
        x = np.array(x, np.float32)
        assert np.array_equal(run(again, x)[0], np.array(expected, np.float32))
        assert np.array_equal(run_ort(exported, x)[0], np.array(expected, np.float32))
