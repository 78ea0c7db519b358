"""The CUDA backend from Python, checked against the CPU backend: graphs compiled for cuda, tensors moved between
host and device, and the errors where no GPU is there. Without a GPU the backend runs on the CPU emulator of the
driver, NVRTC and cuBLAS (see conftest.py), which executes the same kernel sources."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import cuda_support  # noqa: F401  (the CUDA backend on the emulator where there is no GPU)
import aidge
import aidge.onnx
import aidge.torch
from interop_support import dlpack_capsule


def _mlp_model() -> bytes:
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((16, 32)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(rng.standard_normal(32).astype(np.float32), "b1")
    w2 = numpy_helper.from_array(rng.standard_normal((32, 10)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Add", ["h", "b1"], ["hb"]),
        helper.make_node("Relu", ["hb"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["y"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])], [w1, b1, w2])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_a_graph_compiled_for_cuda_matches_the_cpu_and_torch() -> None:
    assert aidge.cuda.is_available(), aidge.cuda.load_error()
    model = _mlp_model()
    x = np.random.default_rng(1).standard_normal((8, 16)).astype(np.float32)
    on_cpu = aidge.onnx.load(model)
    on_gpu = aidge.onnx.load(model)
    on_gpu.compile("cuda")
    assert on_gpu.backend == "cuda"
    (y,) = on_gpu.run(x)
    assert y.backend == "cuda" and y.device_name == "cuda:0", "outputs stay on the device"
    with pytest.raises(NotImplementedError, match="cuda:0.*cpu()"):
        np.asarray(y)
    expected = on_cpu.run(x)[0].numpy()
    np.testing.assert_allclose(y.cpu().numpy(), expected, rtol=1e-4, atol=1e-6)
    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load_from_string(model).graph.initializer}
    reference = torch.softmax(
        torch.relu(torch.from_numpy(x) @ torch.from_numpy(weights["w1"]) + torch.from_numpy(weights["b1"]))
        @ torch.from_numpy(weights["w2"]), dim=-1)
    np.testing.assert_allclose(y.cpu().numpy(), reference.numpy(), rtol=1e-4, atol=1e-6)
    # A device input is read where it is; a strided one is made contiguous on the device.
    x_gpu = aidge.Tensor(np.ascontiguousarray(x.T)).to("cuda")
    strided = aidge.apply("Transpose", x_gpu, perm=[1, 0])[0]
    np.testing.assert_allclose(on_gpu.run(strided)[0].cpu().numpy(), expected, rtol=1e-4, atol=1e-6)


def test_tensors_move_between_host_and_device() -> None:
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    t = aidge.Tensor(a, backend="cuda")
    assert (t.backend, t.device) == ("cuda", 0)
    assert t.to("cuda") is t, "already there: no copy"
    np.testing.assert_array_equal(t.cpu().numpy(), a)
    for dtype in (np.float16, np.int64, np.int8, np.bool_):
        b = (a % 3).astype(dtype)
        np.testing.assert_array_equal(aidge.Tensor(b).cuda().cpu().numpy(), b)
    with pytest.raises(ValueError, match="not a device"):
        t.to("tpu")


def test_cuda_kernels_follow_the_dtypes_and_broadcasting_of_the_cpu() -> None:
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 1, 5)).astype(np.float16)
    b = rng.standard_normal((4, 5)).astype(np.float16)
    graph = aidge.onnx.load(helper.make_model(helper.make_graph(
        [helper.make_node("Mul", ["a", "b"], ["m"]), helper.make_node("Sigmoid", ["m"], ["y"])], "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT16, [3, 1, 5]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT16, [4, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [3, 4, 5])]),
        opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    expected = graph.run(a, b)[0].numpy()
    graph.set_backend("cuda")
    actual = graph.run(a, b)[0].cpu().numpy()
    assert actual.dtype == np.float16
    np.testing.assert_allclose(actual.astype(np.float32), expected.astype(np.float32), rtol=2e-2, atol=1e-3)


def test_an_operator_without_a_cuda_kernel_is_a_clear_error() -> None:
    graph = aidge.onnx.load(helper.make_model(helper.make_graph(
        [helper.make_node("TopK", ["x", "k"], ["v", "i"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 6])],
        [helper.make_tensor_value_info("v", TensorProto.FLOAT, [4, 2]),
         helper.make_tensor_value_info("i", TensorProto.INT64, [4, 2])],
        [numpy_helper.from_array(np.array([2], np.int64), "k")]),
        opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    graph.compile("cuda")
    with pytest.raises(NotImplementedError, match="TopK.*not supported by the cuda backend"):
        graph.run(np.zeros((4, 6), np.float32))


def test_without_a_gpu_every_cuda_request_fails_with_one_clear_error() -> None:
    """No driver, no emulator: the backend says what is missing, and the CPU keeps working."""
    if os.path.exists("/dev/nvidia0"):
        pytest.skip("this machine has a GPU: the no-driver path is tested on machines without one")
    script = """
