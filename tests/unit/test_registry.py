"""Cross-cutting checks that every registered analysis, explanation method and dataset
step goes through (captum style: one table of cases, ``testing.cases``, drives every
test: defaults, a non-default parameter set and each target form)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from core import ANALYSES, DATASET_STEPS, METHODS, explain, run
from core.analyses import explanations, faithfulness
from core.analyses.axes import problems
from core.analyses.base import resolve_targets
from core.data.builtin import demo_dataset
from core.engine import entry_key
from core.explain.attention import random_map
from core.storage.cache import ArrayCache
from testing.cases import CASES, STEP_CASES, STEP_VARIANTS, VARIANTS, Case
from testing.images import demo_class_folder
from testing.models import random_input

IMAGES = [0, 105, 230]  # three classes of the demo set
CASE_PARAMS = [pytest.param(c, id=c.id, marks=() if c.params is None and c.target is None
                            else pytest.mark.slow) for c in CASES]  # `make check`: defaults


@pytest.fixture(scope="module")
def ds():
    return demo_dataset()


@pytest.fixture(scope="module")
def sequential(demo, ds):
    """Every analysis on IMAGES with its defaults, one engine run each, no cache."""
    return {name: run(demo, ds, IMAGES, analysis).arrays for name, analysis in ANALYSES.items()}


def run_case(demo, ds, case: Case, indices: list[int], cache=None):
    return run(demo, ds, indices, ANALYSES[case.analysis], case.params, target=case.target,
               cache=cache)


def test_the_table_gives_every_analysis_and_step_with_parameters_a_variant():
    for name, analysis in ANALYSES.items():
        if dataclasses.fields(analysis.params):
            assert name in VARIANTS and VARIANTS[name] != analysis.params(), name
    for name, step in DATASET_STEPS.items():
        if dataclasses.fields(step.params):
            assert name in STEP_VARIANTS and STEP_VARIANTS[name] != step.params(), name


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_outputs_are_the_declared_ones(demo, ds, case):
    analysis = ANALYSES[case.analysis]
    assert dataclasses.is_dataclass(analysis.params)
    assert analysis.params.__dataclass_params__.frozen  # parameters are immutable and hashable
    result = run_case(demo, ds, case, IMAGES)
    for i in IMAGES:
        assert problems(analysis, result.arrays[i], demo) == [], case.id
        assert set(result.arrays[i]) == set(analysis.outputs)


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_batched_equals_one_image_at_a_time(demo, ds, case):
    together = run_case(demo, ds, case, IMAGES).arrays[IMAGES[1]]
    alone = run_case(demo, ds, case, IMAGES[1:2]).arrays[IMAGES[1]]
    for key, value in alone.items():
        np.testing.assert_allclose(together[key].astype(np.float64),
                                   value.astype(np.float64), atol=2e-4, err_msg=key)


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_cache_round_trip_and_stale_entries(demo, ds, case, tmp_path):
    analysis = ANALYSES[case.analysis]
    cache = ArrayCache(tmp_path)
    first = run_case(demo, ds, case, IMAGES[:1], cache)
    again = run_case(demo, ds, case, IMAGES[:1], cache)
    assert (first.from_cache, again.from_cache) == (0, 1)
    for key, value in first.arrays[IMAGES[0]].items():
        np.testing.assert_array_equal(again.arrays[IMAGES[0]][key], value)
    only = run(demo, ds, IMAGES, analysis, case.params, target=case.target, cache=cache,
               compute=False)
    assert sorted(only.arrays) == IMAGES[:1] and only.missing == IMAGES[1:]
    # an entry that no longer matches the declared outputs is recomputed, not returned
    key = entry_key(demo, ds, analysis, IMAGES[0], case.params, case.target)
    assert key in set(cache._store)
    stale = dict(first.arrays[IMAGES[0]])
    stale.pop(next(iter(analysis.outputs)))
    cache.set(key, stale)
    assert problems(analysis, stale, demo)
    fresh = run_case(demo, ds, case, IMAGES[:1], cache)
    assert fresh.from_cache == 0 and set(fresh.arrays[IMAGES[0]]) == set(analysis.outputs)
    assert not problems(analysis, cache.get(key), demo)  # and the entry is replaced


@pytest.fixture(scope="module")
def small_set(demo, tmp_path_factory):
    """Ten labelled demo images in class folders (one per class)."""
    from core import load_dataset
    return load_dataset(str(demo_class_folder(tmp_path_factory.mktemp("steps"),
                                              demo.class_names, per_class=1)),
                        demo.class_names)


def shortcut_set():
    """Ten demo images with a planted shortcut record (every other image relies on it;
    without it, the same pixels)."""
    from core.data.builtin import demo_dataset
    from core.data.records import Dataset
    ds = demo_dataset()
    return Dataset("ten demo images", ds.records[:10], pixels=ds.pixels[:10],
                   relies=np.arange(10) % 2 == 0, clean=ds.pixels[:10])


@pytest.mark.parametrize("name,params", STEP_CASES,
                         ids=[f"{n}-{'variant' if p is not None else 'defaults'}"
                              for n, p in STEP_CASES])
def test_every_dataset_step_builds_and_describes_itself(demo, small_set, name, params,
                                                        tmp_path):
    from core.engine import run_step
    step = DATASET_STEPS[name]
    cache = ArrayCache(tmp_path)
    if name == "prompt_rates":  # defined on a set that records a known shortcut
        small_set = shortcut_set()
    built = run_step(demo, small_set, step, params, cache=cache)
    assert built.arrays and all(isinstance(v, np.ndarray) for v in built.arrays.values())
    assert all(np.isfinite(v).all() for v in built.arrays.values()
               if v.dtype.kind in "iu"), name
    assert isinstance(step.describe(demo, small_set, built.arrays), str)
    again = run_step(demo, small_set, step, params, cache=cache, compute=False)
    assert again.arrays is not None and set(again.arrays) == set(built.arrays)


def follows_target(analysis, by_default: dict, other: dict) -> bool:
    """Whether some output other than the class explained itself differs between two
    targets (the ``class`` output alone would differ for a map that ignored its target)."""
    return any(not np.allclose(by_default[i][k], other[i][k], equal_nan=True)
               for i in by_default for k in analysis.outputs if k != "class")


@pytest.mark.parametrize("name", [n for n, a in ANALYSES.items() if a.class_specific])
def test_class_specific_analyses_follow_the_target(demo, ds, sequential, name):
    analysis = ANALYSES[name]
    by_default = sequential[name]
    other = run(demo, ds, IMAGES, analysis, target=3).arrays
    assert follows_target(analysis, by_default, other), name
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


def test_the_target_check_fails_on_a_map_that_ignores_its_target(demo, ds, monkeypatch):
    """The check above, on patch ablation replaced by a map that ignores the class."""
    analysis = ANALYSES["ablation_map"]
    real = [run(demo, ds, IMAGES, analysis, target=t).arrays for t in ("prediction", 3)]
    assert follows_target(analysis, *real)
    monkeypatch.setitem(METHODS, "ablation", dataclasses.replace(
        METHODS["ablation"], explain=lambda lm, x, targets, params: random_map(lm, x, None)))
    planted = [run(demo, ds, IMAGES, analysis, target=t).arrays for t in ("prediction", 3)]
    assert not follows_target(analysis, *planted)
    assert any(int(planted[0][i]["class"]) != 3 for i in IMAGES)  # only `class` differs


def test_a_new_method_recomputes_every_entry_with_a_row_per_method(demo, ds, monkeypatch,
                                                                   tmp_path):
    """A registry-sized axis (``core.analyses.axes``) is part of the key: with one more
    method in the registry (as after a code change, the tuples derived from it at
    import included), every entry with a row per method, and every entry that reads
    one, is computed again; the others stay cached."""
    cache = ArrayCache(tmp_path)
    readers = ["explanations", "faithfulness", "spurious"]
    for name in readers + ["forward", "ablation_map"]:
        run(demo, ds, IMAGES[:1], ANALYSES[name], cache=cache)
    monkeypatch.setitem(METHODS, "planted", dataclasses.replace(METHODS["raw_attention"],
                                                                label="Planted"))
    monkeypatch.setattr(explanations, "CHEAP_METHODS", explanations.CHEAP_METHODS + ("planted",))
    monkeypatch.setattr(faithfulness, "METHOD_NAMES", tuple(METHODS))
    for name in readers:
        again = run(demo, ds, IMAGES[:1], ANALYSES[name], cache=cache)
        assert again.from_cache == 0, name
        assert not problems(ANALYSES[name], again.arrays[IMAGES[0]], demo), name
    assert run(demo, ds, IMAGES[:1], ANALYSES["faithfulness"], cache=cache
               ).arrays[IMAGES[0]]["deletion"].shape == (len(METHODS),)
    for name in ("forward", "ablation_map"):
        assert run(demo, ds, IMAGES[:1], ANALYSES[name], cache=cache).from_cache == 1, name
