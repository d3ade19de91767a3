"""Image overview: images laid out by t-SNE of their L x H head-importance vectors,
one metric at a time (paper 001, section 5.1; SPEC "Head pruning").

The layout is cached under the model identity, the content hashes of the images (in
order) and the metric, so it is computed once per image set.
"""
from __future__ import annotations

import hashlib

import numpy as np
from openTSNE import TSNE

from core.cache import ArrayCache, make_key
from core.datasets import Dataset
from core.engine import Progress, RunResult
from core.importance import METRICS, for_images, stacked
from core.models import LoadedModel

PERPLEXITY = 30.0
DEFAULT_METRIC = "prob"  # the paper's overview (section 6.1); others are laid out on demand


def tsne(vectors: np.ndarray) -> np.ndarray:
    """N x 2 t-SNE coordinates of N vectors (openTSNE, seeded, one thread so that the
    result is reproducible; perplexity lowered for small N)."""
    n = len(vectors)
    if n < 3:
        return np.column_stack([np.arange(n, dtype=np.float32), np.zeros(n, np.float32)])
    perplexity = min(PERPLEXITY, max(1.0, (n - 1) / 3))
    embedding = TSNE(n_components=2, perplexity=perplexity, initialization="pca",
                     random_state=0, n_jobs=1).fit(vectors.astype(np.float64))
    return np.asarray(embedding, dtype=np.float32)


def layout(lm: LoadedModel, ds: Dataset, indices: list[int], values: np.ndarray,
           metric: str, cache: ArrayCache | None = None) -> np.ndarray:
    """N x 2 positions of images `indices` from their importance `values`
    (N x 4 x L x H, in METRICS order) on `metric`, from the cache when there."""
    if metric not in METRICS:
        raise ValueError(f"Unknown importance metric {metric!r}; use one of {METRICS}.")
    vectors = values[:, METRICS.index(metric)].reshape(len(values), -1)
    images = hashlib.blake2b(digest_size=12)
    for i in indices:
        images.update(ds.content_hash(i).encode())
    key = make_key(lm.identity, images.hexdigest(), "importance_tsne",
                   {"metric": metric, "perplexity": PERPLEXITY})
    if cache is None:
        return tsne(vectors)
    return cache.get_or_compute(key, lambda: {"xy": tsne(vectors)})["xy"]


def precompute(lm: LoadedModel, ds: Dataset, cache: ArrayCache,
               progress: Progress | None = None) -> RunResult:
    """The batch step: every image's importance (each on its own label), then the
    overview layout of the default metric, all cached."""
    result = for_images(lm, ds, list(range(len(ds))), cache, progress)
    if result.arrays:
        order, values = stacked(result)
        layout(lm, ds, order, values, DEFAULT_METRIC, cache)
    return result