import numpy as np, aidge
assert not aidge.cuda.is_available()
message = aidge.cuda.load_error()
assert "libcuda.so.1" in message and "NVIDIA" in message, message
for attempt in (lambda: aidge.Tensor(np.ones(3, np.float32)).to("cuda"),
                lambda: aidge.sequential([aidge.ReLU()]).compile("cuda")):
    try:
        attempt()
        raise SystemExit("no error")
    except aidge.DeviceError as error:
        assert str(error) == message, (str(error), message)
graph = aidge.sequential([aidge.ReLU()])
assert graph.run(np.array([-1.0, 2.0], np.float32))[0].numpy().tolist() == [0.0, 2.0]
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if k != "AIDGE_CUDA_EMULATOR"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_dlpack_shares_device_tensors_both_ways_strided_views_too() -> None:
    a = np.arange(24, dtype=np.float32).reshape(4, 6)
    t = aidge.Tensor(a).to("cuda")
    assert t.__dlpack_device__() == (2, 0)
    shared = aidge.from_dlpack(t)
    assert shared.data_ptr == t.data_ptr and shared.device_name == "cuda:0", "the same device memory"
    # A strided view of device memory (as torch hands out): columns 1..4 of every row.
    keep: list[object] = []
    view = aidge.from_dlpack(dlpack_capsule(t.data_ptr + 4, (4, 4), (6, 1), device=(2, 0), keep=keep))
    assert view.data_ptr == t.data_ptr + 4 and tuple(view.strides) == (6, 1)
    np.testing.assert_array_equal(view.cpu().numpy(), a[:, 1:5])
    doubled = aidge.apply("Add", view, view)[0]
    assert doubled.device_name == "cuda:0"
    np.testing.assert_array_equal(doubled.cpu().numpy(), 2 * a[:, 1:5])
    # Exported again with copy=True: a contiguous copy made on the device.
    copied = aidge.from_dlpack(view.__dlpack__(copy=True, max_version=(1, 0)))
    assert copied.device_name == "cuda:0" and copied.data_ptr != view.data_ptr
    np.testing.assert_array_equal(copied.cpu().numpy(), a[:, 1:5])


def test_work_is_queued_on_the_stream_the_caller_sets() -> None:
    driver = ctypes.CDLL(os.environ.get("AIDGE_CUDA_EMULATOR", "libcuda.so.1"))
    aidge.cuda.synchronize()  # the backend has made the primary context current on this thread
    handle = ctypes.c_void_p()
    assert driver.cuStreamCreate(ctypes.byref(handle), 1) == 0
    x = np.linspace(-3, 3, 50, dtype=np.float32)
    assert aidge.cuda.current_stream() == 0
    with aidge.cuda.stream(handle.value):
        assert aidge.cuda.current_stream() == handle.value
        y = aidge.apply("Sigmoid", aidge.Tensor(x).to("cuda"))[0]
        aidge.cuda.synchronize()
        np.testing.assert_allclose(y.cpu().numpy(), 1 / (1 + np.exp(-x)), rtol=1e-5)
    assert aidge.cuda.current_stream() == 0, "restored after the block"
    assert driver.cuStreamDestroy_v2(handle) == 0


