"""Drawing for the rollout page: method maps over the image, the per-layer
small multiples, the faithfulness table and deletion/insertion curves. They
draw what the engine computed (SPEC "Attention aggregation", "Faithfulness of
explanations")."""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from core.display.maps import normalise
from core.model import LoadedModel
from ui.charts import lines, overlay


def map_row(image: np.ndarray, heats: list[np.ndarray], captions: list[str],
            columns: int | None = None) -> None:
    """One overlay per heat map (each height x width in [0, 1], bright = most relevant
    patch) on the enlarged image, side by side, in `columns` columns (default: one
    per map)."""
    for column, heat, caption in zip(st.columns(columns or len(heats)), heats, captions):
        column.image(overlay(image, heat), caption=caption)


LAYERS_PER_ROW = 6  # small maps per row: a 12-layer model wraps instead of overflowing


def layer_grid_chart(lm: LoadedModel, layer_cls: np.ndarray, layer_score: np.ndarray
                     ) -> alt.Chart:
    """Small multiples: a row per map kind, a column per layer, each map scaled to [0, 1]."""
    gh, gw = lm.grid
    rows, cols = np.divmod(np.arange(gh * gw), gw)
    frames = []
    for kind, maps in (("CLS attention", layer_cls), ("Score map", layer_score)):
        for layer, values in enumerate(maps):
            frames.append(pd.DataFrame({"kind": kind, "layer": layer, "row": rows, "col": cols,
                                        "value": normalise(values), "raw": values}))
    size = max(48, min(100, 640 // lm.num_layers))
    per_row = min(lm.num_layers, LAYERS_PER_ROW)
    data = pd.concat(frames)
    chart = alt.Chart(data).mark_rect().encode(
        x=alt.X("col:O", axis=None), y=alt.Y("row:O", axis=None),
        color=alt.Color("value:Q", scale=alt.Scale(scheme="inferno", domain=[0, 1]),
                        title="Share of map max"),
        tooltip=[alt.Tooltip("layer:O", title="layer"), alt.Tooltip("row:O", title="patch row"),
                 alt.Tooltip("col:O", title="patch column"),
                 alt.Tooltip("raw:Q", format=".4f", title="attention")],
    ).properties(width=size, height=size * gh / gw)
    return alt.vconcat(*[
        chart.transform_filter(alt.datum.kind == kind).facet(
            facet=alt.Facet("layer:O", title=None, header=alt.Header(labelExpr=(
                "'layer ' + datum.value"))), columns=per_row,
        ).properties(title=f"{kind}, layer by layer (0 = first block)")
        for kind in ("CLS attention", "Score map")], data=data)


def faithfulness_frame(table: dict[str, np.ndarray], labels: list[str],
                       metrics: dict[str, tuple[str, bool]]) -> pd.DataFrame:
    """Methods as rows (the index, named so that the CSV download keeps it), metrics as
    columns, each short header (the table fits 1,400 px) with an arrow saying which way
    is better (↑ higher, ↓ lower)."""
    return pd.DataFrame({f"{metrics[m][0].replace(' perturbation', ' pert.')} "
                         f"{'↑' if metrics[m][1] else '↓'}":
                         values for m, values in table.items()},
                        index=pd.Index(labels, name="method"))


def curves_chart(curves: dict[str, np.ndarray], x: np.ndarray, labels: list[str],
                 class_name: str | None) -> alt.Chart:
    """Deletion and insertion curves (M x S each, over `x`: the fractions of the patches
    removed or revealed) of one image, a line per method: the probability of
    `class_name` in %, or (None: a model without classes) the score s. The columns say
    their units: the patches in percent, the probability in percent."""
    across, score = "percent_of_patches_removed_or_revealed", (
        "score_s" if class_name is None else "probability_percent")
    scale = 1 if class_name is None else 100
    frames = [pd.DataFrame({"test": test, "method": label, across: 100 * x,
                            score: scale * values})
              for test, methods in curves.items() for label, values in zip(labels, methods)]
    title = ("Score s on the reference (1 = the reference)" if class_name is None else
             f"Probability of {class_name} (%)")
    return alt.Chart(pd.concat(frames)).mark_line(point=True).encode(
        x=alt.X(f"{across}:Q", title="Patches removed (deletion) or revealed (insertion), %"),
        y=alt.Y(f"{score}:Q", title=title,
                scale=alt.Undefined if class_name is None else alt.Scale(domain=[0, 100])),
        color=alt.Color("method:N", title="Method", sort=labels,
                        legend=alt.Legend(orient="bottom", labelLimit=0, columns=2)),
        tooltip=["method", alt.Tooltip(f"{across}:Q", format=".0f", title="patches (%)"),
                 alt.Tooltip(f"{score}:Q", format=".1f" if class_name else ".3f",
                             title="probability (%)" if class_name else "score s")],
    ).properties(width=300, height=220).facet(facet=alt.Facet("test:N", title=None), columns=2)


def sanity_chart(steps: list[str], similarity: dict[str, np.ndarray], labels: list[str]
                 ) -> alt.FacetChart:
    """Similarity (measure name -> step x method) of each method's maps to the untouched
    model's as the model is re-initialised from the top: a line per method, a panel per
    measure (as the deletion and insertion curves)."""
    frame = pd.DataFrame([{"measure": measure, "step": step, "method": label,
                           "similarity": float(value)}
                          for measure, values in similarity.items()
                          for step, row in zip(steps, values)
                          for label, value in zip(labels, row)])
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("step:N", sort=steps, title=lines("Re-initialised so far (from the top)"),
                axis=alt.Axis(labelAngle=-45)),
        y=alt.Y("similarity:Q", title=lines("Similarity to the untouched map (1 = the same)"),
                scale=alt.Scale(domain=[-1, 1])),
        color=alt.Color("method:N", title="Method", sort=labels,
                        legend=alt.Legend(orient="bottom", labelLimit=0, columns=2)),
        tooltip=["measure", "step", "method", alt.Tooltip("similarity:Q", format=".2f")],
    ).properties(width=300, height=220).facet(facet=alt.Facet("measure:N", title=None),
                                              columns=2)
