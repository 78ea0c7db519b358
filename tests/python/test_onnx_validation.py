"""ONNX import: which operators are supported, and malformed models refused at load with a clear message."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import aidge
import aidge.onnx
import aidge_onnx


def test_supported_operators_match_onnx_schemas() -> None:
    ops = aidge.onnx.supported_operators()
    default = [op for op in ops if op.domain == ""]
    assert ops[:len(default)] == default and [op.type for op in default] == sorted(op.type for op in default)
    newest = onnx.defs.onnx_opset_version()
    for op in ops:
        assert op.domain in ("", "ai.onnx.ml", "ai.onnx.preview", "ai.onnx.preview.training"), op
        schema = onnx.defs.get_schema(op.type, op.since_version, op.domain)
        assert schema.since_version == op.since_version, op
        domain_newest = newest if not op.domain else max(
            s.since_version for s in onnx.defs.get_all_schemas_with_history() if s.domain == op.domain)
        assert op.since_version <= op.last_version <= domain_newest, op
        assert op.dtypes and all(isinstance(d, aidge.dtype) for d in op.dtypes), op
    others = {f"{op.domain}.{op.type}" for op in ops if op.domain}
    assert {"ai.onnx.ml.TreeEnsemble", "ai.onnx.ml.LabelEncoder", "ai.onnx.preview.FlexAttention",
            "ai.onnx.preview.training.Adam"} <= others
    by_type = {op.type: op for op in ops}
    assert by_type["Relu"].since_version == 1 and by_type["Relu"].last_version == newest
    assert by_type["Relu"].dtypes_verified and aidge.dtype.float32 in by_type["Relu"].dtypes
    assert by_type["Add"].since_version == 7
    assert "ImageDecoder" not in by_type and "Multinomial" in by_type
    # Aidge's compat function gives the op types.
    names = [op.type if not op.domain else f"{op.domain}.{op.type}" for op in ops]
    assert aidge_onnx.node_import.supported_operators() == names
    assert aidge_onnx.supported_operators() == names


def _model(nodes, inputs, outputs, initializers=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "bad", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 3, 3])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
W = numpy_helper.from_array(np.ones((1, 1, 2, 2), np.float32), "w")


def _refused(model: onnx.ModelProto, *fragments: str) -> None:
    with pytest.raises(ValueError) as info:
        aidge.onnx.load(model)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_opset_newer_than_supported() -> None:
    newest = onnx.defs.onnx_opset_version()
    model = _model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [X], [Y], opset=newest + 1)
    _refused(model, f"opset {newest + 1}", f"up to {newest}")


def test_wrong_attribute_type() -> None:
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv1", group=1.0)
    _refused(_model([node], [X], [Y], [W]), "conv1", "'group' must be INT", "got FLOAT")


def test_missing_required_attribute() -> None:
    node = helper.make_node("Cast", ["x"], ["y"], name="cast1")
    _refused(_model([node], [X], [Y]), "node cast1 (Cast) is missing required attribute 'to'")


def test_missing_required_input() -> None:
    node = helper.make_node("Conv", ["x", ""], ["y"], name="conv1")
    _refused(_model([node], [X], [Y]), "node conv1 (Conv) is missing required input 1 (W)")


def test_too_many_inputs() -> None:
    node = helper.make_node("Relu", ["x", "x"], ["y"], name="relu")
    _refused(_model([node], [X], [Y]), "node relu (Relu) has 2 inputs", "at most 1")


def test_cyclic_graph() -> None:
    nodes = [
        helper.make_node("Add", ["x", "c"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["c"], name="relu"),
        helper.make_node("Identity", ["a"], ["y"], name="out"),
    ]
    with pytest.raises(ValueError, match=r"the graph has a cycle through node (add|relu)$"):
        aidge.onnx.load(_model(nodes, [X], [Y]))


def test_tensor_data_does_not_match_its_shape() -> None:
    # onnx.helper.make_tensor checks the size itself: the protos are filled by hand.
    short = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1, 1, 2, 2], float_data=[1.0, 2.0, 3.0])
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv1")
    _refused(_model([node], [X], [Y], [short]), "tensor 'w' has 3 values, its shape [1, 1, 2, 2] needs 4")

    raw = TensorProto(name="k", data_type=TensorProto.FLOAT, dims=[3], raw_data=b"\0" * 8)
    nodes = [helper.make_node("Constant", [], ["k"], name="const", value=raw), helper.make_node("Add", ["x", "k"], ["y"])]
    _refused(_model(nodes, [X], [Y]), "node const (Constant)", "has 8 bytes of data, its shape [3] needs 12")


def test_well_formed_model_loads() -> None:
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv1", group=1)
    graph = aidge.onnx.load(_model([node], [X], [Y], [W]))
    assert "Conv" in [n.type() for n in graph.get_nodes()]
