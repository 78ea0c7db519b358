"""ONNX sequences and optionals: graphs that build, edit and consume sequences, Loops that carry them, optionals
given or not, checked against ONNX Runtime (sequences) and ONNX's reference evaluator (optionals, which ONNX
Runtime's Python API cannot feed), and the clear errors for misuse."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import aidge
import aidge.onnx

F = TensorProto.FLOAT
I64 = TensorProto.INT64


def model(nodes, inputs, outputs, initializers=(), opset=18):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def seq_info(name, elem=F):
    return helper.make_tensor_sequence_value_info(name, elem, None)


def to_numpy(value):
    if value is None:
        return None
    if isinstance(value, list):
        return [np.asarray(t) for t in value]
    return np.asarray(value)


def assert_same(ours, theirs) -> None:
    if isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert_same(a, b)
        return
    if theirs is None:
        assert ours is None
        return
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


def test_sequence_editing_against_onnxruntime() -> None:
    """Split a tensor into a sequence, insert, erase, read one element and the length, and concatenate back,
    with a tensor operator between: positions and lengths vary with the fed values."""
    m = model(
        [helper.make_node("SplitToSequence", ["x", "sizes"], ["parts"], axis=1),
         helper.make_node("Relu", ["extra"], ["positive"]),
         helper.make_node("SequenceInsert", ["parts", "positive", "where"], ["grown"]),
         helper.make_node("SequenceErase", ["grown"], ["shrunk"]),
         helper.make_node("SequenceAt", ["grown", "where"], ["picked"]),
         helper.make_node("SequenceLength", ["shrunk"], ["length"]),
         helper.make_node("ConcatFromSequence", ["shrunk"], ["joined"], axis=1),
         helper.make_node("Mul", ["joined", "joined"], ["squared"])],
        [helper.make_tensor_value_info("x", F, [2, None]),
         helper.make_tensor_value_info("sizes", I64, [None]),
         helper.make_tensor_value_info("extra", F, [2, None]),
         helper.make_tensor_value_info("where", I64, [])],
        [helper.make_tensor_value_info("picked", F, None), helper.make_tensor_value_info("length", I64, None),
         helper.make_tensor_value_info("squared", F, None), seq_info("grown")])
    graph = aidge.onnx.load(m)
    session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for sizes, extra_width, where in [([1, 2, 3], 2, 0), ([4, 2], 1, -1), ([6], 3, 1), ([2, 2, 1, 1], 1, 4)]:
        feeds = {"x": rng.standard_normal((2, sum(sizes))).astype(np.float32),
                 "sizes": np.array(sizes, np.int64),
                 "extra": rng.standard_normal((2, extra_width)).astype(np.float32),
                 "where": np.array(where, np.int64)}
        ours = [to_numpy(v) for v in graph.run(*feeds.values())]
        theirs = session.run(None, feeds)
        assert_same(ours, [list(v) if isinstance(v, list) else v for v in theirs])


def test_sequence_inputs_and_sequence_map() -> None:
    """Two sequences of different-shaped tensors fed as Python lists; SequenceMap adds them element-wise and a
    tensor from outside the body scales the sum."""
    body = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Mul", ["s", "scale"], ["out"])], "body",
        [helper.make_tensor_value_info("a", F, None), helper.make_tensor_value_info("b", F, None)],
        [helper.make_tensor_value_info("out", F, None)])
    m = model([helper.make_node("SequenceMap", ["xs", "ys"], ["zs"], body=body)],
              [seq_info("xs"), seq_info("ys"), helper.make_tensor_value_info("scale", F, [])],
              [seq_info("zs")])
    graph = aidge.onnx.load(m)
    session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for shapes in [[(2, 3), (4,), (1, 1, 2)], [(5,)], []]:
        xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        ys = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        scale = np.array(1.5, np.float32)
        ours = to_numpy(graph.run(xs, ys, scale)[0])
        theirs = session.run(None, {"xs": xs, "ys": ys, "scale": scale})[0]
        assert_same(ours, list(theirs))


def test_inference_recipes_keep_sequence_graphs_working() -> None:
    """optimize() (constant folding, Identity removal) on a graph whose sequence is built from constants."""
    m = model(
        [helper.make_node("SequenceConstruct", ["c0", "c1"], ["seq"]),
         helper.make_node("ConcatFromSequence", ["seq"], ["joined"], axis=0),
         helper.make_node("Identity", ["joined"], ["same"]),
         helper.make_node("Add", ["same", "x"], ["y"])],
        [helper.make_tensor_value_info("x", F, [5])], [helper.make_tensor_value_info("y", F, [5])],
        initializers=[helper.make_tensor("c0", F, [2], [1.0, 2.0]), helper.make_tensor("c1", F, [3], [3.0, 4.0, 5.0])])
    graph = aidge.onnx.load(m)
    graph.optimize()
    x = np.linspace(-1, 1, 5).astype(np.float32)
    expected = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(to_numpy(graph.run(x)[0]), expected, rtol=0, atol=0)


def test_loop_that_carries_a_sequence() -> None:
    """A Loop appends a slice of x to a carried sequence each iteration, for a trip count fed at run time."""
    body = helper.make_graph(
        [helper.make_node("Unsqueeze", ["i", "zero"], ["i1"]),
         helper.make_node("Add", ["i1", "one"], ["end"]),
         helper.make_node("Slice", ["x", "i1", "end"], ["row"]),
         helper.make_node("SequenceInsert", ["acc", "row"], ["acc_out"]),
         helper.make_node("Identity", ["cond"], ["cond_out"])],
        "body",
        [helper.make_tensor_value_info("i", I64, []), helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         seq_info("acc")],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), seq_info("acc_out")])
    m = model(
        [helper.make_node("SequenceEmpty", [], ["empty"], dtype=F),
         helper.make_node("Loop", ["n", "", "empty"], ["rows"], body=body),
         helper.make_node("ConcatFromSequence", ["rows"], ["stacked"], axis=0, new_axis=1)],
        [helper.make_tensor_value_info("x", F, [None]), helper.make_tensor_value_info("n", I64, [])],
        [seq_info("rows"), helper.make_tensor_value_info("stacked", F, None)],
        initializers=[helper.make_tensor("zero", I64, [1], [0]), helper.make_tensor("one", I64, [1], [1])])
    graph = aidge.onnx.load(m)
    session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.arange(6, dtype=np.float32) * 0.5
    for n in [1, 3, 6]:
        ours = [to_numpy(v) for v in graph.run(x, np.array(n, np.int64))]
        theirs = session.run(None, {"x": x, "n": np.array(n, np.int64)})
        assert_same(ours[0], list(theirs[0]))
        assert_same(ours[1], theirs[1])


def test_optionals_given_or_not() -> None:
    """An optional tensor input: OptionalHasElement, and If picks OptionalGetElement or a default; the graph
    also returns the optional input as it is. Checked against ONNX's reference evaluator."""
    then_branch = helper.make_graph(
        [helper.make_node("OptionalGetElement", ["maybe"], ["got"]), helper.make_node("Neg", ["got"], ["value"])],
        "then", [], [helper.make_tensor_value_info("value", F, None)])
    else_branch = helper.make_graph(
        [helper.make_node("Constant", [], ["value"], value=helper.make_tensor("d", F, [1], [7.0]))],
        "else", [], [helper.make_tensor_value_info("value", F, None)])
    optional_type = helper.make_optional_type_proto(helper.make_tensor_type_proto(F, None))
    m = model(
        [helper.make_node("OptionalHasElement", ["maybe"], ["has"]),
         helper.make_node("If", ["has"], ["value"], then_branch=then_branch, else_branch=else_branch)],
        [helper.make_value_info("maybe", optional_type)],
        [helper.make_tensor_value_info("has", TensorProto.BOOL, []), helper.make_tensor_value_info("value", F, None),
         helper.make_value_info("maybe", optional_type)])
    graph = aidge.onnx.load(m)
    reference = ReferenceEvaluator(m)
    for given in [np.array([1.0, -2.0, 3.5], np.float32), None]:
        ours = [to_numpy(v) for v in graph.run(given)]
        theirs = reference.run(None, {"maybe": given})
        assert_same(ours, [np.asarray(v) if v is not None else None for v in theirs])


