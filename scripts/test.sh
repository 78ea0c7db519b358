#!/usr/bin/env bash
# The whole test suite: one release build reused by the Swift tests, the command-line checks and the
# end-to-end tests against PyTorch exports and ONNX Runtime; then the Python package, installed with pip as a
# user would, and its tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup_python.sh

echo "== swift build (release, with tests)"
swift build -c release --build-tests

echo "== swift test"
swift test -c release --skip-build

echo "== end-to-end tests (PyTorch exports, ONNX Runtime as reference)"
.venv/bin/python -m pytest -q tests/e2e

echo "== Python package: pip install . and its tests"
.venv/bin/python -m pip install --quiet .
.venv/bin/python -m pytest -q tests/python tests/packaging

echo "== ONNX backend test suite: every case listed in tests/conformance/passing.txt must pass"
.venv/bin/python scripts/conformance.py materialize --data build/conformance
.venv/bin/python scripts/conformance.py run --data build/conformance --report reports/conformance \
    --check tests/conformance/passing.txt
