"""Statistics over the per-image results of an image set: stacking, mean and standard
deviation, kernel densities and per-layer percentiles. They feed the
dataset-level charts; the pages only draw them."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from core.storage.cache import Arrays


def stack(arrays: dict[int, Arrays], name: str) -> np.ndarray:
    """One result array of every image, images first (in index order): image x ..."""
    return np.stack([arrays[i][name] for i in sorted(arrays)])


def mean_and_std(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population standard deviation over the first (image) axis."""
    return values.mean(axis=0), values.std(axis=0)


def density(values: np.ndarray, lo: float = 0.0, hi: float = 1.0, points: int = 101,
            fit: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian kernel density of `values` (NaN dropped) on `points` steps over [lo, hi];
    `fit`: over the values' own range instead, widened by three bandwidths each side
    (the tails), within [lo, hi].

    Bandwidth: Scott's rule, at least 1% of [lo, hi] (one repeated value
    still gives a visible peak). Returns (x, density); all zeros when no value.
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        x = np.linspace(lo, hi, points)
        return x, np.zeros_like(x)
    width = max(values.std() * values.size ** -0.2, 0.01 * (hi - lo))
    if fit:
        lo, hi = max(lo, values.min() - 3 * width), min(hi, values.max() + 3 * width)
    x = np.linspace(lo, hi, points)
    z = (x[:, None] - values[None, :]) / width
    return x, np.exp(-0.5 * z ** 2).sum(axis=1) / (values.size * width * np.sqrt(2 * np.pi))


def layer_trend(values: np.ndarray) -> pd.DataFrame:
    """Per layer of an image x layer x head array: median and 5/25/75/95th percentiles over
    images and heads (NaN ignored). Columns: layer, median, q05, q25, q75, q95."""
    per_layer = np.moveaxis(np.asarray(values, dtype=np.float64), 1, 0).reshape(values.shape[1], -1)
    q = np.nanpercentile(per_layer, [50, 5, 25, 75, 95], axis=1)
    return pd.DataFrame({"layer": np.arange(values.shape[1]), "median": q[0], "q05": q[1],
                         "q25": q[2], "q75": q[3], "q95": q[4]})


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two equally shaped arrays (flattened; ties get their
    mean rank); NaN when either is constant."""
    a, b = np.ravel(a), np.ravel(b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)
