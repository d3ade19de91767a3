"""Charts of the Importance and Overview pages (SPEC "Head pruning"; paper 001,
sections 5.1 and 5.2.4). They draw what the engine computed."""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from core.analyses.importance import METRIC_AXES, METRIC_COLUMNS, METRIC_LABELS, shown
from core.model import MODE_NAMES
from ui.charts import PAD, head_frame, layer_colour, lines

PICK = "pick"  # name of the click selection in these charts
BAR_PX, MIX_LEGEND_COLUMNS = 26, 3  # the pattern mix: a class's bar, legend entries a row


def values_frame(values: np.ndarray, metrics: tuple[str, ...],
                 std: np.ndarray | None = None) -> pd.DataFrame:
    """metric x layer x head values as computed (and standard deviations) as a table, a
    row per head, each metric in its shown unit under its named column (``shown``,
    ``METRIC_COLUMNS``), for the CSV download."""
    columns: dict[str, np.ndarray] = {}
    for k, metric in enumerate(metrics):
        columns[METRIC_COLUMNS[metric]] = shown(metric, values[k])
        if std is not None:
            columns[f"{METRIC_COLUMNS[metric]}_std"] = shown(metric, std[k])
    return head_frame(columns)


def heads_chart(values: np.ndarray, std: np.ndarray | None, title: str,
                selected: tuple[int, int], non_negative: bool = False,
                domain: tuple[float, float] | None = None) -> alt.LayerChart:
    """One value per head (layer x head, in the unit of `title`) as points over the heads
    ("L2 H1", grouped by layer, coloured by layer, a line within each layer only); with
    `std`, a band of +- one standard deviation (cut at 0 for a `non_negative` metric).
    The selected head is marked; points are clickable. `domain`: the value axis's range,
    e.g. shared by charts side by side; default, the values'."""
    layers, heads = values.shape
    names = [f"L{layer} H{head}" for layer in range(layers) for head in range(heads)]
    df = head_frame({"value": values})
    df.insert(0, "head name", names)
    if std is not None:
        low = values - std
        df["low"] = (np.maximum(low, 0.0) if non_negative else low).ravel()
        df["high"] = (values + std).ravel()
    x = alt.X("head name:N", sort=names, title="Head (L layer, H head; grouped by layer)",
              axis=alt.Axis(labelAngle=-90, labelOverlap="greedy"))
    base = alt.Chart(df).encode(x=x)
    colour = layer_colour(layers)
    y_scale = alt.Undefined if domain is None else alt.Scale(domain=list(domain), nice=False)
    pick = alt.selection_point(name=PICK, fields=["layer", "head"], on="click", nearest=True)
    parts: list[alt.Chart] = []
    if std is not None:
        parts.append(base.mark_area(opacity=0.2).encode(
            y=alt.Y("low:Q", title=lines(title), scale=y_scale), y2="high:Q", color=colour,
            detail="layer:O"))
    parts += [
        base.mark_line(opacity=0.6).encode(y=alt.Y("value:Q", title=lines(title), scale=y_scale),
                                           color=colour, detail="layer:O"),
        base.mark_point(filled=True, size=60).encode(
            y="value:Q", color=colour,
            tooltip=["layer:O", "head:O", alt.Tooltip("value:Q", format=".4g", title=title)]
            + ([alt.Tooltip("low:Q", format=".4g", title="mean - SD"),
                alt.Tooltip("high:Q", format=".4g", title="mean + SD")] if std is not None else []),
        ).add_params(pick),
        alt.Chart(pd.DataFrame({"head name": [names[selected[0] * heads + selected[1]]]}))
        .mark_rule(color="#d62728", strokeDash=[4, 3]).encode(x=alt.X("head name:N", sort=names)),
    ]
    return alt.layer(*parts).properties(height=400)  # the plot, axes and legend


