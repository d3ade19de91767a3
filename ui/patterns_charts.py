"""Charts of the patterns page (SPEC "Attention patterns"): the layout (density
of all points, the selected image's heads on top), the histogram that sets the
"top x%" threshold, the two-axes view and the heatmap. They only draw."""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from core.display.density import Density
from core.display.head_detail import Pairs
from ui.charts import layer_colour

CLS_COLOUR, PATCH_COLOUR = "#1f77b4", "#ff7f0e"  # blue: CLS-related, orange: patch pairs


def layout_chart(points: pd.DataFrame, background: Density | pd.DataFrame, axis_name: str,
                 pick_name: str, selected_head: tuple[int, int]) -> alt.LayerChart:
    """`points` (x, y, image, image_id, layer, head, pattern) drawn over `background`,
    the selected (layer, head) ringed in red:
    a Density (binned counts of all points) or a DataFrame sample of all points
    (x, y, image, image_id, layer, head). Clicking a point selects it (selection
    parameters `pick_name`, and `pick_name`_all on the sample); over the density, a
    click anywhere picks the nearest of the selected image's heads."""
    def pick(suffix: str = "", nearest: bool = False) -> alt.Parameter:
        return alt.selection_point(name=pick_name + suffix, fields=["image", "layer", "head"],
                                   on="click", nearest=nearest)

    x_title, y_title = f"{axis_name} t-SNE 1 (no unit)", f"{axis_name} t-SNE 2 (no unit)"
    if isinstance(background, Density):
        d = background
        iy, ix = np.nonzero(d.counts)
        cells = pd.DataFrame({"x": d.x_edges[ix], "x2": d.x_edges[ix + 1], "y": d.y_edges[iy],
                              "y2": d.y_edges[iy + 1], "heads": d.counts[iy, ix].astype(int)})
        base = alt.Chart(cells).mark_rect().encode(
            x=alt.X("x:Q", title=x_title), x2="x2", y=alt.Y("y:Q", title=y_title), y2="y2",
            color=alt.Color("heads:Q", title="Heads per cell (all images)",
                            scale=alt.Scale(type="log", scheme="greys")),
            tooltip=[alt.Tooltip("heads:Q", title="heads in this cell")])
    else:
        base = alt.Chart(background).mark_circle(size=12, color="#9e9e9e", opacity=0.35).encode(
            x=alt.X("x:Q", title=x_title), y=alt.Y("y:Q", title=y_title),
            tooltip=[alt.Tooltip("image_id:N", title="image"), "layer:O", "head:O"]
        ).add_params(pick("_all"))
    selected = alt.Chart(points).mark_circle(size=110, stroke="black", strokeWidth=0.6).encode(
        x="x:Q", y="y:Q",
        color=layer_colour(int(points["layer"].max()) + 1 if len(points) else 0,
                           "Layer (selected image)"),
        tooltip=[alt.Tooltip("image_id:N", title="image"), "layer:O", "head:O",
                 alt.Tooltip("pattern:N", title="pattern label")]
    ).add_params(pick(nearest=isinstance(background, Density)))  # over cells: nearest head
    layer, head = selected_head
    ring = alt.Chart(points[(points["layer"] == layer) & (points["head"] == head)]).mark_point(
        size=420, color="#d62728", strokeWidth=3).encode(
        x="x:Q", y="y:Q", tooltip=[alt.Tooltip("pattern:N", title="selected head's label")])
    return alt.layer(base, selected, ring).properties(height=420)


def histogram_chart(edges: np.ndarray, counts: np.ndarray, threshold: float,
                    top_percent: float) -> alt.LayerChart:
    """Counts of the matrix's values on log10 bins, with the threshold line, labelled on
    the side of it with more room."""
    bars = pd.DataFrame({"lo": edges[:-1], "hi": edges[1:], "pairs": counts})
    hist = alt.Chart(bars).mark_bar(color="#8c8c8c").encode(
        x=alt.X("lo:Q", title="Attention value (log10 scale)"), x2="hi",
        y=alt.Y("pairs:Q", title="Token pairs", scale=alt.Scale(type="symlog")),
        tooltip=[alt.Tooltip("lo:Q", format=".2f", title="from log10"),
                 alt.Tooltip("hi:Q", format=".2f", title="to log10"), "pairs:Q"])
    t = float(np.log10(threshold))
    line = alt.Chart(pd.DataFrame({"t": [t],
                                   "label": [f"top {top_percent:g}%: >= {threshold:.3g}"]}))
    rule = line.mark_rule(color="#d62728", strokeWidth=2).encode(x="t:Q")
    left = t > (edges[0] + edges[-1]) / 2
    text = line.mark_text(align="right" if left else "left", dx=-4 if left else 4,
                          color="#d62728").encode(
        x="t:Q", y=alt.value(10), text="label:N")
    return alt.layer(hist, rule, text).properties(height=180)


