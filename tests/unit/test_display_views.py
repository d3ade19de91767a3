"""The numbers the pages draw (core.display, core.dataset.class_views tables, the
layer x head table of the charts) against naive loop-by-loop computations."""
from __future__ import annotations

import math

import numpy as np
import pytest

from core.analyses.pattern_labels import LABEL_NAMES
from core.analyses.interactions import top_heads
from core.dataset.class_views import against_the_rest, pattern_mix_frame, strength_per_layer
from core.display.importance_view import estimate_agreement, importance_over_set
from core.display.strength_view import strength_over_set
from ui.charts import head_frame

RNG = np.random.default_rng(0)
LAYERS, HEADS = 3, 4


def naive_ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def naive_pearson(a: list[float], b: list[float]) -> float:
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return cov / math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))


def test_top_heads_are_the_largest_first_by_a_full_sort():
    values = RNG.integers(0, 5, (LAYERS, HEADS)).astype(float)  # ties
    cells = sorted(((-values[l, h], l, h) for l in range(LAYERS) for h in range(HEADS)))
    assert top_heads(values, 5).tolist() == [[l, h] for _, l, h in cells[:5]]


def test_importance_over_set_is_each_heads_mean_and_spread_over_the_images():
    arrays = {i: {"importance": RNG.normal(size=(4, LAYERS, HEADS))} for i in (0, 2, 5)}
    mean, std = importance_over_set(arrays)
    for m in range(4):
        for l in range(LAYERS):
            for h in range(HEADS):
                values = [arrays[i]["importance"][m, l, h] for i in arrays]
                mu = sum(values) / len(values)
                assert mean[m, l, h] == pytest.approx(mu)
                assert std[m, l, h] == pytest.approx(
                    math.sqrt(sum((v - mu) ** 2 for v in values) / len(values)))


@pytest.mark.parametrize("metric,output", [("prob", "signed"), ("jsd", "estimate"),
                                           ("sim", "signed")])
def test_estimate_agreement_is_the_spearman_of_the_compared_output(metric, output):
    exact = RNG.normal(size=(4, LAYERS, HEADS))
    exact[1, 0, :2] = 0.5  # ties
    estimate = {"signed": RNG.normal(size=(LAYERS, HEADS)),
                "estimate": RNG.normal(size=(LAYERS, HEADS))}
    slot = {"prob": 0, "jsd": 1, "sim": 0}[metric]
    expected = naive_pearson(naive_ranks(estimate[output].ravel().tolist()),
                             naive_ranks(exact[slot].ravel().tolist()))
    assert estimate_agreement(estimate, exact, metric) == pytest.approx(expected)


def test_strength_over_set_gives_the_heads_density_and_every_layers_percentiles():
    arrays = {i: {"entropy": RNG.uniform(size=(LAYERS, HEADS)),
                  "mean_distance": RNG.uniform(0, 30, size=(LAYERS, HEADS))} for i in range(6)}
    arrays[3]["entropy"][1, 2] = np.nan  # a head without a value on one image
    view = strength_over_set(arrays, 1, 2)
    assert view.images == 6
    values = [arrays[i]["entropy"][1, 2] for i in range(6) if i != 3]
    spread = math.sqrt(sum((v - sum(values) / 5) ** 2 for v in values) / 5)
    width = max(spread * 5 ** -0.2, 0.01)
    for x, y in zip(view.entropy_x[::10], view.entropy_density[::10]):
        expected = sum(math.exp(-0.5 * ((x - v) / width) ** 2) for v in values) / (
            5 * width * math.sqrt(2 * math.pi))
        assert y == pytest.approx(expected)
    for name, trend in (("entropy", view.entropy_trend), ("mean_distance", view.distance_trend)):
        for layer in range(LAYERS):
            cells = [arrays[i][name][layer, h] for i in range(6) for h in range(HEADS)]
            cells = [c for c in cells if not math.isnan(c)]
            row = trend[trend["layer"] == layer].iloc[0]
            assert row["median"] == pytest.approx(float(np.median(cells)))
            assert row["q25"] == pytest.approx(float(np.percentile(cells, 25)))


def class_views(classes: int = 3) -> dict[str, np.ndarray]:
    return {"classes": np.array([0, 2, 5][:classes]), "counts": np.array([4, 1, 3][:classes]),
            "importance_mean": RNG.normal(size=(classes, 4, LAYERS, HEADS)),
            "entropy": RNG.uniform(size=(classes, LAYERS, HEADS)),
            "distance": RNG.uniform(0, 20, size=(classes, LAYERS, HEADS)),
            "pattern_mix": RNG.dirichlet(np.ones(len(LABEL_NAMES)), size=classes)}


def test_against_the_rest_is_the_class_minus_the_mean_of_the_others():
    views = class_views()
    difference = against_the_rest(views, 2, "jsd")
    for l in range(LAYERS):
        for h in range(HEADS):
            others = [views["importance_mean"][r, 1, l, h] for r in (0, 2)]
            assert difference[l, h] == pytest.approx(
                views["importance_mean"][1, 1, l, h] - sum(others) / 2)
    assert against_the_rest(views, 7, "prob") is None
    alone = class_views(1)  # no other class: its own means
    np.testing.assert_array_equal(against_the_rest(alone, 0, "prob"),
                                  alone["importance_mean"][0, 0])


def test_class_tables_hold_every_class_and_layer():
    views = class_views()
    views["entropy"][0, 1, 0] = np.nan
    names = [f"class {k}" for k in range(6)]
    per_layer = strength_per_layer(views, names)
    for row, c in enumerate(views["classes"]):
        for layer in range(LAYERS):
            got = per_layer[(per_layer["class"] == names[c]) & (per_layer["layer"] == layer)]
            entropy = [e for e in views["entropy"][row, layer] if not math.isnan(e)]
            assert got["entropy"].item() == pytest.approx(sum(entropy) / len(entropy))
            assert got["distance_px"].item() == pytest.approx(
                sum(views["distance"][row, layer]) / HEADS)
    mix = pattern_mix_frame(views, names)
    assert len(mix) == 3 * len(LABEL_NAMES)
    first = mix[mix["class"] == "class 0 (4)"]
    assert first["share"].tolist() == pytest.approx(views["pattern_mix"][0].tolist())


def test_head_frame_has_a_row_per_head_layer_by_layer():
    a, b = RNG.normal(size=(LAYERS, HEADS)), RNG.normal(size=(LAYERS, HEADS))
    frame = head_frame({"a": a, "b b": b})
    rows = [(l, h, a[l, h], b[l, h]) for l in range(LAYERS) for h in range(HEADS)]
    assert [tuple(r) for r in frame[["layer", "head", "a", "b b"]].itertuples(index=False)] \
        == rows
