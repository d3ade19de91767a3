"""Classes page: do heads behave differently for different classes? (paper 001,
section 7; ``core.dataset.class_views``)."""
import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from core.analyses.importance import METRIC_LABELS
from core.analyses.pattern_labels import LABEL_NAMES
from core.dataset import CLASS_VIEWS
from core.dataset.class_views import GROUPINGS, ClassViewParams, class_names, contrast
from ui import downloads, resources
from ui.importance_charts import difference_chart, pattern_mix_chart
from ui.state import bound, select
from ui.views import intro, metric_picker, selected

TOP_HEADS = 8  # heads listed under the difference heatmap (the CSV holds all)
GROUPING_TEXT = {"label": "class in the set (folder or label)",
                 "prediction": "predicted class"}

intro("Classes",
      "This page compares classes: for each class of the image set, how much each head "
      "matters on average, how far the heads look and which attention patterns they show.",
      "Pick two classes to see the heads that matter for the first but not for the second "
      "(red cells in the difference map); the tables below the charts hold every number.")
chosen = selected()
lm, ds = chosen.lm, chosen.ds


left, middle, right = st.columns(3)
with left:
    groupings = list(GROUPINGS) if lm.has_classes else ["label"]  # no predicted class
    group_by = bound("group_by", "label", st.radio, "Group images by", groupings,
                     format_func=GROUPING_TEXT.get, horizontal=True)
with middle:
    metric, _ = metric_picker(lm, "class_metric")
views = resources.whole_set_step(lm, ds, CLASS_VIEWS, "The class views", "classes_compute",
                                 ClassViewParams(group_by))
if views is None:
    st.stop()
classes = [int(c) for c in views["classes"]]
if len(classes) < 2:
    st.info(f"The image set has {len(classes)} class(es) by {GROUPING_TEXT[group_by]} "
            f"({int(views['unlabeled'])} unlabeled images left out): comparing classes "
            "needs two. Group by the predicted class, or use a labeled set.")
    st.stop()
all_names = class_names(lm, ds, ClassViewParams(group_by))
names = {c: all_names[c] for c in classes}
counts = dict(zip(classes, views["counts"].tolist()))
with right:
    first = bound("first_class", classes[0], st.selectbox, "First class", classes,
                  format_func=lambda c: f"{names[c]} ({counts[c]} images)")
    second = bound("second_class", classes[1], st.selectbox, "Second class", classes,
                   format_func=lambda c: f"{names[c]} ({counts[c]} images)")
if views["unlabeled"]:
    st.caption(f"{int(views['unlabeled'])} images without a label are left out.")

st.subheader(f"Heads that matter for {names[first]} but not for {names[second]}")
frame = contrast(views, first, second, metric)
left, right = st.columns([1, 1.2])
with left:
    st.markdown(f"**{METRIC_LABELS[metric]}: mean for {names[first]} minus mean for "
                f"{names[second]}**")
    downloads.chart(difference_chart(frame, names[first], names[second]),
                    "classes_difference", data=frame, width="content")
with right:
    shown = frame.head(TOP_HEADS).rename(columns={
        "first": f"{names[first]} (mean)", "second": f"{names[second]} (mean)",
        "standardised": "in pooled SDs"})
    st.markdown(f"**The {TOP_HEADS} heads with the largest difference** (select one to see "
                "it on every page)")
    picked = st.dataframe(shown.style.format(precision=4), hide_index=True,
                          on_select="rerun", selection_mode="single-row", key="classes_top")
    rows = picked.selection.rows if picked else []
    if rows:
        row = shown.iloc[rows[0]]
        select(layer=int(row["layer"]), head=int(row["head"]))
st.caption("Red: the head matters more for the first class; blue: for the second. Each "
           "value is a mean over the class's images (each on its own "
           f"{GROUPING_TEXT[group_by]}); 'pooled SDs' divides the difference by the spread "
           "within the two classes, so values above about 1 stand out from image noise.")

st.subheader("Pattern labels per class")
mix = pd.DataFrame([{"class": f"{names[c]} ({counts[c]})", "label": label,
                     "share": float(views["pattern_mix"][row, k])}
                    for row, c in enumerate(classes) for k, label in enumerate(LABEL_NAMES)])
downloads.chart(pattern_mix_chart(mix), "classes_patterns")
st.caption("The share of each class's heads x images given each pattern label "
           "(see the Patterns page). Similar bars: the heads show the same patterns "
           "whatever the class.")

st.subheader("How far heads look, per class")
strength = pd.DataFrame([{"class": names[c], "layer": layer,
                          "entropy": float(np.nanmean(views["entropy"][row, layer])),
                          "distance_px": float(np.nanmean(views["distance"][row, layer]))}
                         for row, c in enumerate(classes) for layer in range(lm.num_layers)])
downloads.chart(alt.Chart(strength).mark_line(point=True).encode(
    x=alt.X("layer:O", title="Layer"),
    y=alt.Y("distance_px:Q", title="Mean attention distance (px)"),
    color=alt.Color("class:N", title="Class", legend=alt.Legend(orient="bottom", labelLimit=0)),
    tooltip=["class", "layer", alt.Tooltip("distance_px:Q", format=".2f"),
             alt.Tooltip("entropy:Q", format=".3f")]), "classes_strength")
st.caption("Per layer, the mean over its heads and the class's images of the "
           "attention-weighted distance between patches (see the Strength page).")
