"""Importance page: which heads matter, by pruning each head (SPEC "Head pruning";
paper 001, section 5.2)."""
import streamlit as st

from core.capture import MODE_NAMES
from core.importance import METRIC_LABELS, METRICS, mean_and_std
from core.partial_pruning import MODES
from core.predictions import top_k
from ui import downloads, importance_data
from ui.charts import predictions_chart
from ui.importance_charts import heads_chart, modes_chart
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

left, right = st.columns([2, 1])
metric = left.selectbox("Metric", METRICS, format_func=METRIC_LABELS.get, key="importance_metric")
over_all = right.toggle("Mean over all images", key="importance_mean",
                        help="Mean and standard deviation of the metric over every image of "
                             "the set, instead of the selected image.")
m = METRICS.index(metric)
if metric == "prob":
    st.caption(f"Probability drop P - P' of {importance_data.target_text(lm, label)}"
               + (" (each image's own true class, or its predicted class if unlabeled)"
                  if over_all else "") + "; negative: pruning the head raises it.")
if over_all:
    _, values = importance_data.all_images(lm, ds)
    mean, std = mean_and_std(values)
    chart = heads_chart(mean[m], std[m], METRIC_LABELS[metric], (layer, head))
    title = f"All {len(values)} images (mean, band: +- 1 standard deviation)"
else:
    values = importance_data.one_image(lm, ds, index)
    if values is None:
        st.stop()
    chart = heads_chart(values[m], None, METRIC_LABELS[metric], (layer, head))
    title = f"Image {ds.records[index].id}"
st.subheader(f"{title}: the effect of pruning each head")
event = downloads.chart(chart, "importance_heads", on_select="rerun")
pick = new_chart_pick("importance_heads", event)
if pick and "layer" in pick:
    select(layer=int(pick["layer"]), head=int(pick["head"]))
    st.rerun()

st.subheader(f"Partial pruning of layer {layer}, head {head} (image {ds.records[index].id})")
st.markdown("Each mode zeroes part of the head's attention matrix: CLS->CLS, CLS<->patches "
            "(both directions), patches->patches, or combinations; mode 0 is the unpruned "
            "model.")
result = importance_data.partial(lm, ds, index, layer, head)
if result is None:
    st.stop()
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
