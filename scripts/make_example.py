#!/usr/bin/env python3
"""Create the bundled example model examples/mnist_cnn/ (onnx + numpy only).

Writes:
  examples/mnist_cnn/model.onnx  MNIST-sized CNN, opset 17, IR version 8,
                                 input "input" float32[N, 1, 28, 28],
                                 output "output" float32[N, 10] (softmax)
  examples/mnist_cnn/input.npy   float32[1, 1, 28, 28], a synthetic "7"

Graph: Conv(1->8, 3x3, pad 1) -> BatchNormalization -> Relu -> MaxPool 2x2
       -> Conv(8->16, 3x3, pad 1) -> Relu -> MaxPool 2x2 -> Flatten
       -> Gemm(784->10, transB=1) -> Softmax
Weights are random (np.random.default_rng(0)); the model is untrained.

Usage: python3 scripts/make_example.py [--out-dir DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "examples" / "mnist_cnn"


def build_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)

    def he(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    def init(name: str, array: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name)

    initializers = [
        init("conv1.weight", he((8, 1, 3, 3), 1 * 9)),
        init("conv1.bias", rng.uniform(-0.1, 0.1, 8)),
        init("bn1.scale", rng.uniform(0.8, 1.2, 8)),
        init("bn1.bias", rng.uniform(-0.1, 0.1, 8)),
        init("bn1.mean", rng.uniform(-0.1, 0.1, 8)),
        init("bn1.var", rng.uniform(0.5, 1.5, 8)),
        init("conv2.weight", he((16, 8, 3, 3), 8 * 9)),
        init("conv2.bias", rng.uniform(-0.1, 0.1, 16)),
        init("fc.weight", he((10, 16 * 7 * 7), 16 * 7 * 7)),  # [out, in]: Gemm transB=1
        init("fc.bias", rng.uniform(-0.1, 0.1, 10)),
    ]

    nodes = [
        helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["conv1"], name="conv1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("BatchNormalization",
                         ["conv1", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"], ["bn1"],
                         name="bn1", epsilon=1e-5),
        helper.make_node("Relu", ["bn1"], ["relu1"], name="relu1"),
        helper.make_node("MaxPool", ["relu1"], ["pool1"], name="pool1",
                         kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["pool1", "conv2.weight", "conv2.bias"], ["conv2"], name="conv2",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["conv2"], ["relu2"], name="relu2"),
        helper.make_node("MaxPool", ["relu2"], ["pool2"], name="pool2",
                         kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool2"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc",
                         alpha=1.0, beta=1.0, transB=1),
        helper.make_node("Softmax", ["logits"], ["output"], name="softmax", axis=1),
    ]

    graph = helper.make_graph(
        nodes,
        "mnist_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 10])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="aidge-make-example", producer_version="1")
    model.ir_version = 8
    model.doc_string = "MNIST-sized CNN with random (untrained) weights, for aidge examples."
    onnx.checker.check_model(model, full_check=True)
    return model


def make_input() -> np.ndarray:
    """A 28x28 "7": a horizontal bar on top and a diagonal stroke, in [0, 1]."""
    img = np.zeros((28, 28), dtype=np.float32)
    img[5:8, 6:22] = 1.0                       # top bar
    for row in range(8, 24):                   # diagonal stroke, 3 pixels wide
        col = 21 - (row - 8) * 10 // 16
        img[row, max(col - 1, 0):col + 2] = 1.0
    img[14, 11:18] = np.maximum(img[14, 11:18], 0.6)  # crossbar, lighter
    return img.reshape(1, 1, 28, 28)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)

    model = build_model()
    onnx.save_model(model, str(out / "model.onnx"))
    x = make_input()
    np.save(out / "input.npy", x)

    for f in ("model.onnx", "input.npy"):
        print(f"wrote {out / f} ({(out / f).stat().st_size} bytes)")
    try:  # optional sanity check, not needed to build the example
        import onnxruntime as ort
    except ImportError:
        return
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    probs = sess.run(None, {"input": x})[0]
    print(f"onnxruntime: output {probs.shape}, argmax {int(probs.argmax())}, "
          f"max prob {float(probs.max()):.4f}")


if __name__ == "__main__":
    main()