def modes_chart(values: np.ndarray, metric: str, current: int) -> alt.Chart:
    """Horizontal bars of `metric` (as computed; drawn in its shown unit) for the six
    pruning modes of a head; the mode whose predictions are shown (`current`) in red."""
    column = METRIC_COLUMNS[metric]
    df = pd.DataFrame({
        "mode": [f"{m}: {MODE_NAMES[m]}" for m in range(len(values))],
        column: shown(metric, values),
        "current": [m == current for m in range(len(values))],
    })
    return alt.Chart(df).mark_bar().encode(
        y=alt.Y("mode:N", sort=None, title="Pruning mode",
                axis=alt.Axis(labelLimit=220, labelOverlap=False)),
        x=alt.X(f"{column}:Q", title=lines(METRIC_AXES[metric], 40),
                axis=alt.Axis(labelFlush=True)),
        color=alt.condition(alt.datum.current, alt.value("#d62728"), alt.value("#4c78a8")),
        tooltip=["mode", alt.Tooltip(f"{column}:Q", format=".4g", title=METRIC_AXES[metric])],
    ).properties(height=40 * len(df))


def overview_chart(xy: np.ndarray, ids: list[str], classes: list[str],
                   selected: str) -> alt.LayerChart:
    """Images as points at their t-SNE position, coloured by class; clickable, the
    selected image ringed."""
    df = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "image": ids, "class": classes})
    axis = {"title": None, "axis": alt.Axis(labels=False, ticks=False, grid=False)}
    pick = alt.selection_point(name=PICK, fields=["image"], on="click", nearest=True)
    points = alt.Chart(df).mark_circle(size=45, opacity=0.8).encode(
        x=alt.X("x:Q", **axis), y=alt.Y("y:Q", **axis),
        color=alt.Color("class:N", title="Class", scale=alt.Scale(scheme="category10")),
        tooltip=["image", "class"],
    ).add_params(pick)
    ring = alt.Chart(df[df["image"] == selected]).mark_point(
        size=300, color="black", strokeWidth=2.5).encode(x="x:Q", y="y:Q", tooltip=["image", "class"])
    return alt.layer(points, ring).properties(height=520)


def interaction_frame(heads: np.ndarray, single: np.ndarray, pair: np.ndarray,
                      interaction: np.ndarray, metrics: tuple[str, ...]) -> pd.DataFrame:
    """Every pair of the top-k heads (k x k, both orders) with each metric's single
    effects, pair effect and interaction, in its shown unit, for the CSV download."""
    k = len(heads)
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    df = pd.DataFrame({"head_a": [f"L{heads[a, 0]} H{heads[a, 1]}" for a in i.ravel()],
                       "head_b": [f"L{heads[b, 0]} H{heads[b, 1]}" for b in j.ravel()]})
    for m, metric in enumerate(metrics):
        column = METRIC_COLUMNS[metric]
        df[f"{column}_single_a"] = shown(metric, single[m][i.ravel()])
        df[f"{column}_single_b"] = shown(metric, single[m][j.ravel()])
        df[f"{column}_pair"] = shown(metric, pair[m].ravel())
        df[f"{column}_interaction"] = shown(metric, interaction[m].ravel())
    return df


