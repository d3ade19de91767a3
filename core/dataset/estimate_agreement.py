"""How well the one-backward importance estimate (``core.analyses.importance_estimate``,
Michel et al. 2019) ranks the heads against exact leave-one-out (SPEC "Head pruning"):
Spearman rank correlation over the L x H heads, per image and over the image set,
against each exact metric (the signed estimate against the signed ``prob`` drop, the
magnitude against the others: ``importance_estimate.compared_with``). A dataset step
reading both per-image analyses.

"Over the image set" ranks the heads by their mean estimate and by their mean exact
value (Michel et al. average the per-image absolute values); an image where either
is constant (no head moves the metric) has no correlation (NaN) and is left out of
the mean over images, and counted.
"""
from __future__ import annotations

import numpy as np

from core.analyses.base import NoParams
from core.analyses.importance import IMPORTANCE, METRICS
from core.analyses.importance_estimate import IMPORTANCE_ESTIMATE, compared_with
from core.data.records import Dataset
from core.dataset.base import DatasetStep, Reads, Stage
from core.dataset.statistics import spearman, stack
from core.model import LoadedModel
from core.storage.cache import Arrays


def build(lm: LoadedModel, ds: Dataset, reads: Reads, params: NoParams,
          stage: Stage) -> Arrays:
    """``image`` (image,), ``per_image`` (image metric: Spearman of the estimate with
    each exact metric), ``mean`` (metric: over the images that have one), ``undefined``
    (metric: images without one), ``over_set`` (metric: Spearman of the heads' means),
    ``estimate_mean``, ``estimate_std`` and ``signed_mean`` (layer head)."""
    exact = stack(reads[IMPORTANCE.name], "importance").astype(np.float64)
    estimates = {name: stack(reads[IMPORTANCE_ESTIMATE.name], name).astype(np.float64)
                 for name in ("estimate", "signed")}
    chosen = [estimates[compared_with(metric)] for metric in METRICS]  # metric: image ...
    per_image = np.array([[spearman(chosen[m][b], exact[b, m]) for m in range(len(METRICS))]
                          for b in range(len(exact))])
    defined = np.isfinite(per_image)
    mean = np.array([per_image[defined[:, m], m].mean() if defined[:, m].any() else np.nan
                     for m in range(len(METRICS))])
    over_set = np.array([spearman(chosen[m].mean(0), exact[:, m].mean(0))
                         for m in range(len(METRICS))])
    return {"image": np.array(sorted(reads[IMPORTANCE.name])), "per_image": per_image,
            "mean": mean, "undefined": (~defined).sum(0), "over_set": over_set,
            "estimate_mean": estimates["estimate"].mean(0),
            "estimate_std": estimates["estimate"].std(0),
            "signed_mean": estimates["signed"].mean(0)}


def describe(lm: LoadedModel, ds: Dataset, arrays: Arrays) -> str:
    prob = METRICS.index("prob")
    drop = "probability" if lm.has_classes else "score"
    return (f"importance estimate: Spearman with the exact {drop} drop {arrays['mean'][prob]:.3f} "
            f"per image (mean of {len(arrays['image']) - arrays['undefined'][prob]}), "
            f"{arrays['over_set'][prob]:.3f} over the set")


ESTIMATE_AGREEMENT = DatasetStep(
    name="estimate_agreement", params=NoParams, reads=(IMPORTANCE, IMPORTANCE_ESTIMATE),
    reads_params=lambda params: (NoParams(), NoParams()), build=build, describe=describe)
