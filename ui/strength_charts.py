"""Charts of the strength page (SPEC "Attention strength"). They draw what
`core.analyses.strength` computed; nothing here computes."""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from ui.charts import head_frame, layer_colour, lines

PICK = "head_pick"


def heads_scatter(values: np.ndarray, layer: int, head: int, title: str,
                  even: float, fmt: str = ".3f",
                  domain: tuple[float, float] | None = None) -> alt.LayerChart:
    """One point per head of a layer x head array (entropy, or mean distance in px):
    x the layer, spread by head, colour the layer; the y axis zoomed to the values;
    a dashed line at `even`, what evenly spread attention gives; the selected head
    ringed. Clicking a point selects it (selection ``head_pick``: layer, head).
    `domain`: the y axis's range (e.g. shared by charts side by side) instead."""
    pick = alt.selection_point(name=PICK, fields=["layer", "head"], on="click", nearest=True)
    layers, per_layer = values.shape
    heads = head_frame({"value": values})
    y_scale = (alt.Scale(zero=False) if domain is None else
               alt.Scale(domain=list(domain), nice=False, zero=False))
    base = alt.Chart(heads).transform_calculate(  # heads side by side within their layer
        spread=f"datum.layer + (datum.head - {(per_layer - 1) / 2}) * {0.7 / per_layer}"
    ).encode(
        x=alt.X("spread:Q", title="Layer (0 = first block); heads side by side",
                scale=alt.Scale(domain=[-0.5, layers - 0.5], nice=False),
                axis=alt.Axis(values=list(range(layers)), format="d", grid=False)),
        y=alt.Y("value:Q", title=lines(title), scale=y_scale),
    )
    points = base.mark_circle(size=90, opacity=0.9).encode(
        color=layer_colour(layers),
        tooltip=["layer", "head", alt.Tooltip("value:Q", format=fmt, title=title)],
    ).add_params(pick)
    chosen = base.transform_filter(
        (alt.datum.layer == layer) & (alt.datum.head == head)
    ).mark_point(size=260, color="black", strokeWidth=2)
    reference = alt.Chart(pd.DataFrame({"even": [even], "what": ["evenly spread attention"]}))
    rule = reference.mark_rule(strokeDash=[6, 4], color="#555555").encode(
        y=alt.Y("even:Q", scale=y_scale), tooltip=["what", alt.Tooltip("even:Q", format=fmt)])
    text = reference.mark_text(align="left", dx=4, dy=-6, color="#555555").encode(
        x=alt.value(0), y=alt.Y("even:Q", scale=y_scale), text="what:N")
    # points on top: clickable; the height holds the plot, its axes and the legend
    return alt.layer(rule, text, points, chosen).properties(height=340)


def class_distance_chart(per_layer: pd.DataFrame) -> alt.Chart:
    """Per class, the mean attention distance of each layer (a line per class; rows of
    :func:`core.dataset.class_views.strength_per_layer`)."""
    return alt.Chart(per_layer).mark_line(point=True).encode(
        x=alt.X("layer:O", title="Layer", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("distance_px:Q", title="Mean attention distance (px)",
                axis=alt.Axis(labelFlush=True)),
        color=alt.Color("class:N", title="Class",
                        legend=alt.Legend(orient="bottom", labelLimit=0)),
        tooltip=["class", "layer", alt.Tooltip("distance_px:Q", format=".2f"),
                 alt.Tooltip("entropy:Q", format=".3f")])


def strength_bars(s: np.ndarray) -> alt.Chart:
    """The strength vector: mean attention a patch pays to each patch of its k-hop ring."""
    df = pd.DataFrame({"hop": np.arange(len(s)), "strength": s})
    return alt.Chart(df).mark_bar().encode(
        x=alt.X("hop:O", title="Hop k (0 = the patch itself)", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("strength:Q", title="Mean attention per ring patch"),
        tooltip=["hop", alt.Tooltip("strength:Q", format=".4f")],
    ).properties(height=260)


def entropy_density(x: np.ndarray, density: np.ndarray, current: float) -> alt.Chart:
    """Area plot of a head's entropy over all images, a rule at the current image."""
    area = alt.Chart(pd.DataFrame({"entropy": x, "density": density})).mark_area(
        opacity=0.6, line=True).encode(
        x=alt.X("entropy:Q", title="Strength entropy over all images",
                scale=alt.Scale(zero=False, nice=False)),  # the density's own range
        y=alt.Y("density:Q", title="Density of images"),
    )
    rule = alt.Chart(pd.DataFrame({"entropy": [current], "what": ["this image"]})).mark_rule(
        color="crimson", strokeWidth=2).encode(
        x="entropy:Q", tooltip=["what", alt.Tooltip("entropy:Q", format=".3f")])
    return (area + rule).properties(height=260)


def layer_trend_chart(trend: pd.DataFrame, title: str) -> alt.Chart:
    """Median per layer (line), 25-75% (dark band) and 5-95% (light band)."""
    base = alt.Chart(trend).encode(
        x=alt.X("layer:Q", title="Layer (0 = first block)",
                axis=alt.Axis(tickMinStep=1, format="d")))
    outer = base.mark_area(opacity=0.15).encode(y=alt.Y("q05:Q", title=title), y2="q95:Q")
    inner = base.mark_area(opacity=0.35).encode(y="q25:Q", y2="q75:Q")
    line = base.mark_line(point=True, color="black").encode(
        y="median:Q",
        tooltip=["layer", alt.Tooltip("median:Q", format=".3f"),
                 alt.Tooltip("q25:Q", format=".3f", title="25th percentile"),
                 alt.Tooltip("q75:Q", format=".3f", title="75th percentile")])
    return (outer + inner + line).properties(height=240)
