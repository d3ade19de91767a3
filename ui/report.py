"""A one-file HTML report for one image: predictions, the selected head's
attention, head importance, head interactions and the fast estimate (with the class's
heads when the set's class views are cached), attention strength, the head's pattern,
the rollout maps (patch ablation among them) and the keypoint and shortcut reading. Everything is embedded (PNG as base64), so it opens in any
browser without the app or a network. The analyses come from the engine (and
its cache); this module only lays them out."""
from __future__ import annotations

import base64
import html
from datetime import datetime, timezone

import numpy as np

from core.analyses import ANALYSES
from core.analyses.explanations import MAP_METHODS, drawn
from core.analyses.faithfulness import METHOD_NAMES
from core.analyses.keypoints import has_keypoints
from core.analyses.objects import OBJECT_SOURCES
from core.analyses.spurious import DEFAULT_METHOD
from core.analyses.importance import METRIC_AXES, METRIC_LABELS, METRICS, metric_names
from core.analyses.pattern_labels import describe
from core.analyses.patterns import DEFAULT_TOP_PERCENT
from core.data.inputs import load_batch
from core.data.records import Dataset
from core.display.head_detail import head_matrix, top_percent_threshold
from core.display.maps import heat_map
from core.display.predictions import most_similar, top_k
from core.dataset import CLASS_VIEWS
from core.dataset.statistics import spearman
from core.engine import run, run_step
from core.explain import METHODS
from core.model import LoadedModel
from core.storage.cache import ArrayCache
from ui.charts import overlay, predictions_chart
from ui.downloads import chart_png, figure_png, image_png
from ui.importance_charts import heads_chart, interaction_chart
from ui.keypoints_charts import keypoints_figure, lift_heatmap
from ui.patterns_charts import heatmap_figure
from core.analyses.strength import evenly_spread
from ui.strength_charts import heads_scatter, strength_bars
from ui.views import enlarged

