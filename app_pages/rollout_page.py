"""Rollout page: what the whole model attends to and how faithful each map is;
see SPEC "Attention aggregation" and "Faithfulness of explanations"."""
import pandas as pd
import streamlit as st

from core.analyses import ABLATION_MAP, EXPLANATIONS, FAITHFULNESS
from core.analyses.cost import ablation_forwards, automatic, faithfulness_forwards
from core.analyses.explanations import MAP_METHODS, drawn
from core.analyses.faithfulness import METHOD_NAMES, METRICS, curve_x, deletion_counts
from core.dataset import FAITHFULNESS_TABLE
from core.dataset.faithfulness_table import TableParams, shown_metrics
from core.dataset.sanity import SANITY, SanityParams, verdicts
from core.display.maps import heat_map
from core.display.predictions import explained_name
from core.explain import METHODS, RolloutParams
from core.explain.rollout import FUSIONS
from core.data.records import Dataset
from core.model import LoadedModel, ModelLoadError
from core.storage.cache import Arrays
from ui import downloads, resources
from ui.plain import plain
from ui.report_html import NOT_COMPUTED, Report, figure_row, paragraph, section
from ui.rollout_charts import (curves_chart, faithfulness_frame, layer_grid_chart, map_row,
                               sanity_chart)
from ui.state import bind, bound, select, setting
from ui.views import could_not_be_used, display_image, intro, selected_image

HEADING = "Attention rollout"