def test_clear_errors() -> None:
    m = model([helper.make_node("SequenceAt", ["xs", "k"], ["y"])],
              [seq_info("xs"), helper.make_tensor_value_info("k", I64, [])],
              [helper.make_tensor_value_info("y", F, None)])
    graph = aidge.onnx.load(m)
    xs = [np.zeros(2, np.float32), np.ones(3, np.float32)]
    np.testing.assert_array_equal(to_numpy(graph.run(xs, np.array(-1, np.int64))[0]), xs[1])
    with pytest.raises(ValueError, match="position 2 is outside a sequence of 2"):
        graph.run(xs, np.array(2, np.int64))
    with pytest.raises(ValueError, match="input 'xs' is declared as sequence"):
        graph.run(np.zeros(2, np.float32), np.array(0, np.int64))
    with pytest.raises(TypeError, match="sequence of float32 tensors"):
        graph.run([np.zeros(2, np.int64)], np.array(0, np.int64))
    with pytest.raises(NotImplementedError, match="exporting a graph that holds sequences"):
        aidge.onnx.export(graph, "unused.onnx")
    graph.train()
    with pytest.raises(NotImplementedError, match="training a graph that holds sequences"):
        graph.run(xs, np.array(0, np.int64))


@pytest.mark.parametrize("with_sequence", [False, True])
def test_loop_with_scan_outputs_only(with_sequence: bool) -> None:
    """A Loop that carries nothing and only stacks a scan output, in a plain graph (planned) and in one that also
    holds a sequence (run node by node)."""
    body = helper.make_graph(
        [helper.make_node("Cast", ["i"], ["f"], to=F), helper.make_node("Mul", ["f", "x"], ["row"]),
         helper.make_node("Identity", ["cond"], ["cond_out"])],
        "body",
        [helper.make_tensor_value_info("i", I64, []), helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), helper.make_tensor_value_info("row", F, None)])
    nodes = [helper.make_node("Loop", ["n", ""], ["rows"], body=body)]
    outputs = [helper.make_tensor_value_info("rows", F, None)]
    if with_sequence:
        nodes.append(helper.make_node("SequenceConstruct", ["rows", "x"], ["both"]))
        outputs.append(seq_info("both"))
    m = model(nodes, [helper.make_tensor_value_info("x", F, [3]), helper.make_tensor_value_info("n", I64, [])], outputs)
    graph = aidge.onnx.load(m)
    session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.array([1.0, -2.0, 0.5], np.float32)
    for n in [0, 1, 4]:
        feeds = {"x": x, "n": np.array(n, np.int64)}
        ours = [to_numpy(v) for v in graph.run(*feeds.values())]
        theirs = session.run(None, feeds)
        assert_same(ours, [list(v) if isinstance(v, list) else v for v in theirs])
