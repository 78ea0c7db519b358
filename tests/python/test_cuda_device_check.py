"""The GPU machine's check script (benchmarks/cuda_device_check.py) runs to the end here, on the CPU emulator, in its
quick form: every CUDA operator against the CPU backend, three models against PyTorch, so the script a GPU session
runs is itself tested."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cuda_support  # noqa: F401  (the CUDA backend on the emulator where there is no GPU)

ROOT = Path(__file__).resolve().parents[2]


def test_the_device_check_script_passes_on_this_machine() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks/cuda_device_check.py"), "--quick", "--skip-bench"],
                          env=dict(os.environ), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[-1] == "all checks passed"
    assert sum(line.startswith("PASS") for line in lines) > 100
    assert any(line.startswith("PASS  every CUDA operator has a case") for line in lines)
    assert any(line.startswith("PASS  resnet18 batch 1") for line in lines)