def render() -> None:
    """Draw the page."""
    intro(HEADING,
          "This page combines the attention of all layers into one map of the image regions the "
          "whole model relies on, with several methods side by side (patch ablation among them: the measured drop when each patch is removed), and scores how faithful each "
          "map is by removing the regions it ranks highest.",
          "Bright patches matter most to a method; in the table, a faithful map makes the "
          "model's score for what is explained drop fast when its top patches are deleted "
          "(low deletion AUC) and rise "
          "fast when they are revealed (high insertion AUC), better than the random map.")
    chosen = selected_image()
    lm, ds, index = chosen.lm, chosen.ds, chosen.index
    label = ds.records[index].label
    labels = [METHODS[name].label_for(lm) for name in METHOD_NAMES]

    st.subheader("The maps of each method")
    c1, c2, c3, c4 = st.columns(4)
    with c1:
        fusion = bound("fusion", FUSIONS[0], st.selectbox, "Head fusion (rollout)", list(FUSIONS),
                       key="ro_fusion", help="How the heads of a layer are combined before "
                                             "rolling out.")
    with c2:
        discard = bound("discard", 0.0, st.slider, "Discard ratio", key="ro_discard",
                        valid=lambda v: 0.0 <= v <= 0.95, min_value=0.0, max_value=0.95, step=0.05,
                        help="Share of the lowest patch-to-patch attention values set to zero in "
                             "every layer (CLS entries are never discarded).")
    with c3:
        start = bound("start", 0, st.slider, "Start layer", key="ro_start",
                      valid=lambda v: 0 <= v < lm.num_layers, min_value=0,
                      max_value=lm.num_layers - 1, help="Roll out from this layer to the last.")
    with c4:
        if lm.has_classes:
            explained = bound("explain", "predicted", st.radio, "Class explained (gradient methods)",
                              ["predicted", "true label"], key="ro_class", disabled=label is None,
                              help="Gradient rollout, relevance and patch ablation explain this "
                                   "class.")
        else:
            explained = "predicted"
            st.caption("No classes: the gradient methods and patch ablation explain the score s "
                       "on the reference embedding (the sidebar's reference image).")
    target = "label" if explained == "true label" and label is not None else "prediction"

    def show_maps(model: LoadedModel, params: RolloutParams, target: str, title: str) -> dict | None:
        """Draw the method maps of `model` on the selected image; its arrays (None
        when the image cannot be used)."""
        result = resources.analyse(model, ds, [index], EXPLANATIONS, params, target=target)
        if index not in result.arrays:
            could_not_be_used(ds.records[index].id, str(next(iter(result.skipped.values()))), title)
            return None
        arrays = result.arrays[index]
        image = display_image(model, ds, index)
        class_name = explained_name(model.class_names, int(arrays["class"]))
        captions = [METHODS[m].label_for(model) + (f" for {class_name}" if METHODS[m].class_specific
                                        else "") for m in MAP_METHODS]
        st.markdown(f"**{title}**: {model.name}, {model.num_layers} layers")
        map_row(image, [heat_map(values, model, image.shape[:2]) for values in drawn(arrays)],
                captions)
        downloads.csv(pd.DataFrame(drawn(arrays).T, columns=list(MAP_METHODS)).rename_axis(
            "patch"), "maps_" + title.lower().replace(" ", "_"),
            "Download the maps (CSV, a row per patch)")
        ablation = METHODS["ablation"]
        name = "ablation_" + title.lower().replace(" ", "_")
        if resources.on_request(model, "the patch ablation map", ablation_forwards(model), name):
            drop = resources.analyse(model, ds, [index], ABLATION_MAP, target=target
                                     ).arrays.get(index)
            if drop is not None:
                map_row(image, [heat_map(drop["map"], model, image.shape[:2])],
                        [f"{ablation.label_for(model)} for {class_name}"], len(MAP_METHODS))
                downloads.csv(pd.DataFrame({"ablation": drop["map"]}).rename_axis("patch"), name,
                              "Download the patch ablation map (CSV, a row per patch)")
        return arrays

    params = RolloutParams(discard_ratio=discard, start_layer=start, fusion=fusion)
    arrays = show_maps(lm, params, target, "Selected model")
    if arrays is not None:
        st.subheader("Layer by layer")
        st.caption("Each small map is one layer's attention to the patches, scaled to its own "
                   "maximum: top row, the CLS token's attention; bottom row, the score map (the "
                   "strongest attention each patch receives from any patch).")
        downloads.chart(layer_grid_chart(lm, arrays["layer_cls"], arrays["layer_score"]),
                        "layer_maps", width="content")

    st.subheader("How faithful is each map?")
    mine = None
    if resources.on_request(lm, "the faithfulness scores of this image",
                            faithfulness_forwards(lm), "faithfulness_image_compute"):
        with st.spinner(f"Scoring this image's maps ({faithfulness_forwards(lm):,} forward "
                        "passes at most)..."):
            mine = resources.analyse(lm, ds, [index], FAITHFULNESS).arrays.get(index)
    if mine is not None:
        st.markdown(f"**This image** ({plain(ds.records[index].id)}, explaining "
                    f"{explained_name(lm.class_names, int(mine['class']))})")
        downloads.table(faithfulness_frame({m: mine[m] for m in shown_metrics(mine)}, labels,
                                           METRICS), "faithfulness_image", number_format="{:.3f}",
                        width="stretch")
    sample = bound("sample", TableParams().sample, st.number_input,
                   "Images scored for the set's table (0 = every image)", key="ro_sample",
                   valid=lambda v: isinstance(v, int) and v >= 0, min_value=0, step=50,
                   help="A sample with the same share of each class as the set; its 95% "
                        "intervals say how far the whole set's means may lie.")
    table = resources.whole_set_step(lm, ds, FAITHFULNESS_TABLE, "The table over the image set",
                                     "faithfulness_compute", TableParams(int(sample)))
    if table is not None:
        st.markdown(f"**Image set** (a sample of {int(table['images'])} of {len(ds)} images, "
                    "the same share of each class; each image explains its predicted class "
                    "with the default settings: mean fusion, no discard, first layer)")
        downloads.table(faithfulness_frame({m: table[m] for m in shown_metrics(table)}, labels,
                                           METRICS), "faithfulness", number_format="{:.3f}",
                        width="stretch")
        st.caption("How sure these means are (95% bootstrap interval over the sampled "
                   "images, low to high):")
        downloads.table(faithfulness_frame(
            {m: [f"{lo:.3f} to {hi:.3f}" for lo, hi in zip(table[m + "_low"], table[m + "_high"])]
             for m in shown_metrics(table)}, labels, METRICS), "faithfulness_interval",
            width="stretch")
        measured = ("the predicted-class probability" if lm.has_classes else
                    "the score s on the reference embedding")
        kept = ("the share of images whose top class is unchanged" if lm.has_classes else
                "the mean score s")
        st.caption("Arrows: ↑ higher is better, ↓ lower is better. Deletion/insertion: area "
                   f"under {measured} as patches are removed (set to the mean colour) or "
                   f"revealed from a blurred copy. Positive/negative perturbation: area under "
                   f"{kept} as 10%..90% of the patches are removed, most (positive) or least "
                   "(negative) relevant first. ROAD: area under "
                   f"{measured} as 10%..90% of the patches are removed, most (most-first) or "
                   "least (least-first) relevant first, their pixels filled from their "
                   "neighbours instead of a colour (so the fill itself changes less)."
                   + (" Pointing game: share of images whose brightest patch lies on the garment; "
                      "IoU: overlap of the above-average patches with the garment."
                      if int(table["masked"]) else " This image set has no object masks, so no "
                      "localisation scores."))
    if mine is not None:
        g = lm.grid[0] * lm.grid[1]
        what = (f"probability of {lm.class_names[int(mine['class'])]}" if lm.has_classes else
                "score s on the reference embedding")
        st.markdown(f"**This image**: {what} as the "
                    "patches each method ranks highest are removed or revealed")
        downloads.chart(curves_chart({"Deletion (lower area is better)": mine["deletion_curve"],
                                      "Insertion (higher area is better)": mine["insertion_curve"]},
                                     curve_x(deletion_counts(g), g), labels,
                                     lm.class_names[int(mine["class"])] if lm.has_classes
                                     else None),
                        "deletion_insertion",
                        width="content")

    sanity_section(lm, ds, labels)

    st.subheader("Compare with another model")
    other_spec, other_checkpoint = setting("model2", ""), setting("checkpoint2", "")
    bind("ro_model", "model2")
    bind("ro_checkpoint", "checkpoint2")
    with st.form("ro_compare"):
        st.text_input("Second model", key="ro_model",
                      help="'demo' or a timm model name, e.g. deit_tiny_patch16_224")
        st.text_input("Its checkpoint file (optional)", key="ro_checkpoint")
        st.form_submit_button("Compare", on_click=lambda: select(
            model2=st.session_state["ro_model"].strip(),
            checkpoint2=st.session_state["ro_checkpoint"].strip()))
    if other_spec.strip():
        try:
            other = resources.model(other_spec.strip(), other_checkpoint.strip())
        except (ModelLoadError, ValueError, OSError) as err:
            st.error(plain(f"The second model could not be loaded: {err}"))
        else:
            same_classes = other.class_names == lm.class_names and lm.has_classes
            other_params = RolloutParams(discard, min(start, other.num_layers - 1), fusion)
            show_maps(other, other_params, target if same_classes else "prediction",
                      "Second model")
            if not same_classes and target == "label":
                st.caption("The second model has other classes: its maps explain its prediction.")


