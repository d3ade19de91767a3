"""Sanity checks of explanations (SPEC "Sanity checks of explanations"): the cascade
re-initialises copies from the top and never the shared model; the similarities are
Spearman and SSIM against independent computations; a map that ignores the model
survives and is said to; the untouched step is the maps themselves."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

from core.data.builtin import demo_dataset
from core.dataset.base import no_stage
from core.dataset.sanity import (SANITY, SanityParams, randomised, similarities, ssim,
                                 verdicts)
from core.engine import run_step
from core.explain import METHODS
from core.storage.cache import ArrayCache
from testing.models import model_state


def test_the_cascade_reinitialises_copies_from_the_top_and_leaves_the_model(demo):
    loaded = model_state(demo.model)
    original = {k: v.clone() for k, v in demo.model.state_dict().items()}
    names = []
    for name, twin in randomised(demo):
        names.append(name)
        assert twin.model is not demo.model and twin.lock is not demo.lock
        changed = {k.split(".")[0] + ("." + k.split(".")[1] if k.startswith("blocks") else "")
                   for k, v in twin.model.state_dict().items() if not torch.equal(v, original[k])}
        blocks = len(demo.model.blocks)
        done = names[1:]  # the classifier first, then blocks from the last
        assert "head" in changed
        assert {f"blocks.{n.split()[1]}" for n in done} <= changed
        untouched = {f"blocks.{i}" for i in range(blocks)} - {f"blocks.{n.split()[1]}" for n in done}
        assert not untouched & changed, (name, untouched & changed)
    assert names == ["classifier"] + [f"block {i}" for i in reversed(range(len(demo.model.blocks)))]
    assert model_state(demo.model) == loaded
    assert all(torch.equal(v, original[k]) for k, v in demo.model.state_dict().items())


def test_the_cascade_is_timms_initialiser_seeded_and_leaves_the_process_random_state(demo):
    from timm.models.vision_transformer import init_weights_vit_timm
    torch.manual_seed(7)
    before = torch.random.get_rng_state()
    first = next(randomised(demo))[1].model.head.weight.clone()
    again = next(randomised(demo))[1].model.head.weight.clone()
    assert torch.equal(first, again)
    assert torch.equal(torch.random.get_rng_state(), before)
    by_timm = torch.nn.Linear(*reversed(first.shape))
    torch.manual_seed(0)
    init_weights_vit_timm(by_timm)  # the same distribution from the global generator
    assert first.std().item() == pytest.approx(by_timm.weight.std().item(), rel=0.1)
    assert first.mean().abs().item() < 0.005


def test_similarities_match_scipy_and_scikit_image_by_hand():
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 2, 49)), rng.random((3, 2, 49))
    rho, same = similarities(a, b, (7, 7))
    want_rho = np.mean([[spearmanr(a[i, m], b[i, m]).statistic for m in range(2)]
                        for i in range(3)], axis=0)
    np.testing.assert_allclose(rho, want_rho, rtol=1e-12)

    def scaled(m, side):
        return ((m - m.min()) / (m.max() - m.min())).reshape(side, side)

    want = structural_similarity(scaled(a[0, 0], 7), scaled(b[0, 0], 7), data_range=1.0,
                                 win_size=7)
    assert ssim(a[0, 0], b[0, 0], (7, 7)) == pytest.approx(want)
    assert ssim(a[0, 0], 3 * a[0, 0] + 1, (7, 7)) == pytest.approx(1.0)  # scale-free
    even = structural_similarity(scaled(a[0, 0, :36], 6), scaled(b[0, 0, :36], 6),
                                 data_range=1.0, win_size=5)  # an even grid: the odd
    assert ssim(a[0, 0, :36], b[0, 0, :36], (6, 6)) == pytest.approx(even)  # window below


def test_the_step_on_the_demo_separates_model_dependent_maps_from_the_baseline(demo,
                                                                              tmp_path):
    arrays = run_step(demo, demo_dataset(), SANITY, SanityParams(sample=12),
                      cache=ArrayCache(tmp_path), stage=no_stage).arrays
    names = list(METHODS)
    steps = 1 + 1 + len(demo.model.blocks)
    assert list(arrays["steps"])[:2] == ["untouched", "classifier"]
    assert arrays["spearman"].shape == arrays["ssim"].shape == (steps, len(names))
    np.testing.assert_allclose(arrays["spearman"][0], 1.0)  # the maps against themselves
    random = names.index("random")
    np.testing.assert_allclose(arrays["spearman"][:, random], 1.0)  # ignores the model
    assert "random" not in verdicts(arrays)
    for name in ("gradient_rollout", "relevance", "rollout", "ablation"):
        assert arrays["spearman"][-1, names.index(name)] < 0.5, name
        assert verdicts(arrays)[name] == "depends on the model"
    # the attention of the untouched blocks does not change when only the classifier is
    # re-initialised: class-agnostic rollout keeps its maps, class-specific ones do not
    assert arrays["spearman"][1, names.index("rollout")] == pytest.approx(1.0)
    assert arrays["spearman"][1, names.index("gradient_rollout")] < 0.9


def test_a_map_that_survives_is_said_to():
    spearman = np.ones((3, len(METHODS)))
    spearman[-1, 0] = 0.9
    spearman[-1, 1] = 0.1
    said = verdicts({"spearman": spearman})
    names = list(METHODS)
    assert said[names[0]] == "survives randomisation: read with care"
    assert said[names[1]] == "depends on the model"


def test_the_rollout_page_asks_then_shows_the_cascade_and_a_verdict_per_method(
        demo, tmp_path, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from testing.images import demo_class_folder
    from ui.pages import by_name
    monkeypatch.setenv("VIT_EXPLORER_CACHE", str(tmp_path / "cache"))
    folder = demo_class_folder(tmp_path, demo.class_names, per_class=2)
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "app.py"),
                           default_timeout=600)
    at.query_params.update({"images": str(folder), "sanity_sample": "4"})
    at.run()
    at.switch_page(by_name("rollout").path).run()
    assert not at.exception and not at.error
    # the page's own image has its maps already: 3 of the sample's 4 lack them
    assert at.button(key="sanity_compute").label == "Compute now (3 images)"
    assert any("a sample of 4 of the set's 6 images" in i.value and "takes about" in i.value
               for i in at.info)
    at.button(key="sanity_compute").click().run()
    assert not at.exception and not at.error
    verdict = next(d.value for d in at.dataframe if "verdict" in d.value.columns)
    assert len(verdict) == len(METHODS) - 1  # every method but the random baseline
    assert set(verdict["verdict"]) <= {"depends on the model",
                                      "survives randomisation: read with care"}
    assert any("Similarity to the untouched" in c.proto.spec
               for c in at.get("vega_lite_chart"))
    assert any(c.value.startswith("Over 4 images.") for c in at.caption)
