"""Views shared by the pages: the intro, and the selected image with its top-5
predictions (the most similar images for a model without classes) and the attention of
the selected layer and head."""
from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from core.analyses import FORWARD
from core.analyses.base import Analysis
from core.analyses.importance import METRIC_HELP, METRIC_LABELS, metric_names
from core.data.records import Dataset
from core.display.maps import heat_map, patch_table
from core.display.predictions import most_similar, top_k
from core.model import LoadedModel
from core.storage.cache import Arrays
from ui import downloads, resources
from ui.charts import overlay, predictions_chart, similar_chart
from ui.plain import plain
from ui.state import bound, selection

DISPLAY_SIZE = 280  # pixels: small inputs (28 x 28 demo) are enlarged to this


def metric_picker(lm: LoadedModel, key: str, label: str = "Importance metric"
                  ) -> tuple[str, int]:
    """The importance metric, kept in the link as ``metric``, among this model's
    (``prob``... or, without classes, ``sim``...); returns it and its slot."""
    names = list(metric_names(lm))
    metric = bound("metric", names[0], st.selectbox, label, names, key=key,
                   format_func=METRIC_LABELS.get, help=METRIC_HELP)
    return metric, names.index(metric)


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
    image, _ = resources.model_input(lm, ds, index)
    return None if image is None else enlarged(lm.to_display(image))


@st.cache_data(max_entries=512, show_spinner=False)
def _thumbnail(model_identity: str, key: str, _lm: LoadedModel, _ds: Dataset,
               _index: int) -> str:
    small = (255 * display_image(_lm, _ds, _index)[::2, ::2]).astype(np.uint8)
    return "data:image/png;base64," + base64.b64encode(downloads.image_png(small)).decode()


def thumbnail(lm: LoadedModel, ds: Dataset, index: int) -> str:
    """A readable image `index`, half its display size, as a PNG data URL for a
    table's image column (made once per file version and model)."""
    return _thumbnail(lm.identity, resources.file_key(ds, index), lm, ds, index)


def could_not_be_used(image_id: str, why: str, view: str = "") -> None:
    """The error of a view (`view`: its name, when the page has several) whose image
    cannot be used, with the reason."""
    st.error(plain((f"{view}: image" if view else "Image")
                   + f" {image_id} could not be used: {why}"))


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
        could_not_be_used(ds.records[index].id, str(next(iter(result.skipped.values()))))
        st.stop()
    arrays = result.arrays[index]
    big = display_image(lm, ds, index)
    heat = heat_map(arrays["cls_attention"][layer, head], lm, big.shape[:2])
    record = ds.records[index]
    true_name = None if record.label is None else lm.class_names[record.label]
    left, middle, right = st.columns([1, 1, 1.4])
    left.image((255 * big).astype(np.uint8),
               caption=f"Image {record.id}, {label_text(true_name, record.group)}", clamp=True)
    blended = overlay(big, heat)
    middle.image(blended, caption=f"Attention of CLS to each patch, layer {layer}, "
                 f"head {head} (bright = more attention; scaled to the image's max)")
    with middle:
        downloads.image(blended, f"attention_L{layer}H{head}",
                        patch_table(arrays["cls_attention"][layer, head], lm))
    with right:
        predictions(lm, ds, index, arrays["logits"], true_name)
    return chosen


def label_text(true_name: str | None, group: str | None) -> str:
    """What an image's caption says of its class: the model's class it is labelled
    with, else its class in the set (a model without classes, or a folder that is no
    model class), else that it has none."""
    if true_name:
        return f"true label: {true_name}"
    return f"class in the set: {group}" if group else "no label"


def predictions(lm: LoadedModel, ds: Dataset, index: int, logits: np.ndarray,
                true_name: str | None, name: str = "top5_predictions") -> None:
    """Image `index`'s top-5 predictions, or for a model without classes the images of
    the set whose embeddings are most similar to its embedding `logits`."""
    if lm.has_classes:
        st.markdown("**Top-5 predictions**")
        downloads.chart(predictions_chart(top_k(logits, lm.class_names), true_name), name)
        return
    st.markdown("**Most similar images of the set** (the model has no classes)")
    name = name.replace("predictions", "similar")
    every = resources.whole_set(lm, ds, FORWARD, "The most similar images", f"{name}_compute")
    if every is None:
        return
    embeddings = {i: a["logits"] for i, a in every.arrays.items()} | {index: logits}
    downloads.chart(similar_chart(most_similar(embeddings, index), [r.id for r in ds.records]),
                    name.replace("top5_", "most_"))