def sanity_section(lm: LoadedModel, ds: Dataset, labels: list[str]) -> None:
    """The sanity checks over a sample of the set: similarity over the cascade, and a
    verdict per method (SPEC "Sanity checks of explanations")."""
    st.subheader("Do the maps depend on the model? (sanity checks)")
    st.caption("A copy of the model is re-initialised layer by layer from the top and every "
               "method explains the same images again. A map that stays the same while the "
               "model is destroyed shows the image, not the model.")
    sample = bound("sanity_sample", SanityParams().sample, st.number_input,
                   "Images checked (0 = every image)", key="ro_sanity_sample",
                   valid=lambda v: isinstance(v, int) and v >= 0, min_value=0, step=10,
                   help="A sample with the same share of each class as the set.")
    arrays = resources.whole_set_step(lm, ds, SANITY, "The sanity check", "sanity_compute",
                                      SanityParams(int(sample)))
    if arrays is None:
        return
    steps = [str(s) for s in arrays["steps"]]
    downloads.chart(sanity_chart(steps, {"Spearman": arrays["spearman"],
                                         "SSIM": arrays["ssim"]}, labels),
                    "sanity_similarity", width="content")
    said = verdicts(arrays)
    names = list(METHOD_NAMES)
    downloads.table(pd.DataFrame(
        [{"method": labels[m],
          "Spearman, all re-initialised": round(float(arrays["spearman"][-1][m]), 3),
          "SSIM, all re-initialised": round(float(arrays["ssim"][-1][m]), 3),
          "Spearman to a random map": round(float(arrays["spearman_floor"][m]), 3),
          "verdict": said[name]}
         for m, name in enumerate(names) if name in said]).set_index("method"),
        "sanity_verdicts", width="stretch")
    st.caption(f"Over {int(arrays['images'])} images. 1 = the same map as the untouched "
               "model's; a method whose Spearman stays above 0.5 when every layer is "
               "re-initialised survives randomisation: read its maps with care. The random "
               "map (the baseline) ignores the model by construction.")


