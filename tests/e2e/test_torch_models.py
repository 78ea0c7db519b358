"""End-to-end tests: PyTorch -> ONNX -> `aidge run`, checked against ONNX Runtime.

Every model is exported with both PyTorch exporters (torch.export based
"dynamo", opset 18, and the legacy TorchScript one, opset 17) into pytest's
``tmp_path``, run by `aidge run` on a seeded random input, and compared with
ONNX Runtime on the same input:

    max|aidge - ort| <= 1e-4 + 1e-3 * max|ort|    (and equal shapes / dtypes)

The second half checks that the CLI rejects bad input cleanly: non-zero exit
(not a signal), one line on stderr naming the problem, within a timeout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import models
from conftest import assert_ok, describe

ATOL = 1e-4
RTOL_OF_MAX = 1e-3
BAD_INPUT_TIMEOUT_S = 60

# Batch used for the aidge/ORT comparison.  It differs from the export
# example's batch (models.EXAMPLE_BATCH == 2) so the dynamic batch dimension
# is really exercised; the big convnets use 1 to keep the suite fast.
RUN_BATCH = {"resnet18": 1, "mobilenetv2": 1, "transformer": 3, "mlp": 3, "small_cnn": 3}


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def ort_session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs that are not initializers, in graph order."""
    init = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in init]


def compare_with_ort(aidge, model_path: Path, inputs: list[np.ndarray], work: Path) -> None:
    """Run `aidge run` and ORT on ``inputs``; assert outputs match."""
    work.mkdir(parents=True, exist_ok=True)
    input_files = []
    for i, arr in enumerate(inputs):
        f = work / f"in_{i}.npy"
        np.save(f, arr)
        input_files.append(f)
    out_dir = work / "out"
    # Run from an unrelated, empty folder: the model and its external data
    # must be found from the model's own path, not from the working directory.
    elsewhere = work / "cwd"
    elsewhere.mkdir(exist_ok=True)

    args: list[str | os.PathLike] = ["run", model_path]
    for f in input_files:
        args += ["--input", f]
    args += ["--output-dir", out_dir]
    proc = aidge(*args, cwd=elsewhere)
    assert_ok(proc)

    sess = ort_session(model_path)
    feeds = {meta.name: arr for meta, arr in zip(sess.get_inputs(), inputs)}
    expected = sess.run(None, feeds)
    out_meta = sess.get_outputs()

    for i, (meta, ref) in enumerate(zip(out_meta, expected)):
        out_file = out_dir / f"output_{i}.npy"
        assert out_file.is_file(), f"{out_file.name} (output '{meta.name}') not written\n{describe(proc)}"
        ours = np.load(out_file, allow_pickle=False)
        assert ours.shape == ref.shape, f"output {i} '{meta.name}': shape {ours.shape} != ORT {ref.shape}"
        assert ours.dtype == ref.dtype, f"output {i} '{meta.name}': dtype {ours.dtype} != ORT {ref.dtype}"
        if np.issubdtype(ref.dtype, np.floating):
            assert np.all(np.isfinite(ours)), f"output {i} '{meta.name}' has non-finite values"
            err = float(np.max(np.abs(ours.astype(np.float64) - ref.astype(np.float64)))) if ref.size else 0.0
            scale = float(np.max(np.abs(ref))) if ref.size else 0.0
            tol = ATOL + RTOL_OF_MAX * scale
            assert err <= tol, (f"output {i} '{meta.name}': max|aidge - ort| = {err:.3g} > "
                                f"tolerance {tol:.3g} (max|ort| = {scale:.3g})")
        else:
            np.testing.assert_array_equal(ours, ref, err_msg=f"output {i} '{meta.name}'")


def run_input(name: str, example: np.ndarray | object, seed: int = 1234) -> np.ndarray:
    shape = list(example.shape)  # type: ignore[attr-defined]
    shape[0] = RUN_BATCH[name]
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(np.float32)


# --------------------------------------------------------------------------
# PyTorch models
# --------------------------------------------------------------------------

EXPORTERS = [pytest.param(True, id="dynamo"), pytest.param(False, id="torchscript")]


@pytest.mark.parametrize("dynamo", EXPORTERS)
@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2", "transformer", "mlp"])
def test_torch_model_matches_ort(aidge, tmp_path: Path, name: str, dynamo: bool) -> None:
    model, example = models.MODELS[name]()
    path = models.export(model, example, tmp_path / f"{name}.onnx", dynamo=dynamo)
    assert path.is_file()
    x = run_input(name, example)
    compare_with_ort(aidge, path, [x], tmp_path / "run")


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_external_data_model_matches_ort(aidge, tmp_path: Path, dynamo: bool) -> None:
    model, example = models.make_small_cnn()
    path = models.export(model, example, tmp_path / "small_cnn.onnx", dynamo=dynamo,
                         external_data=True)
    data_file = tmp_path / "small_cnn.onnx.data"
    assert data_file.is_file() and data_file.stat().st_size > 0, \
        f"exporter wrote no external data file: {sorted(p.name for p in tmp_path.iterdir())}"
    proto = onnx.load(str(path), load_external_data=False)
    external = [t.name for t in proto.graph.initializer
                if t.data_location == TensorProto.EXTERNAL]
    assert external, "no initializer of the exported model uses external data"
    x = run_input("small_cnn", example)
    compare_with_ort(aidge, path, [x], tmp_path / "run")


