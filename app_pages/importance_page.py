"""Importance page: which heads matter, by pruning each head (SPEC "Head pruning";
paper 001, section 5.2)."""

import numpy as np
import streamlit as st

from core.analyses import IMPORTANCE, IMPORTANCE_ESTIMATE, INTERACTIONS, PARTIAL_PRUNING
from core.analyses.importance import (METRIC_AXES, METRIC_LABELS, metric_names, metric_slot,
                                      shown)
from core.analyses.cost import exact_importance_automatic
from core.analyses.importance_estimate import compared_with, estimate_label_of
from core.analyses.interactions import InteractionParams, top_heads
from core.dataset import ESTIMATE_AGREEMENT
from core.analyses.partial_pruning import MODES, PartialPruningParams
from core.display.importance_view import estimate_agreement, importance_over_set
from core.display.predictions import top_k
from core.model import MODE_NAMES
from ui import downloads, resources
from ui.charts import predictions_chart
from ui.importance_charts import (agreement_frame, estimate_frame, heads_chart,
                                  interaction_chart, interaction_frame, modes_chart,
                                  values_frame)
from ui.downloads import chart_png
from ui.report_html import NOT_COMPUTED, Report, img_tag, section
from ui.state import bound, select_clicked_head
from ui.views import intro, metric_picker, selected_image

HEADING = "Head importance"
DEFAULT_K = 8  # heads whose interactions are shown (at most the model's)


def pick_head(chart, table) -> None:
    """The heads chart (click a point to select its head) and its CSV."""
    select_clicked_head("importance_heads", downloads.chart(
        chart, "importance_heads", data=table, on_select="rerun"))


def interactions_section(lm, ds, index: int, metric: str, compute: bool) -> None:
    """The k x k interactions of the image's most important heads."""
    st.subheader("Head interactions: the most important heads pruned two at a time")
    st.markdown("Leave-one-out misses heads that back each other up. Each cell prunes two "
                "heads together and shows how far the effect differs from the two single "
                "effects added: red, the pair hurts more than the sum (the heads cover for "
                "each other); blue, less (they do the same work).")
    most = lm.num_layers * lm.num_heads
    k = bound("k", min(DEFAULT_K, most), st.number_input,
              "Heads (k, the most important by the metric above)",
              valid=lambda v: 2 <= v <= min(16, most), min_value=2, max_value=min(16, most))
    params = InteractionParams(k=k, rank_by=metric)
    arrays = resources.cached(lm, ds, index, INTERACTIONS, params)
    if arrays is None and not compute:
        if not st.button(f"Compute the interactions ({k * (k - 1) // 2} pairs)",
                         key="interactions_compute"):
            return
    if arrays is None:
        arrays = resources.analyse(lm, ds, [index], INTERACTIONS, params).arrays[index]
    m = metric_slot(metric)
    downloads.chart(interaction_chart(arrays["heads"], arrays["interaction"][m],
                                      arrays["pair"][m], metric),
                    "importance_interactions", width="content",
                    data=interaction_frame(arrays["heads"], arrays["single"], arrays["pair"],
                                           arrays["interaction"], metric_names(lm)))


