"""The fast importance estimate (Michel et al. 2019): equal to the head-gate gradient
computed on the untouched timm model one image at a time; the agreement step ranks it
against exact leave-one-out (Spearman checked by hand and against a loop)."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from core.analyses import IMPORTANCE, IMPORTANCE_ESTIMATE
from core.analyses.importance import METRICS
from core.analyses.importance_estimate import compared_with, signed_estimate
from core.data.builtin import demo_dataset
from core.data.datasets import load_dataset
from core.data.inputs import load_batch
from core.dataset import ESTIMATE_AGREEMENT
from core.dataset.statistics import spearman
from core.engine import compute_images, run, run_step
from core.storage.cache import ArrayCache
from testing.images import demo_class_folder
from testing.models import random_input, small_deit
from testing.reference import gated_head_importance


def test_spearman_on_hand_computed_cases():
    assert spearman(np.array([1, 2, 3, 4]), np.array([10, 20, 30, 40])) == pytest.approx(1)
    assert spearman(np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1])) == pytest.approx(-1)
    # ranks 1,2,3,4 against 2,1,4,3: d^2 = 4, rho = 1 - 6 * 4 / (4 * 15) = 0.6
    assert spearman(np.array([1, 2, 3, 4]), np.array([2, 1, 4, 3])) == pytest.approx(0.6)
    assert np.isnan(spearman(np.ones(4), np.arange(4)))


def test_estimate_equals_the_head_gate_gradient_on_the_untouched_model():
    lm, untouched = small_deit("deit_tiny_patch16_224")
    x = random_input(lm, batch=3)
    targets = [3, None, 0]
    signed = signed_estimate(lm, x, targets).numpy()
    for b in range(3):
        target = targets[b] if targets[b] is not None else int(untouched(x[b:b + 1]).argmax())
        expected = gated_head_importance(untouched, x[b:b + 1], target)
        np.testing.assert_allclose(np.abs(signed[b]), expected, rtol=1e-4, atol=1e-7)
        assert expected.max() > 1e-3


def test_demo_estimate_equals_the_gate_and_ranks_heads_like_the_exact_drop(demo):
    ds = demo_dataset()
    x, kept, _ = load_batch(demo, ds, list(range(8)))
    labels = [ds.records[i].label for i in kept]
    out = compute_images(demo, x, IMPORTANCE_ESTIMATE, labels, None)
    untouched = copy.deepcopy(demo.model)
    expected = gated_head_importance(untouched, x[:1], labels[0])
    np.testing.assert_allclose(out[0]["estimate"], expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(out[0]["estimate"], np.abs(out[0]["signed"]))
    exact = compute_images(demo, x, IMPORTANCE, labels, None)
    rho = [spearman(o["signed"], e["importance"][METRICS.index("prob")])
           for o, e in zip(out, exact)]
    assert np.mean(rho) > 0.5, rho  # measured 0.89 over 32 images


def test_agreement_step_equals_a_loop_over_images(demo, tmp_path):
    ds = load_dataset(str(demo_class_folder(tmp_path, demo.class_names, per_class=3)),
                      demo.class_names)
    cache = ArrayCache(tmp_path / "cache")
    arrays = run_step(demo, ds, ESTIMATE_AGREEMENT, cache=cache).arrays
    everything = list(range(len(ds)))
    exact = run(demo, ds, everything, IMPORTANCE, cache=cache).arrays
    estimate = run(demo, ds, everything, IMPORTANCE_ESTIMATE, cache=cache).arrays
    assert arrays["per_image"].shape == (len(ds), len(METRICS))
    for row, i in enumerate(arrays["image"]):
        for m, metric in enumerate(METRICS):
            expected = spearman(estimate[i][compared_with(metric)], exact[i]["importance"][m])
            assert arrays["per_image"][row, m] == pytest.approx(expected, nan_ok=True)
    np.testing.assert_allclose(arrays["mean"], np.nanmean(arrays["per_image"], axis=0))
    means = np.mean([estimate[i]["signed"] for i in everything], axis=0)
    exact_prob = np.mean([exact[i]["importance"][0] for i in everything], axis=0)
    assert arrays["over_set"][0] == pytest.approx(spearman(means, exact_prob))
