"""Head importance for the pages: the selected image's, all images' (with a progress
bar) and one head's partial pruning, through the disk cache (SPEC "Head pruning")."""
from __future__ import annotations

import numpy as np
import streamlit as st

from core import importance
from core.datasets import Dataset
from core.models import LoadedModel
from core.partial_pruning import PARTIAL_PRUNING
from ui import resources


def target_text(lm: LoadedModel, label: int | None) -> str:
    """Which class `prob` is measured on, in words."""
    if label is None:
        return "the predicted class (the image has no label)"
    return f"the true class ({lm.class_names[label]})"


def one_image(lm: LoadedModel, ds: Dataset, index: int) -> np.ndarray | None:
    """4 x L x H importance of image `index` (None, with a message, if unusable)."""
    result = resources.analyse(lm, ds, [index], importance.IMPORTANCE,
                               {"target": ds.records[index].label})
    if index not in result.arrays:
        st.error(f"Image {ds.records[index].id} could not be used: {result.skipped[0][1]}")
        return None
    return result.arrays[index]["importance"]


def partial(lm: LoadedModel, ds: Dataset, index: int, layer: int, head: int
            ) -> dict[str, np.ndarray] | None:
    """``metrics`` (6 modes x 4) and ``logits`` (6 modes x classes) of one head."""
    params = {"layer": layer, "head": head, "target": ds.records[index].label}
    return resources.analyse(lm, ds, [index], PARTIAL_PRUNING, params).arrays.get(index)


def missing(lm: LoadedModel, ds: Dataset) -> int:
    """How many images of the set have no importance in the cache yet."""
    return len(importance.uncached(lm, ds, list(range(len(ds))), resources.cache()))


def all_images(lm: LoadedModel, ds: Dataset) -> tuple[list[int], np.ndarray]:
    """Image indices and their importance (N x 4 x L x H), computed where missing."""
    bar = st.progress(0.0, text="Computing head importance...")

    def report(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Head importance: {done}/{total} images")

    result = importance.for_images(lm, ds, list(range(len(ds))), resources.cache(), report)
    bar.empty()
    if result.skipped:
        st.warning(f"{len(result.skipped)} image(s) skipped: "
                   + "; ".join(f"{name}: {why}" for name, why in result.skipped[:5]))
    if not result.arrays:
        st.error("No image of the set could be used.")
        st.stop()
    return importance.stacked(result)