# --------------------------------------------------------------------------
# Small hand-built models (no torch)
# --------------------------------------------------------------------------


def make_add_model(path: Path) -> Path:
    """y = x + b with x: float32[2, 3] (static shape), b an initializer."""
    b = numpy_helper.from_array(np.array([1.0, -2.0, 0.5], dtype=np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "b"], ["y"], name="add")],
        "add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_weighted_model(path: Path, external: bool) -> Path:
    """y = MatMul(x, W) + c, x: float32[1, 256], W 256x256 (256 KiB)."""
    rng = np.random.default_rng(5)
    w = numpy_helper.from_array(rng.standard_normal((256, 256)).astype(np.float32), "W")
    c = numpy_helper.from_array(rng.standard_normal(256).astype(np.float32), "c")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]),
         helper.make_node("Add", ["xw", "c"], ["y"])],
        "weighted",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 256])],
        [w, c],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    if external:
        onnx.save_model(model, str(path), save_as_external_data=True,
                        all_tensors_to_one_file=True, location=path.name + ".data",
                        size_threshold=0)
    else:
        onnx.save(model, str(path))
    return path


def test_cli_add_model(aidge, tmp_path: Path) -> None:
    """Smoke test of `aidge run` on a one-node model, checked against numpy."""
    model = make_add_model(tmp_path / "add.onnx")
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.save(tmp_path / "x.npy", x)
    proc = aidge("run", model, "--input", tmp_path / "x.npy", "--output-dir", tmp_path / "out")
    assert_ok(proc)
    y = np.load(tmp_path / "out" / "output_0.npy")
    np.testing.assert_array_equal(y, x + np.array([1.0, -2.0, 0.5], dtype=np.float32))
    assert "y" in proc.stdout, f"output name not printed\n{describe(proc)}"


