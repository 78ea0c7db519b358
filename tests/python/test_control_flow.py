"""If, Loop and Scan with subgraphs that read values of the enclosing graph, checked against ONNX Runtime; and
bfloat16 operators run through their float32 kernels, checked against float32 NumPy rounded by ml_dtypes."""

import ml_dtypes
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import aidge
import aidge.onnx

OPSET = [helper.make_opsetid("", 17)]
F = TensorProto.FLOAT


def both(model, feeds: dict) -> tuple[list, list]:
    """Outputs of the engine and of ONNX Runtime for the same feeds (in graph input order)."""
    ours = [t.numpy() for t in aidge.onnx.load(model).run(*feeds.values())]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return ours, session.run(None, feeds)


def assert_same(ours: list, theirs: list) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def if_model():
    """y = x * w (then) or concat(x, x) (else): the branches differ in shape and read x and w from outside."""
    then_graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["t"])], "then", [], [helper.make_tensor_value_info("t", F, None)])
    else_graph = helper.make_graph(
        [helper.make_node("Concat", ["x", "x"], ["e"], axis=0)], "else", [],
        [helper.make_tensor_value_info("e", F, None)])
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=then_graph, else_branch=else_graph)], "if",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, []), helper.make_tensor_value_info("x", F, [2, 3]),
         helper.make_tensor_value_info("w", F, [2, 3])],
        [helper.make_tensor_value_info("y", F, None)])
    return helper.make_model(graph, opset_imports=OPSET)


@pytest.mark.parametrize("condition", [True, False])
def test_if_branches_of_different_shapes_read_outer_values(condition: bool) -> None:
    rng = np.random.default_rng(0)
    feeds = {"c": np.array(condition), "x": rng.standard_normal((2, 3), dtype=np.float32),
             "w": rng.standard_normal((2, 3), dtype=np.float32)}
    assert_same(*both(if_model(), feeds))


def loop_model(with_scan: bool):
    """Carries s (s = s * a + i) while s < limit, for at most M steps; optionally stacks s at every step."""
    body_nodes = [
        helper.make_node("Cast", ["i"], ["i_float"], to=F),
        helper.make_node("Mul", ["s_in", "a"], ["scaled"]),
        helper.make_node("Add", ["scaled", "i_float"], ["s_out"]),
        helper.make_node("ReduceMax", ["s_out"], ["largest"], keepdims=0),
        helper.make_node("Less", ["largest", "limit"], ["go_on"]),
    ]
    body_outputs = [helper.make_tensor_value_info("go_on", TensorProto.BOOL, []),
                    helper.make_tensor_value_info("s_out", F, None)]
    if with_scan:
        body_nodes.append(helper.make_node("Identity", ["s_out"], ["s_copy"]))
        body_outputs.append(helper.make_tensor_value_info("s_copy", F, None))
    body = helper.make_graph(
        body_nodes, "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("s_in", F, None)],
        body_outputs)
    outputs = ["s_final"] + (["stacked"] if with_scan else [])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["M", "cond", "s0"], outputs, body=body)], "loop",
        [helper.make_tensor_value_info("M", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("s0", F, [4]), helper.make_tensor_value_info("a", F, [4]),
         helper.make_tensor_value_info("limit", F, [])],
        [helper.make_tensor_value_info(name, F, None) for name in outputs])
    return helper.make_model(graph, opset_imports=OPSET)


@pytest.mark.parametrize("limit", [3.0, 50.0, 1e9])
def test_loop_stops_on_its_condition_or_trip_count(limit: float) -> None:
    feeds = {"M": np.array(6, dtype=np.int64), "cond": np.array(True), "s0": np.arange(4, dtype=np.float32),
             "a": np.full(4, 1.5, dtype=np.float32), "limit": np.array(limit, dtype=np.float32)}
    assert_same(*both(loop_model(with_scan=False), feeds))


def test_loop_scan_outputs_stack_every_iteration() -> None:
    feeds = {"M": np.array(5, dtype=np.int64), "cond": np.array(True), "s0": np.arange(4, dtype=np.float32),
             "a": np.full(4, 0.5, dtype=np.float32), "limit": np.array(1e9, dtype=np.float32)}
    ours, theirs = both(loop_model(with_scan=True), feeds)
    assert ours[1].shape == (5, 4)
    assert_same(ours, theirs)


def test_scan_directions_axes_and_outer_values() -> None:
    """Two states (a running sum and a running max), two sequences (one read backwards along axis 1), and scan
    outputs written along axis 1 (one of them backwards); the body reads a bias from the enclosing graph."""
    body = helper.make_graph(
        [helper.make_node("Add", ["sum_in", "u"], ["partial"]),
         helper.make_node("Add", ["partial", "bias"], ["sum_out"]),
         helper.make_node("Max", ["max_in", "v"], ["max_out"]),
         helper.make_node("Mul", ["u", "v"], ["product"]),
         helper.make_node("Identity", ["sum_out"], ["sum_copy"])],
        "body",
        [helper.make_tensor_value_info(n, F, None) for n in ["sum_in", "max_in", "u", "v"]],
        [helper.make_tensor_value_info(n, F, None) for n in ["sum_out", "max_out", "product", "sum_copy"]])
    node = helper.make_node(
        "Scan", ["sum0", "max0", "U", "V"], ["sum", "max", "products", "sums"], body=body, num_scan_inputs=2,
        scan_input_axes=[0, 1], scan_input_directions=[0, 1], scan_output_axes=[1, 0], scan_output_directions=[1, 0])
    graph = helper.make_graph(
        [node], "scan",
        [helper.make_tensor_value_info("sum0", F, [3]), helper.make_tensor_value_info("max0", F, [3]),
         helper.make_tensor_value_info("U", F, [5, 3]), helper.make_tensor_value_info("V", F, [3, 5]),
         helper.make_tensor_value_info("bias", F, [3])],
        [helper.make_tensor_value_info(n, F, None) for n in ["sum", "max", "products", "sums"]])
    model = helper.make_model(graph, opset_imports=OPSET)
    rng = np.random.default_rng(1)
    # The body reads V's slices as (3,): V is (3, 5) read along axis 1, so the slices broadcast against U's.
    feeds = {"sum0": np.zeros(3, np.float32), "max0": np.full(3, -1e9, np.float32),
             "U": rng.standard_normal((5, 3), dtype=np.float32), "V": rng.standard_normal((3, 5), dtype=np.float32),
             "bias": rng.standard_normal(3, dtype=np.float32)}
    assert_same(*both(model, feeds))


