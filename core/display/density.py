"""What a page draws of a 2-D layout instead of sending all its points: counts on a
square grid of bins, or a fixed random sample of the points."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