def two_axes_chart(pairs: Pairs, names: list[str], chosen: int,
                   token_pick: str) -> alt.LayerChart:
    """Source tokens on the top axis, target tokens on the bottom one, a line per
    pair of `pairs` (shade: attention value; blue CLS-related, orange patch pairs).
    The tokens (`names`, in token order; `chosen` in red) are clickable on both axes."""
    tokens = pd.DataFrame({"token": np.tile(np.arange(len(names)), 2), "name": names * 2,
                           "axis": ["source"] * len(names) + ["target"] * len(names),
                           "y": [1.0] * len(names) + [0.0] * len(names)})
    tokens["chosen"] = tokens["token"] == chosen
    lines = pd.DataFrame({"source": pairs.source, "target": pairs.target, "top": 1.0,
                          "bottom": 0.0, "attention": pairs.value,
                          "pair": np.where(pairs.cls_related, "CLS-related", "patch -> patch")})
    x_scale = alt.Scale(domain=[-0.5, float(tokens["token"].max()) + 0.5])
    rules = alt.Chart(lines).mark_rule(strokeWidth=1.5).encode(
        x=alt.X("source:Q", title="Token (0 = CLS, then patches row by row)", scale=x_scale),
        x2="target:Q", y=alt.Y("top:Q", axis=None, scale=alt.Scale(domain=[-0.15, 1.15])),
        y2="bottom:Q",
        color=alt.Color("pair:N", title="Pair", scale=alt.Scale(
            domain=["CLS-related", "patch -> patch"], range=[CLS_COLOUR, PATCH_COLOUR]),
            legend=alt.Legend(orient="bottom", labelLimit=0, columns=1)),
        opacity=alt.Opacity("attention:Q", title="Attention", scale=alt.Scale(range=[0.2, 1]),
                            legend=alt.Legend(orient="bottom", columns=3)),
        tooltip=["source:Q", "target:Q", alt.Tooltip("attention:Q", format=".3f")])
    pick = alt.selection_point(name=token_pick, fields=["token"], on="click")
    marks = alt.Chart(tokens).mark_point(filled=True, size=40).encode(
        x=alt.X("token:Q", scale=x_scale), y="y:Q",
        color=alt.condition("datum.chosen", alt.value("#d62728"), alt.value("#555555")),
        size=alt.condition("datum.chosen", alt.value(140), alt.value(30)),
        tooltip=["name:N", alt.Tooltip("axis:N", title="axis")]).add_params(pick)
    labels = alt.Chart(pd.DataFrame({"y": [1.1, -0.1], "text": ["source tokens (rows)",
                                                                 "target tokens (columns)"]})
                       ).mark_text(align="left", color="#555555").encode(
        x=alt.value(4), y="y:Q", text="text:N")
    return alt.layer(rules, marks, labels).properties(height=220)


def heatmap_figure(matrix: np.ndarray, threshold: float, num_prefix_tokens: int,
                   prefix_width: float = 5.0) -> Figure:
    """The T x T matrix (rows: source, columns: target), prefix rows and columns drawn
    `prefix_width` cells wide; cells below `threshold` left white. Blue: CLS-related
    cells, orange: patch -> patch cells, darker = more attention."""
    t = len(matrix)
    widths = np.where(np.arange(t) < num_prefix_tokens, prefix_width, 1.0)
    edges = np.concatenate([[0.0], np.cumsum(widths)])
    shown = np.ma.masked_less(matrix, threshold)
    patch = np.zeros((t, t), bool)
    patch[num_prefix_tokens:, num_prefix_tokens:] = True
    fig = Figure(figsize=(5, 4.6))
    ax = fig.subplots()
    norm = Normalize(0, float(matrix.max()) or 1.0)
    ax.pcolormesh(edges, edges, np.ma.masked_where(patch, shown), cmap="Blues", norm=norm)
    mesh = ax.pcolormesh(edges, edges, np.ma.masked_where(~patch, shown), cmap="Oranges",
                         norm=norm)
    ax.set_xlim(0, edges[-1])
    ax.set_ylim(edges[-1], 0)
    ax.set_xlabel("Target token (column; CLS first, widened)")
    ax.set_ylabel("Source token (row; CLS first, widened)")
    fig.colorbar(mesh, ax=ax, label="Attention (patch -> patch; CLS cells in blue)")
    fig.tight_layout()
    return fig