def render() -> None:
    """Draw the page."""
    intro(HEADING,
          "This page switches each attention head off in turn (its attention set to zero) and "
          "measures how much the prediction, or the output of the head's own layer, changes.",
          "Higher points are heads that matter more for the selected image (or on average over "
          "all images); click a point to see which part of that head's attention matters.")
    chosen = selected_image()
    lm, ds, index, layer, head = chosen.lm, chosen.ds, chosen.index, chosen.layer, chosen.head
    label = ds.records[index].label
    group = ds.records[index].group
    target_text = ("the reference embedding" if not lm.has_classes else
                   f"the true class ({lm.class_names[label]})" if label is not None else
                   "the predicted class (the image has no label)" if group is None else
                   f"the predicted class (its class in the set, {group!r}, is not one of the "
                   "model's classes)")

    left, right = st.columns([2, 1])
    with left:
        metric, m = metric_picker(lm, "importance_metric", "Metric")
    with right:
        over_all = bound("mean", False, st.toggle, "Mean over all images", key="importance_mean",
                         help="Mean and standard deviation of the metric over every image of "
                              "the set, instead of the selected image.")
    names = metric_names(lm)
    if metric == "sim":
        st.caption("Score drop s - s': how much less the image's embedding points along the "
                   "reference's (1 = as much as the reference itself) when the head is switched "
                   "off; negative: pruning the head raises it.")
    if metric == "prob":
        st.caption(f"Probability drop P - P' of {target_text}"
                   + ("" if not over_all else
                      " (each image's own true class, or its predicted class if unlabeled)"
                      if any(r.label is not None for r in ds.records) else
                      " (each image's predicted class: no image has a known true class)") + "; negative: pruning the head raises it.")
    automatic = exact_importance_automatic(lm)
    estimate_label = estimate_label_of(compared_with(metric), lm)
    if over_all:
        everything = resources.whole_set(lm, ds, IMPORTANCE, "The mean over all images",
                                         "importance_compute")
        if everything is not None and everything.arrays:
            mean, std = importance_over_set(everything.arrays)
            st.subheader(f"All {len(everything.arrays)} images: the effect of pruning each head (mean, "
                         "band: +- 1 standard deviation)")
            pick_head(heads_chart(shown(metric, mean[m]), shown(metric, std[m]),
                                  f"{METRIC_AXES[metric]}, mean", (layer, head),
                                  non_negative=m != 0),
                      values_frame(mean, names, std))
            agreement = resources.whole_set_step(lm, ds, ESTIMATE_AGREEMENT,
                                                 "The estimate's agreement", "estimate_compute")
            if agreement is not None:
                st.subheader("Fast estimate over all images (one backward pass per image)")
                st.markdown(
                    f"Spearman rank correlation with the exact values: **"
                    f"{agreement['mean'][m]:.2f}** per image (mean over "
                    f"{len(agreement['image']) - int(agreement['undefined'][m])} images), **"
                    f"{agreement['over_set'][m]:.2f}** for the heads' means. 1: the estimate "
                    "orders the heads exactly as pruning does; 0: no relation.")
                estimated = agreement[f"{compared_with(metric)}_mean"]
                downloads.chart(heads_chart(estimated, None, estimate_label, (layer, head)),
                                "importance_estimate_mean")
                downloads.csv(agreement_frame(agreement, names, [r.id for r in ds.records]),
                              "estimate_agreement",
                              "Download the agreement per image (CSV)")
    else:
        estimate = resources.analyse(lm, ds, [index], IMPORTANCE_ESTIMATE).arrays[index]
        exact = resources.cached(lm, ds, index, IMPORTANCE)
        asked = st.session_state.get("importance_exact_asked", False)
        if exact is None and (automatic or asked):
            exact = resources.analyse(lm, ds, [index], IMPORTANCE).arrays[index]
        estimated = estimate[compared_with(metric)]
        if exact is None:
            st.subheader(f"Image {ds.records[index].id}: ESTIMATED effect of pruning each head")
            st.warning("These are estimates from one backward pass (Michel et al. 2019), not "
                       "measured by pruning: exact values need "
                       f"{lm.num_layers * lm.num_heads} pruned forward passes of this image. On "
                       "the demo the estimate orders heads like the exact drop (Spearman 0.89).")
            if st.button("Compute the exact values", key="importance_exact"):
                st.session_state["importance_exact_asked"] = True
                st.rerun()
            pick_head(heads_chart(estimated, None, estimate_label, (layer, head)),
                      estimate_frame(estimate))
        else:
            values = exact["importance"]
            st.subheader(f"Image {ds.records[index].id}: the effect of pruning each head")
            pick_head(heads_chart(shown(metric, values[m]), None, METRIC_AXES[metric],
                                  (layer, head)),
                      values_frame(values, names))
            with st.expander("Fast estimate for this image, against the exact values"):
                rho = estimate_agreement(estimate, values, metric)
                st.markdown(f"Spearman rank correlation with the exact values above: **{rho:.2f}** "
                            "(1: same order of heads; 0: no relation). The estimate costs one "
                            "backward pass; the exact values one pruned forward per head.")
                downloads.chart(heads_chart(estimated, None, estimate_label, (layer, head)),
                                "importance_estimate", data=estimate_frame(estimate))
            interactions_section(lm, ds, index, metric, automatic or asked)

    st.subheader(f"Partial pruning of layer {layer}, head {head} (image {ds.records[index].id})")
    st.markdown("Each mode zeroes part of the head's attention matrix: CLS->CLS, CLS<->patches "
                "(both directions), patches->patches, or combinations; mode 0 is the unpruned "
                "model.")
    result = resources.analyse(lm, ds, [index], PARTIAL_PRUNING,
                               PartialPruningParams(layer, head)).arrays[index]
    mode = bound("mode", 1, st.radio, "Pruning mode for the predictions", list(MODES),
                 key="importance_mode", horizontal=True, format_func=lambda k: f"{k}: {MODE_NAMES[k]}")
    bars, predictions = st.columns([3, 2])
    with bars:
        st.markdown(f"**{METRIC_LABELS[metric]} per pruning mode** (red: the mode whose "
                    "predictions are shown)")
        downloads.chart(modes_chart(result["metrics"][:, m], metric, mode),
                        "importance_modes")
    with predictions:
        if lm.has_classes:
            st.markdown(f"**Top-5 predictions, mode {mode} ({MODE_NAMES[mode]})**")
            downloads.chart(predictions_chart(top_k(result["logits"][mode], lm.class_names),
                                              None if label is None else lm.class_names[label]),
                            "importance_mode_predictions")
        else:
            st.markdown(f"**Embedding, mode {mode} ({MODE_NAMES[mode]})**: score drop "
                        f"s - s' = {result['metrics'][mode, 0]:.3f}, embedding change "
                        f"{result['metrics'][mode, 1]:.3f} (cosine distance).")


