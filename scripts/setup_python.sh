#!/usr/bin/env bash
# Create (or reuse) the Python virtual environment at <repo>/.venv and
# install the development requirements (ONNX, ONNX Runtime, PyTorch, pytest)
# used by the end-to-end tests, the benchmarks and scripts/make_example.py.
#
# Usage: bash scripts/setup_python.sh
# Env:   PYTHON   interpreter used to create the venv (default: python3)
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "${script_dir}/.." && pwd)"
venv="${repo_root}/.venv"
python="${PYTHON:-python3}"

if [[ ! -x "${venv}/bin/python" ]]; then
    echo "setup_python: creating virtual environment in .venv" >&2
    "${python}" -m venv "${venv}"
fi

"${venv}/bin/python" -m pip install --quiet --upgrade pip
"${venv}/bin/python" -m pip install --quiet -r "${repo_root}/requirements-dev.txt"

"${venv}/bin/python" - <<'PY'
import numpy, onnx, onnxruntime, torch
print(f"setup_python: numpy {numpy.__version__}, onnx {onnx.__version__}, "
      f"onnxruntime {onnxruntime.__version__}, torch {torch.__version__}")
PY
