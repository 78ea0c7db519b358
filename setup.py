"""Builds the Swift extension `aidge._aidge` (see python/binding) for `pip install .` and `pip wheel .`.

The extension is a SwiftPM dynamic library built in release mode against CPython's stable ABI (3.11+), with the
Swift runtime linked in statically so that it imports where no Swift toolchain is installed, and exporting only
`PyInit__aidge`.
"""

import os
import shutil
import subprocess
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
BINDING = os.path.join(ROOT, "python", "binding")


class SwiftExtension(build_ext):
    def build_extension(self, ext: Extension) -> None:
        include = sysconfig.get_paths()["include"]
        if not os.path.exists(os.path.join(include, "Python.h")):
            raise RuntimeError(
                f"Python headers not found in {include}: install them (Debian: apt-get install python3-dev)")
        if shutil.which("swift") is None:
            raise RuntimeError("the Swift toolchain (swift) is needed to build aidge._aidge")
        command = [
            "swift", "build", "-c", "release", "--package-path", BINDING, "--product", "AidgePython",
            "-Xcc", f"-I{include}", "-Xswiftc", "-static-stdlib",
            "-Xlinker", f"--version-script={os.path.join(BINDING, 'exports.map')}",
        ]
        subprocess.check_call(command)
        bin_path = subprocess.check_output(command + ["--show-bin-path"], text=True).strip().splitlines()[-1]
        target = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(bin_path, "libAidgePython.so"), target)
        subprocess.call(["strip", "--strip-unneeded", target])


setup(
    ext_modules=[Extension("aidge._aidge", sources=[], py_limited_api=True)],
    cmdclass={"build_ext": SwiftExtension},
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
