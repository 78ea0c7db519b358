"""End-to-end tests of `aidge check`: the model runs in Aidge and in ONNX Runtime
(through the Python that ``AIDGE_PYTHON`` names: here the one running the
tests) and the command prints the differences.

The models are built with ``onnx.helper`` in pytest's ``tmp_path``; the tests
read the command's tables and compare them with what they compute themselves
(ONNX Runtime on the inputs the command kept, `aidge run` on the same inputs).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import assert_ok, describe

OPSET = [helper.make_opsetid("", 17)]


@pytest.fixture(autouse=True)
def reference_python(monkeypatch) -> None:
    """ONNX Runtime is in the interpreter running the tests, not necessarily in `python3`."""
    monkeypatch.setenv("AIDGE_PYTHON", sys.executable)


def save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=OPSET)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def weight(name: str, shape: tuple[int, ...], seed: int) -> onnx.TensorProto:
    values = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return numpy_helper.from_array(values, name)


def mlp(path: Path) -> Path:
    """y = relu(x @ w + b), x of shape [N, 8] with a symbolic N."""
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["mm"], name="matmul"),
        helper.make_node("Add", ["mm", "b"], ["sum"], name="add"),
        helper.make_node("Relu", ["sum"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [weight("w", (8, 4), 1), weight("b", (4,), 2)])
    return save(graph, path)


def convnet(path: Path) -> Path:
    """Conv -> BatchNormalization -> Relu -> MaxPool -> Flatten -> Gemm (Aidge fuses the first three)."""
    bn = [weight(f"bn_{k}", (4,), 10 + i) for i, k in enumerate(["scale", "bias", "mean"])]
    bn.append(numpy_helper.from_array(np.linspace(0.5, 2, 4, dtype=np.float32), "bn_var"))
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["conv_out"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["conv_out", "bn_scale", "bn_bias", "bn_mean", "bn_var"],
                         ["bn_out"], name="bn"),
        helper.make_node("Relu", ["bn_out"], ["relu_out"], name="relu"),
        helper.make_node("MaxPool", ["relu_out"], ["pool_out"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool_out"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "convnet",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
        [weight("conv_w", (4, 3, 3, 3), 3), weight("conv_b", (4,), 4), *bn,
         weight("fc_w", (5, 36), 5), weight("fc_b", (5,), 6)])
    return save(graph, path)


def table(stdout: str, first_column: str) -> list[dict[str, str]]:
    """The rows of the table whose header starts with ``first_column`` (columns are 2+ spaces apart)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [first_column])
    header = re.split(r"\s{2,}", lines[start].strip())
    rows = []
    for line in lines[start + 1:]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) != len(header):
            break
        rows.append(dict(zip(header, cells)))
    return rows


def ort_run(model: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, feeds)


def aidge_run(aidge, model: Path, inputs: list[Path], out: Path) -> list[np.ndarray]:
    args: list = ["run", model]
    for f in inputs:
        args += ["--input", f]
    proc = aidge(*args, "--output-dir", out)
    assert_ok(proc)
    return [np.load(out / f"output_{k}.npy") for k in range(len(list(out.glob("output_*.npy"))))]


def test_check_reports_the_difference_it_measures(aidge, tmp_path: Path) -> None:
    model = mlp(tmp_path / "mlp.onnx")
    work = tmp_path / "work"
    proc = aidge("check", model, "--dim", "N=3", "--work-dir", work)
    assert_ok(proc)
    [row] = table(proc.stdout, "output")
    assert (row["output"], row["shape"], row["dtype"], row["result"]) == ("y", "[3, 4]", "float32", "PASS"), describe(proc)
    assert "1 of 1 outputs pass" in proc.stdout

    # The random input is the one both engines got: N=3 from --dim, values in [-1, 1].
    x = np.load(work / "input_0.npy")
    assert x.shape == (3, 8) and x.dtype == np.float32 and np.abs(x).max() <= 1
    expected = ort_run(model, {"x": x})[0]
    np.testing.assert_array_equal(np.load(work / "ort_0.npy"), expected)
    got = aidge_run(aidge, model, [work / "input_0.npy"], tmp_path / "out")[0]
    measured = float(np.abs(got - expected).max())
    assert measured < 1e-5
    assert float(row["max abs"]) == pytest.approx(measured, rel=1e-2, abs=1e-12), describe(proc)