def report(r: Report) -> str:
    """Which heads matter and how the most important work together: exact values when
    the page computes them at once or the cache holds them, else the estimate."""
    lm, layer, head = r.lm, r.layer, r.head
    metric = metric_names(lm)[0]  # the probability drop, or the score drop s - s'
    automatic = exact_importance_automatic(lm)
    estimate = r.arrays(IMPORTANCE_ESTIMATE)
    exact = r.cached(IMPORTANCE)
    if exact is None and automatic:
        exact = r.arrays(IMPORTANCE)
    estimated = estimate[compared_with(metric)]
    estimate_chart = img_tag(chart_png(heads_chart(
        estimated, None, estimate_label_of(compared_with(metric), lm), (layer, head))),
        "estimated importance of every head")
    if exact is None:
        return section("Which heads matter",
                       "Each head switched off in turn (one pruned forward pass per head): "
                       f"{NOT_COMPUTED}. The chart is the estimate from one backward pass "
                       "(Michel et al. 2019).", estimate_chart)
    values = shown(metric, exact["importance"][metric_slot(metric)])
    digits = 1 if lm.has_classes else 3
    points = "percentage points" if lm.has_classes else "of the score s"
    measured = ("the score s of the image on its own embedding" if not lm.has_classes else
                "the probability of the true class" if r.ds.records[r.index].label is not None
                else "the probability of the predicted class")
    parts = [section(
        "Which heads matter",
        f"Each head is switched off in turn and the drop in {measured} is measured (higher "
        "= the head matters more). Most important here: "
        + ", ".join(f"layer {l}, head {h} ({values[l, h]:.{digits}f} {points})"
                    for l, h in top_heads(values, 3)) + ".",
        img_tag(chart_png(heads_chart(values, None, METRIC_AXES[metric], (layer, head))),
                "importance of every head"))]
    agreement = (f"A one-backward estimate of the importance (Michel et al. 2019) orders the "
                 f"heads with a Spearman correlation of "
                 f"{estimate_agreement(estimate, exact['importance'], metric):.2f} to the "
                 "exact values.")
    params = InteractionParams(k=min(DEFAULT_K, lm.num_layers * lm.num_heads), rank_by=metric)
    pairs = r.cached(INTERACTIONS, params)
    if pairs is None and automatic:
        pairs = r.arrays(INTERACTIONS, params)
    if pairs is None:
        parts.append(section("Heads working together",
                             f"The most important heads pruned two at a time: {NOT_COMPUTED}. "
                             + agreement, estimate_chart))
        return "".join(parts)
    interaction = pairs["interaction"][metric_slot(metric)]
    strongest = np.unravel_index(np.argmax(np.abs(interaction)), interaction.shape)
    a, b = (pairs["heads"][i] for i in strongest)
    parts.append(section(
        "Heads working together",
        f"The {len(pairs['heads'])} most important heads pruned two at a time: the effect of "
        "a pair minus the two single effects (red: more than the sum, blue: less). Strongest "
        f"here: layer {a[0]} head {a[1]} with layer {b[0]} head {b[1]} "
        f"({shown(metric, interaction[strongest]):+.{digits}f} {points}). " + agreement,
        img_tag(chart_png(interaction_chart(pairs["heads"], interaction,
                                            pairs["pair"][metric_slot(metric)], metric)),
                "interactions of the top heads")))
    return "".join(parts)


if __name__ == "__main__":
    render()
