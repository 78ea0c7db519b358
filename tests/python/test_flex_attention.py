"""ai.onnx.preview FlexAttention: modifier subgraphs that read values of the enclosing graph, checked against
NumPy; bad inputs and modifiers refused with a message that says what is wrong (the conformance suite covers the
rest)."""

import numpy as np
import pytest
from onnx import TensorProto, helper

import aidge
import aidge.onnx

F = TensorProto.FLOAT
OPSETS = [helper.make_opsetid("", 26), helper.make_opsetid("ai.onnx.preview", 1)]


def flex_model(q_shape, k_shape, v_shape, extra_inputs=(), **attributes):
    node = helper.make_node("FlexAttention", ["q", "k", "v"], ["y"], domain="ai.onnx.preview", **attributes)
    graph = helper.make_graph(
        [node], "flex",
        [helper.make_tensor_value_info("q", F, q_shape), helper.make_tensor_value_info("k", F, k_shape),
         helper.make_tensor_value_info("v", F, v_shape), *extra_inputs],
        [helper.make_tensor_value_info("y", F, None)])
    return helper.make_model(graph, opset_imports=OPSETS)


def modifier(name, nodes, out="out"):
    return helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", F, ["B", "H", "L", "S"])],
        [helper.make_tensor_value_info(out, F, None)])


def reference(q, k, v, bias, prob_scale):
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]) + bias
    probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
    probs = probs / probs.sum(axis=-1, keepdims=True) * prob_scale
    return probs @ v


def test_modifiers_read_values_of_the_enclosing_graph() -> None:
    # score_mod adds a (L, S) bias that is a graph input; prob_mod scales by a graph input; query heads in groups.
    score_mod = modifier("score_mod", [helper.make_node("Add", ["x", "bias"], ["out"])])
    prob_mod = modifier("prob_mod", [helper.make_node("Mul", ["x", "factor"], ["out"])])
    model = flex_model(
        [2, 4, 3, 8], [2, 2, 5, 8], [2, 2, 5, 6],
        [helper.make_tensor_value_info("bias", F, [3, 5]), helper.make_tensor_value_info("factor", F, [])],
        score_mod=score_mod, prob_mod=prob_mod)
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(s, dtype=np.float32) for s in ([2, 4, 3, 8], [2, 2, 5, 8], [2, 2, 5, 6]))
    bias = rng.standard_normal((3, 5), dtype=np.float32)
    factor = np.array(0.5, dtype=np.float32)
    (y,) = aidge.onnx.load(model).run(q, k, v, bias, factor)
    np.testing.assert_allclose(y.numpy(), reference(q, k, v, bias, 0.5), rtol=1e-5, atol=1e-6)


def test_query_and_key_head_sizes_must_agree() -> None:
    model = flex_model([1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 3, 4])
    q, k, v = np.zeros((1, 2, 3, 4), np.float32), np.zeros((1, 2, 3, 5), np.float32), np.zeros((1, 2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="FlexAttention Q and K head sizes differ: Q 1x2x3x4, K 1x2x3x5"):
        aidge.onnx.load(model).run(q, k, v)


def test_query_heads_must_be_a_multiple_of_key_heads() -> None:
    model = flex_model([1, 3, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4])
    q, kv = np.zeros((1, 3, 3, 4), np.float32), np.zeros((1, 2, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"query heads \(3\) a multiple of key/value heads \(2\)"):
        aidge.onnx.load(model).run(q, kv, kv)


def test_a_score_mod_of_the_wrong_shape_is_refused() -> None:
    # Summing over the keys gives (B, H, L, 1): not the scores' shape.
    score_mod = modifier("score_mod", [helper.make_node("ReduceSum", ["x", "axes"], ["out"], keepdims=1)])
    score_mod.initializer.append(helper.make_tensor("axes", TensorProto.INT64, [1], [3]))
    model = flex_model([1, 2, 3, 4], [1, 2, 5, 4], [1, 2, 5, 4], score_mod=score_mod)
    q, kv = np.zeros((1, 2, 3, 4), np.float32), np.zeros((1, 2, 5, 4), np.float32)
    with pytest.raises(ValueError, match="score_mod must give one float32 tensor of shape 1x2x3x5, as it is fed; "
                                         "it gives float32 1x2x3x1"):
        aidge.onnx.load(model).run(q, kv, kv)


def test_a_prob_mod_of_two_inputs_is_refused() -> None:
    prob_mod = helper.make_graph(
        [helper.make_node("Add", ["x", "z"], ["out"])], "prob_mod",
        [helper.make_tensor_value_info("x", F, None), helper.make_tensor_value_info("z", F, None)],
        [helper.make_tensor_value_info("out", F, None)])
    model = flex_model([1, 1, 2, 4], [1, 1, 2, 4], [1, 1, 2, 4], prob_mod=prob_mod)
    x = np.zeros((1, 1, 2, 4), np.float32)
    with pytest.raises(ValueError, match="prob_mod must take one input"):
        aidge.onnx.load(model).run(x, x, x)
