"""Overview page: the selected image, and every image laid out by how much each head
matters for it (t-SNE of the L x H importance vectors; paper 001, section 5.1)."""
import numpy as np
import streamlit as st

from core.analyses import FORWARD
from core.analyses.importance import METRIC_LABELS, METRICS
from core.dataset import IMPORTANCE_OVERVIEW
from core.dataset.importance_overview import OverviewParams
from core.display.predictions import most_similar, top_k
from ui import downloads, resources
from ui.charts import predictions_chart
from ui.downloads import chart_png, image_png
from ui.importance_charts import overview_chart
from ui.report_html import Report, figure_row, img_tag, section
from ui.state import new_chart_pick, select
from ui.views import intro, metric_picker, selected_image

HEADING = "Overview"


def render() -> None:
    """Draw the page."""
    intro(HEADING,
          "This page shows one image with the model's prediction, and a map of all images "
          "where images whose attention heads matter in the same way lie close together.",
          "Colours are classes; click a point (or type an image id) to select that image on "
          "every page, and use the sidebar to pick the layer and head shown in the overlay.")
    chosen = selected_image()
    lm, ds = chosen.lm, chosen.ds
    selected_id = ds.records[chosen.index].id

    def find_image() -> None:
        """Search box callback: select the image with that id (or the only id containing it)."""
        wanted = st.session_state["overview_search"].strip()
        if not wanted:
            return
        ids = [r.id for r in ds.records]
        found = [wanted] if wanted in ids else [i for i in ids if wanted.lower() in i.lower()]
        if len(found) == 1:
            select(image=found[0])
            st.session_state["overview_search_message"] = None
        else:
            st.session_state["overview_search_message"] = (
                f"No image id contains {wanted!r}." if not found else
                f"{len(found)} image ids contain {wanted!r} (for example {', '.join(found[:3])}); "
                "type more of the id.")

    st.subheader("All images by head importance")
    left, right = st.columns([2, 1])
    with left:
        metric, slot = metric_picker(lm, "overview_metric")
    right.text_input("Find an image by id", key="overview_search", on_change=find_image,
                     placeholder=ds.records[-1].id)
    if st.session_state.get("overview_search_message"):
        right.warning(st.session_state["overview_search_message"])
    overview = resources.whole_set_step(lm, ds, IMPORTANCE_OVERVIEW, "The map of all images",
                                       "overview_compute", OverviewParams(METRICS[slot]))  # the slot's
    # first name: the precompute's entry for a model without classes too
    if overview is None:
        st.stop()
    order, xy = overview["image"].tolist(), overview["xy"]
    ids = [ds.records[i].id for i in order]
    classes = [ds.records[i].group or "no class" for i in order]  # the set's own classes
    st.caption(f"{len(order)} images; each point is one image placed by t-SNE of its "
               f"{lm.num_layers} x {lm.num_heads} head importances ({METRIC_LABELS[metric]}); "
               "the ringed point is the selected image. Axes have no units.")
    event = downloads.chart(overview_chart(xy, ids, classes, selected_id), "overview_tsne",
                            on_select="rerun")
    pick = new_chart_pick("overview_tsne", event)
    if pick and pick.get("image") and pick["image"] != selected_id:
        select(image=pick["image"])
        st.rerun()


def report(r: Report) -> str:
    """The image, the selected head's CLS attention and the top-5 predictions; for a
    model without classes, the most similar images among those the cache holds."""
    lm, record = r.lm, r.ds.records[r.index]
    forward = r.arrays(FORWARD)
    figures = figure_row([
        (image_png((255 * r.image).astype(np.uint8)), f"Image {record.id}"),
        (r.heat(forward["cls_attention"][r.layer, r.head]),
         f"Where head {r.head} of layer {r.layer} looks (CLS attention; bright = more)")])
    if lm.has_classes:
        true_name = None if record.label is None else lm.class_names[record.label]
        return section(
            "What the model predicts",
            "The five most likely classes, in percent; "
            + ("the green bar is the true class." if true_name else
               "the image has no known true class."),
            figures + img_tag(chart_png(predictions_chart(
                top_k(forward["logits"], lm.class_names), true_name)), "top-5 predictions"))
    embeddings = {i: a["logits"] for i, a in r.cached_set(FORWARD).items()} | {
        r.index: forward["logits"]}
    similar = most_similar(embeddings, r.index)
    found = (" Most similar images of the set (cosine similarity of the embeddings, among "
             f"the {len(embeddings)} computed): "
             + ", ".join(f"{r.ds.records[s.index].id} ({s.cosine:.3f})" for s in similar) + "."
             if similar else "")
    return section("What the model sees",
                   "The model has no classes: it is explained by similarity to a reference "
                   "embedding, here the image's own." + found, figures)


if __name__ == "__main__":
    render()
