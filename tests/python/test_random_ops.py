"""Random operators: seeded ones repeat across models and draw on across runs, and every one follows its
distribution (sample statistics against the analytic mean and spread) in the dtype asked for."""

import numpy as np
import pytest
from onnx import TensorProto, helper

import aidge.onnx

F = TensorProto.FLOAT


def load(nodes, inputs, outputs, opset=20):
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    return aidge.onnx.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))


def uniform_graph(seed=None):
    extra = {} if seed is None else {"seed": seed}
    return load([helper.make_node("RandomUniform", [], ["y"], shape=[200, 100], low=-1.0, high=3.0, **extra)], [],
                [helper.make_tensor_value_info("y", F, [200, 100])])


def test_seeds_repeat_across_models_and_runs_draw_on() -> None:
    first = np.asarray(uniform_graph(seed=5.0).run()[0])
    again = uniform_graph(seed=5.0)
    np.testing.assert_array_equal(np.asarray(again.run()[0]), first)
    assert not np.array_equal(np.asarray(again.run()[0]), first)  # the next run draws on
    assert not np.array_equal(np.asarray(uniform_graph(seed=6.0).run()[0]), first)
    assert not np.array_equal(np.asarray(uniform_graph().run()[0]), np.asarray(uniform_graph().run()[0]))


def test_uniform_and_normal_follow_their_distributions() -> None:
    y = np.asarray(uniform_graph(seed=1.0).run()[0])
    assert y.dtype == np.float32 and y.min() >= -1.0 and y.max() < 3.0
    assert abs(y.mean() - 1.0) < 0.05 and abs(y.var() - 16 / 12) < 0.05
    like = load([helper.make_node("RandomNormalLike", ["x"], ["y"], mean=2.0, scale=0.5, seed=3.0),
                 helper.make_node("RandomNormal", [], ["z"], shape=[50000], dtype=TensorProto.DOUBLE, seed=4.0)],
                [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [100, 300])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT16, None),
                 helper.make_tensor_value_info("z", TensorProto.DOUBLE, None)])
    y, z = (np.asarray(v) for v in like.run(np.zeros((100, 300), np.float16)))
    assert y.dtype == np.float16 and y.shape == (100, 300) and z.dtype == np.float64
    assert abs(y.astype(np.float64).mean() - 2.0) < 0.02 and abs(y.astype(np.float64).std() - 0.5) < 0.02
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1.0) < 0.03
    # Normal tails: about 4.55 % beyond two standard deviations.
    assert abs(np.mean(np.abs(z) > 2) - 0.0455) < 0.005


def test_bernoulli_and_multinomial() -> None:
    graph = load([helper.make_node("Bernoulli", ["p"], ["b"], seed=2.0, dtype=TensorProto.BOOL),
                  helper.make_node("Multinomial", ["logits"], ["k"], sample_size=20000, seed=7.0)],
                 [helper.make_tensor_value_info("p", F, [None]), helper.make_tensor_value_info("logits", F, [2, 3])],
                 [helper.make_tensor_value_info("b", TensorProto.BOOL, None),
                  helper.make_tensor_value_info("k", TensorProto.INT32, None)])
    p = np.concatenate([np.zeros(100), np.ones(100), np.full(20000, 0.3)]).astype(np.float32)
    logits = np.log(np.array([[1, 2, 5], [1, 1, 0]], np.float32) + 1e-30).astype(np.float32)
    b, k = (np.asarray(v) for v in graph.run(p, logits))
    assert b.dtype == np.bool_ and not b[:100].any() and b[100:200].all()
    assert abs(b[200:].mean() - 0.3) < 0.02
    assert k.dtype == np.int32 and k.shape == (2, 20000)
    np.testing.assert_allclose(np.bincount(k[0], minlength=3) / 20000, [0.125, 0.25, 0.625], atol=0.015)
    np.testing.assert_allclose(np.bincount(k[1], minlength=3) / 20000, [0.5, 0.5, 0.0], atol=0.015)
    with pytest.raises(ValueError, match="outside"):
        graph.run(np.array([1.5], np.float32), logits)


def test_bad_attributes_are_clear_errors() -> None:
    with pytest.raises(TypeError, match="float types"):
        load([helper.make_node("RandomUniform", [], ["y"], shape=[2], dtype=TensorProto.INT32)], [],
             [helper.make_tensor_value_info("y", TensorProto.INT32, [2])]).run()
    with pytest.raises(ValueError, match="low"):
        load([helper.make_node("RandomUniform", [], ["y"], shape=[2], low=2.0, high=1.0)], [],
             [helper.make_tensor_value_info("y", F, [2])]).run()
