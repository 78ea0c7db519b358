#!/usr/bin/env python3
"""Interop benchmark: the cost of sharing a tensor with NumPy and PyTorch, next to the cost of a copy.

For float32 arrays of 1 KB, 1 MB, 100 MB and 1 GB it times

* ``aidge.from_numpy(a)``          NumPy array -> aidge tensor (buffer protocol),
* ``np.asarray(t)``                aidge tensor -> NumPy array (buffer protocol),
* ``aidge.from_dlpack(x)``         torch tensor -> aidge tensor (DLPack),
* ``torch.from_dlpack(t)``         aidge tensor -> torch tensor (DLPack),
* ``np.copy(a)``                   for comparison: what a copying conversion would cost,

each as the median over many repetitions of one call (the result is dropped at once, so its release is
included), in microseconds. The conversions share memory, so their cost should not depend on the size; the copy
grows with it.

Usage:
    .venv/bin/python benchmarks/interop.py [--sizes 1K 1M 100M 1G] [--min-time 0.2] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

import aidge

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    """'1K', '100M', '1G' or a number of bytes."""
    text = text.strip().upper().removesuffix("B")
    if text and text[-1] in UNITS:
        return int(float(text[:-1]) * UNITS[text[-1]])
    return int(text)


def label(size: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} B"


def median_us(call: Callable[[], object], min_time: float, max_repeats: int = 2000) -> float:
    """Median time of one call in microseconds. Calls are timed in batches sized to a few microseconds of clock
    resolution, over at least ``min_time`` seconds and at least 5 batches (fewer calls for slow ones)."""
    call()  # warm up
    start = time.perf_counter()
    call()
    once = time.perf_counter() - start
    per_batch = max(1, min(1000, int(20e-6 / max(once, 1e-9))))  # batches of ~20 us for fast calls
    samples: list[float] = []
    deadline = time.perf_counter() + min_time
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        while len(samples) < max_repeats and (len(samples) < 5 or time.perf_counter() < deadline):
            start = time.perf_counter_ns()
            for _ in range(per_batch):
                call()
            samples.append((time.perf_counter_ns() - start) / per_batch / 1e3)
    finally:
        if gc_was_enabled:
            gc.enable()
    return statistics.median(samples)


def measure(size: int, min_time: float) -> dict[str, float]:
    a = np.ones(size // 4, dtype=np.float32)  # touched, so every page is resident
    t = aidge.from_numpy(a)
    x = torch.from_numpy(a)
    # The conversions share memory: check it, so that the table cannot hide a copy.
    assert t.data_ptr == a.ctypes.data
    assert np.asarray(t).ctypes.data == a.ctypes.data
    assert aidge.from_dlpack(x).data_ptr == a.ctypes.data
    assert torch.from_dlpack(t).data_ptr() == a.ctypes.data
    result = {
        "aidge.from_numpy(a)": median_us(lambda: aidge.from_numpy(a), min_time),
        "np.asarray(t)": median_us(lambda: np.asarray(t), min_time),
        "aidge.from_dlpack(x)": median_us(lambda: aidge.from_dlpack(x), min_time),
        "torch.from_dlpack(t)": median_us(lambda: torch.from_dlpack(t), min_time),
        "np.copy(a)": median_us(lambda: np.copy(a), min_time, max_repeats=200 if size < (1 << 28) else 7),
    }
    del t, x, a
    gc.collect()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["1K", "1M", "100M", "1G"],
                        help="array sizes in bytes (suffixes K, M, G)")
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds of timing per cell (default 0.2)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    rows = {}
    for text in args.sizes:
        size = parse_size(text)
        print(f"measuring {label(size)} ...", file=sys.stderr)
        rows[label(size)] = measure(size, args.min_time)

    if args.json:
        print(json.dumps(rows, indent=2))
        return
    columns = list(next(iter(rows.values())))
    width = max(len(c) for c in columns) + 2
    print("median time per call, microseconds (float32)")
    print(f"{'size':>8}" + "".join(f"{c:>{width}}" for c in columns))
    for name, row in rows.items():
        print(f"{name:>8}" + "".join(f"{row[c]:>{width}.2f}" for c in columns))


if __name__ == "__main__":
    main()
