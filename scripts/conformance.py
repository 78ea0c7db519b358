#!/usr/bin/env python3
"""The ONNX backend test suite against the engine.

``materialize`` writes the cases of the installed onnx package as ``<kind>/<case>/model.onnx`` with
``test_data_set_<k>/input_<i>.pb`` and ``output_<i>.pb`` (TensorProto, SequenceProto, OptionalProto) and a
``data.json`` with the case's tolerances: the node cases (which onnx >= 1.23 builds in memory) and the ``simple``,
``pytorch-converted`` and ``pytorch-operator`` model cases (copied from the package).

``run`` feeds every case to the engine, in worker processes (a case that crashes or runs past ``--timeout`` takes
its worker down, not the run), compares every output with the suite's tolerances (rtol 1e-3 and atol 1e-7 unless the
case says otherwise; exact for integers, bools and strings), and writes ``report.json`` (pass / fail / error with
the message, per case) and ``report.md`` (totals per kind and a table per op type). With ``--check LIST`` it exits
with an error when a case of the list does not pass; ``--update LIST`` adds the passing cases to the list, which
only grows.

Usage:
    .venv/bin/python scripts/conformance.py materialize [--data build/conformance]
    .venv/bin/python scripts/conformance.py run [--data build/conformance] [--report reports/conformance]
        [--kinds node,simple,pytorch-converted,pytorch-operator] [--timeout 30] [--workers 2] [--filter TEXT]
        [--check tests/conformance/passing.txt] [--update tests/conformance/passing.txt]
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

KINDS = ("node", "simple", "pytorch-converted", "pytorch-operator")
ROOT = Path(__file__).resolve().parents[1]


# Materialising the cases.

def _write_value(path: Path, value: Any, value_type: Any, name: str) -> None:
    """One input or output as the suite stores it, by the graph's declared type."""
    from onnx import TensorProto, numpy_helper

    if value_type.HasField("sequence_type"):
        proto = numpy_helper.from_list(value, name)
    elif value_type.HasField("optional_type"):
        proto = numpy_helper.from_optional(value, name)
    elif value_type.HasField("map_type"):
        proto = numpy_helper.from_dict(value, name)
    elif isinstance(value, TensorProto):
        proto = value
    else:
        proto = numpy_helper.from_array(value, name)
    path.write_bytes(proto.SerializeToString())


def materialize(data: Path) -> None:
    from onnx.backend.test import loader

    for kind in KINDS:
        cases = loader.load_model_tests(kind=kind)
        kind_dir = data / kind
        if kind_dir.exists():
            shutil.rmtree(kind_dir)
        kind_dir.mkdir(parents=True)
        for case in cases:
            case_dir = kind_dir / case.name
            if case.model_dir is not None:  # on disk in the package
                shutil.copytree(case.model_dir, case_dir)
            else:
                case_dir.mkdir()
                (case_dir / "model.onnx").write_bytes(case.model.SerializeToString())
                graph = case.model.graph
                for k, (inputs, outputs) in enumerate(case.data_sets):
                    set_dir = case_dir / f"test_data_set_{k}"
                    set_dir.mkdir()
                    for i, value in enumerate(inputs):
                        _write_value(set_dir / f"input_{i}.pb", value, graph.input[i].type, graph.input[i].name)
                    for i, value in enumerate(outputs):
                        _write_value(set_dir / f"output_{i}.pb", value, graph.output[i].type, graph.output[i].name)
            (case_dir / "data.json").write_text(json.dumps({"rtol": case.rtol, "atol": case.atol}))
        print(f"{kind}: {len(cases)} cases in {kind_dir}")


# Running one case (in a worker process).

class CaseFailure(Exception):
    """The engine ran the case and gave wrong numbers."""


def _read_value(path: Path, value_type: Any) -> Any:
    """A .pb input or expected output, read as the graph declares it: a numpy array for a tensor, a list for a
    sequence, None or the value for an optional, a dict for a map."""
    import onnx
    from onnx import numpy_helper

    if value_type.HasField("sequence_type"):
        proto, convert = onnx.SequenceProto(), numpy_helper.to_list
    elif value_type.HasField("optional_type"):
        proto, convert = onnx.OptionalProto(), numpy_helper.to_optional
    elif value_type.HasField("map_type"):
        proto, convert = onnx.MapProto(), numpy_helper.to_dict
    else:
        proto, convert = onnx.TensorProto(), numpy_helper.to_array
    proto.ParseFromString(path.read_bytes())
    return convert(proto)


