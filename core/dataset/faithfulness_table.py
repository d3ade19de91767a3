"""The faithfulness table of an image set (SPEC "Faithfulness of explanations"): the
mean of each per-image score of every explanation method, with the random map as
baseline. A dataset step built from the per-image ``faithfulness`` analysis."""
from __future__ import annotations

import numpy as np

from core.analyses.base import NoParams
from core.analyses.faithfulness import FAITHFULNESS, LOCALISATION, METHOD_NAMES, METRICS
from core.data.records import Dataset
from core.dataset.base import DatasetStep, Reads, Stage
from core.explain import METHODS
from core.model import LoadedModel
from core.storage.cache import Arrays


def has_object_masks(ds: Dataset) -> bool:
    """Whether the set's object is known (the demo: the non-background pixels), so that
    the localisation scores (pointing game, IoU) mean something."""
    return ds.pixels is not None


def shown_metrics(ds: Dataset) -> list[str]:
    """The table's columns for this set: localisation only where objects are known."""
    return [m for m in METRICS if has_object_masks(ds) or m not in LOCALISATION]


def build(lm: LoadedModel, ds: Dataset, reads: Reads, params: NoParams,
          stage: Stage) -> Arrays:
    """``{metric: (method,)}`` means over the images (METHOD_NAMES order) and ``images``,
    how many were scored."""
    per_image = reads[FAITHFULNESS.name]
    table = {m: np.mean([arrays[m] for arrays in per_image.values()], axis=0) for m in METRICS}
    return {**table, "images": np.asarray(len(per_image))}


def describe(lm: LoadedModel, ds: Dataset, arrays: Arrays) -> str:
    """The table as text, methods as rows."""
    labels = [METHODS[name].label for name in METHOD_NAMES]
    columns = shown_metrics(ds)
    width = max(map(len, labels))
    lines = [f"faithfulness over {int(arrays['images'])} images (explained class: the "
             "prediction)", " " * width + "".join(f"  {m:>10}" for m in columns)]
    for row, label in enumerate(labels):
        lines.append(f"{label:<{width}}" + "".join(f"  {arrays[m][row]:10.3f}"
                                                    for m in columns))
    return "\n".join(lines)


FAITHFULNESS_TABLE = DatasetStep(
    name="faithfulness_table", params=NoParams, reads=(FAITHFULNESS,),
    reads_params=lambda params: (NoParams(),), build=build, describe=describe)
