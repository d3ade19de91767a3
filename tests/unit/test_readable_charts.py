"""Charts anyone can read (issue 15): nothing clipped or cut by the chart's own
settings: legends below their charts with no label limit, a 12-layer model's small
multiples wrapped, long class names shortened to their first synonym, the
faithfulness table's headers short."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from core.analyses.faithfulness import METRICS as FAITH_METRICS
from core.display.head_detail import Pairs
from core.display.predictions import Prediction
from testing.models import small_deit
from ui.charts import predictions_chart
from ui.patterns_charts import layout_chart, two_axes_chart
from ui.rollout_charts import curves_chart, faithfulness_frame, layer_grid_chart


def spec(chart) -> str:
    return json.dumps(chart.to_dict())


def test_a_12_layer_models_layer_maps_wrap_instead_of_overflowing():
    lm, _ = small_deit("deit_tiny_patch16_224")  # 12 layers
    g = lm.grid[0] * lm.grid[1]
    chart = layer_grid_chart(lm, np.random.rand(12, g), np.random.rand(12, g)).to_dict()
    facets = [part for part in chart["vconcat"]]
    assert len(facets) == 2 and all(part["columns"] == 6 for part in facets)


def test_method_legend_is_not_cut():
    labels = ["Gradient-weighted relevance", "Patch ablation (probability drop)"]
    chart = curves_chart({"Deletion": np.random.rand(2, 5)}, np.linspace(0, 1, 5), labels,
                         "Sandal")
    legend = chart.to_dict()["spec"]["encoding"]["color"]["legend"]
    assert legend["labelLimit"] == 0 and legend["orient"] == "bottom"


def test_long_class_names_show_their_first_synonym_whole():
    name = "affenpinscher, monkey pinscher, monkey dog"
    chart = predictions_chart([Prediction(0, name, 0.9), Prediction(1, "tench, Tinca tinca",
                                                                   0.1)], name)
    data = chart.to_dict()["datasets"]
    rows = next(iter(data.values()))
    assert [r["name"] for r in rows] == ["affenpinscher", "tench"]
    assert [r["class"] for r in rows][0] == name  # whole name in the tooltip
    assert '"labelLimit": 0' in spec(chart)


def test_pattern_legends_sit_below_and_list_every_layer():
    points = pd.DataFrame({"x": np.arange(12.0), "y": np.arange(12.0), "image": 0,
                           "image_id": "a", "layer": np.arange(12), "head": 0,
                           "pattern": "mixed"})
    layout = layout_chart(points, points, "CLS", "pick", (3, 0)).to_dict()
    legend = layout["layer"][1]["encoding"]["color"]["legend"]
    assert legend["symbolLimit"] == 0 and legend["orient"] == "bottom"
    pairs = Pairs(source=np.array([0, 1]), target=np.array([1, 2]), value=np.array([0.5, 0.2]),
                  cls_related=np.array([True, False]))
    two_axes = two_axes_chart(pairs, ["CLS", "p0", "p1"], 0, "tok").to_dict()
    assert two_axes["layer"][0]["encoding"]["color"]["legend"]["orient"] == "bottom"


def test_faithfulness_headers_are_short():
    table = {m: np.zeros(2) for m in FAITH_METRICS}
    frame = faithfulness_frame(table, ["a", "b"], FAITH_METRICS)
    assert frame.index.name == "method"  # kept in the CSV
    assert max(len(c) for c in frame.columns) <= 24, list(frame.columns)