def _compare(actual: Any, expected: Any, rtol: float, atol: float, what: str) -> None:
    import numpy as np

    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            raise CaseFailure(f"{what}: expected a sequence of {len(expected)} tensors")
        for k, (a, e) in enumerate(zip(actual, expected)):
            _compare(a, e, rtol, atol, f"{what}[{k}]")
        return
    if expected is None:
        if actual is not None:
            raise CaseFailure(f"{what}: expected an empty optional")
        return
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        raise CaseFailure(f"{what}: shape {actual.shape}, expected {expected.shape}")
    if actual.dtype != expected.dtype:
        raise CaseFailure(f"{what}: dtype {actual.dtype}, expected {expected.dtype}")
    if expected.dtype.kind in "fc":
        try:
            np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)
        except AssertionError as error:
            raise CaseFailure(f"{what}: " + " ".join(str(error).split())[:300]) from None
    elif expected.dtype.kind == "V":  # ml_dtypes (bfloat16, float8, ...): compare as float32
        try:
            np.testing.assert_allclose(actual.astype(np.float32), expected.astype(np.float32), rtol=rtol, atol=atol)
        except AssertionError as error:
            raise CaseFailure(f"{what}: " + " ".join(str(error).split())[:300]) from None
    elif not np.array_equal(actual, expected):
        raise CaseFailure(f"{what}: values differ (exact comparison)")


def _as_numpy(value: Any) -> Any:
    """An engine output as the suite's reference reads: an array, a list of arrays (a sequence) or None."""
    import numpy as np

    if value is None:
        return None
    if isinstance(value, list):
        return [np.asarray(t) for t in value]
    return np.asarray(value)


def run_case(case_dir: str) -> tuple[str, str]:
    """("pass" | "fail" | "error", message) for one case directory."""
    import numpy as np
    import onnx

    import aidge
    import aidge.onnx

    path = Path(case_dir)
    tolerances = json.loads((path / "data.json").read_text()) if (path / "data.json").exists() else {}
    rtol, atol = tolerances.get("rtol", 1e-3), tolerances.get("atol", 1e-7)
    try:
        graph = aidge.onnx.load(str(path / "model.onnx"))
        declared = onnx.load(str(path / "model.onnx"), load_external_data=False).graph
        sets = sorted(p for p in path.iterdir() if p.name.startswith("test_data_set_"))
        if not sets:
            return "error", "the case has no data set"
        for data_set in sets:
            inputs = [_read_value(data_set / f"input_{i}.pb", v.type) for i, v in enumerate(declared.input)
                      if (data_set / f"input_{i}.pb").exists()]
            expected = [_read_value(data_set / f"output_{i}.pb", v.type) for i, v in enumerate(declared.output)]
            for k, value in enumerate(inputs):
                if isinstance(value, dict):
                    return "error", f"input {k} is a map (maps cannot be fed)"
            outputs = graph.run(*inputs)
            if len(outputs) != len(expected):
                return "fail", f"{len(outputs)} outputs, expected {len(expected)}"
            for k, (out, exp) in enumerate(zip(outputs, expected)):
                _compare(_as_numpy(out), exp, rtol, atol, f"{data_set.name} output {k}")
    except CaseFailure as failure:
        return "fail", str(failure)
    except Exception as error:  # the engine's clear errors (unsupported operator, dtype, ...)
        return "error", f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"
    return "pass", ""


def _worker(connection: Any) -> None:
    while True:
        case_dir = connection.recv()
        if case_dir is None:
            return
        connection.send(run_case(case_dir))


class _Worker:
    """A process that runs cases one at a time; restarted after a crash or a timeout."""

    def __init__(self) -> None:
        self.start()

    def start(self) -> None:
        self.connection, child = multiprocessing.Pipe()
        self.process = multiprocessing.Process(target=_worker, args=(child,), daemon=True)
        self.process.start()
        self.case: str | None = None
        self.started = 0.0

    def submit(self, case_dir: str) -> None:
        self.case, self.started = case_dir, time.monotonic()
        self.connection.send(case_dir)

    def poll(self, timeout: float) -> tuple[str, str] | None:
        """The result when the case has finished, crashed or timed out; None while it runs."""
        if self.connection.poll():
            try:
                return self.connection.recv()
            except EOFError:
                pass
        if not self.process.is_alive():
            code = self.process.exitcode
            self.start()
            return "error", f"the engine crashed (exit code {code})"
        if time.monotonic() - self.started > timeout:
            self.process.kill()
            self.process.join()
            self.start()
            return "error", f"timed out after {timeout:.0f} s"
        return None


def op_types(case_dir: Path) -> list[str]:
    import onnx

    model = onnx.load(str(case_dir / "model.onnx"), load_external_data=False)
    return [node.op_type for node in model.graph.node]


def case_op(name: str, ops: list[str], single_ops: dict[str, str]) -> str:
    """The op type a case tests: its node's, or for an expanded (or multi-node) case its base case's."""
    base = name.split("_expanded")[0]
    if base in single_ops:
        return single_ops[base]
    return ops[0] if len(ops) == 1 else (ops[-1] if ops else "?")


