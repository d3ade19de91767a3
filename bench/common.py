"""Timing helpers shared by the benchmarks."""
from __future__ import annotations

import time
from typing import Callable


def best_of(fn: Callable[[], object], repeats: int = 5, warmup: int = 1,
            clock: Callable[[], float] = time.perf_counter) -> float:
    """Best time of `repeats` calls after `warmup` calls, in seconds (wall time, or
    `clock`, e.g. ``time.process_time`` for the CPU time of this process)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return min(times)
