"""The CUDA backend on a GPU, in one run: correctness first, then speed.

1. Every operator the CUDA backend registers, against the CPU backend on the same inputs: float32 with TF32 off
   (|d| <= 1e-4·|ref| + 1e-5·max|ref|), float16 and bfloat16 where the kernel takes them (2e-2 relative).
2. ResNet-18, ResNet-50, MobileNetV2 and the Transformer encoder of tests/e2e/models.py, exported to ONNX, run on
   the CUDA backend and compared with PyTorch on the same device (TF32 off on both sides).
3. DLPack: torch CUDA tensors and ours exchanged both ways keep their pointer (and a strided view its strides).
   PyTorch interop: a module wrapped by aidge.torch.wrap on the GPU, and AidgeModule(graph, backend="cuda"), run
   forward and backward there and give torch's results.
4. Benchmarks against torch eager on the same GPU, each side in its default math mode: ResNet-50 batch 32 and
   batch 1 (targets: at most 1.2x and 1.5x torch's latency).

Usage: python benchmarks/cuda_device_check.py [--quick] [--skip-bench]
With no GPU but AIDGE_CUDA_EMULATOR set (the CPU emulator of tests), `--quick` runs the same checks on small
inputs and the reference side on the CPU, which is how the script itself is tested.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

try:
    import aidge  # the installed package
except ImportError:  # a machine without it runs the package of this repository, its extension built and carried
    sys.path.insert(0, str(ROOT / "python"))
    import aidge
import aidge.onnx  # noqa: E402
import aidge.torch  # noqa: E402
import models  # noqa: E402

RNG = np.random.default_rng(0)
failures: list[str] = []


def report(name: str, ok: bool, detail: str = "") -> None:
    print(f"{'PASS' if ok else 'FAIL'}  {name}{'  ' + detail if detail else ''}", flush=True)
    if not ok:
        failures.append(name)


def close(actual: np.ndarray, expected: np.ndarray, low_precision: bool) -> tuple[bool, str]:
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    if a.shape != e.shape:
        return False, f"shape {a.shape} != {e.shape}"
    finite = np.isfinite(e)
    if not np.array_equal(np.isnan(a), np.isnan(e)) or not np.array_equal(a[~finite & ~np.isnan(e)], e[~finite & ~np.isnan(e)]):
        return False, "non-finite values differ"
    d, ref = np.abs(a - e)[finite], np.abs(e)[finite]
    scale = float(ref.max()) if ref.size else 0.0
    limit = 2e-2 * ref + 2e-3 * scale if low_precision else 1e-4 * ref + 1e-5 * scale
    worst = float((d - limit).max()) if d.size else 0.0
    return worst <= 0, f"max |d| {float(d.max()) if d.size else 0:.3g}"


def floats(*shape: int, positive: bool = False) -> np.ndarray:
    x = RNG.standard_normal(shape).astype(np.float32)
    return np.abs(x) + 0.1 if positive else x


def operator_cases() -> list[tuple[str, str, list[np.ndarray], dict]]:
    """(label, type, inputs, attributes) covering every CUDA kernel."""
    x, y = floats(2, 3, 8, 8), floats(3, 1, 8)
    cases = []
    for op in ["Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean", "PRelu", "Equal", "Less", "Greater",
               "LessOrEqual", "GreaterOrEqual"]:
        cases.append((op, op, [x, y], {}))
    cases.append(("Pow", "Pow", [floats(4, 5, positive=True), floats(5)], {}))
    b = x > 0
    cases += [(op, op, [b, y > 0], {}) for op in ["And", "Or", "Xor"]] + [("Not", "Not", [b], {})]
    cases.append(("Where", "Where", [b, x, floats(8)], {}))
    for op in ["Neg", "Abs", "Sign", "Floor", "Ceil", "Round", "Exp", "Erf", "Sin", "Cos", "Tan", "Atan", "Sinh",
               "Cosh", "Asinh", "IsNaN", "Relu", "Sigmoid", "Tanh", "HardSwish", "Softplus", "Softsign", "Mish",
               "Identity", "Gelu", "LeakyRelu", "Elu", "HardSigmoid", "Dropout", "Flatten"]:
        cases.append((op, op, [x], {}))
    for op in ["Sqrt", "Log", "Reciprocal", "Acosh"]:
        cases.append((op, op, [floats(5, 7, positive=True) + (1 if op == "Acosh" else 0)], {}))
    cases += [(op, op, [np.tanh(x) * 0.9], {}) for op in ["Asin", "Acos", "Atanh"]]
    cases.append(("Clip", "Clip", [x, np.float32(-0.5), np.float32(0.5)], {}))
    cases.append(("Cast", "Cast", [x * 100], {"to": 6}))
    cases.append(("Reshape", "Reshape", [x, np.array([6, -1], np.int64)], {}))
    cases.append(("Squeeze", "Squeeze", [floats(3, 1, 4), np.array([1], np.int64)], {}))
    cases.append(("Unsqueeze", "Unsqueeze", [floats(3, 4), np.array([0], np.int64)], {}))
    cases.append(("Transpose", "Transpose", [x], {"perm": [2, 0, 3, 1]}))
    cases.append(("Gemm", "Gemm", [floats(5, 7), floats(9, 7), floats(9)], {"transB": 1, "alpha": 0.5}))
    cases.append(("MatMul batched", "MatMul", [floats(4, 33, 65), floats(4, 65, 17)], {}))
    cases.append(("MatMul broadcast", "MatMul", [floats(2, 1, 9, 16), floats(3, 16, 5)], {}))
    cases += [(op, op, [floats(3, 300, 5) * 8], {"axis": 1}) for op in ["Softmax", "LogSoftmax"]]
    for op in ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
               "ReduceSumSquare", "ReduceLogSumExp"]:
        cases.append((op, op, [x, np.array([1, 3], np.int64)], {"keepdims": 1}))
    cases.append(("ReduceLogSum", "ReduceLogSum", [floats(4, 6, positive=True), np.array([1], np.int64)], {}))
    cases.append(("MaxPool", "MaxPool", [x], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}))
    cases.append(("AveragePool", "AveragePool", [x], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}))
    cases += [(op, op, [x], {}) for op in ["GlobalAveragePool", "GlobalMaxPool"]]
    cases.append(("BatchNormalization", "BatchNormalization",
                  [x, floats(3), floats(3), floats(3), floats(3, positive=True)], {}))
    cases.append(("LayerNormalization", "LayerNormalization", [floats(4, 7, 96), floats(96), floats(96)], {}))
    cases.append(("Conv 3x3", "Conv", [floats(2, 8, 14, 14), floats(16, 8, 3, 3), floats(16)], {"pads": [1, 1, 1, 1]}))
    cases.append(("Conv strided 1x1", "Conv", [floats(2, 8, 14, 14), floats(16, 8, 1, 1)], {"strides": [2, 2]}))
    cases.append(("Conv depthwise", "Conv", [floats(2, 8, 14, 14), floats(8, 1, 3, 3)], {"group": 8, "pads": [1, 1, 1, 1]}))
    cases.append(("Conv grouped", "Conv", [floats(2, 8, 14, 14), floats(8, 2, 3, 3)], {"group": 4}))
    cases.append(("Expand", "Expand", [floats(5, 1), np.array([3, 5, 4], np.int64)], {}))
    cases.append(("Slice", "Slice", [x, np.array([1, 7], np.int64), np.array([3, 0], np.int64),
                                     np.array([1, 3], np.int64), np.array([1, -2], np.int64)], {}))
    cases.append(("Concat", "Concat", [x, floats(2, 1, 8, 8)], {"axis": 1}))
    cases.append(("Split", "Split", [x, np.array([1, 2], np.int64)], {"axis": 1}))
    cases.append(("Gather", "Gather", [x, np.array([2, -1, 0], np.int64)], {"axis": 2}))
    cases += [(f"Pad {mode}", "Pad", [x, np.array([0, 1, 2, 1, 0, 0, 1, 3], np.int64)], {"mode": mode})
              for mode in ["constant", "reflect", "edge", "wrap"]]
    cases.append(("InstanceNormalization", "InstanceNormalization", [x, floats(3), floats(3)], {}))
    cases.append(("ConvTranspose", "ConvTranspose", [floats(2, 4, 7, 7), floats(4, 3, 3, 3), floats(3)],
                  {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}))
    cases.append(("ConstantOfShape", "ConstantOfShape", [np.array([3, 4], np.int64)], {"value": aidge.Tensor(np.array([2.5], np.float32))}))
    cases.append(("Range", "Range", [np.float32(0.5), np.float32(9), np.float32(0.25)], {}))
    cases.append(("Mod", "Mod", [np.array([7, -7, 9, -9], np.int64), np.array([3, 3, -4, -4], np.int64)], {}))
    cases.append(("Resize linear", "Resize", [x, np.zeros(0, np.float32), np.array([1, 1, 2, 1.5], np.float32)],
                  {"mode": "linear"}))
    cases.append(("Resize cubic", "Resize", [x, np.zeros(0, np.float32), np.array([1, 1, 0.5, 2], np.float32)],
                  {"mode": "cubic"}))
    cases.append(("Upsample", "Upsample", [x, np.array([1, 1, 2, 2], np.float32)], {"mode": "nearest"}))
    return cases


def low_precision_cases() -> list[tuple[str, str, list[np.ndarray], dict]]:
    """The float16/bfloat16 forms: Conv, Gemm, MatMul, element-wise, Softmax, normalisations."""
    cases = []
    for dtype in ("float16", "bfloat16"):
        def t(*shape: int) -> aidge.Tensor:
            return aidge.Tensor(floats(*shape)).astype(dtype)
        cases += [
            (f"Conv {dtype}", "Conv", [t(2, 8, 10, 10), t(16, 8, 3, 3)], {"pads": [1, 1, 1, 1]}),
            (f"Gemm {dtype}", "Gemm", [t(6, 32), t(32, 10)], {}),
            (f"MatMul {dtype}", "MatMul", [t(3, 8, 32), t(32, 16)], {}),
            (f"Add {dtype}", "Add", [t(4, 16), t(16)], {}),
            (f"Gelu {dtype}", "Gelu", [t(4, 16)], {}),
            (f"Softmax {dtype}", "Softmax", [t(4, 100)], {}),
            (f"LayerNormalization {dtype}", "LayerNormalization", [t(4, 64), t(64), t(64)], {}),
            (f"BatchNormalization {dtype}", "BatchNormalization",
             [t(2, 3, 4, 4), t(3), t(3), t(3), aidge.Tensor(floats(3, positive=True)).astype(dtype)], {}),
        ]
    return cases


def check_operators() -> None:
    print("== operators: CUDA against the CPU backend (float32 without TF32)", flush=True)
    aidge.cuda.set_options(tf32_matmul=False, tf32_convolution=False, cudnn=True)
    covered = set()
    cases = operator_cases() + low_precision_cases()
    # Convolutions again without cuDNN: the im2col + cuBLAS and direct depthwise kernels.
    cases += [(f"{label} without cuDNN", op, inputs, dict(attributes, _cudnn=False))
              for label, op, inputs, attributes in operator_cases() if op == "Conv"]
    for label, op, inputs, attributes in cases:
        attributes = dict(attributes)
        aidge.cuda.set_options(cudnn=attributes.pop("_cudnn", True))
        covered.add(op)
        low = any(getattr(v, "dtype_name", "") in ("float16", "bfloat16") for v in inputs)
        try:
            host = [v if isinstance(v, aidge.Tensor) else aidge.Tensor(np.asarray(v)) for v in inputs]
            expected = aidge.apply(op, *host, **attributes)
            actual = aidge.apply(op, *[v.to("cuda") for v in host], **attributes)
            for k, (a, e) in enumerate(zip(actual, expected)):
                assert a.device_name.startswith("cuda"), "output not on the device"
                ok, detail = close(a.cpu().astype("float32").numpy(), e.astype("float32").numpy(), low)
                report(f"{label} output {k}", ok, detail)
        except Exception as error:  # noqa: BLE001 (every failure is reported, the run goes on)
            report(label, False, f"{type(error).__name__}: {error}")
    aidge.cuda.set_options(cudnn=True)
    missing = sorted(set(aidge.supported_operators("cuda")) - covered)
    report("every CUDA operator has a case", not missing, ", ".join(missing))


def export(module: torch.nn.Module, example: torch.Tensor) -> aidge.GraphView:
    buffer = io.BytesIO()
    torch.onnx.export(module, (example,), buffer, dynamo=False, opset_version=17, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    return aidge.onnx.load(buffer.getvalue())


def check_models(device: str, quick: bool) -> dict[str, tuple[torch.nn.Module, aidge.GraphView]]:
    print(f"== models: CUDA backend against torch on {device} (TF32 off on both sides)", flush=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    aidge.cuda.set_options(tf32_matmul=False, tf32_convolution=False)
    built = {}
    names = ["resnet18", "mobilenetv2", "transformer"] if quick else ["resnet18", "resnet50", "mobilenetv2", "transformer"]
    for name in names:
        make = models.make_resnet50 if name == "resnet50" else models.MODELS[name]
        module, example = make()
        graph = export(module, example)
        graph.compile("cuda")
        built[name] = (module, graph)
        for batch in (1,) if quick else (1, 8):
            x = models.example_input((batch, *example.shape[1:]), seed=batch).to(device)
            with torch.no_grad():
                expected = module.to(device)(x).cpu().numpy()
            out = graph.run(aidge.from_dlpack(x) if device == "cuda" else x.numpy())[0]
            ok, detail = close(out.cpu().numpy(), expected, low_precision=False)
            report(f"{name} batch {batch}", ok, detail)
    return built


def check_dlpack() -> None:
    print("== DLPack with torch CUDA tensors", flush=True)
    t = torch.arange(24, dtype=torch.float32, device="cuda").reshape(4, 6)[:, 1:5]
    ours = aidge.from_dlpack(t)
    report("torch -> aidge keeps the pointer and strides", ours.data_ptr == t.data_ptr()
           and tuple(ours.strides) == t.stride() and ours.device_name == "cuda:0")
    back = torch.from_dlpack(ours)
    report("aidge -> torch keeps the pointer", back.data_ptr() == t.data_ptr() and back.device == t.device)
    y = aidge.apply("Mul", ours, ours)[0]
    shared = torch.from_dlpack(y)
    report("a result computed on the device is torch's without a copy",
           shared.data_ptr() == y.data_ptr and torch.equal(shared, t * t))


def check_torch_interop() -> None:
    print("== PyTorch interop on the GPU: aidge.torch.wrap and AidgeModule(backend='cuda') train like torch", flush=True)
    import copy

    import aidge_interop_torch

    torch.manual_seed(0)
    aidge.cuda.set_options(tf32_matmul=False, tf32_convolution=False)
    torch.backends.cudnn.allow_tf32 = False
    native = models.SmallCNN().cuda().train()
    reference = copy.deepcopy(native)
    x = torch.randn(8, 3, 32, 32, device="cuda")
    for label, engine in (("aidge.torch.wrap", aidge.torch.wrap(native, x)),):
        try:
            ours, theirs = engine(x), reference(x)
            ok, detail = close(ours.detach().cpu().numpy(), theirs.detach().cpu().numpy(), low_precision=False)
            report(f"{label}: forward on {ours.device}", ok and ours.device.type == "cuda", detail)
            ours.square().mean().backward()
            theirs.square().mean().backward()
            for (name, p), q in zip(native.named_parameters(), reference.parameters()):
                ok, detail = close(p.grad.cpu().numpy(), q.grad.cpu().numpy(), low_precision=False)
                report(f"{label}: gradient of {name}", ok, detail)
        except Exception as error:  # noqa: BLE001
            report(label, False, f"{type(error).__name__}: {error}")
    try:
        graph = aidge.torch.to_graph(models.MLP().eval(), torch.randn(2, 784))
        expected = graph.run(np.ones((4, 784), np.float32))[0].numpy()
        module = aidge_interop_torch.AidgeModule(graph, backend="cuda")
        out = module(torch.ones(4, 784, device="cuda"))
        ok, detail = close(out.detach().cpu().numpy(), expected, low_precision=False)
        report("AidgeModule(backend='cuda') forward", ok and out.device.type == "cuda", detail)
        optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
        out.square().mean().backward()
        optimizer.step()
        report("AidgeModule(backend='cuda') optimizer step", all(p.grad is not None for p in module.parameters()))
    except Exception as error:  # noqa: BLE001
        report("AidgeModule(backend='cuda')", False, f"{type(error).__name__}: {error}")


def bench(device: str, built: dict, quick: bool) -> None:
    print("== benchmarks: ResNet-50 against torch eager, each in its default math mode (TF32 convolutions, "
          "float32 matmuls)", flush=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    aidge.cuda.set_options(tf32_matmul=False, tf32_convolution=True)
    name = "resnet50" if "resnet50" in built else "resnet18"
    module, example = (models.make_resnet50 if name == "resnet50" else models.MODELS[name])()
    graph = export(module, example)
    graph.compile("cuda")
    module = module.to(device)
    for batch, target in [(32, 1.2), (1, 1.5)] if not quick else [(2, 1.5)]:
        x = models.example_input((batch, 3, 224, 224), seed=7).to(device)
        xs = aidge.from_dlpack(x) if device == "cuda" else x.numpy()

        def ours() -> None:
            graph.run(xs)
            aidge.cuda.synchronize()

        def theirs() -> None:
            with torch.no_grad():
                module(x)
            if device == "cuda":
                torch.cuda.synchronize()

        timings = {}
        for side, run in (("aidge", ours), ("torch", theirs)):
            for _ in range(3 if quick else 10):
                run()
            samples = []
            for _ in range(3 if quick else 30):
                start = time.perf_counter()
                run()
                samples.append(time.perf_counter() - start)
            timings[side] = float(np.median(samples)) * 1e3
        ratio = timings["aidge"] / timings["torch"]
        print(f"RESULT {name} batch {batch}: aidge {timings['aidge']:.2f} ms, torch eager {timings['torch']:.2f} ms, "
              f"ratio {ratio:.2f} (target <= {target})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small inputs, fewer models (the emulator)")
    parser.add_argument("--skip-bench", action="store_true")
    args = parser.parse_args()
    if not aidge.cuda.is_available():
        print(f"the CUDA backend cannot run here: {aidge.cuda.load_error()}")
        return 2
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"device: {aidge.cuda.device_name()}; torch {torch.__version__} on {device}", flush=True)
    check_operators()
    built = check_models(device, args.quick)
    if device == "cuda":
        check_dlpack()
        check_torch_interop()
    if not args.skip_bench:
        bench(device, built, args.quick)
    print(f"{len(failures)} failed: {', '.join(failures)}" if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