def test_recorded_runs_back_propagate_on_the_device() -> None:
    """Forward and backward on CUDA for host parameters: gradients computed on the device, added to the host
    parameters' gradients, as PyTorch's autograd gives them."""
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3), torch.nn.LogSoftmax(-1))
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((4, 5)).astype(np.float32) for _ in range(2))
    ga, gb = (rng.standard_normal((4, 3)).astype(np.float32) for _ in range(2))
    graph = aidge.torch.to_graph(module, torch.from_numpy(a))
    graph.set_backend("cuda")
    engine = graph._graph
    outs_a, rec_a = engine.run_recorded([aidge.from_numpy(a)])
    outs_b, rec_b = engine.run_recorded([aidge.Tensor(b).to("cuda")])
    assert outs_a[0].device_name == "cuda:0"
    grads_b = engine.backward_recorded(rec_b, [aidge.Tensor(gb).to("cuda")], inputs=[0])
    grads_a = engine.backward_recorded(rec_a, [aidge.from_numpy(ga)], inputs=[0])

    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    ya, yb = module(ta), module(tb)
    torch.autograd.backward([ya, yb], [torch.from_numpy(ga), torch.from_numpy(gb)])
    for ours, theirs in [(outs_a[0], ya), (outs_b[0], yb), (grads_a[0], ta.grad), (grads_b[0], tb.grad)]:
        assert ours.device_name == "cuda:0"
        np.testing.assert_allclose(ours.cpu().numpy(), theirs.detach().numpy(), rtol=1e-4, atol=1e-5)
    for name, parameter in module.named_parameters():
        tensor = graph.get_node(name).producer_tensor
        assert tensor.device_name == "cpu", "a host parameter keeps its gradient on the host"
        np.testing.assert_allclose(np.asarray(tensor.grad).reshape(parameter.shape), parameter.grad.numpy(),
                                   rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.fixture
def exact_float32():
    """Convolutions without TF32 for the test (float32 exactly, as torch on the CPU), then the default again."""
    previous = aidge.cuda.set_options()["tf32_convolution"]
    aidge.cuda.set_options(tf32_convolution=False)
    yield
    aidge.cuda.set_options(tf32_convolution=previous)


@pytest.mark.usefixtures("exact_float32")
def test_a_cnn_trains_on_the_device_like_torch() -> None:
    """A training-mode step on CUDA (batch statistics, running statistics updated on the host parameters) gives
    PyTorch's outputs, gradients and running statistics."""
    torch.manual_seed(1)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.BatchNorm2d(6), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 4, 3, stride=2), torch.nn.Flatten(), torch.nn.Linear(4, 5))
    x = np.random.default_rng(2).standard_normal((4, 3, 8, 8)).astype(np.float32)
    g = np.random.default_rng(3).standard_normal((4, 5)).astype(np.float32)
    graph = aidge.torch.to_graph(module, torch.from_numpy(x))
    graph.set_backend("cuda")
    engine = graph._graph
    outputs, recording = engine.run_recorded([aidge.from_numpy(x)], training=True)
    (dx,) = engine.backward_recorded(recording, [aidge.from_numpy(g)], inputs=[0])

    module.train()
    tx = torch.tensor(x, requires_grad=True)
    y = module(tx)
    y.backward(torch.from_numpy(g))
    np.testing.assert_allclose(outputs[0].cpu().numpy(), y.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx.cpu().numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    for name, parameter in module.named_parameters():
        tensor = graph.get_node(name).producer_tensor
        np.testing.assert_allclose(np.asarray(tensor.grad).reshape(parameter.shape), parameter.grad.numpy(),
                                   rtol=1e-3, atol=1e-5, err_msg=name)
    for name in ("1.running_mean", "1.running_var"):
        ours = np.asarray(graph.get_node(name).producer_tensor)
        np.testing.assert_allclose(ours, module.get_buffer(name).numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
