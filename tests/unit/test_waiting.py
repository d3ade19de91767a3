"""Honest waiting: the engine measures what each analysis and step costs per image
(``core.timing``), the estimate before a whole-set computation reads it, or counts
forward passes before anything is measured (``core.waiting``), and the progress bar
says the time left at the pace measured so far."""
from __future__ import annotations

import pytest

from core import engine, timing, waiting
from core.analyses.ablation_map import ABLATION_MAP, ablation_forwards
from core.analyses.faithfulness import FAITHFULNESS
from core.analyses.forward import FORWARD
from core.analyses.strength import STRENGTH
from core.data.builtin import demo_dataset
from core.data.datasets import load_dataset
from core.dataset.importance_overview import IMPORTANCE_OVERVIEW
from core.engine import Request, run, run_many, run_step
from core.storage.cache import ArrayCache
from testing.images import demo_flat_folder
from ui import resources

FORWARD_SECONDS = 0.01  # the planted time of one plain forward


@pytest.fixture
def costs(monkeypatch, demo):
    """A fresh record of costs for the engine and the estimate, its forward planted."""
    fresh = timing.Costs()
    fresh._forward[demo.identity] = FORWARD_SECONDS
    for module in (engine, waiting):
        monkeypatch.setattr(module, "COSTS", fresh)
    return fresh


def test_before_any_measure_an_analysis_is_counted_in_forward_passes(demo, costs, tmp_path):
    ds = demo_dataset()
    estimate = waiting.analysis_estimate(demo, ds, list(range(10)), ABLATION_MAP,
                                         cache=ArrayCache(tmp_path))
    assert estimate.seconds == pytest.approx(10 * ablation_forwards(demo) * FORWARD_SECONDS)
    assert estimate.from_forwards == ("ablation_map",)
    assert "not measured on this server yet" in estimate.words()


def test_what_an_analysis_reads_is_counted_and_cached_images_cost_nothing(demo, costs,
                                                                            tmp_path):
    ds, cache = demo_dataset(), ArrayCache(tmp_path)
    estimate = waiting.analysis_estimate(demo, ds, [0, 1, 2], FAITHFULNESS, cache=cache)
    assert set(estimate.from_forwards) == {"faithfulness", "explanations", "ablation_map",
                                           "objects", "sift"}
    run(demo, ds, [0, 1, 2], ABLATION_MAP, cache=cache)
    smaller = waiting.analysis_estimate(demo, ds, [0, 1, 2], FAITHFULNESS, cache=cache)
    assert "ablation_map" not in smaller.from_forwards
    assert smaller.seconds == pytest.approx(
        estimate.seconds - 3 * ablation_forwards(demo) * FORWARD_SECONDS)
    run(demo, ds, [0, 1, 2], FAITHFULNESS, cache=cache)
    assert waiting.analysis_estimate(demo, ds, [0, 1, 2], FAITHFULNESS,
                                     cache=cache).seconds == 0


def test_the_engine_measures_each_analysis_and_the_estimate_reads_it(demo, costs, tmp_path):
    ds, cache = demo_dataset(), ArrayCache(tmp_path)
    run(demo, ds, list(range(8)), STRENGTH, cache=cache)
    per_image = costs.per_image(demo.identity, "strength")
    assert per_image is not None and per_image > 0
    estimate = waiting.analysis_estimate(demo, ds, list(range(20)), STRENGTH, cache=cache)
    assert estimate.from_forwards == ()
    assert estimate.seconds == pytest.approx(12 * per_image)
    assert "measured on this server and model" in estimate.words()


def test_analyses_sharing_batches_share_their_time(demo, costs, tmp_path):
    ds = demo_dataset()
    run_many(demo, ds, list(range(6)), [Request(FORWARD), Request(STRENGTH)],
             cache=ArrayCache(tmp_path))
    forward, strength = (costs._measures[(demo.identity, n)] for n in ("forward", "strength"))
    assert forward.images == strength.images == 6
    assert forward.seconds == pytest.approx(strength.seconds)


def test_a_measure_reaches_another_process_through_the_cache(demo, costs, tmp_path):
    ds = demo_dataset()
    run(demo, ds, list(range(4)), STRENGTH, cache=ArrayCache(tmp_path))
    elsewhere = timing.Costs()  # a server that did not compute it: the precompute did
    assert elsewhere.per_image(demo.identity, "strength", ArrayCache(tmp_path)) == \
        pytest.approx(costs.per_image(demo.identity, "strength"))
    assert elsewhere.per_image(demo.identity, "strength") is None


def test_a_step_adds_its_measured_build_and_says_when_it_is_unknown(demo, costs, tmp_path):
    ds = load_dataset(str(demo_flat_folder(tmp_path, broken=False)), demo.class_names)
    cache = ArrayCache(tmp_path / "cache")
    before = waiting.step_estimate(demo, ds, IMPORTANCE_OVERVIEW, cache=cache)
    assert before.build_unknown == "importance overview"
    assert "plus building the importance overview (not measured" in before.words()
    run_step(demo, ds, IMPORTANCE_OVERVIEW, cache=cache)
    build = costs.per_image(demo.identity, "importance_overview")
    assert build is not None
    again = waiting.step_estimate(demo, ds, IMPORTANCE_OVERVIEW, cache=ArrayCache(tmp_path))
    assert again.build_unknown == ""
    assert again.seconds == pytest.approx(
        len(ds) * (costs.per_image(demo.identity, "importance") + build))


def test_durations_in_words():
    assert [waiting.duration(s) for s in (0.2, 40, 89, 200, 3599, 4800)] == \
        ["1 s", "40 s", "89 s", "3 min", "1 h", "1 h 20 min"]


def test_the_bar_says_images_done_and_the_time_left_at_the_measured_pace(monkeypatch):
    texts: list[str] = []

    class Bar:
        def progress(self, value: float, text: str) -> None:
            texts.append(text)

    clock = iter([100.0, 110.0, 130.0, 200.0, 201.0])
    monkeypatch.setattr(resources.st, "progress", lambda value, text: Bar())
    monkeypatch.setattr(resources.time, "monotonic", lambda: next(clock))
    _, report = resources._bar("strength", 100)
    report(20, 100)  # 20 from the cache, at once
    report(30, 100)  # 10 computed in 10 s: 70 left at 1 s each
    report(50, 100)  # 30 in 30 s
    report(0, 40)  # a new part (what the next analysis reads) starts its own pace
    report(4, 40)
    assert texts == ["strength: 20 of 100 images", "strength: 30 of 100 images, about 70 s left",
                     "strength: 50 of 100 images, about 50 s left",
                     "strength: 0 of 40 images", "strength: 4 of 40 images, about 9 s left"]
