"""String tensors: NumPy text in and out, data movement on strings, the string operators and casts to and from
text, checked against ONNX Runtime over several inputs, and the clear errors for misuse."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import aidge
import aidge.onnx

S = TensorProto.STRING


def model(nodes, inputs, outputs, initializers=(), opset=20, ml=False):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("ai.onnx.ml", 4)] if ml else [])
    return helper.make_model(graph, opset_imports=imports)


def check_against_onnxruntime(m, feeds_list) -> None:
    graph = aidge.onnx.load(m)
    session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    for feeds in feeds_list:
        ours = [np.asarray(t) for t in graph.run(*feeds.values())]
        theirs = session.run(None, feeds)
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert a.shape == b.shape, (a, b)
            if b.dtype == object:
                assert a.dtype == object and a.tolist() == b.tolist()
            else:
                assert a.dtype == b.dtype
                np.testing.assert_array_equal(a, b)


def text(*values, shape=None):
    array = np.array(values, dtype=object)
    return array.reshape(shape) if shape is not None else array


def test_numpy_text_round_trips() -> None:
    for array in [text("a", "", "déjà vu", "日本語", "x" * 1000), np.array([["ab", "c"], ["", "é"]]),
                  text(shape=(0, 3)), np.array("lone", dtype=object)]:
        tensor = aidge.Tensor(array)
        assert tensor.dtype == aidge.dtype.string and tensor.dims == list(array.shape)
        back = tensor.numpy()
        assert back.dtype == object and back.shape == array.shape and back.tolist() == array.tolist()
    assert aidge.Tensor(np.array([b"bytes", b"\xc3\xa9"], dtype=object)).numpy().tolist() == ["bytes", "é"]
    with pytest.raises(UnicodeDecodeError):
        aidge.Tensor(np.array([b"\xff"], dtype=object))
    with pytest.raises(TypeError, match="cannot share memory"):
        aidge.from_numpy(np.array(["shared?"]))


def test_data_movement_on_strings() -> None:
    """Transpose, Reshape, Gather, Concat, Slice and Where move string elements like any others."""
    m = model(
        [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0]),
         helper.make_node("Reshape", ["t", "flat"], ["r"]),
         helper.make_node("Gather", ["r", "picks"], ["g"]),
         helper.make_node("Concat", ["g", "r"], ["c"], axis=0),
         helper.make_node("Slice", ["c", "starts", "ends"], ["s"]),
         helper.make_node("Equal", ["s", "needle"], ["found"]),
         helper.make_node("Where", ["found", "s", "other"], ["w"])],
        [helper.make_tensor_value_info("x", S, [2, 3]), helper.make_tensor_value_info("picks", TensorProto.INT64, [None]),
         helper.make_tensor_value_info("needle", S, [])],
        [helper.make_tensor_value_info("w", S, None), helper.make_tensor_value_info("found", TensorProto.BOOL, None)],
        initializers=[helper.make_tensor("flat", TensorProto.INT64, [1], [-1]),
                      helper.make_tensor("starts", TensorProto.INT64, [1], [1]),
                      helper.make_tensor("ends", TensorProto.INT64, [1], [7]),
                      helper.make_tensor("other", S, [], [b"-"])],
        opset=19)
    check_against_onnxruntime(m, [
        {"x": text("a", "b", "c", "d", "e", "f", shape=(2, 3)), "picks": np.array([5, 0, 0], np.int64),
         "needle": text("d", shape=())},
        {"x": text("un", "deux", "", "quatre", "cinq", "six", shape=(2, 3)), "picks": np.array([2], np.int64),
         "needle": text("", shape=())},
    ])


def test_string_operators_against_onnxruntime() -> None:
    """StringNormalizer, StringConcat, StringSplit, RegexFullMatch and LabelEncoder chained, over inputs of several
    lengths and contents. (Where ONNX Runtime and ONNX's reference differ, on the whitespace after the last split
    and on splitting "" at a delimiter, the engine follows the reference and the suite's data, and these inputs
    avoid the difference.)"""
    m = model(
        [helper.make_node("StringNormalizer", ["words"], ["normal"], case_change_action="LOWER",
                          is_case_sensitive=0, stopwords=["THE", "a"], locale="C"),
         helper.make_node("StringConcat", ["normal", "suffix"], ["joined"]),
         helper.make_node("StringSplit", ["sentences"], ["pieces", "counts"], maxsplit=2),
         helper.make_node("StringSplit", ["sentences"], ["parts", "part_counts"], delimiter=", "),
         helper.make_node("RegexFullMatch", ["normal"], ["is_word"], pattern=r"[a-z]+\d?"),
         helper.make_node("LabelEncoder", ["normal"], ["ids"], domain="ai.onnx.ml", keys_strings=["cat", "dog"],
                          values_int64s=[1, 2], default_int64=-7)],
        [helper.make_tensor_value_info("words", S, [None]), helper.make_tensor_value_info("suffix", S, [1]),
         helper.make_tensor_value_info("sentences", S, [None])],
        [helper.make_tensor_value_info(n, S, None) for n in ("normal", "joined", "pieces", "parts")]
        + [helper.make_tensor_value_info(n, TensorProto.INT64, None) for n in ("counts", "part_counts", "ids")]
        + [helper.make_tensor_value_info("is_word", TensorProto.BOOL, None)],
        ml=True)
    check_against_onnxruntime(m, [
        {"words": text("The", "Cat", "a", "DOG", "Bird7", "x y"), "suffix": text("!"),
         "sentences": text("one, two, three four", "  spaced   out  words here", "solo")},
        {"words": text("dog"), "suffix": text(""), "sentences": text("a, b")},
    ])


def test_casts_to_and_from_text() -> None:
    m = model(
        [helper.make_node("Cast", ["numbers"], ["as_float"], to=TensorProto.FLOAT),
         helper.make_node("Cast", ["integers"], ["as_int"], to=TensorProto.INT64),
         helper.make_node("Cast", ["ints"], ["int_text"], to=S)],
        [helper.make_tensor_value_info("numbers", S, [None]), helper.make_tensor_value_info("integers", S, [None]),
         helper.make_tensor_value_info("ints", TensorProto.INT64, [None])],
        [helper.make_tensor_value_info("as_float", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("as_int", TensorProto.INT64, None),
         helper.make_tensor_value_info("int_text", S, None)],
        opset=19)
    check_against_onnxruntime(m, [
        {"numbers": text("1.5", "-2", "1e-3", "  42 ", "7"), "integers": text("-2", "42", "7"),
         "ints": np.array([0, -5, 2**40], np.int64)},
    ])
    graph = aidge.onnx.load(m)
    as_float = np.asarray(graph.run(text("inf", "-INF", "nan", "x"), text("1"), np.array([1], np.int64))[0])
    assert np.isposinf(as_float[0]) and np.isneginf(as_float[1]) and np.isnan(as_float[2]) and np.isnan(as_float[3])


def test_clear_errors() -> None:
    bad_regex = model([helper.make_node("RegexFullMatch", ["x"], ["y"], pattern="(unclosed")],
                      [helper.make_tensor_value_info("x", S, [1])], [helper.make_tensor_value_info("y", TensorProto.BOOL, [1])])
    with pytest.raises(ValueError, match="not a valid regular expression"):
        aidge.onnx.load(bad_regex).run(text("a"))
    add = model([helper.make_node("Add", ["x", "x"], ["y"])],
                [helper.make_tensor_value_info("x", S, [1])], [helper.make_tensor_value_info("y", S, [1])])
    with pytest.raises(TypeError, match="string"):
        aidge.onnx.load(add).run(text("a"))
    concat = model([helper.make_node("StringConcat", ["x", "y"], ["z"])],
                   [helper.make_tensor_value_info("x", S, [None]), helper.make_tensor_value_info("y", S, [None])],
                   [helper.make_tensor_value_info("z", S, None)])
    with pytest.raises(ValueError, match="broadcast"):
        aidge.onnx.load(concat).run(text("a", "b"), text("c", "d", "e"))
    with pytest.raises(TypeError, match="must be string"):
        aidge.onnx.load(concat).run(np.zeros(2, np.float32), text("c", "d"))