def test_check_integer_outputs_and_input_files(aidge, tmp_path: Path) -> None:
    """A .pb input file for the float input, random indices for the int64 one; the int64 output compares exactly."""
    nodes = [
        helper.make_node("Gather", ["table", "indices"], ["rows"], name="gather"),
        helper.make_node("ArgMax", ["rows"], ["best"], name="argmax", axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "gather",
        [helper.make_tensor_value_info("table", TensorProto.FLOAT, [10, 3]),
         helper.make_tensor_value_info("indices", TensorProto.INT64, [4])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, [4, 3]),
         helper.make_tensor_value_info("best", TensorProto.INT64, [4])])
    model = save(graph, tmp_path / "gather.onnx")
    table_file = tmp_path / "table.pb"
    table_file.write_bytes(numpy_helper.from_array(
        np.random.default_rng(7).standard_normal((10, 3)).astype(np.float32), "table").SerializeToString())
    proc = aidge("check", model, "--input", table_file)
    assert_ok(proc)
    assert "table [10, 3] float32" in proc.stdout and str(table_file) in proc.stdout, describe(proc)
    assert "indices [4] int64 (random)" in proc.stdout, describe(proc)
    rows = {row["output"]: row for row in table(proc.stdout, "output")}
    assert rows["rows"]["result"] == "PASS" and float(rows["rows"]["max abs"]) == 0, describe(proc)
    assert (rows["best"]["dtype"], rows["best"]["max abs"], rows["best"]["result"]) == ("int64", "0", "PASS")


def test_per_node_compares_every_value_ort_has(aidge, tmp_path: Path) -> None:
    model = convnet(tmp_path / "convnet.onnx")
    onnx_order = [out for node in onnx.load(model).graph.node for out in node.output if out != "y"]

    # As imported: every intermediate value, in execution order.
    proc = aidge("check", model, "--per-node", "--no-optimize")
    assert_ok(proc)
    rows = table(proc.stdout, "node")
    assert [row["output"] for row in rows] == onnx_order, describe(proc)
    assert all(row["result"] == "PASS" for row in rows), describe(proc)
    assert "all intermediate values agree" in proc.stdout

    # Optimised: Conv + BatchNormalization + Relu run as one Conv that carries the Relu's value.
    proc = aidge("check", model, "--per-node")
    assert_ok(proc)
    rows = table(proc.stdout, "node")
    fused = next((row for row in rows if row["output"] == "relu_out"), None)
    assert fused is not None, f"no row for relu_out\n{describe(proc)}"
    assert (fused["node"], fused["op"], fused["result"]) == ("conv", "Conv", "PASS"), describe(proc)
    assert "conv_out" not in [row["output"] for row in rows] and "bn_out" not in [row["output"] for row in rows]
    assert [row["output"] for row in rows] == [name for name in onnx_order if name in {r["output"] for r in rows}]
    assert all(row["result"] == "PASS" for row in rows), describe(proc)
    assert "all intermediate values agree" in proc.stdout