def test_cli_onnx_tensor_files(aidge, tmp_path: Path) -> None:
    """`aidge run` reads ONNX TensorProto .pb inputs (beside .npy ones) and writes .pb outputs named after the
    graph's outputs, every dtype exactly, as the ONNX test suite stores its cases."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["sum"]), helper.make_node("Mul", ["c", "c"], ["square"])],
        "pb_io",
        [helper.make_tensor_value_info("a", TensorProto.INT64, [2, 3]),
         helper.make_tensor_value_info("b", TensorProto.INT64, [3]),
         helper.make_tensor_value_info("c", TensorProto.DOUBLE, [4])],
        [helper.make_tensor_value_info("sum", TensorProto.INT64, [2, 3]),
         helper.make_tensor_value_info("square", TensorProto.DOUBLE, [4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "model.onnx"))
    a = np.array([[1, -2, 3], [2**40, 5, -6]], dtype=np.int64)
    b = np.array([7, 8, -(2**41)], dtype=np.int64)
    c = np.array([0.1, -1e-300, 3.5, np.pi], dtype=np.float64)
    for name, value in (("a", a), ("c", c)):
        (tmp_path / f"{name}.pb").write_bytes(numpy_helper.from_array(value, name).SerializeToString())
    np.save(tmp_path / "b.npy", b)
    proc = aidge("run", tmp_path / "model.onnx", "--input", tmp_path / "a.pb", "--input", tmp_path / "b.npy",
                 "--input", tmp_path / "c.pb", "--output-format", "pb", "--output-dir", tmp_path / "out")
    assert_ok(proc)
    outputs = [onnx.load_tensor(str(tmp_path / "out" / f"output_{i}.pb")) for i in range(2)]
    assert [t.name for t in outputs] == ["sum", "square"]
    np.testing.assert_array_equal(numpy_helper.to_array(outputs[0]), a + b)
    assert numpy_helper.to_array(outputs[0]).dtype == np.int64
    np.testing.assert_array_equal(numpy_helper.to_array(outputs[1]), c * c)
    (tmp_path / "bad.pb").write_bytes(b"\xff\xff\xff\x07")
    proc = aidge("run", tmp_path / "model.onnx", "--input", tmp_path / "bad.pb", "--input", tmp_path / "b.npy",
                 "--input", tmp_path / "c.pb")
    assert proc.returncode != 0 and "bad.pb" in proc.stderr, describe(proc)


def test_cli_sequence_and_optional_files(aidge, tmp_path: Path) -> None:
    """`aidge run` reads SequenceProto and OptionalProto inputs where the model declares them and writes each
    output in the proto its declared type names, compared with ONNX's reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    optional_type = helper.make_optional_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, None))
    graph = helper.make_graph(
        [helper.make_node("SequenceInsert", ["xs", "extra"], ["grown"]),
         helper.make_node("ConcatFromSequence", ["grown"], ["joined"], axis=0),
         helper.make_node("OptionalHasElement", ["maybe"], ["has"]),
         helper.make_node("Optional", ["joined"], ["wrapped"])],
        "containers",
        [helper.make_tensor_sequence_value_info("xs", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("extra", TensorProto.FLOAT, [None]),
         helper.make_value_info("maybe", optional_type)],
        [helper.make_tensor_sequence_value_info("grown", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("has", TensorProto.BOOL, []),
         helper.make_value_info("wrapped", optional_type)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, str(tmp_path / "model.onnx"))
    xs = [np.array([1.5, -2.0], np.float32), np.array([3.25], np.float32)]
    extra = np.array([4.0, 5.0, 6.0], np.float32)
    (tmp_path / "xs.pb").write_bytes(numpy_helper.from_list(xs, "xs").SerializeToString())
    (tmp_path / "extra.pb").write_bytes(numpy_helper.from_array(extra, "extra").SerializeToString())
    reference = ReferenceEvaluator(model)
    for given in (None, np.array([1.0], np.float32)):
        (tmp_path / "maybe.pb").write_bytes(numpy_helper.from_optional(given, "maybe").SerializeToString())
        proc = aidge("run", tmp_path / "model.onnx", "--input", tmp_path / "xs.pb", "--input", tmp_path / "extra.pb",
                     "--input", tmp_path / "maybe.pb", "--output-format", "pb", "--output-dir", tmp_path / "out")
        assert_ok(proc)
        grown, has, _ = reference.run(None, {"xs": xs, "extra": extra, "maybe": given})
        sequence = onnx.SequenceProto()
        sequence.ParseFromString((tmp_path / "out" / "output_0.pb").read_bytes())
        assert sequence.name == "grown"
        ours = numpy_helper.to_list(sequence)
        assert len(ours) == len(grown)
        for a, b in zip(ours, grown):
            np.testing.assert_array_equal(a, b)
            assert a.dtype == b.dtype
        assert numpy_helper.to_array(onnx.load_tensor(str(tmp_path / "out" / "output_1.pb"))) == has
        optional = onnx.OptionalProto()
        optional.ParseFromString((tmp_path / "out" / "output_2.pb").read_bytes())
        # The reference's Optional wraps its value in a list: the wrapped value is NumPy's concatenation.
        assert optional.name == "wrapped"
        np.testing.assert_array_equal(numpy_helper.to_optional(optional), np.concatenate(grown))
    proc = aidge("run", tmp_path / "model.onnx", "--input", tmp_path / "xs.pb", "--input", tmp_path / "extra.pb",
                 "--input", tmp_path / "maybe.pb", "--output-dir", tmp_path / "npy")
    assert proc.returncode != 0 and "--output-format pb" in proc.stderr, describe(proc)


def test_cli_random_input(aidge, tmp_path: Path) -> None:
    model = make_add_model(tmp_path / "add.onnx")
    proc = aidge("run", model, "--random", "--output-dir", tmp_path / "out")
    assert_ok(proc)
    y = np.load(tmp_path / "out" / "output_0.npy")
    assert y.shape == (2, 3) and y.dtype == np.float32


def test_cli_bench_json(aidge, tmp_path: Path) -> None:
    model = make_add_model(tmp_path / "add.onnx")
    proc = aidge("bench", model, "--runs", "3", "--warmup", "1", "--threads", "1", "--json")
    assert_ok(proc)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"--json must print exactly one line on stdout\n{describe(proc)}"
    report = json.loads(lines[0])
    for key in ("median_ms", "min_ms", "max_ms", "runs"):
        assert key in report, f"missing {key!r} in {report}"
    assert report["runs"] == 3
    assert 0 <= report["min_ms"] <= report["median_ms"] <= report["max_ms"]


def test_external_data_hand_built(aidge, tmp_path: Path) -> None:
    path = make_weighted_model(tmp_path / "weighted.onnx", external=True)
    assert (tmp_path / "weighted.onnx.data").is_file()
    x = np.random.default_rng(0).standard_normal((1, 256)).astype(np.float32)
    compare_with_ort(aidge, path, [x], tmp_path / "run")


# --------------------------------------------------------------------------
# Bad input: clean, single-line errors
# --------------------------------------------------------------------------


def assert_clean_failure(proc, keywords: list[str]) -> None:
    """Non-zero exit (not a signal), one stderr line containing a keyword."""
    info = describe(proc)
    assert proc.returncode != 0, f"expected failure, got exit code 0\n{info}"
    assert proc.returncode > 0, f"killed by signal {-proc.returncode}\n{info}"
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected a single-line error on stderr, got {len(lines)} lines\n{info}"
    message = lines[0].lower()
    assert any(k.lower() in message for k in keywords), \
        f"error message does not mention any of {keywords}\n{info}"


PARSE_KEYWORDS = ["parse", "invalid", "malformed", "corrupt", "truncat", "protobuf",
                  "decod", "unexpected end", "not a valid"]
MISSING_KEYWORDS = ["no such file", "not found", "does not exist", "cannot open",
                    "can't open", "could not open", "couldn't open"]


def test_truncated_onnx(aidge, tmp_path: Path) -> None:
    full = make_weighted_model(tmp_path / "full.onnx", external=False).read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(full[: len(full) // 2])  # cuts through W's raw data
    with pytest.raises(Exception):
        onnx.load(str(bad))  # precondition: really unparseable
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 256), np.float32))
    proc = aidge("run", bad, "--input", x, "--output-dir", tmp_path / "out",
                 timeout=BAD_INPUT_TIMEOUT_S)
    assert_clean_failure(proc, PARSE_KEYWORDS)


def test_random_bytes_onnx(aidge, tmp_path: Path) -> None:
    bad = tmp_path / "random.onnx"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(Exception):
        onnx.load(str(bad))
    proc = aidge("run", bad, "--random", "--output-dir", tmp_path / "out",
                 timeout=BAD_INPUT_TIMEOUT_S)
    assert_clean_failure(proc, PARSE_KEYWORDS)


def test_nonexistent_model(aidge, tmp_path: Path) -> None:
    proc = aidge("run", tmp_path / "does_not_exist.onnx", "--random",
                 "--output-dir", tmp_path / "out", timeout=BAD_INPUT_TIMEOUT_S)
    assert_clean_failure(proc, MISSING_KEYWORDS)


def test_nonexistent_input_file(aidge, tmp_path: Path) -> None:
    model = make_add_model(tmp_path / "add.onnx")
    proc = aidge("run", model, "--input", tmp_path / "missing.npy",
                 "--output-dir", tmp_path / "out", timeout=BAD_INPUT_TIMEOUT_S)
    assert_clean_failure(proc, MISSING_KEYWORDS)


def test_dangling_edge(aidge, tmp_path: Path) -> None:
    # "ghost_tensor" is consumed but produced by no node, input or initializer.
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]),
         helper.make_node("Add", ["r", "ghost_tensor"], ["y"])],
        "dangling",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model)  # precondition: really invalid
    path = tmp_path / "dangling.onnx"
    onnx.save(model, str(path))
    x = tmp_path / "x.npy"
    np.save(x, np.ones((2, 3), np.float32))
    proc = aidge("run", path, "--input", x, "--output-dir", tmp_path / "out",
                 timeout=BAD_INPUT_TIMEOUT_S)
    assert_clean_failure(proc, ["ghost_tensor", "dangling", "not produced", "undefined",
                                "unknown", "no producer", "missing"])


