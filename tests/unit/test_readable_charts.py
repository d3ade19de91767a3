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


def colour_encodings(chart: dict) -> list[dict]:
    """Every layer-colour encoding of a chart's spec (its layers searched)."""
    parts = chart.get("layer", [chart])
    return [p["encoding"]["color"] for p in parts
            if p.get("encoding", {}).get("color", {}).get("field") == "layer"]


def test_a_12_layer_models_layers_each_have_their_own_colour_and_legend_entry():
    """Issue 30: ViT-B's layer 10 was coloured as layer 0 (a 10-colour scheme) and the
    Compare legend stopped at layer 9 (one row of 12 entries, wider than the chart)."""
    from ui.importance_charts import heads_chart
    from ui.strength_charts import heads_scatter

    values = np.random.rand(12, 12)
    points = pd.DataFrame({"x": np.arange(12.0), "y": np.arange(12.0), "image": 0,
                           "image_id": "a", "layer": np.arange(12), "head": 0,
                           "pattern": "mixed"})
    charts = {"heads": heads_chart(values, None, "Probability drop", (0, 0)),
              "scatter": heads_scatter(values, 0, 0, "Mean distance (px)", 0.5),
              "layout": layout_chart(points, points, "CLS", "pick", (3, 0))}
    for name, chart in charts.items():
        colours = colour_encodings(chart.to_dict())
        assert colours, name
        for colour in colours:
            scale, legend = colour["scale"], colour["legend"]
            assert scale["domain"] == list(range(12)), name  # in layer order, every layer
            assert len(set(scale["range"])) == 12, (name, scale)  # no colour twice
            assert legend["symbolLimit"] == 0 and legend["columns"] <= 6, (name, legend)


def test_every_class_of_the_pattern_mix_is_named():
    """Issue 30: Vega dropped every other class name (labels overlapping: 26 px a class
    for the bars, the axis and the legend together); now 26 px a bar besides the axis
    and legend, and no label dropped."""
    from ui.importance_charts import pattern_mix_chart

    classes = [f"class {k}" for k in range(10)]
    mix = pd.DataFrame({"class": np.repeat(classes, 2), "label": ["a", "b"] * 10,
                        "share": 0.5})
    chart = pattern_mix_chart(mix).to_dict()
    assert chart["encoding"]["y"]["axis"]["labelOverlap"] is False
    assert chart["height"] >= 26 * len(classes) + 40  # + the axis and the legend


def test_lift_cells_are_wide_enough_for_their_numbers():
    """Issue 30: the report's lift heatmap (rendered without a page width) had 20 px
    cells for numbers like 12.34."""
    from ui.keypoints_charts import lift_heatmap

    lift = np.full((6, 4), 12.345)
    chart = lift_heatmap(lift, 0, 0, "Lift over chance").to_dict()
    text = next(p for p in chart["layer"] if p["mark"].get("type") == "text")
    size = text["mark"]["fontSize"]
    digits = len(f"{12.345:{text['encoding']['text']['format']}}")
    assert chart["width"]["step"] >= 0.6 * size * digits + 6  # a digit is about 0.6 em
    assert chart["autosize"]["type"] == "pad"


def test_both_columns_of_the_compare_page_share_their_scales():
    from ui.importance_charts import heads_chart
    from ui.strength_charts import heads_scatter

    values = np.random.rand(6, 4)
    for chart in (heads_chart(values, None, "t", (0, 0), domain=(-1.0, 5.0)),
                  heads_scatter(values, 0, 0, "t", 0.5, domain=(-1.0, 5.0))):
        ys = [p["encoding"]["y"] for p in chart.to_dict()["layer"] if "y" in p.get("encoding", {})
              and "scale" in p["encoding"]["y"]]
        assert ys and all(y["scale"]["domain"] == [-1.0, 5.0] for y in ys), ys
