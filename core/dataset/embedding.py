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
``SMALL`` points, else the cores idle right now (``core.dataset.idle_cores``).
The layouts' quality measures are ``testing.layout_quality``'s; what a page draws
instead of all points, ``core.display.density``'s.
"""
from __future__ import annotations

import numpy as np
from openTSNE import TSNE

from core.dataset.idle_cores import idle_cores

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
