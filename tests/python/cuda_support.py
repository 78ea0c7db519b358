"""Where there is no GPU, the CUDA backend runs on the CPU emulator of the NVIDIA driver, NVRTC and cuBLAS
(`Tests/CUDAEmulator`), so its code and kernel sources are tested on every machine. Test modules that use the CUDA
backend import this module: at collection, before any test loads the backend (which it does once per process).
A plain module, not a conftest.py, like interop_support."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _use_the_cuda_emulator() -> None:
    if os.environ.get("AIDGE_CUDA_EMULATOR") or Path("/dev/nvidia0").exists():
        return
    built = subprocess.run(["bash", str(ROOT / "scripts/build_cuda_emulator.sh")], capture_output=True, text=True,
                           check=True)
    os.environ["AIDGE_CUDA_EMULATOR"] = built.stdout.strip().splitlines()[-1]
    # The real NVRTC (the nvidia-cuda-nvrtc wheel) must also accept every kernel source the backend compiles.
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations or []) if spec else []:
        nvrtc = Path(root) / "cu13" / "lib" / "libnvrtc.so.13"
        if nvrtc.exists():
            os.environ["AIDGE_EMULATOR_NVRTC"] = str(nvrtc)


_use_the_cuda_emulator()
