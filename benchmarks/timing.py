"""Timing shared by the interop benchmarks: a native call and its wrapped counterpart, timed in alternating rounds
in the same process so that both see the same machine state."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_ms(call: Callable[[], object], steps: int) -> float:
    """The median time of ``steps`` calls, in milliseconds."""
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def alternating(native: Callable[[], object], wrapped: Callable[[], object], steps: int, rounds: int,
                warmup: int = 3) -> tuple[float, float]:
    """Median milliseconds of ``native`` and ``wrapped`` over ``rounds`` alternating rounds of ``steps`` calls each,
    after ``warmup`` calls of each (plans, caches, traced functions)."""
    for call in (native, wrapped):
        for _ in range(warmup):
            call()
    native_ms, wrapped_ms = [], []
    for _ in range(rounds):
        native_ms.append(median_ms(native, steps))
        wrapped_ms.append(median_ms(wrapped, steps))
    return statistics.median(native_ms), statistics.median(wrapped_ms)
