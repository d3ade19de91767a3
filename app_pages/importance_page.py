"""Importance page: which heads matter, by pruning each head (SPEC "Head pruning";
paper 001, section 5.2)."""

import streamlit as st

from core.analyses import IMPORTANCE, IMPORTANCE_ESTIMATE, INTERACTIONS, PARTIAL_PRUNING
from core.analyses.importance import METRIC_AXES, METRIC_LABELS, metric_names, metric_slot
from core.analyses.cost import exact_importance_automatic
from core.analyses.importance_estimate import compared_with, estimate_label_of
from core.analyses.interactions import InteractionParams
from core.dataset import ESTIMATE_AGREEMENT
from core.analyses.partial_pruning import MODES, PartialPruningParams
from core.dataset.statistics import mean_and_std, spearman, stack
from core.display.predictions import top_k
from core.model import MODE_NAMES
from ui import downloads, resources
from ui.charts import predictions_chart
from ui.importance_charts import (agreement_frame, estimate_frame, heads_chart,
                                  interaction_chart, interaction_frame, modes_chart,
                                  values_frame)
from ui.state import bound, new_chart_pick, select
from ui.views import intro, metric_picker, selected_image

# exact values are computed without asking up to this many tokens per image (the layers
# x heads pruned forwards; demo: 1,200, deit_tiny at 224 px: 7,092, ViT-B/16: 28,368)


def pick_head(chart, table) -> None:
    """The heads chart (click a point to select its head) and its CSV."""
    event = downloads.chart(chart, "importance_heads", data=table, on_select="rerun")
    pick = new_chart_pick("importance_heads", event)
    if pick and "layer" in pick:
        select(layer=int(pick["layer"]), head=int(pick["head"]))
        st.rerun()


def interactions_section(lm, ds, index: int, metric: str, compute: bool) -> None:
    """The k x k interactions of the image's most important heads."""
    st.subheader("Head interactions: the most important heads pruned two at a time")
    st.markdown("Leave-one-out misses heads that back each other up. Each cell prunes two "
                "heads together and shows how far the effect differs from the two single "
                "effects added: red, the pair hurts more than the sum (the heads cover for "
                "each other); blue, less (they do the same work).")
    most = lm.num_layers * lm.num_heads
    k = bound("k", min(8, most), st.number_input,
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
                                      arrays["pair"][m], METRIC_LABELS[metric]),
                    "importance_interactions", width="content",
                    data=interaction_frame(arrays["heads"], arrays["single"], arrays["pair"],
                                           arrays["interaction"], metric_names(lm)))


intro("Head importance",
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
               + (" (each image's own true class, or its predicted class if unlabeled)"
                  if over_all else "") + "; negative: pruning the head raises it.")
automatic = exact_importance_automatic(lm)
estimate_label = estimate_label_of(compared_with(metric), lm)
if over_all:
    everything = resources.whole_set(lm, ds, IMPORTANCE, "The mean over all images",
                                     "importance_compute")
    if everything is not None and everything.arrays:
        values = stack(everything.arrays, "importance")
        mean, std = mean_and_std(values)
        st.subheader(f"All {len(values)} images: the effect of pruning each head (mean, "
                     "band: +- 1 standard deviation)")
        pick_head(heads_chart(mean[m], std[m], f"{METRIC_AXES[metric]}, mean", (layer, head),
                              percent=metric == "prob", non_negative=m != 0),
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
        pick_head(heads_chart(values[m], None, METRIC_AXES[metric], (layer, head),
                              percent=metric == "prob"),
                  values_frame(values, names))
        with st.expander("Fast estimate for this image, against the exact values"):
            rho = spearman(estimated, values[m])
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
    downloads.chart(modes_chart(result["metrics"][:, m], METRIC_LABELS[metric], mode),
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