def test_per_node_names_the_first_divergence(aidge, tmp_path: Path) -> None:
    """A float -> uint8 Cast out of range is not defined by ONNX: Aidge saturates, ONNX Runtime wraps around."""
    nodes = [
        helper.make_node("Mul", ["x", "scale"], ["scaled"], name="mul"),
        helper.make_node("Cast", ["scaled"], ["bytes"], name="to_uint8", to=TensorProto.UINT8),
        helper.make_node("Cast", ["bytes"], ["back"], name="to_float", to=TensorProto.FLOAT),
        helper.make_node("Relu", ["back"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes, "cast",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64])],
        [numpy_helper.from_array(np.array(300, np.float32), "scale")])
    model = save(graph, tmp_path / "cast.onnx")
    work = tmp_path / "work"
    proc = aidge("check", model, "--per-node", "--work-dir", work)

    x = np.load(work / "input_0.npy")
    ours = aidge_run(aidge, model, [work / "input_0.npy"], tmp_path / "out")[0]
    theirs = ort_run(model, {"x": x})[0]
    if np.array_equal(ours, theirs):
        pytest.skip("the two engines now agree on out-of-range casts: this model no longer diverges")

    assert proc.returncode == 1, describe(proc)
    [output] = table(proc.stdout, "output")
    assert output["result"].startswith("FAIL"), describe(proc)
    assert float(output["max abs"]) == pytest.approx(float(np.abs(ours - theirs).max()), rel=1e-2)
    assert "0 of 1 outputs pass" in proc.stdout
    rows = {row["output"]: row for row in table(proc.stdout, "node")}
    assert rows["scaled"]["result"] == "PASS", describe(proc)
    assert rows["bytes"]["result"].startswith("FAIL") and rows["back"]["result"].startswith("FAIL"), describe(proc)
    assert "first divergence: node to_uint8 (Cast), output bytes" in proc.stdout, describe(proc)


def test_interpreter_without_onnxruntime(aidge, tmp_path: Path, monkeypatch) -> None:
    """`python -S` has no site-packages, so no onnxruntime: a clear message, not a crash."""
    python = tmp_path / "python-without-site"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    python.chmod(0o755)
    monkeypatch.setenv("AIDGE_PYTHON", str(python))
    proc = aidge("check", mlp(tmp_path / "mlp.onnx"), "--dim", "N=2")
    assert proc.returncode == 1, describe(proc)
    assert f"'{python}' cannot import onnxruntime" in proc.stderr, describe(proc)
    assert "pip install onnxruntime" in proc.stderr and "AIDGE_PYTHON" in proc.stderr, describe(proc)
    assert "Traceback" not in proc.stderr + proc.stdout


def test_missing_interpreter(aidge, tmp_path: Path, monkeypatch) -> None:
    missing = tmp_path / "no-such-python"
    monkeypatch.setenv("AIDGE_PYTHON", str(missing))
    proc = aidge("check", mlp(tmp_path / "mlp.onnx"))
    assert proc.returncode == 1, describe(proc)
    assert str(missing) in proc.stderr and "AIDGE_PYTHON" in proc.stderr, describe(proc)


def test_ops_lists_operators_with_their_onnx_versions(aidge) -> None:
    """`aidge ops` (text and --json): every entry is an ONNX schema version of its domain, the default domain's
    first and sorted, the other domains' under their qualified names."""
    proc = aidge("ops", "--json")
    assert_ok(proc)
    entries = json.loads(proc.stdout)
    default = [e for e in entries if e["domain"] == ""]
    assert entries[:len(default)] == default and [e["type"] for e in default] == sorted(e["type"] for e in default)
    for e in entries:
        schema = onnx.defs.get_schema(e["type"], e["since_version"], e["domain"])
        assert schema.since_version == e["since_version"], e
    assert {"Conv", "Loop", "SequenceInsert", "StringSplit"} <= {e["type"] for e in default}
    text = aidge("ops")
    assert_ok(text)
    lines = [line for line in text.stdout.splitlines() if line and not line.startswith("?:")]  # less the legend
    assert len(lines) == len(entries)
    assert any(line.split()[:2] == ["ai.onnx.ml.TreeEnsemble", "5-5"] for line in lines), text.stdout
    relu = next(line for line in lines if line.split()[0] == "Relu")
    assert "float32" in relu and "?" not in relu
