"""Low-precision dtypes (float8, float4, int4, int2): casts against ml_dtypes and ONNX's saturating rule, every
representable value decoded, NumPy arrays shared, ONNX files packed."""

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import aidge
import aidge.onnx

FLOATS = {
    "float8_e4m3fn": TensorProto.FLOAT8E4M3FN,
    "float8_e4m3fnuz": TensorProto.FLOAT8E4M3FNUZ,
    "float8_e5m2": TensorProto.FLOAT8E5M2,
    "float8_e5m2fnuz": TensorProto.FLOAT8E5M2FNUZ,
    "float4_e2m1fn": TensorProto.FLOAT4E2M1,
}
INTEGERS = {"int4": TensorProto.INT4, "uint4": TensorProto.UINT4, "int2": TensorProto.INT2, "uint2": TensorProto.UINT2}


def cast_model(source: int, target: int, **attributes) -> aidge.GraphView:
    node = helper.make_node("Cast", ["x"], ["y"], to=target, **attributes)
    graph = helper.make_graph(
        [node], "cast", [helper.make_tensor_value_info("x", source, None)],
        [helper.make_tensor_value_info("y", target, None)])
    return aidge.onnx.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]))


def probe_values() -> np.ndarray:
    """Every float16 value (both signs, subnormals, infinities, NaN) and float32 values around each format's range."""
    halves = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)
    extra = np.array([1e-9, 239.9, 240, 247.9, 248, 448, 464, 464.1, 480, 57344, 61439, 61440, 1e6, 5.9, 6.5, 7],
                     dtype=np.float32)
    return np.concatenate([halves, extra, -extra])


@pytest.mark.parametrize("name", list(FLOATS))
@pytest.mark.parametrize("saturate", [1, 0])
def test_float_casts_match_ml_dtypes(name: str, saturate: int) -> None:
    x = probe_values()
    target = getattr(ml_dtypes, name)
    # ONNX: saturate clips to the largest finite value first (NaN stays NaN); float4 always saturates.
    with np.errstate(invalid="ignore"):
        if saturate or name == "float4_e2m1fn":
            info = ml_dtypes.finfo(target)
            expected = np.clip(x, float(info.min), float(info.max)).astype(target)
        else:
            expected = x.astype(target)
    y = cast_model(TensorProto.FLOAT, FLOATS[name], saturate=saturate).run(x)[0].numpy()
    assert y.dtype == target
    np.testing.assert_array_equal(y.view(np.uint8), expected.view(np.uint8))


@pytest.mark.parametrize("name", list(FLOATS) + list(INTEGERS))
def test_every_value_decodes(name: str) -> None:
    target = getattr(ml_dtypes, name)
    width = 4 if name in ("float4_e2m1fn", "int4", "uint4") else 2 if name in ("int2", "uint2") else 8
    bits = np.arange(1 << width, dtype=np.uint8)
    values = bits.view(target)
    code = FLOATS.get(name) or INTEGERS[name]
    y = cast_model(code, TensorProto.DOUBLE).run(values)[0].numpy()
    np.testing.assert_array_equal(y, values.astype(np.float64))


@pytest.mark.parametrize("name", list(INTEGERS))
def test_integer_casts_wrap_like_ml_dtypes(name: str) -> None:
    target = getattr(ml_dtypes, name)
    floats = np.array([-9.7, -8.5, -2.5, -1.5, -0.6, 0.5, 1.5, 2.5, 7.6, 8.4, 15.5, 16.5, 300], dtype=np.float32)
    y = cast_model(TensorProto.FLOAT, INTEGERS[name]).run(floats)[0].numpy()
    np.testing.assert_array_equal(y.view(np.uint8), floats.astype(target).view(np.uint8))
    ints = np.arange(-40, 40, dtype=np.int32)
    y = cast_model(TensorProto.INT32, INTEGERS[name]).run(ints)[0].numpy()
    np.testing.assert_array_equal(y.view(np.uint8), ints.astype(target).view(np.uint8))


def test_arrays_share_memory_both_ways() -> None:
    array = np.array([1.5, -2, 448], dtype=np.float32).astype(ml_dtypes.float8_e4m3fn)
    tensor = aidge.from_numpy(array)
    assert tensor.dtype_name == "float8_e4m3fn"
    view = tensor.numpy()
    assert view.dtype == ml_dtypes.float8_e4m3fn
    assert view.ctypes.data == array.ctypes.data
    with pytest.raises(TypeError, match="no DLPack type"):
        tensor.__dlpack__()