def report(r: Report) -> str:
    """Every method's map of the whole model, patch ablation's when the page computes it
    at once or the cache holds it."""
    lm = r.lm
    maps = drawn(r.arrays(EXPLANATIONS))
    figures = [(r.heat(values), METHODS[method].label_for(lm))
               for method, values in zip(MAP_METHODS, maps)]
    ablation = r.cached(ABLATION_MAP)
    if ablation is None and automatic(lm, ablation_forwards(lm)):
        ablation = r.arrays(ABLATION_MAP)
    label = METHODS["ablation"].label_for(lm)
    if ablation is not None:
        figures.append((r.heat(ablation["map"]), label))
    return section(
        "What the whole model looks at",
        "Each map combines the attention of all layers in its own way; bright patches "
        + ("matter most for the predicted class." if lm.has_classes else
           "matter most for the image's embedding (its score s on itself).")
        + ("" if ablation is not None else
           f" {label} ({ablation_forwards(lm):,} forward passes): {NOT_COMPUTED}."),
        figure_row(figures) + paragraph(road_text(lm, r.cached(FAITHFULNESS)), muted=True)
        + paragraph(sanity_text(lm, r.cached_step(SANITY)), muted=True))


def road_text(lm: LoadedModel, scores: Arrays | None) -> str:
    """This image's ROAD and deletion AUCs per method in one sentence (None: not
    computed)."""
    if scores is None:
        return f"How faithful each map is (ROAD, deletion): {NOT_COMPUTED}."
    return ("How faithful each map is, area under the explained class's probability as its "
            "top patches are removed (lower is better), ROAD (filled from their neighbours) "
            "and deletion (mean colour): " + "; ".join(
                f"{METHODS[name].label_for(lm)} {scores['road_most'][m]:.3f} and "
                f"{scores['deletion'][m]:.3f}" for m, name in enumerate(METHOD_NAMES)) + ".")


def sanity_text(lm: LoadedModel, arrays: Arrays | None) -> str:
    """The sanity checks' verdicts in one sentence (`arrays`: the step's result, None
    when not computed)."""
    if arrays is None:
        return f"Sanity checks (do the maps depend on the model?): {NOT_COMPUTED}."
    said = verdicts(arrays)
    return (f"Sanity checks over {int(arrays['images'])} images, Spearman of each map to "
            "the untouched model's once every layer is re-initialised: " + "; ".join(
                f"{METHODS[name].label_for(lm)} {arrays['spearman'][-1][m]:.2f} ({said[name]})"
                for m, name in enumerate(METHOD_NAMES) if name in said) + ".")


if __name__ == "__main__":
    render()
