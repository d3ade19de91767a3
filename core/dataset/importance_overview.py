"""Image overview: images laid out by t-SNE of their layer x head importance vectors,
one metric at a time (paper 001, section 5.1; SPEC "Head pruning"). A dataset step
built from the per-image ``importance`` analysis (each image on its own label)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.analyses.base import NoParams
from core.analyses.importance import IMPORTANCE, metric_slot
from core.data.records import Dataset
from core.dataset.base import DatasetStep, Reads, Stage
from core.dataset.embedding import tsne
from core.dataset.statistics import stack
from core.model import LoadedModel
from core.storage.cache import Arrays


@dataclass(frozen=True)
class OverviewParams:
    metric: str = "prob"  # the paper's overview (section 6.1); others are laid out on demand
    # (a slot's name: "prob" is "sim" for a model without classes)

    def __post_init__(self) -> None:
        metric_slot(self.metric)


def build(lm: LoadedModel, ds: Dataset, reads: Reads, params: OverviewParams,
          stage: Stage) -> Arrays:
    """``image`` (image,) dataset indices and ``xy`` (image, 2) their positions."""
    per_image = reads[IMPORTANCE.name]
    stage("t-SNE of the images' head importance", 0.0)
    values = stack(per_image, "importance")[:, metric_slot(params.metric)]
    return {"image": np.array(sorted(per_image)),
            "xy": tsne(values.reshape(len(values), -1))}


def describe(lm: LoadedModel, ds: Dataset, arrays: Arrays) -> str:
    return (f"importance: {len(arrays['image'])} images x {lm.num_layers * lm.num_heads} "
            "heads, overview layout")


IMPORTANCE_OVERVIEW = DatasetStep(
    name="importance_overview", params=OverviewParams, reads=(IMPORTANCE,),
    reads_params=lambda params: (NoParams(),), build=build, describe=describe)
