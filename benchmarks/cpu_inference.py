#!/usr/bin/env python3
"""CPU inference benchmark: `aidge bench` versus ONNX Runtime.

Exports the e2e PyTorch models (tests/e2e/models.py) into a temporary folder,
then for each model and batch size alternates, for a few rounds:

* ONNX Runtime in-process (2 intra-op threads, sequential execution, all graph
  optimisations): median latency over --runs runs after --warmup runs;
* `aidge bench MODEL --batch B --runs N --warmup W --threads 2 --json`.

The reported figure for each peer is the median of its per-round medians.

With --memory it instead compares the peak RSS of `aidge run` on ResNet-18
with that of a Python process that only loads and runs the model with ORT.

Usage:
    .venv/bin/python benchmarks/cpu_inference.py [--runs 20] [--warmup 3]
        [--rounds 3] [--models resnet18 mobilenetv2] [--batches 1 8]
        [--exporter dynamo|torchscript] [--memory] [--keep DIR]

The aidge binary is $AIDGE_BIN or <repo>/.build/release/aidge.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

THREADS = 2
BENCH_TIMEOUT_S = 1800
DEFAULT_MODELS = ["resnet18", "mobilenetv2"]
ALL_MODELS = ["resnet18", "mobilenetv2", "transformer"]


def aidge_binary() -> Path:
    env = os.environ.get("AIDGE_BIN")
    path = Path(env).expanduser().resolve() if env else REPO_ROOT / ".build" / "release" / "aidge"
    if not path.is_file() or not os.access(path, os.X_OK):
        sys.exit(f"error: aidge binary not found at {path} "
                 "(run `swift build -c release` or set AIDGE_BIN)")
    return path


def export_models(names: list[str], folder: Path, dynamo: bool) -> dict[str, tuple[Path, tuple[int, ...]]]:
    """Export each model; returns name -> (onnx path, per-sample input shape)."""
    import models  # tests/e2e/models.py (imports torch: only needed here)

    out = {}
    for name in names:
        model, example = models.MODELS[name]()
        path = folder / f"{name}.onnx"
        t0 = time.perf_counter()
        models.export(model, example, path, dynamo=dynamo)
        print(f"exported {name} ({'dynamo' if dynamo else 'torchscript'}) "
              f"in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        out[name] = (path, tuple(example.shape[1:]))
    return out


def ort_session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ort_median_ms(sess: ort.InferenceSession, x: np.ndarray, runs: int, warmup: int) -> float:
    feeds = {sess.get_inputs()[0].name: x}
    for _ in range(warmup):
        sess.run(None, feeds)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def aidge_median_ms(binary: Path, model: Path, batch: int, runs: int, warmup: int) -> float:
    cmd = [str(binary), "bench", str(model), "--batch", str(batch), "--runs", str(runs),
           "--warmup", str(warmup), "--threads", str(THREADS), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BENCH_TIMEOUT_S,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        sys.exit(f"error: `{' '.join(cmd)}` exited with {proc.returncode}:\n{proc.stderr.strip()}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    try:
        report = json.loads(lines[-1])
        return float(report["median_ms"])
    except (IndexError, ValueError, KeyError) as exc:
        sys.exit(f"error: cannot read JSON from `{' '.join(cmd)}` ({exc}); stdout was:\n{proc.stdout}")


def run_latency(args: argparse.Namespace) -> None:
    binary = aidge_binary()
    with tempfile.TemporaryDirectory(prefix="aidge-bench-") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        exported = export_models(args.models, folder, dynamo=args.exporter == "dynamo")
        rows = []
        for name in args.models:
            path, sample_shape = exported[name]
            sess = ort_session(path)
            for batch in args.batches:
                x = np.random.default_rng(0).standard_normal((batch, *sample_shape)).astype(np.float32)
                ort_ms, aidge_ms = [], []
                for r in range(args.rounds):
                    ort_ms.append(ort_median_ms(sess, x, args.runs, args.warmup))
                    aidge_ms.append(aidge_median_ms(binary, path, batch, args.runs, args.warmup))
                    print(f"  {name} b{batch} round {r + 1}/{args.rounds}: "
                          f"ort {ort_ms[-1]:.2f} ms, aidge {aidge_ms[-1]:.2f} ms", file=sys.stderr)
                o, a = statistics.median(ort_ms), statistics.median(aidge_ms)
                rows.append((name, batch, o, a, a / o))
            del sess

    print(f"\nCPU inference, {THREADS} threads, {args.runs} runs x {args.rounds} rounds "
          f"(warmup {args.warmup}), exporter {args.exporter}, onnxruntime {ort.__version__}")
    header = f"{'model':<14}{'batch':>6}{'ORT median ms':>16}{'aidge median ms':>18}{'aidge/ORT':>11}"
    print(header)
    print("-" * len(header))
    for name, batch, o, a, ratio in rows:
        print(f"{name:<14}{batch:>6}{o:>16.2f}{a:>18.2f}{ratio:>11.2f}")


# --------------------------------------------------------------------------
# Peak memory
# --------------------------------------------------------------------------

ORT_RUNNER = """
import sys
import numpy as np
import onnxruntime as ort
opts = ort.SessionOptions()
opts.intra_op_num_threads = {threads}
opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
sess = ort.InferenceSession(sys.argv[1], opts, providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
sess.run(None, {{sess.get_inputs()[0].name: x}})
"""

# Measures one child's peak RSS in a fresh parent, so RUSAGE_CHILDREN only
# ever covers that single child.
RUSAGE_WRAPPER = """
import resource, subprocess, sys
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
if rc != 0:
    sys.exit(rc)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # KiB on Linux
"""


def peak_rss_kib(cmd: list[str]) -> tuple[int, str]:
    """Peak RSS (KiB) of running ``cmd``, and the method used."""
    gnu_time = Path("/usr/bin/time")
    if gnu_time.is_file():
        proc = subprocess.run([str(gnu_time), "-v", *cmd], capture_output=True, text=True,
                              timeout=BENCH_TIMEOUT_S, stdin=subprocess.DEVNULL)
        match = re.search(r"Maximum resident set size \(kbytes\):\s*(\d+)", proc.stderr)
        if proc.returncode != 0 or not match:
            sys.exit(f"error: `{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        return int(match.group(1)), "/usr/bin/time -v"
    proc = subprocess.run([sys.executable, "-c", RUSAGE_WRAPPER, *cmd], capture_output=True,
                          text=True, timeout=BENCH_TIMEOUT_S, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        sys.exit(f"error: `{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return int(proc.stdout.strip().splitlines()[-1]), "getrusage(RUSAGE_CHILDREN)"


def run_memory(args: argparse.Namespace) -> None:
    binary = aidge_binary()
    with tempfile.TemporaryDirectory(prefix="aidge-mem-") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path, sample_shape = export_models(["resnet18"], folder, dynamo=args.exporter == "dynamo")["resnet18"]
        batch = args.batches[0]
        x = np.random.default_rng(0).standard_normal((batch, *sample_shape)).astype(np.float32)
        x_file = folder / "input.npy"
        np.save(x_file, x)

        aidge_cmd = [str(binary), "run", str(path), "--input", str(x_file),
                     "--output-dir", str(folder / "out"), "--threads", str(THREADS)]
        ort_cmd = [sys.executable, "-c", ORT_RUNNER.format(threads=THREADS), str(path), str(x_file)]
        aidge_kib, method = peak_rss_kib(aidge_cmd)
        ort_kib, _ = peak_rss_kib(ort_cmd)

    print(f"\nPeak RSS, ResNet-18 batch {batch}, `run` once ({method}):")
    print(f"  aidge run              {aidge_kib / 1024:8.1f} MiB")
    print(f"  python + onnxruntime   {ort_kib / 1024:8.1f} MiB")
    print(f"  ratio aidge/ORT        {aidge_kib / ort_kib:8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per round (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="warmup runs per round (default 3)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating ORT/aidge rounds per model and batch (default 3)")
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, choices=ALL_MODELS)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--exporter", choices=["dynamo", "torchscript"], default="dynamo")
    parser.add_argument("--memory", action="store_true",
                        help="compare peak RSS of `aidge run` and ORT on ResNet-18 "
                             "(first --batches value) instead of latency")
    parser.add_argument("--keep", metavar="DIR", help="export the models into DIR and keep them")
    args = parser.parse_args()
    if args.runs < 1 or args.rounds < 1 or args.warmup < 0 or min(args.batches) < 1:
        parser.error("--runs, --rounds and --batches must be positive, --warmup >= 0")
    if args.memory:
        run_memory(args)
    else:
        run_latency(args)


if __name__ == "__main__":
    main()
