"""`aidge run|bench --backend cuda` on the e2e models, against ONNX Runtime.

Without a GPU the CUDA backend runs on the CPU emulator of the driver, NVRTC and cuBLAS (`Tests/CUDAEmulator`),
which executes the backend's kernel sources; where the development environment has the real NVRTC, every source is
also compiled by it. On a machine with a GPU the same tests run on it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import models
from conftest import REPO_ROOT, assert_ok, describe, require_aidge_binary


@pytest.fixture(scope="module")
def cuda_env() -> dict[str, str]:
    env = dict(os.environ)
    if Path("/dev/nvidia0").exists():
        return env
    built = subprocess.run(["bash", str(REPO_ROOT / "scripts/build_cuda_emulator.sh")], capture_output=True,
                           text=True, check=True)
    env["AIDGE_CUDA_EMULATOR"] = built.stdout.strip().splitlines()[-1]
    for nvrtc in (REPO_ROOT / ".venv/lib").glob("python3*/site-packages/nvidia/cu13/lib/libnvrtc.so.13"):
        env["AIDGE_EMULATOR_NVRTC"] = str(nvrtc)
    return env


def _aidge(args: list, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(require_aidge_binary()), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=900, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("name", ["small_cnn", "resnet18", "mobilenetv2", "transformer"])
def test_models_run_on_the_cuda_backend(name: str, cuda_env: dict[str, str], tmp_path: Path) -> None:
    module, example = models.MODELS[name]()
    path = models.export(module, example, tmp_path / f"{name}.onnx", dynamo=False)
    x = models.example_input(tuple(example.shape), seed=3).numpy()
    np.save(tmp_path / "x.npy", x)
    proc = _aidge(["run", path, "--backend", "cuda", "--no-tf32", "--input", tmp_path / "x.npy", "--output-dir", tmp_path], cuda_env)
    assert_ok(proc)
    got = np.load(tmp_path / "output_0.npy")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert got.shape == expected.shape and got.dtype == expected.dtype, describe(proc)
    # fp32 on both sides: |d| <= 1e-4·|ref| + 1e-5·max|ref|, with room for the summation orders of 50 layers.
    scale = float(np.abs(expected).max())
    assert np.all(np.abs(got - expected) <= 1e-3 * np.abs(expected) + 1e-4 * scale), (
        f"max |d| {np.abs(got - expected).max()} (max |ref| {scale})")


def test_bench_times_the_cuda_backend(cuda_env: dict[str, str], tmp_path: Path) -> None:
    module, example = models.MODELS["small_cnn"]()
    path = models.export(module, example, tmp_path / "cnn.onnx", dynamo=False)
    proc = _aidge(["bench", path, "--backend", "cuda", "--batch", "2", "--runs", "3", "--warmup", "1", "--json"], cuda_env)
    assert_ok(proc)
    report = json.loads(proc.stdout)
    assert report["backend"] == "cuda" and report["runs"] == 3 and report["median_ms"] > 0, proc.stdout


def test_without_a_gpu_the_cuda_backend_is_one_clear_error(tmp_path: Path) -> None:
    if Path("/dev/nvidia0").exists():
        pytest.skip("this machine has a GPU: the no-driver path is tested on machines without one")
    module, example = models.MODELS["mlp"]()
    path = models.export(module, example, tmp_path / "mlp.onnx", dynamo=False)
    env = {k: v for k, v in os.environ.items() if k != "AIDGE_CUDA_EMULATOR"}
    proc = _aidge(["run", path, "--backend", "cuda", "--random"], env)
    assert proc.returncode == 1, describe(proc)
    assert "libcuda.so.1" in proc.stderr and "NVIDIA" in proc.stderr, describe(proc)
    proc = _aidge(["run", path, "--backend", "tpu", "--random"], env)
    assert proc.returncode != 0 and "--backend must be cpu or cuda" in proc.stderr, describe(proc)
