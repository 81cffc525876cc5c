"""Timing shared by the benchmarks (run as scripts: ``python benchmarks/x.py``)."""

from __future__ import annotations

import statistics
import time


def times_ms(fn, repeats: int) -> list[float]:
    """Sorted wall times of ``repeats`` calls of ``fn`` in ms, after one warm-up."""
    fn()  # warm caches (LUTs, imports)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)


def median_ms(fn, repeats: int) -> float:
    """Median wall time of ``fn`` in ms."""
    return statistics.median(times_ms(fn, repeats))


def p90(times: list[float]) -> float:
    """The 90th percentile of sorted times."""
    return times[int(0.9 * (len(times) - 1))]
