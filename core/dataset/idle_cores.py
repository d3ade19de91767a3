"""How many of this machine's cores are idle right now, sampled from ``/proc/stat``
(the 1-minute load average where that is missing): the threads a parallel step may
take without slowing itself and others down."""
from __future__ import annotations

import os
import time


def idle_cores(window: float = 0.2) -> int:
    """Cores not busy with other work right now: usable cores minus the cores busy over
    the next `window` seconds (``/proc/stat``; this thread sleeps meanwhile, so the
    count includes other sessions of this process), at least 1; where ``/proc/stat``
    is missing, minus the 1-minute load average. openTSNE's threads wait for each
    other, so on cores shared with other processes two threads ran slower than one
    (measured: a 5,000-point fit took 37 s with two threads, 22 s with one, on the
    2-core box under load). The load average alone lags: right after the batch
    precompute's own work it still reads as busy."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        before = _busy_seconds()
        time.sleep(window)
        busy = (_busy_seconds() - before) / window
    except OSError:
        busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, round((cores or 1) - busy))


def _busy_seconds() -> float:
    """CPU seconds all cores of this machine have spent busy since boot (``/proc/stat``:
    every state but idle and I/O wait)."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:8]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
