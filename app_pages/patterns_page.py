"""Patterns page: what patterns heads learn; see SPEC "Attention patterns"."""
import numpy as np
import pandas as pd
import streamlit as st

from core.analyses import PATTERNS
from core.analyses.pattern_labels import LABEL_NAMES, describe
from core.analyses.patterns import DEFAULT_TOP_PERCENT
from core.dataset import PATTERN_LAYOUTS
from core.display.density import binned, sample_indices
from core.dataset.pattern_layouts import Overview
from core.display.head_detail import (head_matrix, strong_pairs, token_names,
                                      top_percent_threshold, value_histogram)
from core.display.maps import heat_map, patch_table
from ui import downloads, resources
from ui.charts import overlay
from ui.downloads import figure_png
from ui.patterns_charts import heatmap_figure, histogram_chart, layout_chart, two_axes_chart
from ui.report_html import Report, img_tag, section
from ui.state import bound, new_chart_pick, select, setting
from ui.views import could_not_be_used, display_image, intro, selected_image

HEADING = "Attention patterns"

MAX_BACKGROUND_POINTS = 3000  # points mode: a random sample of all heads
MAX_LINES = 2000  # two-axes view: the strongest pairs above the threshold


def render() -> None:
    """Draw the page."""
    intro(HEADING,
          "This page places every head of every image on a map where heads that attend in a "
          "similar way lie close together, and shows one head's full attention matrix.",
          "Grey cells count the heads of all images; coloured dots are the selected image's heads "
          "(colour: layer); click one to select it. Below, lines join each token to the tokens "
          "it attends to most.")
    chosen = selected_image()
    lm, ds, index, layer, head = chosen.lm, chosen.ds, chosen.index, chosen.layer, chosen.head

    st.subheader("All heads of all images")
    arrays = resources.whole_set_step(
        lm, ds, PATTERN_LAYOUTS, f"The layouts of all heads ({lm.num_layers * lm.num_heads} per "
        "image: an autoencoder of the binarised patch attention and two t-SNE layouts)", "pattern_compute")
    overview = None if arrays is None else Overview.from_arrays(arrays)
    if overview is not None:
        left, right = st.columns(2)
        with left:
            kind = bound("layout", "patch attention (autoencoder)", st.radio, "Layout of",
                         ["patch attention (autoencoder)", "CLS attention"],
                         key="pattern_layout_kind", horizontal=True,
                         help="CLS: t-SNE of each head's CLS row and column. Patch: t-SNE of "
                              "the autoencoder codes of each head's binarised patch->patch matrix.")
        with right:
            view = bound("heads_as", "density", st.radio, "All heads as", ["density", "points"],
                         key="pattern_view", horizontal=True,
                         help=f"points: a random sample of at most {MAX_BACKGROUND_POINTS:,} heads")
        xy = overview.cls_layout if kind == "CLS attention" else overview.patch_layout
        ids = np.array([r.id for r in ds.records])

        def frame(rows: np.ndarray) -> pd.DataFrame:
            return pd.DataFrame({"x": xy[rows, 0], "y": xy[rows, 1], "image": overview.image[rows],
                                 "image_id": ids[overview.image[rows]], "layer": overview.layer[rows],
                                 "head": overview.head[rows],
                                 "pattern": [LABEL_NAMES[k] for k in overview.label[rows]]})

        mine = frame(overview.points_of(index))
        background = binned(xy) if view == "density" else frame(
            sample_indices(len(xy), MAX_BACKGROUND_POINTS))
        axis_name = "CLS" if kind == "CLS attention" else "Patch"
        event = downloads.chart(layout_chart(mine, background, axis_name, "head_pick",
                                             (layer, head)),
                                f"pattern_layout_{view}", on_select="rerun")
        pick = new_chart_pick(f"pattern_layout_{view}", event)
        if pick and {"image", "layer", "head"} <= set(pick):
            select(image=str(ids[int(pick["image"])]), layer=int(pick["layer"]),
                   head=int(pick["head"]))
            st.rerun()
        shares = overview.label_shares(layer, head)
        st.markdown(f"**Layer {layer}, head {head} (ringed in red) over all "
                    f"{len(np.unique(overview.image))} images:** "
                    + ", ".join(f"{name} {100 * s:.0f}%" for name, s in
                                sorted(zip(LABEL_NAMES, shares), key=lambda t: -t[1]) if s > 0))
        st.caption(f"{len(xy):,} points ({len(np.unique(overview.image))} images x "
                   f"{lm.num_layers * lm.num_heads} heads). The autoencoder's training loss "
                   f"(binary cross-entropy, ones weighted) per epoch: "
                   f"{', '.join(f'{v:.4f}' for v in overview.ae_loss)}.")

    st.subheader(f"Head detail: layer {layer}, head {head}")
    matrix, why = resources.head_matrix(lm, ds, index, layer, head)
    if matrix is None:
        could_not_be_used(ds.records[index].id, why)
        st.stop()
    vectors = chosen.arrays(PATTERNS)
    label, confidence = describe(vectors["label_scores"][layer, head],
                                 vectors["diagonal_offset"][layer, head])
    st.markdown(f"Automatic pattern label of this head on this image: **{label}** (confidence "
                f"{confidence:.2f}: the margin of its score over the next pattern, 0 to 1).")
    top = bound("top", DEFAULT_TOP_PERCENT, st.number_input,
                "Show the top x% of the attention values", valid=lambda v: 0.01 <= v <= 20.0,
                key="pattern_top", min_value=0.01, max_value=20.0, step=0.5)
    threshold = top_percent_threshold(matrix, top)
    p = lm.num_prefix_tokens
    edges, counts = value_histogram(matrix)
    pairs = strong_pairs(matrix, threshold, p, MAX_LINES)

    names = token_names(lm)
    token = setting("token", 0, valid=lambda v: 0 <= v < len(names))

    left, right = st.columns([1.3, 1])
    with left:
        st.markdown(f"**Two-axes view** ({len(pairs.source)} pairs at or above {threshold:.3g}"
                    + (f", the strongest {MAX_LINES}" if len(pairs.source) == MAX_LINES else "")
                    + "; click a token to choose it)")
        event = downloads.chart(two_axes_chart(pairs, names, token, "token_pick"),
                                "pattern_two_axes", on_select="rerun")
        picked = new_chart_pick("pattern_two_axes", event)
        if picked and "token" in picked:
            select(token=int(picked["token"]))
            st.rerun()
        st.markdown("**Histogram of the matrix's values** (the red line is the threshold)")
        downloads.chart(histogram_chart(edges, counts, threshold, top), "pattern_histogram")
    with right:
        st.markdown("**Heatmap** (white: below the threshold)")
        downloads.figure(heatmap_figure(matrix, threshold, p),
                         f"heatmap_L{layer}H{head}",
                         pd.DataFrame(matrix, index=pd.Index(names, name="query"), columns=names))

    token = bound("token", 0, st.selectbox, "Token", list(range(len(names))), key="pattern_token",
                  format_func=lambda k: names[k])
    big = display_image(lm, ds, index)
    columns = st.columns(3)
    for column, values, name, caption in (
            (columns[0], matrix[token, p:], "row",
             f"Where {names[token]} looks: its row over the patches"),
            (columns[1], matrix[p:, token], "column",
             f"Which patches look at {names[token]}: its column")):
        blended = overlay(big, heat_map(values, lm, big.shape[:2]))
        column.image(blended, caption=f"{caption} (layer {layer}, head {head}; bright = "
                     "more attention, scaled to the map's max)")
        with column:
            downloads.image(blended, f"token{token}_{name}_L{layer}H{head}",
                            patch_table(values, lm))


def report(r: Report) -> str:
    """The selected head's pattern label and its attention matrix (top values)."""
    patterns = r.arrays(PATTERNS)
    name, confidence = describe(patterns["label_scores"][r.layer, r.head],
                                int(patterns["diagonal_offset"][r.layer, r.head]))
    matrix = head_matrix(r.lm, r.batch[0], r.layer, r.head)
    threshold = top_percent_threshold(matrix, DEFAULT_TOP_PERCENT)
    return section(
        "The head's attention pattern",
        f"Head {r.head} of layer {r.layer} looks like a {name} pattern (confidence "
        f"{confidence:.2f} on a 0-1 scale). The matrix shows which token (row) attends to "
        f"which (column); only the top {DEFAULT_TOP_PERCENT:g}% of values are coloured.",
        img_tag(figure_png(heatmap_figure(matrix, threshold, r.lm.num_prefix_tokens)),
                "attention matrix"))


if __name__ == "__main__":
    render()
