"""Cost and quality of the pattern layouts (SPEC "Attention patterns").

1. The demo set: t-SNE layout time of its CLS vectors and autoencoder codes
   (24,000 points each; patterns and autoencoder from the cache or computed).
2. 144,000 clustered synthetic 64-dimensional codes (1,000 images of a 12 x 12
   head model): the chosen layout (core.dataset.embedding.tsne) time, its kNN
   preservation and cluster separation.
3. 20,000 of those: the chosen layout, a full openTSNE fit and scikit-learn's
   t-SNE side by side (time, kNN preservation, cluster separation).

The last two lines are the headlines: layout_144k_seconds, speedup_vs_sklearn_20k.
"""
from __future__ import annotations

import os
import time

import numpy as np
from sklearn.manifold import TSNE as SklearnTSNE

from core.analyses import ANALYSES
from core.data.builtin import demo_dataset
from core.dataset import autoencoder, embedding as layout
from core.dataset.idle_cores import idle_cores
from core.dataset.pattern_layouts import gather
from core.engine import run
from core.model import load_model
from core.storage.cache import ArrayCache
from testing.layout_quality import knn_preservation, same_group_neighbours

CLUSTERS = 144  # one per head of a 12 x 12 model
DIM = 64


def clustered_codes(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` codes in `CLUSTERS` Gaussian clusters of different spreads, and their cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, (CLUSTERS, DIM))
    spread = rng.uniform(0.3, 1.5, CLUSTERS)
    group = rng.integers(0, CLUSTERS, n)
    codes = centres[group] + rng.normal(0.0, 1.0, (n, DIM)) * spread[group, None]
    return codes.astype(np.float32), group


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def quality(points: np.ndarray, result: np.ndarray, group: np.ndarray) -> str:
    return (f"kNN preservation (k=10) {knn_preservation(points, result):.3f}, "
            f"same-cluster neighbours {same_group_neighbours(result, group):.3f}")


def demo_layouts() -> None:
    """Layout time of the demo set's real points (the patterns analysis from the cache)."""
    lm = load_model("demo", device="cpu")
    ds = demo_dataset()
    per_image, seconds = timed(lambda: run(lm, ds, list(range(len(ds))), ANALYSES["patterns"],
                                           cache=ArrayCache()).arrays)
    data = gather(lm, per_image)
    print(f"demo: {len(data.cls_vectors):,} points, patterns analysis {seconds:.1f} s "
          "(from the cache when precomputed)")
    (model, loss), seconds = timed(lambda: autoencoder.train(
        data.binary, autoencoder.Config(data.binary.shape[-1])))
    print(f"demo: autoencoder {seconds:.1f} s, loss per epoch {np.round(loss, 4).tolist()}")
    codes = autoencoder.encode(model, data.binary)
    for name, points in (("CLS vectors", data.cls_vectors), ("autoencoder codes", codes)):
        _, seconds = timed(lambda: layout.tsne(points))
        print(f"demo: layout of the {name} ({points.shape[1]}-d): {seconds:.1f} s")


def main() -> None:
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}, layout threads "
          f"now {idle_cores()} (timings measured under the machine's current load)")
    demo_layouts()
    codes, group = clustered_codes(144_000)
    result, big = timed(lambda: layout.tsne(codes))
    print(f"144k: chosen layout (fit {layout.FIT_SIZE:,} + transform) {big:.1f} s; "
          f"{quality(codes, result, group)}")
    sub = np.random.default_rng(1).choice(len(codes), 20_000, replace=False)
    x, g = codes[sub], group[sub]
    chosen, chosen_s = timed(lambda: layout.tsne(x))
    print(f"20k: chosen layout {chosen_s:.1f} s; {quality(x, chosen, g)}")
    full, full_s = timed(lambda: layout.tsne(x, fit_size=len(x)))
    print(f"20k: openTSNE full fit (FFT) {full_s:.1f} s; {quality(x, full, g)}")
    sk, sk_s = timed(lambda: SklearnTSNE(perplexity=layout.PERPLEXITY, random_state=0,
                                         n_jobs=idle_cores()).fit_transform(x))
    print(f"20k: scikit-learn t-SNE (Barnes-Hut) {sk_s:.1f} s; {quality(x, sk, g)}")
    print(f"layout_144k_seconds: {big:.1f}")
    print(f"speedup_vs_sklearn_20k: {sk_s / chosen_s:.2f}")


if __name__ == "__main__":
    main()