STYLE = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}
h1{margin-bottom:0}section{margin:2em 0}img{max-width:100%}.row{display:flex;gap:1em;
flex-wrap:wrap}.row figure{margin:0;flex:1;min-width:200px}figcaption{color:#555;
font-size:.9em}table{border-collapse:collapse}td,th{padding:.2em .8em;border-bottom:1px solid
#ddd;text-align:left}.muted{color:#666}"""


def img_tag(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def figure_row(items: list[tuple[bytes, str]]) -> str:
    return '<div class="row">' + "".join(
        f"<figure>{img_tag(png, caption)}<figcaption>{html.escape(caption)}</figcaption></figure>"
        for png, caption in items) + "</div>"


def section(title: str, intro: str, body: str) -> str:
    return (f"<section><h2>{html.escape(title)}</h2><p>{html.escape(intro)}</p>{body}"
            "</section>")


def one(lm: LoadedModel, ds: Dataset, index: int, name: str,
        cache: ArrayCache | None) -> dict[str, np.ndarray]:
    """Analysis `name` of the registry for image `index`, default parameters and target
    (the same cache entries as the pages and the precompute)."""
    result = run(lm, ds, [index], ANALYSES[name], cache=cache)
    if index not in result.arrays:
        raise ValueError(f"Image {ds.records[index].id}: {next(iter(result.skipped.values()))}")
    return result.arrays[index]


def class_note(lm: LoadedModel, ds: Dataset, group: str | None,
               cache: ArrayCache | None) -> str:
    """The heads that matter most for the image's class in the set against the other
    classes, when the class views of the set are in the cache (never computed for a
    report)."""
    views = run_step(lm, ds, CLASS_VIEWS, cache=cache, compute=False).arrays
    if views is None or group not in ds.classes:
        return ""
    label = ds.classes.index(group)
    if label not in views["classes"].tolist():
        return ""
    row = views["classes"].tolist().index(label)
    prob = views["importance_mean"][:, METRICS.index("prob")]
    others = np.delete(prob, row, axis=0).mean(0) if len(prob) > 1 else np.zeros_like(prob[0])
    difference = prob[row] - others
    top = np.dstack(np.unravel_index(np.argsort(-difference, axis=None)[:3], difference.shape))[0]
    return ("<p>" + html.escape(
        f"Heads that matter more for {group} than for the other classes "
        f"(mean over its {int(views['counts'][row])} images): "
        + ", ".join(f"layer {l}, head {h} (+{100 * difference[l, h]:.1f} points)"
                    for l, h in top) + ".") + "</p>")


def similar_text(lm: LoadedModel, ds: Dataset, index: int, forward: dict[str, np.ndarray],
                 cache: ArrayCache | None) -> str:
    """For a model without classes: the images most similar to image `index` among
    those whose embeddings are in the cache (the report computes no whole-set step)."""
    cached = run(lm, ds, list(range(len(ds))), ANALYSES["forward"], cache=cache,
                 compute=False).arrays
    embeddings = {i: a["logits"] for i, a in cached.items()} | {index: forward["logits"]}
    similar = most_similar(embeddings, index)
    found = (" Most similar images of the set (cosine similarity of the embeddings, among "
             f"the {len(embeddings)} computed): "
             + ", ".join(f"{ds.records[s.index].id} ({s.cosine:.3f})" for s in similar) + "."
             if similar else "")
    return ("The model has no classes: it is explained by similarity to a reference "
            "embedding, here the image's own." + found)


def image_report(lm: LoadedModel, ds: Dataset, index: int, layer: int, head: int,
                 cache: ArrayCache | None = None) -> str:
    """The HTML text of the report for image `index` and head (`layer`, `head`)."""
    record = ds.records[index]
    true_name = None if record.label is None else lm.class_names[record.label]
    forward = one(lm, ds, index, "forward", cache)
    batch, _, _ = load_batch(lm, ds, [index])
    image = enlarged(lm.to_display(batch[0]))

    def heat(values: np.ndarray) -> bytes:
        return image_png(overlay(image, heat_map(values, lm, image.shape[:2])))

    figures = figure_row([(image_png((255 * image).astype(np.uint8)), f"Image {record.id}"),
                          (heat(forward["cls_attention"][layer, head]),
                           f"Where head {head} of layer {layer} looks (CLS attention; bright "
                           "= more)")])
    if lm.has_classes:
        parts = [section(
            "What the model predicts",
            "The five most likely classes, in percent; the green bar is the true class.",
            figures + img_tag(chart_png(predictions_chart(
                top_k(forward["logits"], lm.class_names), true_name)), "top-5 predictions"))]
    else:
        parts = [section("What the model sees", similar_text(lm, ds, index, forward, cache),
                         figures)]

    values = one(lm, ds, index, "importance", cache)["importance"]
    first = metric_names(lm)[0]
    prob = values[0]  # the probability drop, or the score drop s - s'
    unit = 100 if lm.has_classes else 1
    points = "percentage points" if lm.has_classes else "of the score s"
    top = np.dstack(np.unravel_index(np.argsort(-prob, axis=None)[:3], prob.shape))[0]
    parts.append(section(
        "Which heads matter",
        "Each head is switched off in turn and the drop in "
        + ("the probability of the true class" if true_name else
           "the probability of the predicted class" if lm.has_classes else
           "the score s of the image on its own embedding")
        + " is measured (higher = the head matters more). Most important here: "
        + ", ".join(f"layer {l}, head {h} ({unit * prob[l, h]:.{1 if lm.has_classes else 3}f} "
                    f"{points})" for l, h in top)
        + ".",
        img_tag(chart_png(heads_chart(prob, None, METRIC_AXES[first], (layer, head),
                                      percent=lm.has_classes)),
                "importance of every head")))

    estimate = one(lm, ds, index, "importance_estimate", cache)
    pairs = one(lm, ds, index, "interactions", cache)
    strongest = np.unravel_index(np.argmax(np.abs(pairs["interaction"][0])),
                                 pairs["interaction"][0].shape)
    a, b = (pairs["heads"][i] for i in strongest)
    parts.append(section(
        "Heads working together",
        f"The {len(pairs['heads'])} most important heads pruned two at a time: the effect of "
        "a pair minus the two single effects (red: more than the sum, blue: less). Strongest "
        f"here: layer {a[0]} head {a[1]} with layer {b[0]} head {b[1]} "
        f"({unit * pairs['interaction'][0][strongest]:+.{1 if lm.has_classes else 3}f} "
        f"{points}). A one-backward "
        "estimate of the importance (Michel et al. 2019) orders the heads with a Spearman "
        f"correlation of {spearman(estimate['signed'], prob):.2f} to the exact values.",
        img_tag(chart_png(interaction_chart(pairs["heads"], pairs["interaction"][0],
                                            pairs["pair"][0], METRIC_LABELS[first])),
                "interactions of the top heads")
        + class_note(lm, ds, record.group, cache)))

    strength = one(lm, ds, index, "strength", cache)
    parts.append(section(
        "How far the heads look",
        "Left: every head's mean attention distance; the dashed line is what evenly spread "
        "attention gives, heads well below it are local. "
        f"Right: the share of attention head {head} of layer {layer} gives to patches 0, 1, "
        f"2... steps away (mean distance {strength['mean_distance'][layer, head]:.1f} px).",
        figure_row([(chart_png(heads_scatter(
            strength["mean_distance"], layer, head, "Mean attention distance (px)",
            evenly_spread(lm.grid, lm.patch_size)[1], ".1f")), "Distance of every head"),
                    (chart_png(strength_bars(strength["s"][layer, head])),
                     "Attention strength by hop")])))

    patterns = one(lm, ds, index, "patterns", cache)
    name, confidence = describe(patterns["label_scores"][layer, head],
                                int(patterns["diagonal_offset"][layer, head]))
    matrix = head_matrix(lm, batch[0], layer, head)
    threshold = top_percent_threshold(matrix, DEFAULT_TOP_PERCENT)
    parts.append(section(
        "The head's attention pattern",
        f"Head {head} of layer {layer} looks like a {name} pattern (confidence "
        f"{confidence:.2f} on a 0-1 scale). The matrix shows which token (row) attends to "
        f"which (column); only the top {DEFAULT_TOP_PERCENT:g}% of values are coloured.",
        img_tag(figure_png(heatmap_figure(matrix, threshold, lm.num_prefix_tokens)),
                "attention matrix")))

    maps = drawn(one(lm, ds, index, "explanations", cache))
    ablation = one(lm, ds, index, "ablation_map", cache)["map"]
    parts.append(section(
        "What the whole model looks at",
        "Each map combines the attention of all layers in its own way; bright patches "
        + ("matter most for the predicted class." if lm.has_classes else
           "matter most for the image's embedding (its score s on itself)."),
        figure_row([(heat(values), METHODS[method].label_for(lm))
                    for method, values in zip(MAP_METHODS, maps)]
                   + [(heat(ablation), METHODS["ablation"].label_for(lm))])))

    keypoints, points = one(lm, ds, index, "keypoints", cache), one(lm, ds, index, "sift", cache)
    spurious = one(lm, ds, index, "spurious", cache)
    m = METHOD_NAMES.index(DEFAULT_METHOD)
    before, after = int(spurious["top_before"]), int(spurious["top_after"])
    figures = [(figure_png(keypoints_figure(lm.to_display(batch[0]), points["keypoints"],
                                            lm.grid, lm.patch_size, spurious["inside"])),
                f"{len(points['keypoints'])} SIFT keypoints (red) on the patch grid; "
                "hatched patches are outside the object")]
    if has_keypoints(keypoints):
        figures.append((chart_png(lift_heatmap(keypoints["lift"], layer, head,
                                               "Lift over chance")),
                        "Attention on keypoint patches per head (1 = chance)"))
    parts.append(section(
        "Keypoints and shortcuts",
        f"{100 * float(spurious['score'][m]):.1f}% of the {METHODS[DEFAULT_METHOD].label_for(lm)} map "
        f"lies outside the object (from {OBJECT_SOURCES[int(spurious['object_source'])]}). "
        + (f"With the outside removed, the probability of "
           f"{lm.class_names[int(spurious['class'])]} "
           f"goes from {100 * float(spurious['probability_before']):.1f}% to "
           f"{100 * float(spurious['probability_after']):.1f}% and the prediction "
           + ("stays " + lm.class_names[before] if before == after else
              f"changes from {lm.class_names[before]} to {lm.class_names[after]}") + "."
           if lm.has_classes else
           f"With the outside removed, the score s of the image on its own embedding goes "
           f"from {float(spurious['probability_before']):.3f} to "
           f"{float(spurious['probability_after']):.3f} (1 = unchanged)."),
        figure_row(figures)))

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = f"Image {record.id}" + (f" ({true_name})" if true_name else "")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)} - "
            f"ViT Attention Explorer</title><style>{STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p class='muted'>Model {html.escape(lm.name)} "
            f"({lm.num_layers} layers x {lm.num_heads} heads), report made {stamp} by ViT "
            "Attention Explorer.</p>" + "".join(parts) + "</body></html>")
