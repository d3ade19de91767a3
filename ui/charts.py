"""Drawing helpers: Altair charts and image overlays. They draw what the
engine computed; nothing here computes an analysis."""
from __future__ import annotations

import json
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
from matplotlib import colormaps

from core.display.predictions import Prediction, Similar


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
