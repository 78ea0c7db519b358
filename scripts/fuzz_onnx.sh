#!/usr/bin/env bash
# Fuzzes the ONNX loader (ONNX.load(bytes:baseDirectory:)) with libFuzzer, under AddressSanitizer, starting from
# the models of the ONNX backend test suite (node, simple, pytorch-converted and pytorch-operator cases of the onnx
# package in .venv, which scripts/setup_python.sh creates). A crash, a hang (an input that runs past -timeout) or an
# allocation past -rss_limit_mb / -malloc_limit_mb stops the run and leaves the input in build/fuzz/artifacts.
#
# Usage: bash scripts/fuzz_onnx.sh [SECONDS] [extra libFuzzer options...]      (default: 1800 seconds)
#        bash scripts/fuzz_onnx.sh 0 build/fuzz/artifacts/crash-...            (replays one input)
# Env:   FUZZ_JOBS      libFuzzer processes (default 1)
#        AIDGE_FUZZ_PLAN=1  also plans the models that load (shape inference), when their inputs are small
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-1800}"
shift || true
work=build/fuzz
seeds="${work}/seeds"
corpus="${work}/corpus"
artifacts="${work}/artifacts"
mkdir -p "${corpus}" "${artifacts}"

if [[ ! -d "${seeds}" ]] || [[ -z "$(ls -A "${seeds}")" ]]; then
    echo "== seeding ${seeds} from the ONNX backend test suite" >&2
    [[ -x .venv/bin/python ]] || bash scripts/setup_python.sh
    mkdir -p "${seeds}"
    .venv/bin/python - "${seeds}" <<'PY'
import sys
from pathlib import Path

from onnx.backend.test import loader

out = Path(sys.argv[1])
count = skipped = 0
for kind in ("node", "simple", "pytorch-converted", "pytorch-operator"):
    for case in loader.load_model_tests(kind=kind):
        if case.model_dir is not None:
            data = (Path(case.model_dir) / "model.onnx").read_bytes()
        else:
            data = case.model.SerializeToString()
        if len(data) > 1 << 20:  # past -max_len
            skipped += 1
            continue
        (out / f"{kind}-{case.name}.onnx").write_bytes(data)
        count += 1
print(f"fuzz_onnx: {count} seed models ({skipped} over 1 MiB skipped)", file=sys.stderr)
PY
fi

# `-sanitize=fuzzer,address` through -Xswiftc reaches every module (the engine's and SwiftProtobuf, so that their
# coverage guides the fuzzer); swiftc keeps only the last -sanitize flag, hence one flag with both. SwiftPM's own
# --sanitize=fuzzer makes it link the executable without a main of its own (libFuzzer provides it).
build=(--package-path fuzz -c release --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address)
echo "== building fuzz/ (libFuzzer + AddressSanitizer, release)" >&2
swift build "${build[@]}"
fuzzer="$(swift build "${build[@]}" --show-bin-path)/ONNXLoaderFuzzer"

options=(-max_len=1048576 -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -print_final_stats=1
    -artifact_prefix="${artifacts}/")
jobs="${FUZZ_JOBS:-1}"
if [[ "${jobs}" -gt 1 ]]; then options+=(-jobs="${jobs}" -workers="${jobs}"); fi
if [[ "${seconds}" == "0" ]]; then
    exec "${fuzzer}" "${options[@]}" "$@"  # replay the inputs given
fi
echo "== fuzzing for ${seconds} s; corpus ${corpus}, findings in ${artifacts}" >&2
exec "${fuzzer}" "${options[@]}" -max_total_time="${seconds}" "$@" "${corpus}" "${seeds}"
