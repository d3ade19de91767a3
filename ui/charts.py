"""Drawing helpers: Altair charts and image overlays. They draw what the
engine computed; nothing here computes an analysis."""
from __future__ import annotations

import json
import textwrap
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import to_hex

from core.display.predictions import Prediction, Similar


# for charts sized by their steps (cells): Streamlit's default autosize "fit" would be
# dropped for them, with a warning in the browser
PAD = alt.AutoSizeParams(type="pad", contains="padding")
LEGEND_COLUMNS = 6  # a layer legend's entries per row
TITLE_CHARACTERS = 30  # an axis title's line: it fits beside a plot about 200 px tall


@alt.theme.register("explorer", enable=True)
def explorer_theme() -> alt.theme.ThemeConfig:
    """Every chart's theme: Altair's default (300 px views where no size is given, as
    the report's PNGs had) and a margin round the chart, for the parts of letters (the
    descender of a rotated title's "y") that Vega's layout does not count."""
    return {"config": {"view": {"continuousWidth": 300, "continuousHeight": 300}},
            "padding": {side: 4 for side in ("left", "right", "top", "bottom")}}


def lines(title: str, width: int = TITLE_CHARACTERS) -> list[str]:
    """An axis title as lines of at most `width` characters (words kept whole), so that
    a long title with its unit fits the side of a small plot."""
    return textwrap.wrap(title, width) or [title]


def layer_colour(layers: int, title: str = "Layer") -> alt.Color:
    """Colour by ``layer`` (0 .. layers - 1): a colour of its own for every layer, in
    order (viridis, dark to light), and a legend below listing every layer, in rows of
    :data:`LEGEND_COLUMNS`."""
    colours = [to_hex(colormaps["viridis"](t)) for t in np.linspace(0, 0.9, max(layers, 1))]
    return alt.Color("layer:O", title=title,
                     scale=alt.Scale(domain=list(range(layers)), range=colours[:layers]),
                     legend=alt.Legend(orient="bottom", symbolLimit=0,
                                       columns=min(layers, LEGEND_COLUMNS)))


def shared_domain(*arrays: np.ndarray) -> tuple[float, float]:
    """One axis range for charts side by side: the range of all `arrays` (NaN ignored),
    widened by 5% on each side ((-1, 1) when there is no value)."""
    values = np.concatenate([np.ravel(a) for a in arrays]).astype(np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return -1.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    margin = 0.05 * (hi - lo) or 0.05 * max(abs(hi), 1.0)
    return lo - margin, hi + margin


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend an H x W x C image in [0, 1] with an H x W heat map in [0, 1] (inferno)."""
    rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
    colour = colormaps["inferno"](heat)[..., :3]
    return (255 * ((1 - alpha) * rgb + alpha * colour)).clip(0, 255).astype(np.uint8)


def head_frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """Layer x head arrays as one table, a row per head (layer by layer): columns layer,
    head and one per array."""
    layers, heads = np.shape(next(iter(columns.values())))
    return pd.DataFrame({"layer": np.repeat(np.arange(layers), heads),
                         "head": np.tile(np.arange(heads), layers),
                         **{name: np.ravel(values) for name, values in columns.items()}})


def short_name(class_name: str) -> str:
    """A class name up to its first comma (the first of ImageNet's synonyms)."""
    return class_name.split(",")[0].strip()


def predictions_chart(predictions: list[Prediction], true_label: str | None) -> alt.Chart:
    """Horizontal bars of the top-k probabilities (%), the true class marked (green bar,
    bold name) when the image has one. Long names (ImageNet's "affenpinscher, monkey
    pinscher, monkey dog") show their first synonym; the tooltip has the whole name."""
    df = pd.DataFrame({
        "name": [short_name(p.class_name) for p in predictions],
        "class": [p.class_name for p in predictions],
        "probability": [100 * p.probability for p in predictions],
    })
    weight: Any = "normal"
    colour: Any = alt.value("#8c8c8c")  # no true class to mark
    if true_label is not None:
        df["is true label"] = [p.class_name == true_label for p in predictions]
        weight = alt.condition(f"datum.value == {json.dumps(short_name(true_label))}",
                               alt.value("bold"), alt.value("normal"))
        colour = alt.Color("is true label:N", title="True label", scale=alt.Scale(
            domain=[True, False], range=["#2ca02c", "#8c8c8c"]))
    return alt.Chart(df).mark_bar().encode(
        x=alt.X("probability:Q", title="Predicted probability (%)",
                scale=alt.Scale(domain=[0, 100])),
        y=alt.Y("name:N", sort=None, title=None, axis=alt.Axis(
            labelLimit=0, labelOverlap=False, labelFontWeight=weight)),
        color=colour,
        tooltip=["class", alt.Tooltip("probability:Q", format=".1f", title="probability (%)")],
    ).properties(height=40 * len(df))


def similar_chart(similar: list[Similar], ids: list[str]) -> alt.Chart:
    """Horizontal bars of the cosine similarity of the most similar images' embeddings
    (`ids`: the set's image ids), for a model without classes."""
    df = pd.DataFrame({"image": [ids[s.index] for s in similar],
                       "similarity": [s.cosine for s in similar]})
    return alt.Chart(df).mark_bar(color="#4c78a8").encode(
        x=alt.X("similarity:Q", title="Cosine similarity of the embeddings (1 = same direction)",
                scale=alt.Scale(domain=[min([0.0, *df["similarity"]]), 1])),
        y=alt.Y("image:N", sort=None, title=None, axis=alt.Axis(labelLimit=0)),
        tooltip=["image", alt.Tooltip("similarity:Q", format=".3f")],
    ).properties(height=40 * max(len(df), 1))
