"""Quality measures of a 2-D layout, for the tests and the benchmark: how many of each
point's nearest neighbours it keeps, and how well it keeps groups apart."""
from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors


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
