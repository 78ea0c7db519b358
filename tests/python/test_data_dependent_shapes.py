"""Graphs whose shapes depend on values they compute (NonZero of a computed tensor, Unique, Compress,
NonMaxSuppression, a Reshape to a computed size), checked against ONNX Runtime over several runs with
different values."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import aidge
import aidge.onnx

F = TensorProto.FLOAT


def model(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def check_runs(onnx_model, feeds_list) -> None:
    graph = aidge.onnx.load(onnx_model)
    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    for feeds in feeds_list:
        ours = [t.numpy() for t in graph.run(*feeds.values())]
        theirs = session.run(None, feeds)
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert a.shape == b.shape and a.dtype == b.dtype
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_nonzero_of_a_computed_tensor_then_more_nodes() -> None:
    """x -> Relu -> NonZero -> Transpose -> Cast, and the graph's other output computed before the split."""
    m = model(
        [helper.make_node("Sub", ["x", "t"], ["shifted"]),
         helper.make_node("Relu", ["shifted"], ["positive"]),
         helper.make_node("NonZero", ["positive"], ["where"]),
         helper.make_node("Transpose", ["where"], ["rows"]),
         helper.make_node("Cast", ["rows"], ["y"], to=F),
         helper.make_node("ReduceSum", ["positive"], ["total"], keepdims=0)],
        [helper.make_tensor_value_info("x", F, [6, 7]), helper.make_tensor_value_info("t", F, [])],
        [helper.make_tensor_value_info("y", F, None), helper.make_tensor_value_info("total", F, None)])
    rng = np.random.default_rng(3)
    check_runs(m, [{"x": rng.standard_normal((6, 7), dtype=np.float32), "t": np.array(t, np.float32)}
                   for t in (0.0, 1.0, 0.5, 5.0)])


def test_reshape_to_a_size_computed_from_data() -> None:
    """The target shape is the count of values above a threshold: known only once the graph computed it (the inputs
    are too large to be planned per value, so the graph is split before Compress)."""
    m = model(
        [helper.make_node("Greater", ["x", "t"], ["mask"]),
         helper.make_node("Compress", ["x", "mask"], ["kept"]),
         helper.make_node("Shape", ["kept"], ["n"]),
         helper.make_node("Concat", ["n", "one"], ["shape"], axis=0),
         helper.make_node("Reshape", ["kept", "shape"], ["column"]),
         helper.make_node("MatMul", ["column", "w"], ["y"])],
        [helper.make_tensor_value_info("x", F, [100]), helper.make_tensor_value_info("t", F, [])],
        [helper.make_tensor_value_info("y", F, None)],
        [helper.make_tensor("one", TensorProto.INT64, [1], [1]), helper.make_tensor("w", F, [1, 3], [1.0, -2.0, 0.5])])
    rng = np.random.default_rng(4)
    check_runs(m, [{"x": rng.standard_normal(100).astype(np.float32), "t": np.array(t, np.float32)}
                   for t in (0.0, -0.5, 1.0)])


@pytest.mark.parametrize("sorted_", [1, 0])
def test_unique_of_a_computed_tensor(sorted_: int) -> None:
    m = model(
        [helper.make_node("Floor", ["x"], ["f"]),
         helper.make_node("Unique", ["f"], ["y", "first", "inverse", "counts"], sorted=sorted_)],
        [helper.make_tensor_value_info("x", F, [100])],
        [helper.make_tensor_value_info(n, t, None) for n, t in
         [("y", F), ("first", TensorProto.INT64), ("inverse", TensorProto.INT64), ("counts", TensorProto.INT64)]])
    rng = np.random.default_rng(5)
    check_runs(m, [{"x": (rng.standard_normal(100) * s).astype(np.float32)} for s in (1, 3, 10)])


def test_non_max_suppression_of_computed_scores() -> None:
    m = model(
        [helper.make_node("Sigmoid", ["logits"], ["scores"]),
         helper.make_node("NonMaxSuppression", ["boxes", "scores", "limit", "iou", "score"], ["selected"])],
        [helper.make_tensor_value_info("boxes", F, [2, 20, 4]), helper.make_tensor_value_info("logits", F, [2, 3, 20])],
        [helper.make_tensor_value_info("selected", TensorProto.INT64, None)],
        [helper.make_tensor("limit", TensorProto.INT64, [1], [5]), helper.make_tensor("iou", F, [1], [0.4]),
         helper.make_tensor("score", F, [1], [0.3])])
    rng = np.random.default_rng(6)

    def feeds():
        corner = rng.uniform(0, 10, (2, 20, 2)).astype(np.float32)
        size = rng.uniform(1, 4, (2, 20, 2)).astype(np.float32)
        return {"boxes": np.concatenate([corner, corner + size], axis=-1),
                "logits": rng.standard_normal((2, 3, 20)).astype(np.float32)}

    check_runs(m, [feeds() for _ in range(3)])
