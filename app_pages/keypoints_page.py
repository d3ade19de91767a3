"""Keypoints page: attention against SIFT keypoints, and the images whose explanation
lies outside the object; see SPEC "Keypoints and spurious correlations"."""
from functools import partial

import pandas as pd
import streamlit as st

from core.analyses import KEYPOINTS, OBJECTS, PROMPT, SIFT, SPURIOUS
from core.analyses.cost import ablation_forwards
from core.analyses.faithfulness import METHOD_NAMES
from core.analyses.keypoints import has_keypoints
from core.analyses.objects import OBJECT_SOURCES
from core.analyses.prompt import PROMPT_OBJECTS, PromptParams
from core.analyses.spurious import DEFAULT_METHOD
from core.data.records import Dataset
from core.dataset import KEYPOINT_LIFT, PROMPT_RATES, SPURIOUS_RANKING
from core.dataset.prompt_rates import best_alpha, in_words
from core.explain import METHODS
from core.model import LoadedModel
from core.storage.cache import Arrays
from core.training import guided_results
from ui import downloads, resources
from ui.downloads import chart_png, figure_png
from ui.keypoints_charts import (FILL_CHANGES, FILLED_TOP, PROBABILITY, SCORE,
                                 interrelation_frame, keypoints_figure, layer_lift_chart,
                                 lift_heatmap, prompt_rates_chart, shown_ranking)
from ui.report_html import (NOT_COMPUTED, Report, figure_row, paragraph, section,
                             table_html)
from ui.state import bound, new_pick, select, select_clicked_head, table_row
from ui.views import could_not_be_used, intro, selected_image, thumbnail

HEADING = "Keypoints and shortcuts"

RANKED_ROWS = 25  # images shown in the ranking (the CSV holds all)
RANKED_ROW_PX = 80  # a ranking row: its thumbnail large enough to show a small marker
# the ranking's column widths (px): up to FILL_CHANGES they fit a 1,400 px window
RANKED_WIDTHS = {"thumbnail": 84, "image": 170, "predicted": 100, FILLED_TOP: 150,
                 FILL_CHANGES: 130, PROBABILITY: 200, SCORE: 200, "outside object (%)": 130}