def test_if_inside_loop_reads_values_two_levels_out() -> None:
    """The branch inside the body reads `w`, a graph input two levels out, and the body's own `s_in`."""
    then_graph = helper.make_graph(
        [helper.make_node("Add", ["s_in", "w"], ["t"])], "then", [], [helper.make_tensor_value_info("t", F, None)])
    else_graph = helper.make_graph(
        [helper.make_node("Sub", ["s_in", "w"], ["e"])], "else", [], [helper.make_tensor_value_info("e", F, None)])
    body = helper.make_graph(
        [helper.make_node("Mod", ["i", "two"], ["parity"]),
         helper.make_node("Equal", ["parity", "zero"], ["even"]),
         helper.make_node("If", ["even"], ["s_out"], then_branch=then_graph, else_branch=else_graph),
         helper.make_node("Identity", ["c_in"], ["c_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("s_in", F, None)],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []), helper.make_tensor_value_info("s_out", F, None)])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["M", "", "s0"], ["s"], body=body)], "nested",
        [helper.make_tensor_value_info("M", TensorProto.INT64, []), helper.make_tensor_value_info("s0", F, [2]),
         helper.make_tensor_value_info("w", F, [2])],
        [helper.make_tensor_value_info("s", F, None)],
        initializer=[helper.make_tensor("two", TensorProto.INT64, [], [2]),
                     helper.make_tensor("zero", TensorProto.INT64, [], [0])])
    model = helper.make_model(graph, opset_imports=OPSET)
    feeds = {"M": np.array(7, dtype=np.int64), "s0": np.array([1, 2], np.float32), "w": np.array([10, 0.5], np.float32)}
    assert_same(*both(model, feeds))


@pytest.mark.parametrize("computed", [False, True])
def test_loop_scan_length_decided_by_the_data(computed: bool) -> None:
    """The loop stops when its carried value passes a limit, so the stacked output's length depends on the data:
    the loop is planned per value of the inputs it reads, or, when they are computed by the graph, after them."""
    model = loop_model(with_scan=True)
    for k in (2, 3):
        model.graph.input[k].type.tensor_type.shape.dim[0].dim_value = 100
    if computed:  # the loop reads Abs(s0) instead of s0
        model.graph.node.insert(0, helper.make_node("Abs", ["s0"], ["s0_abs"]))
        model.graph.node[1].input[2] = "s0_abs"
    rng = np.random.default_rng(7)
    runs = [{"M": np.array(50, dtype=np.int64), "cond": np.array(True),
             "s0": rng.standard_normal(100).astype(np.float32), "a": np.full(100, 1.1, np.float32),
             "limit": np.array(limit, dtype=np.float32)} for limit in (3.0, 8.0, 1e9)]
    graph = aidge.onnx.load(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    lengths = []
    for feeds in runs:  # one graph, runs of different lengths
        ours = [t.numpy() for t in graph.run(*feeds.values())]
        assert_same(ours, session.run(None, feeds))
        lengths.append(ours[1].shape[0])
    assert len(set(lengths)) == 3  # three different trip counts


@pytest.mark.parametrize("op, attributes", [("Add", {}), ("Celu", {"alpha": 0.7}), ("Softmax", {"axis": -1})])
def test_bfloat16_runs_through_float32(op: str, attributes: dict) -> None:
    inputs = ["x", "y"] if op == "Add" else ["x"]
    graph = helper.make_graph(
        [helper.make_node(op, inputs, ["z"], **attributes)], "bf16",
        [helper.make_tensor_value_info(n, TensorProto.BFLOAT16, [3, 5]) for n in inputs],
        [helper.make_tensor_value_info("z", TensorProto.BFLOAT16, None)])
    model = aidge.onnx.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]))
    rng = np.random.default_rng(2)
    values = [rng.standard_normal((3, 5)).astype(ml_dtypes.bfloat16) for _ in inputs]
    wide = [v.astype(np.float32) for v in values]
    if op == "Add":
        expected = wide[0] + wide[1]
    elif op == "Celu":
        alpha = attributes["alpha"]
        expected = np.maximum(wide[0], 0) + np.minimum(0, alpha * np.expm1(wide[0] / alpha))
    else:
        e = np.exp(wide[0] - wide[0].max(axis=-1, keepdims=True))
        expected = e / e.sum(axis=-1, keepdims=True)
    z = model.run(*values)[0].numpy()
    assert z.dtype == ml_dtypes.bfloat16
    # Rounded once from float32: equal to the float32 result rounded, up to one bfloat16 step where float32
    # kernels round their last bit differently.
    np.testing.assert_allclose(z.astype(np.float32), expected.astype(ml_dtypes.bfloat16).astype(np.float32),
                               rtol=2 ** -8, atol=0)
