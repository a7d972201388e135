"""Shared by the benchmark scripts: time cases against targets and print the table."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

Case = tuple[str, Callable[[], object], int, float]  # (name, function, repeats, target in ms)


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(median, max) seconds over `repeat` calls, after one warm-up call (lazy imports, schemas)."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), max(times)


def report(cases: list[Case]) -> None:
    """Print one row per case and exit 1 if any median misses its target."""
    width = max(len(c[0]) for c in cases) + 2
    print(f"{'case':{width}} {'median':>9} {'max':>9} {'target':>8}")
    failed = False
    for name, fn, repeat, target_ms in cases:
        median, worst = timed(fn, repeat)
        ok = median * 1000 <= target_ms
        failed |= not ok
        print(
            f"{name:{width}} {median * 1000:7.1f}ms {worst * 1000:7.1f}ms {target_ms:6.0f}ms {'ok' if ok else 'SLOW'}"
        )
    sys.exit(1 if failed else 0)
