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


def interleaved(runs: dict[str, Callable[[], object]], rounds: int,
                clock: Callable[[], float] = time.perf_counter,
                repeats: dict[str, int] | None = None) -> dict[str, float]:
    """Best time of each named run over `rounds` rounds that run them all in turn (so
    that a slow moment of a shared machine hits every run alike), without gradients;
    `repeats` calls per round for some names (default 1)."""
    import torch
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for key, fn in runs.items():
            with torch.no_grad():
                once = best_of(fn, repeats=(repeats or {}).get(key, 1), warmup=0, clock=clock)
            best[key] = min(best[key], once)
    return best