def render() -> None:
    """Draw the page."""
    intro(HEADING,
          "This page compares where the attention heads look with the SIFT keypoints of the "
          "image (corners and blobs, the places classic vision finds informative), and lists "
          "the images whose explanation lies mostly outside the object, a sign that the model "
          "uses a shortcut such as a watermark or the background.",
          "A lift above 1 means a head gives the keypoint patches more attention than chance; "
          "in the ranking, a high share outside the object together with a prediction that "
          "weakens when the outside is filled with the mean colour is a likely shortcut.")
    chosen = selected_image()
    lm, ds, index, layer, head = chosen.lm, chosen.ds, chosen.index, chosen.layer, chosen.head
    one, mine = chosen.arrays(KEYPOINTS), chosen.arrays(OBJECTS)  # (not the maps: costly)
    points = chosen.arrays(SIFT)["keypoints"]
    object_source = OBJECT_SOURCES[int(mine["object_source"])]
    if not ds.has_objects:
        st.info("This image set has no object masks, so the patches holding keypoints stand in "
                "for the object. Put binary PNG masks named like the images in a masks/ folder "
                "beside them to give the objects.")
    if ds.mask_problems:
        with st.expander(f"{len(ds.mask_problems)} image(s) without a usable mask"):
            st.text("\n".join(f"{name}: {why}" for name, why in ds.mask_problems))

    left, right = st.columns([1, 1.3])
    with left:
        st.subheader("Keypoints of this image")
        image, _ = resources.model_input(lm, ds, index)  # readable: selected_image showed it
        downloads.figure(keypoints_figure(lm.to_display(image), points, lm.grid,
                                          lm.patch_size, mine["inside"]),
                         "keypoints",
                         pd.DataFrame(points, columns=["x_px", "y_px", "response",
                                                                 "size_px"]))
        count = len(points)
        object_text = {"mask": "its object mask", "keypoints": "the keypoint patches (no mask)",
                       "none": "nothing: no mask and no keypoint"}[object_source]
        st.caption(f"{count} SIFT keypoint(s) (red circles, the size SIFT gives them) on the "
                   f"{lm.grid[0]} x {lm.grid[1]} patch grid (blue lines); {100 * float(one['chance']):.0f}% "
                   f"of the patches hold one (chance level). Hatched patches are outside the "
                   f"object, which comes from {object_text}.")
    with right:
        if not has_keypoints(one):
            st.subheader("Attention on keypoint patches")
            st.info("SIFT finds no keypoint in this image (it is flat or has no structure), so "
                    "there is no keypoint attention to measure.")
        else:
            st.subheader("Attention on keypoint patches, every head")
            select_clicked_head("keypoint_lift", downloads.chart(
                lift_heatmap(one["lift"], layer, head, "Lift over chance"), "keypoint_lift",
                data=pd.DataFrame(one["lift"]).rename_axis("layer").rename(
                    columns=lambda h: f"head {h}"), on_select="rerun", width="content"))
            st.caption("Lift = the share of the CLS token's attention (over the patches) that "
                       "lands on keypoint patches, divided by their share of the patches. 1 is "
                       "chance; 2 means twice as much attention as chance. Click a cell to "
                       "select that head.")

    if has_keypoints(one):
        st.subheader(f"Layer {layer}, head {head}: where attention goes between patches")
        downloads.table(interrelation_frame(one["interrelation"][layer, head], one["bin_share"]),
                        "keypoint_interrelation", number_format="{:.1f}")
        st.caption("Patches fall in three groups by their keypoint count: none, at or below the "
                   "median count, above it. Each row gives the percentage of a patch's attention "
                   "to other patches that goes to each group, averaged over the patches of the "
                   "row's group; the last row is each group's share of the patches, what "
                   "attention spread evenly would give.")

    st.subheader("Lift per layer over the image set")
    lift = resources.whole_set_step(lm, ds, KEYPOINT_LIFT, "The lift over all images",
                                    "keypoints_compute")
    if lift is not None:
        downloads.chart(layer_lift_chart(lift["layer_mean"], lift["layer_std"]), "lift_by_layer",
                        data=pd.DataFrame({"mean lift": lift["layer_mean"],
                                           "std": lift["layer_std"]}).rename_axis("layer"))
        st.caption(f"Per layer, the lift averaged over its heads: mean over "
                   f"{int(lift['images'])} images (line) and +-1 standard deviation (band)"
                   + (f"; {int(lift['without_keypoints'])} image(s) without keypoints are left "
                      "out" if int(lift["without_keypoints"]) else "") + ".")

    st.subheader("Images whose explanation lies outside the object")
    labels = {name: METHODS[name].label_for(lm) for name in METHOD_NAMES}
    method = bound("method", DEFAULT_METHOD, st.selectbox, "Explanation scored",
                   list(METHOD_NAMES), format_func=labels.get,
                   help="The map whose share outside the object orders the images.")
    ranked = resources.whole_set_step(lm, ds, SPURIOUS_RANKING, "The ranking over all images",
                                      "spurious_compute")
    if ranked is not None:
        m = METHOD_NAMES.index(method)
        per_image = resources.analyse(lm, ds, [int(i) for i in ranked["order"][m]], SPURIOUS).arrays
        order = [int(i) for i in ranked["order"][m] if int(i) in per_image]

        def row(i: int) -> dict:
            a = per_image[i]
            record = ds.records[i]
            if not lm.has_classes:  # SPEC "Models without class scores": the score s
                return {"image": record.id, "class in the set": record.group or "",
                        "outside object (%)": 100 * float(a["score"][m]),
                        "score before": float(a["probability_before"]),
                        "score without outside": float(a["probability_after"]),
                        "object from": OBJECT_SOURCES[int(a["object_source"])]}
            return {"image": record.id,
                    "true class": (lm.class_names[record.label]
                                   if record.label is not None else "none known"),
                    "predicted": lm.class_names[int(a["top_before"])],
                    "outside object (%)": 100 * float(a["score"][m]),
                    "probability before (%)": 100 * float(a["probability_before"]),
                    "probability without outside (%)": 100 * float(a["probability_after"]),
                    "prediction without outside": lm.class_names[int(a["top_after"])],
                    "changes": bool(a["top_after"] != a["top_before"]),
                    "object from": OBJECT_SOURCES[int(a["object_source"])]}

        full = pd.DataFrame([row(i) for i in order])
        shown = shown_ranking(full.head(RANKED_ROWS), lm.has_classes)
        shown.insert(0, "thumbnail", [thumbnail(lm, ds, i) for i in order[:RANKED_ROWS]])
        changed = 100 * float(ranked["changed"])
        filled = ("the patches outside the object filled with the set's mean colour (the "
                  "removal of the faithfulness tests)")
        helps = {FILLED_TOP: f"The top-1 class with {filled}.",
                 FILL_CHANGES: f"Whether the fill changes the top-1 class. The fill alone "
                               f"changes {changed:.1f}% of the set's predictions, so a change "
                               "is weak evidence of a shortcut.",
                 PROBABILITY: "The probability of the predicted class, as is → with the "
                              "outside filled. A fall: the outside carried the prediction.",
                 SCORE: f"Score s on the image's own embedding, as is → with {filled} (1 = "
                        "unchanged).",
                 "outside object (%)": f"The share of the {labels[method]} map outside the "
                                       "object (negative values count as 0): the order."}
        config = {c: st.column_config.Column(c, width=RANKED_WIDTHS.get(c), help=helps.get(c))
                  for c in shown}
        config["thumbnail"] = st.column_config.ImageColumn("thumbnail",
                                                           width=RANKED_WIDTHS["thumbnail"])
        config["outside object (%)"] = st.column_config.NumberColumn(
            "outside object (%)", format="%.1f", width=RANKED_WIDTHS["outside object (%)"],
            help=helps["outside object (%)"])
        st.dataframe(shown, key="spurious_table",
                     on_select=partial(pick_ranked, list(shown["image"])),
                     selection_mode="single-row",
                     hide_index=True, width="stretch", row_height=RANKED_ROW_PX,
                     column_config=config)
        downloads.csv(full, f"spurious_{method}", "Download the whole ranking (CSV)")
        st.caption(f"The {min(RANKED_ROWS, len(order))} of {len(order)} images with the largest "
                   f"share of the {labels[method]} map outside the object (negative values "
                   f"count as 0), with the prediction again with {filled}. Click a row to "
                   "select that image. "
                   + (f"The fill is not neutral: on its own it changes {changed:.1f}% of all "
                      f"{len(order)} predictions of the set, so a changed top-1 is weak "
                      "evidence of a shortcut; a probability of the predicted class that falls "
                      "with the fill is stronger." if lm.has_classes else
                      "Scores: s on the reference embedding, as is and with the outside "
                      "filled (1 = the reference itself)."))

    prompt_section(lm, ds, index)
    training_section()


