"""Classes page: do heads behave differently for different classes? (paper 001,
section 7; ``core.dataset.class_views``)."""
import streamlit as st

from core.analyses.importance import METRIC_COLUMNS, METRIC_LABELS, metric_names, shown
from core.analyses.interactions import top_heads
from core.dataset import CLASS_VIEWS
from core.dataset.class_views import (GROUPINGS, NO_CLASSES, ClassViewParams, against_the_rest,
                                      class_names, contrast, pattern_mix_frame,
                                      strength_per_layer)
from ui import downloads, resources
from ui.importance_charts import difference_chart, pattern_mix_chart
from ui.report_html import NOT_COMPUTED, Report, paragraph, section
from ui.state import bound, select_picked_head, table_row
from ui.strength_charts import class_distance_chart
from ui.views import intro, metric_picker, selected

HEADING = "Classes"

TOP_HEADS = 8  # heads listed under the difference heatmap (the CSV holds all)
GROUPING_TEXT = {"label": "class in the set (folder or label)",
                 "prediction": "predicted class"}


def render() -> None:
    """Draw the page."""
    intro(HEADING,
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
    if group_by == "label" and not ds.classes:  # nothing to compute the views for
        st.info(f"{NO_CLASSES}. "
                + ("Group the images by their predicted class above, or load" if lm.has_classes
                   else "Load")
                + " a folder with a subfolder per class, or flat with a labels.csv "
                  "(filename,label).")
        st.stop()
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
    for column in ("first", "second", "difference"):  # in the metric's shown unit
        frame[column] = shown(metric, frame[column])
    unit = METRIC_COLUMNS[metric]
    left, right = st.columns([1, 1.2])
    with left:
        st.markdown(f"**{METRIC_LABELS[metric]}: mean for {names[first]} minus mean for "
                    f"{names[second]}**")
        downloads.chart(difference_chart(frame, names[first], names[second]),
                        "classes_difference", width="content", data=frame.rename(columns={
                            "first": f"first_class_mean_{unit}",
                            "second": f"second_class_mean_{unit}",
                            "difference": f"difference_{unit}",
                            "standardised": "difference_in_pooled_sds"}))
    with right:
        top = frame.head(TOP_HEADS).rename(columns={
            "first": f"{names[first]} (mean)", "second": f"{names[second]} (mean)",
            "standardised": "in pooled SDs"})
        st.markdown(f"**The {TOP_HEADS} heads with the largest difference** (select one to see "
                    "it on every page)")
        picked = st.dataframe(top.style.format(precision=4), hide_index=True,
                              on_select="rerun", selection_mode="single-row", key="classes_top")
        row = table_row(picked)
        select_picked_head("classes_top", None if row is None or row >= len(top) else
                           {"layer": int(top["layer"].iloc[row]),
                            "head": int(top["head"].iloc[row])})
    st.caption("Red: the head matters more for the first class; blue: for the second. Each "
               "value is a mean over the class's images (each on its own "
               f"{GROUPING_TEXT[group_by]}); 'pooled SDs' divides the difference by the spread "
               "within the two classes, so values above about 1 stand out from image noise.")

    st.subheader("Pattern labels per class")
    downloads.chart(pattern_mix_chart(pattern_mix_frame(views, all_names)), "classes_patterns")
    st.caption("The share of each class's heads x images given each pattern label "
               "(see the Patterns page). Similar bars: the heads show the same patterns "
               "whatever the class.")

    st.subheader("How far heads look, per class")
    downloads.chart(class_distance_chart(strength_per_layer(views, all_names)),
                    "classes_strength")
    st.caption("Per layer, the mean over its heads and the class's images of the "
               "attention-weighted distance between patches (see the Strength page).")


def report(r: Report) -> str:
    """The heads that matter more for the image's class than for the others, when the
    class views of the set are in the cache (the page asks before computing them)."""
    group = r.ds.records[r.index].group
    if group not in r.ds.classes:
        return ""
    title = f"Heads of the class {group}"
    views = r.cached_step(CLASS_VIEWS)
    if views is None:
        return section(title, f"The class views over the image set: {NOT_COMPUTED}.", "")
    label, metric = r.ds.classes.index(group), metric_names(r.lm)[0]
    difference = against_the_rest(views, label, metric)
    if difference is None:
        return ""
    difference = shown(metric, difference)
    points, digits = ("percentage points", 1) if r.lm.has_classes else ("of the score s", 3)
    count = int(views["counts"][views["classes"].tolist().index(label)])
    return section(title, "Mean over the image set's classes, from the Classes page.",
                   paragraph(f"Heads that matter more for {group} than for the other classes "
                             f"(mean over its {count} images): "
                             + ", ".join(f"layer {l}, head {h} "
                                         f"(+{difference[l, h]:.{digits}f} {points})"
                                         for l, h in top_heads(difference, 3)) + "."))


if __name__ == "__main__":
    render()
