"""Class views: do heads behave differently for different classes? (paper 001,
section 7: "class-specific trends" is its future work.) A dataset step reading the
per-image ``forward``, ``importance`` (SPEC "Head pruning"), ``strength`` (SPEC
"Attention strength") and ``patterns`` (SPEC "Attention patterns") results.

Per class of the image set: the mean and standard deviation of each importance
metric per head, the mean strength entropy and mean attention distance per head,
and the pattern-label mix (the share of the class's image x head pairs given each
label, and per head the share given each label). Images are grouped by the set's own
classes (``group_by="label"``: class folders or labels.csv values, model classes or
not, indices into ``Dataset.classes``; images without one are left out and counted)
or by the predicted class (``"prediction"``: indices into the model's classes);
:func:`class_names` names them. :func:`contrast` compares two classes head by
head ("which heads matter for Sneaker but not for Sandal").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.analyses import FORWARD, IMPORTANCE, PATTERNS, STRENGTH
from core.analyses.base import NoParams
from core.analyses.importance import metric_slot
from core.analyses.pattern_labels import LABEL_NAMES, decide
from core.analyses.patterns import PatternParams
from core.data.records import Dataset
from core.dataset.base import DatasetStep, Reads, Stage
from core.dataset.statistics import stack
from core.model import LoadedModel
from core.storage.cache import Arrays

GROUPINGS = ("label", "prediction")
NO_CLASSES = ("No image of the set has a known class (no class subfolders and no "
              "labels.csv), so there are no classes to compare")


@dataclass(frozen=True)
class ClassViewParams:
    group_by: str = "label"  # "label": the set's own class; "prediction": the predicted one

    def __post_init__(self) -> None:
        if self.group_by not in GROUPINGS:
            raise ValueError(f"Group images by one of {', '.join(GROUPINGS)}, "
                             f"not {self.group_by!r}.")


def build(lm: LoadedModel, ds: Dataset, reads: Reads, params: ClassViewParams,
          stage: Stage) -> Arrays:
    """``classes`` and ``counts`` (class,), ``importance_mean`` and ``importance_std``
    (class metric layer head), ``entropy`` and ``distance`` (class layer head: means),
    ``pattern_mix`` (class label) and ``head_patterns`` (class layer head label) shares,
    ``unlabeled`` (images left out)."""
    indices = sorted(reads[IMPORTANCE.name])
    if params.group_by == "label":
        own = {name: k for k, name in enumerate(ds.classes)}
        group = np.array([own.get(ds.records[i].group, -1) for i in indices])
    else:
        group = stack(reads[FORWARD.name], "logits").argmax(-1)
    importance = stack(reads[IMPORTANCE.name], "importance")
    entropy = stack(reads[STRENGTH.name], "entropy")
    distance = stack(reads[STRENGTH.name], "mean_distance")
    label, _ = decide(stack(reads[PATTERNS.name], "label_scores"))  # image layer head
    classes = np.unique(group[group >= 0])
    if not len(classes):
        raise ValueError(f"{NO_CLASSES}: group the images by their predicted class.")
    onehot = np.eye(len(LABEL_NAMES))[label]  # image layer head label
    chosen = [group == c for c in classes]
    return {
        "classes": classes.astype(np.int64),
        "counts": np.array([c.sum() for c in chosen], dtype=np.int64),
        "importance_mean": np.stack([importance[c].mean(0) for c in chosen]),
        "importance_std": np.stack([importance[c].std(0) for c in chosen]),
        "entropy": np.stack([np.nanmean(entropy[c], axis=0) for c in chosen]),
        "distance": np.stack([np.nanmean(distance[c], axis=0) for c in chosen]),
        "head_patterns": np.stack([onehot[c].mean(0) for c in chosen]),
        "pattern_mix": np.stack([onehot[c].mean((0, 1, 2)) for c in chosen]),
        "unlabeled": np.asarray(int((group < 0).sum())),
    }


def class_names(lm: LoadedModel, ds: Dataset, params: ClassViewParams) -> list[str]:
    """The names of the class indices of :func:`build`'s ``classes``."""
    return ds.classes if params.group_by == "label" else lm.class_names


