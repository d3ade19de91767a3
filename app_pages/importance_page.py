"""Importance page: which heads matter, by pruning each head (SPEC "Head pruning";
paper 001, section 5.2)."""
import streamlit as st

from core.analyses import IMPORTANCE, PARTIAL_PRUNING
from core.analyses.importance import METRIC_LABELS, METRICS
from core.analyses.partial_pruning import MODES, PartialPruningParams
from core.dataset.statistics import mean_and_std, stack
from core.display.predictions import top_k
from core.model import MODE_NAMES
from ui import downloads, resources
from ui.charts import predictions_chart
from ui.importance_charts import heads_chart, modes_chart, values_frame
from ui.state import new_chart_pick, select
from ui.views import intro, selected_image

intro("Head importance",
      "This page switches each attention head off in turn (its attention set to zero) and "
      "measures how much the prediction, or the output of the head's own layer, changes.",
      "Higher points are heads that matter more for the selected image (or on average over "
      "all images); click a point to see which part of that head's attention matters.")
chosen = selected_image()
lm, ds, index, layer, head = chosen.lm, chosen.ds, chosen.index, chosen.layer, chosen.head
label = ds.records[index].label
target_text = ("the predicted class (the image has no label)" if label is None
               else f"the true class ({lm.class_names[label]})")

left, right = st.columns([2, 1])
metric = left.selectbox("Metric", METRICS, format_func=METRIC_LABELS.get, key="importance_metric")
over_all = right.toggle("Mean over all images", key="importance_mean",
                        help="Mean and standard deviation of the metric over every image of "
                             "the set, instead of the selected image.")
m = METRICS.index(metric)
if metric == "prob":
    st.caption(f"Probability drop P - P' of {target_text}"
               + (" (each image's own true class, or its predicted class if unlabeled)"
                  if over_all else "") + "; negative: pruning the head raises it.")
chart = None
if over_all:
    everything = resources.whole_set(lm, ds, IMPORTANCE, "The mean over all images",
                                     "importance_compute")
    if everything is not None and everything.arrays:
        values = stack(everything.arrays, "importance")
        mean, std = mean_and_std(values)
        chart = heads_chart(mean[m], std[m], METRIC_LABELS[metric], (layer, head))
        table = values_frame(mean, METRICS, std)
        title = f"All {len(values)} images (mean, band: +- 1 standard deviation)"
else:
    result = resources.analyse(lm, ds, [index], IMPORTANCE)
    values = result.arrays[index]["importance"]  # readable: the image is shown above
    chart = heads_chart(values[m], None, METRIC_LABELS[metric], (layer, head))
    table = values_frame(values, METRICS)
    title = f"Image {ds.records[index].id}"
if chart is not None:
    st.subheader(f"{title}: the effect of pruning each head")
    event = downloads.chart(chart, "importance_heads", on_select="rerun")
    downloads.csv(table, "importance_heads", "Download every metric of every head (CSV)")
    pick = new_chart_pick("importance_heads", event)
    if pick and "layer" in pick:
        select(layer=int(pick["layer"]), head=int(pick["head"]))
        st.rerun()

st.subheader(f"Partial pruning of layer {layer}, head {head} (image {ds.records[index].id})")
st.markdown("Each mode zeroes part of the head's attention matrix: CLS->CLS, CLS<->patches "
            "(both directions), patches->patches, or combinations; mode 0 is the unpruned "
            "model.")
result = resources.analyse(lm, ds, [index], PARTIAL_PRUNING,
                           PartialPruningParams(layer, head)).arrays[index]
mode = st.radio("Pruning mode for the predictions", MODES, index=1, horizontal=True,
                format_func=lambda k: f"{k}: {MODE_NAMES[k]}", key="importance_mode")
bars, predictions = st.columns([3, 2])
with bars:
    st.markdown(f"**{METRIC_LABELS[metric]} per pruning mode** (red: the mode whose "
                "predictions are shown)")
    downloads.chart(modes_chart(result["metrics"][:, m], METRIC_LABELS[metric], mode),
                    "importance_modes")
with predictions:
    st.markdown(f"**Top-5 predictions, mode {mode} ({MODE_NAMES[mode]})**")
    downloads.chart(predictions_chart(top_k(result["logits"][mode], lm.class_names),
                                      None if label is None else lm.class_names[label]),
                    "importance_mode_predictions")