@pytest.mark.parametrize("name", ["int4", "uint2", "float4_e2m1fn", "float8_e5m2"])
def test_onnx_tensor_files_round_trip_packed(name: str, tmp_path) -> None:
    values = np.arange(7, dtype=np.float32).astype(getattr(ml_dtypes, name))
    proto = numpy_helper.from_array(values, name="x")
    path = tmp_path / "x.pb"
    path.write_bytes(proto.SerializeToString())
    # An initializer read from the file, passed through Identity, must come back unchanged.
    graph = helper.make_graph(
        [helper.make_node("Identity", ["w"], ["y"])], "id", [],
        [helper.make_tensor_value_info("y", proto.data_type, None)], initializer=[onnx.load_tensor(str(path))])
    graph.initializer[0].name = "w"
    model = aidge.onnx.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]))
    np.testing.assert_array_equal(model.run()[0].numpy().view(np.uint8), values.view(np.uint8))


def quantize_model(op: str, x_type: int, y_type: int, scale: np.ndarray, zero_point: np.ndarray,
                   **attributes) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node(op, ["x", "scale", "zero_point"], ["y"], **attributes)], op,
        [helper.make_tensor_value_info("x", x_type, None)], [helper.make_tensor_value_info("y", y_type, None)],
        initializer=[numpy_helper.from_array(scale, "scale"), numpy_helper.from_array(zero_point, "zero_point")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def test_blocked_quantization_matches_the_reference() -> None:
    """Blocked int4 quantisation along axis 1 (blocks of 2), then dequantisation, against ONNX's reference."""
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6)).astype(np.float32) * 4
    scale = np.abs(rng.standard_normal((3, 3))).astype(np.float32) + 0.1
    zero_point = rng.integers(-3, 3, size=(3, 3)).astype(ml_dtypes.int4)
    attributes = {"axis": 1, "block_size": 2}
    for op, x_type, y_type, value in [("QuantizeLinear", TensorProto.FLOAT, TensorProto.INT4, x),
                                      ("DequantizeLinear", TensorProto.INT4, TensorProto.FLOAT,
                                       x.clip(-8, 7).astype(ml_dtypes.int4))]:
        model = quantize_model(op, x_type, y_type, scale, zero_point, **attributes)
        ours = aidge.onnx.load(model).run(value)[0].numpy()
        reference = ReferenceEvaluator(model).run(None, {"x": value})[0]
        np.testing.assert_array_equal(ours.astype(np.float32), reference.astype(np.float32))


def test_nan_quantizes_without_trapping() -> None:
    x = np.array([np.nan, np.inf, -np.inf, 1], dtype=np.float32)
    model = quantize_model("QuantizeLinear", TensorProto.FLOAT, TensorProto.UINT8, np.float32(0.5), np.uint8(10))
    assert aidge.onnx.load(model).run(x)[0].numpy().tolist() == [0, 255, 0, 12]
    graph = helper.make_graph(
        [helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])], "d",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info(n, t, None) for n, t in [("y", TensorProto.UINT8), ("s", TensorProto.FLOAT),
                                                                ("z", TensorProto.UINT8)]])
    dynamic = aidge.onnx.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]))
    assert dynamic.run(np.array([np.nan, -1, 1], dtype=np.float32))[0].numpy()[0] == 0


@pytest.mark.parametrize("round_mode", ["up", "down", "nearest"])
@pytest.mark.parametrize("saturate", [1, 0])
def test_float8_e8m0_casts_match_onnx(round_mode: str, saturate: int) -> None:
    """float32 to e8m0 in every rounding mode, saturating or not, bit for bit against onnx.numpy_helper; and every
    code back to float32 against ml_dtypes."""
    rng = np.random.default_rng(0)
    x = np.concatenate([
        rng.standard_normal(500) * 10.0 ** rng.integers(-30, 30, 500),
        [0.0, -0.0, 1.0, 1.5, 0.75, 3.0, 2.0**127, 2.0**127 * 1.5, 3.4e38, np.inf, -np.inf, np.nan, 1e-45, 2.0**-127],
    ]).astype(np.float32)
    graph = aidge.onnx.load(helper.make_model(
        helper.make_graph([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT8E8M0, saturate=saturate,
                                            round_mode=round_mode)], "cast",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT8E8M0, None)]),
        opset_imports=[helper.make_opsetid("", 25)]))
    ours = graph.run(x)[0].numpy()
    expected = numpy_helper.to_float8e8m0(x, saturate=bool(saturate), round_mode=round_mode)
    assert ours.dtype == ml_dtypes.float8_e8m0fnu
    np.testing.assert_array_equal(ours.view(np.uint8), expected.view(np.uint8))
    codes = np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e8m0fnu)
    back = aidge.onnx.load(helper.make_model(
        helper.make_graph([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)], "back",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT8E8M0, None)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]),
        opset_imports=[helper.make_opsetid("", 25)])).run(codes)[0].numpy()
    np.testing.assert_array_equal(back, codes.astype(np.float32))