def contrast(arrays: Arrays, first: int, second: int, metric: str) -> pd.DataFrame:
    """Every head's mean `metric` for class `first` and class `second` (class indices
    of the model), their difference and the difference in pooled standard deviations
    (0 where both are constant), the largest difference first. Columns: layer, head,
    first, second, difference, standardised."""
    at = {int(c): i for i, c in enumerate(arrays["classes"])}
    for c in (first, second):
        if c not in at:
            raise ValueError(f"Class {c} has no images in this set.")
    m = metric_slot(metric)
    a, b = arrays["importance_mean"][at[first], m], arrays["importance_mean"][at[second], m]
    sa, sb = arrays["importance_std"][at[first], m], arrays["importance_std"][at[second], m]
    pooled = np.sqrt((sa ** 2 + sb ** 2) / 2)
    difference = a - b
    standardised = np.divide(difference, pooled, out=np.zeros_like(difference),
                             where=pooled > 0)
    layer, head = np.meshgrid(np.arange(a.shape[0]), np.arange(a.shape[1]), indexing="ij")
    frame = pd.DataFrame({"layer": layer.ravel(), "head": head.ravel(), "first": a.ravel(),
                          "second": b.ravel(), "difference": difference.ravel(),
                          "standardised": standardised.ravel()})
    return frame.sort_values("difference", ascending=False, kind="stable").reset_index(drop=True)


def against_the_rest(arrays: Arrays, class_index: int, metric: str) -> np.ndarray | None:
    """Layer x head: the class's mean `metric` minus the mean over the other classes'
    means (which count as 0 when it is the only class); None when the class has no
    images here."""
    classes = arrays["classes"].tolist()
    if class_index not in classes:
        return None
    row = classes.index(class_index)
    values = arrays["importance_mean"][:, metric_slot(metric)]
    others = np.delete(values, row, axis=0)
    return values[row] - (others.mean(0) if len(others) else np.zeros_like(values[row]))


def pattern_mix_frame(arrays: Arrays, names: list[str]) -> pd.DataFrame:
    """Per class (named `names`, the class's image count in brackets) and pattern label,
    its share of the class's image x head pairs. Columns: class, label, share."""
    return pd.DataFrame([{"class": f"{names[c]} ({count})", "label": label,
                          "share": float(arrays["pattern_mix"][row, k])}
                         for row, (c, count) in enumerate(zip(arrays["classes"],
                                                              arrays["counts"]))
                         for k, label in enumerate(LABEL_NAMES)])


def strength_per_layer(arrays: Arrays, names: list[str]) -> pd.DataFrame:
    """Per class (named `names`) and layer, the mean over the layer's heads of the
    class's mean entropy and mean attention distance (NaN heads left out). Columns:
    class, layer, entropy, distance_px."""
    entropy, distance = np.nanmean(arrays["entropy"], axis=2), np.nanmean(arrays["distance"],
                                                                          axis=2)
    return pd.DataFrame([{"class": names[c], "layer": layer,
                          "entropy": float(entropy[row, layer]),
                          "distance_px": float(distance[row, layer])}
                         for row, c in enumerate(arrays["classes"])
                         for layer in range(entropy.shape[1])])


def describe(lm: LoadedModel, ds: Dataset, arrays: Arrays) -> str:
    return (f"class views: {len(arrays['classes'])} classes, "
            f"{int(arrays['counts'].sum())} images ({int(arrays['unlabeled'])} unlabeled "
            "left out)")


CLASS_VIEWS = DatasetStep(
    name="class_views", params=ClassViewParams, reads=(FORWARD, IMPORTANCE, STRENGTH, PATTERNS),
    reads_params=lambda params: (NoParams(), NoParams(), NoParams(), PatternParams()),
    build=build, describe=describe, version=2)  # 2: the set's own classes; "mixed" labels
