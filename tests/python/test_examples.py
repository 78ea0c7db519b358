"""The runnable examples run, and the losses they print agree with PyTorch's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("script", ["training.py", "torch_interop.py"])
def test_example_losses_match_pytorch(script: str) -> None:
    result = subprocess.run([sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    pairs = re.findall(r"loss ([-\d.e]+) \(PyTorch ([-\d.e]+)\)", result.stdout)
    assert len(pairs) >= 5, result.stdout
    for ours, theirs in pairs:
        assert float(ours) == pytest.approx(float(theirs), rel=1e-4), result.stdout


def test_keras_example_losses_match_keras() -> None:
    script = EXAMPLES / "keras_interop.py"
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    pairs = re.findall(r"loss ([-\d.e]+) \(Keras ([-\d.e]+)\)", result.stdout)
    assert len(pairs) == 5, result.stdout
    for ours, theirs in pairs:
        assert float(ours) == pytest.approx(float(theirs), rel=1e-3), result.stdout  # Adam
    differences = [float(d) for d in re.findall(r"max \|[^|]*\| = ([-\d.e]+)", result.stdout)]
    assert len(differences) == 2 and max(differences) < 1e-4, result.stdout
