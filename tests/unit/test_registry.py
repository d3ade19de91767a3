"""Cross-cutting checks that every registered analysis, explanation method and dataset
step goes through (captum style: one list drives every test)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from core import ANALYSES, DATASET_STEPS, METHODS, explain, run
from core.analyses.base import resolve_targets
from core.data.builtin import demo_dataset
from core.storage.cache import ArrayCache
from testing.models import random_input

IMAGES = [0, 105, 230]  # three classes of the demo set


@pytest.fixture(scope="module")
def ds():
    return demo_dataset()


@pytest.fixture(scope="module")
def sequential(demo, ds):
    """Every analysis on IMAGES, one engine run each, no cache."""
    return {name: run(demo, ds, IMAGES, analysis).arrays for name, analysis in ANALYSES.items()}


@pytest.mark.parametrize("name", list(ANALYSES))
def test_outputs_are_the_declared_ones(demo, sequential, name):
    analysis = ANALYSES[name]
    assert analysis.name == name and dataclasses.is_dataclass(analysis.params)
    assert analysis.params.__dataclass_params__.frozen  # parameters are immutable and hashable
    for i in IMAGES:
        assert analysis.problems(sequential[name][i], demo) == [], name
        assert set(sequential[name][i]) == set(analysis.outputs)


@pytest.mark.parametrize("name", list(ANALYSES))
def test_batched_equals_one_image_at_a_time(demo, ds, sequential, name):
    alone = run(demo, ds, IMAGES[1:2], ANALYSES[name]).arrays[IMAGES[1]]
    for key, value in alone.items():
        np.testing.assert_allclose(sequential[name][IMAGES[1]][key].astype(np.float64),
                                   value.astype(np.float64), atol=2e-4, err_msg=key)


@pytest.mark.parametrize("name", list(ANALYSES))
def test_cache_round_trip_and_stale_entries(demo, ds, sequential, name, tmp_path):
    analysis = ANALYSES[name]
    cache = ArrayCache(tmp_path)
    first = run(demo, ds, IMAGES[:1], analysis, cache=cache)
    again = run(demo, ds, IMAGES[:1], analysis, cache=cache)
    assert (first.from_cache, again.from_cache) == (0, 1)
    for key, value in first.arrays[IMAGES[0]].items():
        np.testing.assert_array_equal(again.arrays[IMAGES[0]][key], value)
    only = run(demo, ds, IMAGES, analysis, cache=cache, compute=False)
    assert sorted(only.arrays) == IMAGES[:1] and only.missing == IMAGES[1:]
    # an entry that no longer matches the declared outputs is recomputed, not returned
    (key,) = list(cache._store)
    stale = dict(first.arrays[IMAGES[0]])
    stale.pop(next(iter(analysis.outputs)))
    cache.set(key, stale)
    assert analysis.problems(stale, demo)
    fresh = run(demo, ds, IMAGES[:1], analysis, cache=cache)
    assert fresh.from_cache == 0 and set(fresh.arrays[IMAGES[0]]) == set(analysis.outputs)
    assert not analysis.problems(cache.get(key), demo)  # and the entry is replaced


@pytest.mark.parametrize("name", [n for n, a in ANALYSES.items() if a.class_specific])
def test_class_specific_analyses_follow_the_target(demo, ds, sequential, name):
    analysis = ANALYSES[name]
    by_default = sequential[name]
    other = run(demo, ds, IMAGES, analysis, target=3).arrays
    assert any(not np.allclose(by_default[i][k], other[i][k]) for i in IMAGES
               for k in analysis.outputs), name
    chosen = run(demo, ds, IMAGES, analysis, target=analysis.target).arrays
    for i in IMAGES:
        for key in analysis.outputs:
            np.testing.assert_allclose(chosen[i][key], by_default[i][key], atol=1e-6)


@pytest.mark.parametrize("name", [n for n, a in ANALYSES.items() if not a.class_specific])
def test_class_agnostic_analyses_ignore_the_target(demo, ds, sequential, name):
    other = run(demo, ds, IMAGES, ANALYSES[name], target=3).arrays
    for i in IMAGES:
        for key, value in sequential[name][i].items():
            np.testing.assert_array_equal(other[i][key], value)


def test_targets_resolve_from_one_choice(demo):
    assert resolve_targets("label", [3, None], demo) == [3, None]
    assert resolve_targets("prediction", [3, None], demo) == [None, None]
    assert resolve_targets(7, [3, None], demo) == [7, 7]
    with pytest.raises(ValueError, match="class index in 0..9"):
        resolve_targets(10, [3], demo)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_maps_each_image_and_follows_its_class_flag(demo, method):
    x = random_input(demo, batch=3)
    maps = explain(demo, x, method)
    assert maps.shape == (3, 49) and torch.isfinite(maps).all() and maps.dtype == torch.float32
    for b in range(3):
        torch.testing.assert_close(explain(demo, x[b:b + 1], method)[0], maps[b],
                                   rtol=1e-4, atol=1e-6)
    predicted = demo.model(x).argmax(-1).tolist()
    other = explain(demo, x, method, [(p + 1) % 10 for p in predicted])
    assert METHODS[method].class_specific == (not torch.allclose(other, maps)), method
    if METHODS[method].params is not None:
        defaults = METHODS[method].params()
        torch.testing.assert_close(explain(demo, x, method, params=defaults), maps)


def test_dataset_steps_read_a_registered_analysis():
    for name, step in DATASET_STEPS.items():
        assert step.name == name and step.reads
        assert all(ANALYSES[a.name] is a for a in step.reads)
        assert step.params.__dataclass_params__.frozen
        defaults = step.reads_params(step.params())  # the analyses' params from the step's
        assert len(defaults) == len(step.reads)
        assert all(isinstance(p, a.params) for p, a in zip(defaults, step.reads))
