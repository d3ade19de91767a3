"""Spurious-correlation ranking of an image set (SPEC "Keypoints and spurious
correlations"): the images whose explanation lies most outside the object first, with
the counterfactual of each, and per method the mean score and how often removing the
outside changes the top-1 class. A dataset step built from the per-image ``spurious``
analysis (explaining each image's prediction)."""
from __future__ import annotations

import numpy as np

from core.analyses.faithfulness import METHOD_NAMES
from core.analyses.objects import OBJECT_SOURCES
from core.analyses.sift import SiftParams
from core.analyses.spurious import DEFAULT_METHOD, SPURIOUS
from core.data.records import Dataset
from core.dataset.base import DatasetStep, Reads, Stage
from core.dataset.statistics import stack
from core.explain import METHODS
from core.model import LoadedModel
from core.storage.cache import Arrays


def ranking(per_image: dict[int, Arrays], method: str) -> np.ndarray:
    """Image indices, highest score of `method` first (stable on ties); images without
    any object (no mask, no keypoint) last."""
    indices = np.array(sorted(per_image))
    score = stack(per_image, "score")[:, METHOD_NAMES.index(method)]
    no_object = stack(per_image, "object_source") == OBJECT_SOURCES.index("none")
    return indices[np.lexsort((-score, no_object))]


def build(lm: LoadedModel, ds: Dataset, reads: Reads, params: SiftParams,
          stage: Stage) -> Arrays:
    """``order`` (method, image): image indices by :func:`ranking` for each method
    (METHOD_NAMES order); ``mean_score`` (method); ``changed`` the share of images whose
    top-1 class changes without the outside; ``sources`` (3,) images per object source."""
    per_image = reads[SPURIOUS.name]
    changed = stack(per_image, "top_before") != stack(per_image, "top_after")
    return {"order": np.stack([ranking(per_image, m) for m in METHOD_NAMES]),
            "mean_score": stack(per_image, "score").mean(axis=0),
            "changed": np.asarray(changed.mean()),
            "sources": np.bincount(stack(per_image, "object_source"),
                                   minlength=len(OBJECT_SOURCES))}


def describe(lm: LoadedModel, ds: Dataset, arrays: Arrays) -> str:
    scores = ", ".join(f"{METHODS[m].label} {s:.3f}"
                       for m, s in zip(METHOD_NAMES, arrays["mean_score"]))
    objects = ", ".join(f"{n} {name}" for n, name in zip(arrays["sources"], OBJECT_SOURCES))
    return (f"spurious: mean share of the explanation outside the object: {scores}; the "
            f"prediction changes without the outside on {100 * float(arrays['changed']):.1f}% "
            f"of {arrays['order'].shape[1]} images (objects from: {objects}); most outside "
            f"({METHODS[DEFAULT_METHOD].label}): "
            + ", ".join(ds.records[int(i)].id for i in arrays["order"][
                METHOD_NAMES.index(DEFAULT_METHOD), :5]))


SPURIOUS_RANKING = DatasetStep(
    name="spurious_ranking", params=SiftParams, reads=(SPURIOUS,),
    reads_params=lambda params: (params,), build=build, describe=describe)