def interaction_chart(heads: np.ndarray, interaction: np.ndarray, pair: np.ndarray,
                      metric: str) -> alt.Chart:
    """k x k heatmap of `metric`'s interactions of the top-k heads (most important
    first; as computed, drawn in the metric's shown unit), diverging around 0: red, the
    pair matters more than the two apart; blue, less (the heads overlap)."""
    names = [f"L{layer} H{head}" for layer, head in heads]
    k = len(names)
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    df = pd.DataFrame({"first": [names[a] for a in i.ravel()],
                       "second": [names[b] for b in j.ravel()],
                       "interaction": shown(metric, np.where(i == j, np.nan, interaction)).ravel(),
                       "pair": shown(metric, pair).ravel()})
    metric_label = METRIC_LABELS[metric]
    limit = float(np.nanmax(np.abs(df["interaction"]))) if k > 1 else 1.0
    title = f"Interaction: pair minus both single effects ({metric_label})"
    return alt.Chart(df).mark_rect().encode(
        x=alt.X("second:N", sort=names, title="Pruned with (L layer, H head)",
                axis=alt.Axis(labelAngle=-45, labelOverlap=False)),
        y=alt.Y("first:N", sort=names, title="Head (most important first)",
                axis=alt.Axis(labelOverlap=False)),
        color=alt.Color("interaction:Q", title=["Interaction", "(red: more than", "the sum)"],
                        scale=alt.Scale(scheme="redblue", reverse=True,
                                        domain=[-limit or -1, limit or 1])),
        tooltip=["first", "second", alt.Tooltip("interaction:Q", format=".4g", title=title),
                 alt.Tooltip("pair:Q", format=".4g", title="Effect of the pair")],
    ).properties(width=alt.Step(40), height=alt.Step(30), autosize=PAD)


def difference_chart(frame: pd.DataFrame, first: str, second: str) -> alt.Chart:
    """Layer x head heatmap of the difference of two classes' mean metric (a row per
    head of :func:`core.dataset.class_views.contrast`), diverging around 0."""
    limit = float(np.abs(frame["difference"]).max()) or 1.0
    return alt.Chart(frame).mark_rect().encode(
        x=alt.X("head:O", title="Head"), y=alt.Y("layer:O", title="Layer"),
        color=alt.Color("difference:Q", title=[f"{first}", f"minus {second}"],
                        scale=alt.Scale(scheme="redblue", reverse=True,
                                        domain=[-limit, limit])),
        tooltip=["layer:O", "head:O",
                 alt.Tooltip("first:Q", format=".4g", title=f"{first} (mean)"),
                 alt.Tooltip("second:Q", format=".4g", title=f"{second} (mean)"),
                 alt.Tooltip("difference:Q", format=".4g", title="Difference"),
                 alt.Tooltip("standardised:Q", format=".2f",
                             title="Difference in pooled SDs")],
    ).properties(width=alt.Step(44), height=alt.Step(26), autosize=PAD)


def pattern_mix_chart(mix: pd.DataFrame) -> alt.Chart:
    """Stacked bars: per class the share of its image x head pairs given each pattern
    label (columns: class, label, share); every bar named (:data:`BAR_PX` each, no label
    dropped)."""
    return alt.Chart(mix).mark_bar().encode(
        y=alt.Y("class:N", title="Class", sort=None,
                axis=alt.Axis(labelLimit=260, labelOverlap=False)),
        x=alt.X("share:Q", title="Share of heads x images (%)", stack="normalize",
                axis=alt.Axis(format="%")),
        color=alt.Color("label:N", title="Pattern label",
                        legend=alt.Legend(orient="bottom", labelLimit=0,
                                          columns=MIX_LEGEND_COLUMNS)),
        tooltip=["class", "label", alt.Tooltip("share:Q", format=".1%", title="Share")],
    ).properties(height=BAR_PX * mix["class"].nunique() + 60  # + the axis and the legend
                 + 20 * -(-mix["label"].nunique() // MIX_LEGEND_COLUMNS))


def estimate_frame(estimate: dict[str, np.ndarray]) -> pd.DataFrame:
    """An image's estimates, a row per head: layer, head, estimate (Michel et al.'s
    magnitude), signed (first-order log-probability drop)."""
    return head_frame({"estimate": estimate["estimate"], "signed": estimate["signed"]})


def agreement_frame(agreement: dict[str, np.ndarray], metrics: tuple[str, ...],
                    ids: list[str]) -> pd.DataFrame:
    """Per image, the Spearman rank correlation of the estimate with each exact metric
    (empty where undefined)."""
    df = pd.DataFrame({"image": [ids[i] for i in agreement["image"]]})
    for m, metric in enumerate(metrics):
        df[f"spearman_{metric}"] = agreement["per_image"][:, m]
    return df
