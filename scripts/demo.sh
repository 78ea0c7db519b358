#!/usr/bin/env bash
# The main job on a bundled example: a torchvision-style CNN written in PyTorch, run and trained by the engine
# inside PyTorch (examples/torch_interop.py). Creates the Python environment and installs the package first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup_python.sh
echo "== pip install . (builds the engine in release mode)"
.venv/bin/python -m pip install --quiet .
echo "== examples/torch_interop.py"
.venv/bin/python examples/torch_interop.py
