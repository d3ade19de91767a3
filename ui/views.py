"""Views shared by the pages: the intro, and the selected image with its top-5
predictions and the attention of the selected layer and head."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from core.analyses import FORWARD
from core.analyses.base import Analysis
from core.data.datasets import Dataset, load_batch
from core.display.maps import heat_map, patch_table
from core.display.predictions import top_k
from core.model import LoadedModel
from core.storage.cache import Arrays
from ui import downloads, resources
from ui.charts import overlay, predictions_chart
from ui.plain import plain
from ui.state import selection

DISPLAY_SIZE = 280  # pixels: small inputs (28 x 28 demo) are enlarged to this


def intro(title: str, what: str, how: str) -> None:
    """Page title and its two plain sentences: what it shows, how to read it."""
    st.title(title)
    st.markdown(f"{what} {how}")


def enlarged(image: np.ndarray) -> np.ndarray:
    """A height x width x channel image in [0, 1] enlarged by pixel repetition to about
    DISPLAY_SIZE."""
    scale = max(1, DISPLAY_SIZE // max(image.shape[:2]))
    return np.kron(image, np.ones((scale, scale, 1)))


def display_image(lm: LoadedModel, ds: Dataset, index: int) -> np.ndarray | None:
    """Image `index` as the model sees it (after its resize and crop), enlarged for
    display; None when it cannot be read."""
    batch, _, _ = load_batch(lm, ds, [index])
    return None if batch is None else enlarged(lm.to_display(batch[0]))


@dataclass
class Selected:
    """The selection resolved against the loaded model and image set."""

    lm: LoadedModel
    ds: Dataset
    index: int
    layer: int
    head: int

    def arrays(self, analysis: Analysis, params: Any = None) -> Arrays:
        """The selected image's results of `analysis` (call after :func:`selected_image`,
        which stops the page when the image cannot be read)."""
        return resources.analyse(self.lm, self.ds, [self.index], analysis,
                                 params).arrays[self.index]


def selected() -> Selected:
    """The current selection (the page stops with the reason when it is unusable)."""
    try:
        lm, ds = resources.current()
    except resources.Unavailable as err:
        st.error(plain(err))
        st.stop()
    sel = selection()
    return Selected(lm, ds, ds.index_of(sel["image"]) or 0, int(sel["layer"]), int(sel["head"]))


def selected_image() -> Selected:
    """Show the selected image, its top-5 predictions and one head's CLS attention;
    return the selection (the page stops when the image cannot be read)."""
    chosen = selected()
    lm, ds, index, layer, head = chosen.lm, chosen.ds, chosen.index, chosen.layer, chosen.head
    result = resources.analyse(lm, ds, [index], FORWARD)
    if index not in result.arrays:
        st.error(plain(f"Image {ds.records[index].id} could not be used: "
                       f"{result.skipped[0][1]}"))
        st.stop()
    arrays = result.arrays[index]
    big = display_image(lm, ds, index)
    heat = heat_map(arrays["cls_attention"][layer, head], lm, big.shape[:2])
    label = ds.records[index].label
    true_name = None if label is None else lm.class_names[label]
    left, middle, right = st.columns([1, 1, 1.4])
    left.image((255 * big).astype(np.uint8), caption=f"Image {ds.records[index].id}"
               + (f", true label: {true_name}" if true_name else ", no label"),
               clamp=True)
    blended = overlay(big, heat)
    middle.image(blended, caption=f"Attention of CLS to each patch, layer {layer}, "
                 f"head {head} (bright = more attention; scaled to the image's max)")
    with middle:
        downloads.image(blended, f"attention_{ds.records[index].id}_L{layer}H{head}",
                        patch_table(arrays["cls_attention"][layer, head], lm))
    with right:
        st.markdown("**Top-5 predictions**")
        downloads.chart(predictions_chart(top_k(arrays["logits"], lm.class_names), true_name),
                        "top5_predictions")
    return chosen