def run(args: argparse.Namespace) -> int:
    data = Path(args.data)
    kinds = args.kinds.split(",")
    cases: list[tuple[str, Path]] = []
    for kind in kinds:
        kind_dir = data / kind
        if not kind_dir.is_dir():
            print(f"no {kind} cases in {kind_dir}: run `materialize` first", file=sys.stderr)
            return 2
        cases += [(kind, d) for d in sorted(kind_dir.iterdir()) if d.is_dir() and args.filter in d.name]
    results: dict[str, dict[str, str]] = {}
    pending = list(cases)
    workers = [_Worker() for _ in range(max(1, args.workers))]
    busy: dict[int, tuple[str, Path]] = {}
    started = time.monotonic()
    while pending or busy:
        for w, worker in enumerate(workers):
            if w not in busy and pending:
                kind, case_dir = pending.pop(0)
                busy[w] = (kind, case_dir)
                worker.submit(str(case_dir))
            if w in busy:
                result = worker.poll(args.timeout)
                if result is not None:
                    kind, case_dir = busy.pop(w)
                    results[case_dir.name] = {"kind": kind, "status": result[0], "message": result[1]}
        time.sleep(0.001)
    for worker in workers:
        worker.connection.send(None)
    elapsed = time.monotonic() - started

    # Op types, for the table.
    ops = {name: op_types(data / r["kind"] / name) for name, r in results.items()}
    single = {name: o[0] for name, o in ops.items() if len(o) == 1}
    for name, r in results.items():
        r["op"] = case_op(name, ops[name], single) if r["kind"] == "node" else ""

    report = Path(args.report)
    report.mkdir(parents=True, exist_ok=True)
    (report / "report.json").write_text(json.dumps(results, indent=1, sort_keys=True))
    lines = ["# ONNX backend test suite", "", f"{len(results)} cases in {elapsed:.0f} s.", "",
             "| kind | cases | pass | fail | error | pass rate |", "|---|---|---|---|---|---|"]
    for kind in kinds:
        statuses = collections.Counter(r["status"] for r in results.values() if r["kind"] == kind)
        total = sum(statuses.values())
        lines.append(f"| {kind} | {total} | {statuses['pass']} | {statuses['fail']} | {statuses['error']} | "
                     f"{100 * statuses['pass'] / max(total, 1):.1f} % |")
    if "node" in kinds:
        lines += ["", "## Node cases per op type", "", "| op type | cases | pass | fail | error |", "|---|---|---|---|---|"]
        per_op: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        for r in results.values():
            if r["kind"] == "node":
                per_op[r["op"]][r["status"]] += 1
        for op in sorted(per_op):
            c = per_op[op]
            lines.append(f"| {op} | {sum(c.values())} | {c['pass']} | {c['fail']} | {c['error']} |")
    lines += ["", "## Cases that do not pass", ""]
    lines += [f"- `{name}` ({r['status']}): {r['message']}" for name, r in sorted(results.items())
              if r["status"] != "pass"]
    (report / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:4 + 2 + len(kinds)]))
    print(f"report: {report / 'report.md'}")

    passing = {name for name, r in results.items() if r["status"] == "pass"}
    status = 0
    if args.check:
        listed = [line.strip() for line in Path(args.check).read_text().splitlines() if line.strip()]
        lost = [name for name in listed if name in results and name not in passing]
        missing = [name for name in listed if name not in results]
        if args.filter == "" and missing:
            print(f"{len(missing)} listed cases were not found: {', '.join(missing[:10])}", file=sys.stderr)
            status = 1
        for name in lost:
            print(f"REGRESSION {name}: {results[name]['status']}: {results[name]['message']}", file=sys.stderr)
        if lost:
            status = 1
        else:
            print(f"all {len(listed) - len(missing)} listed cases pass")
    if args.update:
        path = Path(args.update)
        listed = set(path.read_text().split()) if path.exists() else set()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(sorted(listed | passing)) + "\n")
        print(f"{path}: {len(listed | passing)} passing cases listed")
    node = [r for r in results.values() if r["kind"] == "node"]
    if node:  # the summary line CI ends with
        passed = sum(r["status"] == "pass" for r in node)
        print(f"node cases: {passed} passed, {len(node) - passed} failed")
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    m = commands.add_parser("materialize", help="write the suite's cases as files")
    m.add_argument("--data", default=str(ROOT / "build" / "conformance"))
    r = commands.add_parser("run", help="run the cases and write the report")
    r.add_argument("--data", default=str(ROOT / "build" / "conformance"))
    r.add_argument("--report", default=str(ROOT / "reports" / "conformance"))
    r.add_argument("--kinds", default=",".join(KINDS))
    r.add_argument("--timeout", type=float, default=30)
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--filter", default="", help="only the cases whose name contains this")
    r.add_argument("--check", help="fail when a case of this list does not pass")
    r.add_argument("--update", help="add the passing cases to this list")
    args = parser.parse_args()
    if args.command == "materialize":
        materialize(Path(args.data))
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
