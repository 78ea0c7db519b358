"""The installed package: a wheel built with `pip wheel .` carries the stable-ABI extension, a platform tag, type
stubs and py.typed, and imports and runs where no Swift toolchain is present."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
                   check=True)
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_is_abi3_with_platform_tag(wheel: Path) -> None:
    # name-version-python-abi-platform.whl
    _, _, python_tag, abi_tag, platform_tag = wheel.stem.split("-")
    assert python_tag == "cp311" and abi_tag == "abi3"
    assert platform_tag == sysconfig.get_platform().replace("-", "_").replace(".", "_")
    names = zipfile.ZipFile(wheel).namelist()
    assert "aidge/_aidge.abi3.so" in names
    assert "aidge/py.typed" in names
    assert "aidge/_aidge.pyi" in names
    assert "aidge/__init__.py" in names
    for compat in ("aidge_core", "aidge_backend_cpu", "aidge_onnx"):
        assert f"{compat}/__init__.py" in names


def test_extension_exports_only_its_init_and_needs_no_swift_library(wheel: Path, tmp_path: Path) -> None:
    zipfile.ZipFile(wheel).extract("aidge/_aidge.abi3.so", tmp_path)
    library = tmp_path / "aidge" / "_aidge.abi3.so"
    listing = subprocess.run(["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    # "address kind name": an upper-case kind is a global (exported) symbol.
    exported = [line.split()[-1] for line in listing if len(line.split()) == 3 and line.split()[1].isupper()]
    assert [s for s in exported if s.startswith("PyInit")] == ["PyInit__aidge"]
    assert not [s for s in exported if s.startswith("$s")], "Swift symbols are exported"
    needed = subprocess.run(["readelf", "-d", str(library)], capture_output=True, text=True, check=True).stdout
    assert "libswift" not in needed and "libFoundation" not in needed and "libpython" not in needed


def test_imports_and_runs_without_the_swift_toolchain(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    str(wheel)], check=True)
    swift = shutil.which("swift")
    assert swift is not None, "the toolchain is needed to build the wheel in the first place"
    # <toolchain>/usr/bin/swift -> hide <toolchain> behind an empty tmpfs in a private mount namespace.
    toolchain = Path(os.path.realpath(swift)).parents[2]
    script = (
        "import numpy as np, aidge, shutil; "
        "assert shutil.which('swift') is None, 'toolchain still visible'; "
        f"g = aidge.onnx.load({str(ROOT / 'examples/mnist_cnn/model.onnx')!r}); "
        f"y = g(np.load({str(ROOT / 'examples/mnist_cnn/input.npy')!r})); "
        "print(aidge.__file__, y.shape)"
    )
    site = [p for p in sys.path if p.endswith("site-packages")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), *site]), PATH="/usr/bin:/bin")
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", f'mount -t tmpfs none "{toolchain}" && exec "$0" -c "$1"', sys.executable,
         script],
        capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert str(target) in proc.stdout and "(1, 10)" in proc.stdout