def pick_ranked(ids: list[str]) -> None:
    """A click on a ranking row (`ids`: the rows' images) selects its image before the
    run it starts: one run a click, not a second one to show the selection."""
    picked = new_pick("spurious_table", table_row(st.session_state["spurious_table"]))
    if picked is not None and picked < len(ids):
        select(image=ids[picked])


def prompt_section(lm: LoadedModel, ds: Dataset, index: int) -> None:
    """The attention prompt (SPEC "Prompting at inference"): the selected image's
    prediction with it, and on a set with a known shortcut how often it corrects it."""
    st.subheader("Pointing the model at the object (attention prompt)")
    st.caption("In every layer the patches outside the object get less weight as keys (0: "
               "no patch attends to them; 1: the model as it is), so the model has to decide "
               "from the object. Unlike filling the outside with grey, it adds nothing the "
               "model never saw.")
    forwards = ablation_forwards(lm) + len(PROMPT_OBJECTS) * len(PromptParams().alphas)
    if not resources.on_request(lm, "the prompted predictions", forwards, "prompt_compute"):
        return
    arrays = resources.analyse(lm, ds, [index], PROMPT).arrays.get(index)
    spurious = resources.analyse(lm, ds, [index], SPURIOUS).arrays.get(index)
    if arrays is None or spurious is None:
        could_not_be_used(ds.records[index].id, "it could not be read", "the prompt")
        return
    downloads.table(prompt_frame(lm, arrays, spurious), "prompt", width="content")
    if ds.relies is None or not lm.has_classes:
        return
    rates = resources.whole_set_step(lm, ds, PROMPT_RATES, "How often the prompt fixes the "
                                     "shortcut", "prompt_rates_compute")
    if rates is None:
        return
    downloads.chart(prompt_rates_chart(rates["alphas"], rates["fix"], rates["keep"],
                                       PROMPT_OBJECTS), "prompt_rates")
    st.markdown(rates_text(rates))
    st.caption("Corrected: the prompted prediction is the one the model gives the same image "
               "without the marker. Filling the outside with grey instead corrects "
               f"{100 * float(rates['pixel_fix']):.0f}% and leaves "
               f"{100 * float(rates['pixel_keep']):.0f}% of the others unchanged.")


