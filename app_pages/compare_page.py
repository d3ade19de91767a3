"""Compare page: two images side by side, each with its predictions, head importance,
how far its heads look and its rollout maps (SPEC "Head pruning", "Attention
strength", "Attention aggregation")."""
import numpy as np
import pandas as pd
import streamlit as st

from core.analyses import (ABLATION_MAP, EXPLANATIONS, FORWARD, IMPORTANCE,
                           IMPORTANCE_ESTIMATE, STRENGTH)
from core.analyses.cost import ablation_forwards, exact_importance_automatic
from core.analyses.importance_estimate import compared_with, estimate_label_of
from core.analyses.explanations import MAP_METHODS, drawn
from core.analyses.importance import METRIC_AXES, METRIC_LABELS, metric_names, shown
from core.analyses.strength import evenly_spread
from core.display.maps import heat_map
from core.display.predictions import explained_name
from core.explain import METHODS
from ui import downloads, resources
from ui.charts import overlay, shared_domain
from ui.importance_charts import heads_chart, values_frame
from ui.rollout_charts import map_row
from ui.state import bound
from ui.strength_charts import heads_scatter
from ui.views import (could_not_be_used, display_image, intro, label_text, metric_picker,
                      predictions, selected)

HEADING = "Compare two images"


def render() -> None:
    """Draw the page."""
    intro(HEADING,
          "This page puts two images side by side: what the model predicts for each, which "
          "heads matter, how far the heads look and where the whole model looks.",
          "The left image is the one selected in the sidebar; pick the right one below (by "
          "default the image after it). The two columns' charts share their axes and scales, "
          "so differences between the columns are differences between the images.")
    chosen = selected()
    lm, ds, layer, head = chosen.lm, chosen.ds, chosen.layer, chosen.head
    ids = [r.id for r in ds.records]
    first = chosen.index
    left, right = st.columns(2)
    with right:
        following = (first + 1) % len(ids)  # the default: never the left image itself
        other_id = bound("other", "", st.selectbox, "Image on the right", [""] + ids,
                         key="compare_other",
                         format_func=lambda i: i or f"The next image ({ids[following]})")
    with left:
        metric, m = metric_picker(lm, "compare_metric")
    second = ds.index_of(other_id) if other_id else following
    _, even_distance = evenly_spread(lm.grid, lm.patch_size)
    results = resources.analyse(lm, ds, sorted({first, second}), FORWARD)
    usable = [i for i in (first, second) if i in results.arrays]
    exact = exact_importance_automatic(lm)
    # what the two columns' charts draw, each pair on one scale
    if exact:
        every = {i: resources.analyse(lm, ds, [i], IMPORTANCE).arrays[i]["importance"]
                 for i in usable}
        importance = {i: shown(metric, values[m]) for i, values in every.items()}
    else:  # a large model: the one-backward estimate, as on the Importance page
        importance = {i: resources.analyse(lm, ds, [i], IMPORTANCE_ESTIMATE).arrays[i][
            compared_with(metric)] for i in usable}
    strength = {i: resources.analyse(lm, ds, [i], STRENGTH).arrays[i] for i in usable}
    importance_scale = shared_domain(*importance.values())
    distance_scale = shared_domain(np.array([even_distance]),
                                   *(s["mean_distance"] for s in strength.values()))
    for column, index, side in zip(st.columns(2), (first, second), ("left", "right")):
        with column:
            record = ds.records[index]
            if index not in results.arrays:
                could_not_be_used(record.id, str(results.skipped.get(record.id, "unreadable")))
                continue
            true_name = None if record.label is None else lm.class_names[record.label]
            st.subheader(record.id)
            big = display_image(lm, ds, index)
            st.image(overlay(big, heat_map(results.arrays[index]["cls_attention"][layer, head], lm,
                                           big.shape[:2])),
                     caption=f"Attention of CLS, layer {layer}, head {head}"
                     + f"; {label_text(true_name, record.group)}")
            predictions(lm, ds, index, results.arrays[index]["logits"], true_name,
                        f"compare_predictions_{side}")
            if exact:
                st.markdown(f"**Which heads matter** ({METRIC_LABELS[metric]})")
                title = METRIC_AXES[metric]
            else:
                st.markdown("**Which heads matter** (ESTIMATED from one backward pass, "
                            "Michel et al. 2019; the Importance page prunes each head)")
                title = estimate_label_of(compared_with(metric), lm)
            downloads.chart(heads_chart(importance[index], None, title, (layer, head),
                                        domain=importance_scale), f"compare_importance_{side}",
                            data=values_frame(every[index], metric_names(lm)) if exact else None)
            st.markdown("**How far each head looks** (dashed: evenly spread attention; both "
                        "columns on one scale)")
            downloads.chart(heads_scatter(strength[index]["mean_distance"], layer, head,
                                          "Mean attention distance (px)", even_distance, ".1f",
                                          domain=distance_scale), f"compare_strength_{side}")
            maps = resources.analyse(lm, ds, [index], EXPLANATIONS).arrays[index]
            st.markdown(f"**Where the whole model looks** (explaining "
                        f"{explained_name(lm.class_names, int(maps['class']))})")
            for row in range(0, len(MAP_METHODS), 3):
                map_row(big, [heat_map(values, lm, big.shape[:2])
                              for values in drawn(maps)[row:row + 3]],
                        [METHODS[method].label_for(lm) for method in MAP_METHODS[row:row + 3]])
            downloads.csv(pd.DataFrame(drawn(maps).T, columns=list(MAP_METHODS)).rename_axis(
                "patch"), f"compare_maps_{side}", "Download the maps (CSV, a row per patch)")
            if resources.on_request(lm, "the patch ablation map", ablation_forwards(lm),
                                    f"compare_ablation_{side}"):
                drop = resources.analyse(lm, ds, [index], ABLATION_MAP).arrays[index]["map"]
                map_row(big, [heat_map(drop, lm, big.shape[:2])],
                        [METHODS["ablation"].label_for(lm)], 3)
            st.caption(f"Mean attention distance over all heads: "
                       f"{float(np.nanmean(strength[index]['mean_distance'])):.1f} px.")


if __name__ == "__main__":
    render()