def test_missing_external_data(aidge, tmp_path: Path) -> None:
    path = make_weighted_model(tmp_path / "weighted.onnx", external=True)
    data = tmp_path / "weighted.onnx.data"
    assert data.is_file()
    data.unlink()
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 256), np.float32))
    proc = aidge("run", path, "--input", x, "--output-dir", tmp_path / "out",
                 timeout=BAD_INPUT_TIMEOUT_S)
    assert_clean_failure(proc, ["external", "weighted.onnx.data"])


@pytest.mark.parametrize("shape", [(3, 2), (6,), (1, 2, 3)], ids=["transposed", "rank1", "rank3"])
def test_wrong_input_shape(aidge, tmp_path: Path, shape: tuple[int, ...]) -> None:
    model = make_add_model(tmp_path / "add.onnx")  # expects float32[2, 3]
    x = tmp_path / "x.npy"
    np.save(x, np.zeros(shape, np.float32))
    proc = aidge("run", model, "--input", x, "--output-dir", tmp_path / "out",
                 timeout=BAD_INPUT_TIMEOUT_S)
    assert_clean_failure(proc, ["shape"])


@pytest.mark.parametrize("dtype", ["float64", "int64"])
def test_wrong_input_dtype(aidge, tmp_path: Path, dtype: str) -> None:
    model = make_add_model(tmp_path / "add.onnx")  # expects float32[2, 3]
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 3), dtype=dtype))
    proc = aidge("run", model, "--input", x, "--output-dir", tmp_path / "out",
                 timeout=BAD_INPUT_TIMEOUT_S)
    assert_clean_failure(proc, ["dtype", "type", dtype, "double"])