def training_section() -> None:
    """Keypoint-guided training (SPEC "Keypoint-guided training"), as measured on the
    built-in demo by ``python -m bench.guided_training`` (``core.training``)."""
    st.subheader("Training on the keypoint patches only (measured on the built-in demo)")
    st.caption("Keypoints can also make training cheaper: each training image shows the model "
               "only a share of its patches, those with the most keypoints, or random ones as "
               "the comparison; the test images are always seen whole. The table is one run "
               "on the built-in demo (Fashion-MNIST), whatever model is loaded now.")
    results = guided_results.load()
    if results is None:
        st.info("No measurement is shipped with this copy: run "
                "python -m bench.guided_training --save demo/guided_training.json.")
        return
    downloads.table(guided_results.table(results), "guided_training", hide_index=True)
    st.markdown(guided_results.in_words(results))
    st.caption(guided_results.provenance(results))


def prompt_frame(lm: LoadedModel, arrays: Arrays, spurious: Arrays) -> pd.DataFrame:
    """One row per way of looking: as is, the outside filled grey, and the prompt for
    each object and alpha, with the top-1 and the explained class's probability (%)."""
    def named(top: int) -> str:
        return lm.class_names[top] if lm.has_classes else ""

    scale = 100 if lm.has_classes else 1
    what = "probability of the class predicted as is (%)" if lm.has_classes else "score s"
    rows = [{"input": "as is", "top-1": named(int(spurious["top_before"])),
             what: scale * float(spurious["probability_before"])},
            {"input": "outside filled grey", "top-1": named(int(spurious["top_after"])),
             what: scale * float(spurious["probability_after"])}]
    for o, name in enumerate(PROMPT_OBJECTS):
        for a, alpha in enumerate(PromptParams().alphas):
            rows.append({"input": f"prompt, inside = {name}, outside weight {alpha:g}",
                         "top-1": named(int(arrays["top"][o, a])),
                         what: scale * float(arrays["probability"][o, a])})
    return pd.DataFrame(rows).set_index("input")


