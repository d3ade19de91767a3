"""The faithfulness table of an image set (SPEC "Faithfulness of explanations"): the
mean of each per-image score of every explanation method, with the random map as
baseline, and its 95% bootstrap interval. A dataset step built from the per-image
``faithfulness`` analysis.

Choices where the SPEC is silent: the table reads a stratified sample of the set
(``sample`` images, 200 by default, 0 for every image): each class (the images without
a label form one group) gives its share of the sample, rounded down, and the rest goes
to the largest remainders; within a class the images are drawn by a fixed seed. The
interval is the 2.5 and 97.5 percentiles of the mean over 1,000 resamples of the scored
images with replacement (fixed seed). Pointing game and IoU average the images that
have an object mask only (NaN elsewhere); the table shows them where at least one has.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from core.analyses.base import NoParams
from core.analyses.faithfulness import FAITHFULNESS, LOCALISATION, METHOD_NAMES, METRICS
from core.data.records import Dataset
from core.dataset.base import DatasetStep, Reads, Stage
from core.explain import METHODS
from core.model import LoadedModel
from core.storage.cache import Arrays

RESAMPLES = 1000
SEED = 0


@dataclass(frozen=True)
class SampleParams:
    """The parameters of a step that reads a stratified sample of the set."""

    sample: int = 200  # images read (a stratified sample); 0: every image

    def __post_init__(self) -> None:
        if self.sample < 0:
            raise ValueError(f"sample must be 0 (every image) or positive, got {self.sample}")


@dataclass(frozen=True)
class TableParams(SampleParams):
    sample: int = 200  # images scored


def stratified_sample(labels: list[int | None], size: int, seed: int = SEED) -> list[int]:
    """`size` indices of `labels` (every index when size is 0 or covers them all), each
    label's share by largest remainders, drawn by `seed`; in increasing order."""
    if size == 0 or size >= len(labels):
        return list(range(len(labels)))
    groups: dict[int | None, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    order = sorted(groups, key=lambda k: (k is None, -1 if k is None else k))
    exact = np.array([size * len(groups[k]) / len(labels) for k in order])
    counts = np.floor(exact).astype(int)
    for g in np.argsort(-(exact - counts), kind="stable")[:size - counts.sum()]:
        counts[g] += 1
    rng = np.random.default_rng(seed)
    chosen = [int(i) for k, n in zip(order, counts)
              for i in rng.permutation(groups[k])[:n]]
    return sorted(chosen)


def sample_of(ds: Dataset, params: SampleParams) -> list[int]:
    """The images a sampling step reads."""
    return stratified_sample([r.label for r in ds.records], params.sample)


def shown_metrics(scores: Arrays) -> list[str]:
    """The columns of a table or of one image's scores: localisation only where some
    image had an object mask (else its scores are NaN)."""
    return [m for m in METRICS if m not in LOCALISATION or not np.isnan(scores[m]).all()]


def bootstrap_interval(scores: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The 95% percentile interval of the NaN-ignoring mean of `scores` (image, method)
    over the images: two (method,) arrays."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(scores), size=(resamples, len(scores)))
    with warnings.catch_warnings():  # a resample without a masked image: NaN, ignored
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(scores[picks], axis=1)  # resample, method
        return np.nanpercentile(means, 2.5, axis=0), np.nanpercentile(means, 97.5, axis=0)


def build(lm: LoadedModel, ds: Dataset, reads: Reads, params: TableParams,
          stage: Stage) -> Arrays:
    """``{metric: (method,)}`` means over the scored images (METHOD_NAMES order), with
    ``{metric}_low`` and ``{metric}_high`` their 95% intervals; ``images``, how many were
    scored, and ``masked``, how many had an object mask."""
    per_image = reads[FAITHFULNESS.name]
    table: Arrays = {}
    for m in METRICS:
        scores = np.stack([arrays[m] for arrays in per_image.values()]).astype(np.float64)
        if np.isnan(scores).all():
            table[m] = table[f"{m}_low"] = table[f"{m}_high"] = np.full(scores.shape[1], np.nan)
            continue
        table[m] = np.nanmean(scores, axis=0)
        table[f"{m}_low"], table[f"{m}_high"] = bootstrap_interval(scores)
    masked = sum(not np.isnan(arrays[LOCALISATION[0]]).all() for arrays in per_image.values())
    return {**table, "images": np.asarray(len(per_image)), "masked": np.asarray(masked)}


def describe(lm: LoadedModel, ds: Dataset, arrays: Arrays) -> str:
    """The table as text, methods as rows."""
    labels = [METHODS[name].label for name in METHOD_NAMES]
    columns = shown_metrics(arrays)
    width = max(map(len, labels))
    lines = [f"faithfulness over a sample of {int(arrays['images'])} of {len(ds)} images "
             "(explained class: the prediction; mean [95% interval])",
             " " * width + "".join(f"  {m:>22}" for m in columns)]
    for row, label in enumerate(labels):
        lines.append(f"{label:<{width}}" + "".join(
            f"  {arrays[m][row]:6.3f} [{arrays[m + '_low'][row]:.3f}, "
            f"{arrays[m + '_high'][row]:.3f}]" for m in columns))
    return "\n".join(lines)


FAITHFULNESS_TABLE = DatasetStep(
    name="faithfulness_table", params=TableParams, reads=(FAITHFULNESS,),
    reads_params=lambda params: (NoParams(),), build=build, describe=describe, version=2,
    images=sample_of)
