"""The one owner of 2-D embeddings of many points (SPEC "Attention patterns":
"t-SNE, or a faster equivalent with the same perplexity meaning"), used by the
pattern layouts and the image overview.

openTSNE, with settings chosen by measurement on the demo's 24,000 CLS vectors and
autoencoder codes (2-core test machine): up to ``FIT_SIZE`` points get a full fit
with exact nearest neighbours, ``EARLY_ITER`` exaggerated then ``ITER`` normal
iterations from ``SHORT_FROM`` points on (openTSNE's automatic learning rate grows
with the number of points, so large sets converge in fewer iterations; smaller fits,
cheap anyway, keep openTSNE's 250 + 500; FFT gradients from 10,000 points).
That took 12 s per layout and kept 0.48 (CLS) and 0.46 (codes) of each point's 10
nearest neighbours, where the earlier settings (a 10,000-point fit with openTSNE's
default 250 + 500 iterations, the other 14,000 points placed by ``transform``) took
72-79 s and kept 0.30 and 0.28; 100 + 150 iterations kept 0.50 and 0.47 in 18 s.
Beyond ``FIT_SIZE`` points, a random subsample of ``FIT_SIZE`` points is fitted
(perplexity as given, so a point's effective neighbourhood is measured among the
fitted points) and every other point is placed with openTSNE's ``transform``:
initialised at the median of its nearest fitted points, then optimised for
``REFINE_ITER`` iterations against the fixed fitted layout. Threads: one below
``SMALL`` points, else the cores idle right now (:func:`idle_cores`).

Also here: kNN preservation (the quality measure of the benchmark and the
tests) and the 2-D binning that the page draws instead of sending all points.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
from openTSNE import TSNE
from sklearn.neighbors import NearestNeighbors

FIT_SIZE = 30_000
EARLY_ITER, ITER = 60, 100  # iterations of fits of at least SHORT_FROM points (smaller
SHORT_FROM = 10_000  # fits keep openTSNE's own)
REFINE_ITER = 50
PERPLEXITY = 30.0
SMALL = 2_000  # fewer points than this: one thread (threads cost more than they save)


def tsne(points: np.ndarray, perplexity: float = PERPLEXITY, fit_size: int = FIT_SIZE,
         refine_iter: int = REFINE_ITER, seed: int = 0, n_jobs: int | None = None) -> np.ndarray:
    """(N, D) -> (N, 2) float32 layout; see the module docstring."""
    x = np.ascontiguousarray(points, dtype=np.float32)
    n = len(x)
    if n < 4:
        return np.zeros((n, 2), np.float32)
    n_jobs = n_jobs or (1 if n < SMALL else idle_cores())
    rng = np.random.default_rng(seed)
    fitted = np.sort(rng.choice(n, fit_size, replace=False)) if n > fit_size else np.arange(n)
    perplexity = min(perplexity, (len(fitted) - 1) / 3)
    iterations = ({"early_exaggeration_iter": EARLY_ITER, "n_iter": ITER}
                  if len(fitted) >= SHORT_FROM else {})
    embedding = TSNE(perplexity=perplexity, neighbors="exact", negative_gradient_method="auto",
                     n_jobs=n_jobs, random_state=seed, **iterations).fit(x[fitted])
    out = np.empty((n, 2), np.float32)
    out[fitted] = embedding
    rest = np.setdiff1d(np.arange(n), fitted)
    if len(rest):
        out[rest] = embedding.transform(x[rest], n_iter=refine_iter)
    return out


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


def knn_preservation(points: np.ndarray, layout: np.ndarray, k: int = 10,
                     sample: int = 2000, seed: int = 0) -> float:
    """Mean share of each point's `k` nearest neighbours in `points` that are also
    among its `k` nearest in `layout`, over `sample` random query points (1 = perfect)."""
    rng = np.random.default_rng(seed)
    queries = rng.choice(len(points), min(sample, len(points)), replace=False)

    def neighbours(data: np.ndarray) -> np.ndarray:
        index = NearestNeighbors(n_neighbors=k + 1).fit(data)
        return index.kneighbors(data[queries], return_distance=False)[:, 1:]

    high, low = neighbours(np.asarray(points, np.float32)), neighbours(np.asarray(layout))
    return float(np.mean([len(np.intersect1d(h, l)) / k for h, l in zip(high, low)]))


def same_group_neighbours(layout: np.ndarray, groups: np.ndarray, k: int = 10,
                          sample: int = 2000, seed: int = 0) -> float:
    """Share of each point's `k` nearest layout neighbours in the same group (cluster
    separation: 1 = every cluster kept apart), over `sample` random query points."""
    rng = np.random.default_rng(seed)
    queries = rng.choice(len(layout), min(sample, len(layout)), replace=False)
    index = NearestNeighbors(n_neighbors=k + 1).fit(layout)
    found = index.kneighbors(layout[queries], return_distance=False)[:, 1:]
    return float((groups[found] == groups[queries, None]).mean())


def sample_indices(n: int, limit: int, seed: int = 0) -> np.ndarray:
    """At most `limit` of `n` indices, a fixed random sample (all when n <= limit)."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


@dataclass
class Density:
    """Counts of layout points on a bins x bins grid (rows: y, columns: x)."""

    counts: np.ndarray
    x_edges: np.ndarray
    y_edges: np.ndarray


def binned(layout: np.ndarray, bins: int = 60) -> Density:
    """Bin a (N, 2) layout on a square grid spanning its extent."""
    counts, x_edges, y_edges = np.histogram2d(layout[:, 0], layout[:, 1], bins=bins)
    return Density(counts.T, x_edges, y_edges)
