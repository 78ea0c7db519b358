"""Shared helpers for the end-to-end tests of the `aidge` command-line tool.

The binary is ``$AIDGE_BIN`` if set, else ``<repo>/.build/release/aidge``
(build it with ``swift build -c release``).  A missing binary is a test
failure, not a skip: these tests exist to exercise it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

E2E_DIR = Path(__file__).resolve().parent
REPO_ROOT = E2E_DIR.parents[1]

# Make `import models` work regardless of pytest's rootdir / import mode.
if str(E2E_DIR) not in sys.path:
    sys.path.insert(0, str(E2E_DIR))

DEFAULT_TIMEOUT_S = 300


def aidge_binary_path() -> Path:
    """Path the tests use for the binary (it may not exist)."""
    env = os.environ.get("AIDGE_BIN")
    if env:
        return Path(env).expanduser().resolve()
    return REPO_ROOT / ".build" / "release" / "aidge"


def require_aidge_binary() -> Path:
    """The binary's path; fails the calling test if it is not there."""
    path = aidge_binary_path()
    if not path.is_file() or not os.access(path, os.X_OK):
        source = "$AIDGE_BIN" if os.environ.get("AIDGE_BIN") else "default location"
        pytest.fail(
            f"aidge binary not found or not executable at {path} ({source}); "
            "build it with `swift build -c release` or point AIDGE_BIN at it",
            pytrace=False,
        )
    return path


def run_aidge(args: Sequence[str | os.PathLike], *, timeout: float = DEFAULT_TIMEOUT_S,
              cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``aidge ARGS...`` and capture stdout/stderr as text.

    A timeout fails the test (with whatever output was produced) instead of
    raising ``TimeoutExpired`` deep inside a helper.
    """
    binary = require_aidge_binary()
    cmd = [str(binary), *map(str, args)]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              cwd=cwd, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        def _s(b: bytes | str | None) -> str:
            return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")
        pytest.fail(
            f"`{' '.join(cmd)}` timed out after {timeout}s\n"
            f"stdout:\n{_s(exc.stdout)[-4000:]}\nstderr:\n{_s(exc.stderr)[-4000:]}",
            pytrace=False,
        )


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    """Human-readable summary of a finished process for assertion messages."""
    cmd = " ".join(map(str, proc.args)) if isinstance(proc.args, (list, tuple)) else str(proc.args)
    return (f"command: {cmd}\nexit code: {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}")


def assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, f"aidge failed\n{describe(proc)}"


@pytest.fixture(scope="session")
def aidge_bin() -> Path:
    """The aidge binary (fails the test if missing)."""
    return require_aidge_binary()


@pytest.fixture
def aidge(aidge_bin: Path):
    """A callable ``aidge(*args, timeout=...)`` returning a CompletedProcess."""
    def _run(*args: str | os.PathLike, timeout: float = DEFAULT_TIMEOUT_S,
             cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess[str]:
        return run_aidge(args, timeout=timeout, cwd=cwd)
    return _run