def report(r: Report) -> str:
    """The image's keypoints and their lift per head; the share of the default map
    outside the object and the prediction without it, when the cache holds them."""
    lm = r.lm
    keypoints, objects = r.arrays(KEYPOINTS), r.arrays(OBJECTS)
    points = r.arrays(SIFT)["keypoints"]
    figures = [(figure_png(keypoints_figure(lm.to_display(r.batch[0]), points,
                                            lm.grid, lm.patch_size, objects["inside"])),
                f"{len(points)} SIFT keypoints (red) on the patch grid; "
                "hatched patches are outside the object")]
    if has_keypoints(keypoints):
        figures.append((chart_png(lift_heatmap(keypoints["lift"], r.layer, r.head,
                                               "Lift over chance")),
                        "Attention on keypoint patches per head (1 = chance)"))
    body = figure_row(figures) + paragraph(prompt_text(lm, r.cached(PROMPT)), muted=True)
    if r.ds.relies is not None and lm.has_classes:
        body += paragraph(rates_text(r.cached_step(PROMPT_RATES)), muted=True)
    results = guided_results.load()
    if results is not None:
        body += (paragraph("Training on the keypoint patches only, measured on the built-in "
                           "demo: " + guided_results.in_words(results))
                 + table_html(guided_results.table(results))
                 + paragraph(guided_results.provenance(results), muted=True))
    return section("Keypoints and shortcuts", shortcut_text(lm, r.cached(SPURIOUS)), body)


def rates_text(rates: Arrays | None) -> str:
    """How often the prompt fixes the set's known shortcut (None: not computed)."""
    if rates is None:
        return f"How often the attention prompt fixes the shortcut: {NOT_COMPUTED}."
    return " ".join(in_words(rates, o, best_alpha(rates, o)) for o in range(len(PROMPT_OBJECTS)))


def prompt_text(lm: LoadedModel, arrays: Arrays | None) -> str:
    """The prompted predictions of an image in one sentence (None: not computed)."""
    if arrays is None:
        return f"The attention prompt (the outside patches down-weighted): {NOT_COMPUTED}."
    parts = []
    for o, name in enumerate(PROMPT_OBJECTS):
        for a, alpha in enumerate(PromptParams().alphas):
            top = (f"{lm.class_names[int(arrays['top'][o, a])]}, " if lm.has_classes else "")
            value = float(arrays["probability"][o, a])
            parts.append(f"{name} {alpha:g}: {top}"
                         + (f"{100 * value:.1f}%" if lm.has_classes else f"s = {value:.3f}"))
    return ("The attention prompt, per inside and weight of the outside patches (1 = as "
            "is): " + "; ".join(parts) + ".")


def shortcut_text(lm: LoadedModel, spurious: Arrays | None) -> str:
    """What the spurious scores of an image say (`spurious`: its results, None when not
    computed)."""
    label = METHODS[DEFAULT_METHOD].label_for(lm)
    if spurious is None:
        return f"The share of the {label} map outside the object: {NOT_COMPUTED}."
    m = METHOD_NAMES.index(DEFAULT_METHOD)
    before, after = int(spurious["top_before"]), int(spurious["top_after"])
    outside = (f"{100 * float(spurious['score'][m]):.1f}% of the {label} map lies outside the "
               f"object (from {OBJECT_SOURCES[int(spurious['object_source'])]}). ")
    if not lm.has_classes:
        return (outside + "With the outside removed, the score s of the image on its own "
                f"embedding goes from {float(spurious['probability_before']):.3f} to "
                f"{float(spurious['probability_after']):.3f} (1 = unchanged).")
    return (outside + f"With the outside removed, the probability of "
            f"{lm.class_names[int(spurious['class'])]} goes from "
            f"{100 * float(spurious['probability_before']):.1f}% to "
            f"{100 * float(spurious['probability_after']):.1f}% and the prediction "
            + ("stays " + lm.class_names[before] if before == after else
               f"changes from {lm.class_names[before]} to {lm.class_names[after]}") + ".")


if __name__ == "__main__":
    render()
