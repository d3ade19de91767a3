"""The attention prompt (SPEC "Prompting at inference") against a masked softmax
written out by hand on the untouched timm model, ``alpha = 0`` against removing the
outside tokens from the sequence, and its fix and keep rates on a planted case."""
from __future__ import annotations

import copy
import dataclasses
import re

import numpy as np
import pytest
import torch

from core.analyses.prompt import PROMPT, PROMPT_OBJECTS, key_weights, prompted
from core.data.builtin import builtin_dataset, demo_dataset
from core.data.inputs import load_batch
from core.data.watermark import with_marker, without_marker
from core.dataset.prompt_rates import best_alpha, build, clean_predictions, in_words
from core.engine import run
from core.model import logits
from core.storage.cache import ArrayCache


@pytest.fixture(scope="module")
def case(demo):
    x, _, _ = load_batch(demo, demo_dataset(), [0, 1, 2])
    inside = torch.zeros(3, demo.grid[0] * demo.grid[1], dtype=torch.bool)
    inside[:, 10:30] = True  # a band of patches as the object
    inside[2, 40:] = True
    return x, inside, copy.deepcopy(demo.model)


def by_hand(model, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The timm ViT's forward written out, each attention row a masked softmax
    ``exp(s_ij) w_j / sum_k exp(s_ik) w_k`` (weights: image x token)."""
    t = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
    for block in model.blocks:
        a, y = block.attn, block.norm1(t)
        b, n, c = y.shape
        q, k, v = a.qkv(y).reshape(b, n, 3, a.num_heads, c // a.num_heads).permute(2, 0, 3, 1, 4)
        scores = (a.q_norm(q) @ a.k_norm(k).transpose(-2, -1)) * a.scale
        e = (scores - scores.amax(-1, keepdim=True)).exp() * weights[:, None, None, :]
        out = ((e / e.sum(-1, keepdim=True)) @ v).transpose(1, 2).reshape(b, n, c)
        t = t + block.ls1(a.proj(a.norm(out)))
        t = t + block.ls2(block.mlp(block.norm2(t)))
    return model.forward_head(model.norm(t))


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_the_prompt_is_a_masked_softmax_on_the_untouched_model(demo, case, alpha):
    x, inside, untouched = case
    with torch.no_grad():
        want = by_hand(untouched, x, key_weights(demo, inside, alpha))
        got = prompted(demo, x, inside, alpha)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_alpha_zero_is_the_outside_tokens_removed_from_the_sequence(demo, case):
    x, inside, untouched = case
    p = demo.num_prefix_tokens
    with torch.no_grad():
        got = prompted(demo, x, inside, 0.0)
        for b in range(len(x)):
            t = untouched.norm_pre(untouched._pos_embed(untouched.patch_embed(x[b:b + 1])))
            keep = torch.cat([torch.arange(p), p + torch.nonzero(inside[b])[:, 0]])
            shorter = untouched.forward_head(untouched.norm(untouched.blocks(t[:, keep])))
            torch.testing.assert_close(got[b:b + 1], shorter, rtol=1e-4, atol=1e-5)


def test_alpha_one_is_the_model_unchanged(demo, case):
    x, inside, _ = case
    torch.testing.assert_close(prompted(demo, x, inside, 1.0), logits(demo, x),
                               rtol=1e-4, atol=1e-5)


def test_the_analysis_gives_each_object_and_alpha_and_the_unprompted_at_alpha_one(tmp_path):
    from core import load_model
    lm = load_model("demo-watermark", device="cpu")
    ds = builtin_dataset("demo-watermark", lm.class_names)
    got = run(lm, ds, [0, 1, 2, 3], PROMPT, cache=ArrayCache(tmp_path)).arrays
    alphas = PROMPT.params().alphas
    x, _, _ = load_batch(lm, ds, [0, 1, 2, 3])
    plain = logits(lm, x)
    for b in range(4):
        assert got[b]["top"].shape == (len(PROMPT_OBJECTS), len(alphas))
        one = alphas.index(1.0)
        assert (got[b]["top"][:, one] == int(plain[b].argmax())).all()
        np.testing.assert_allclose(got[b]["probability"][:, one],
                                   float(plain[b].softmax(-1).max()), rtol=1e-4)


def test_the_marker_comes_off_exactly():
    images = np.zeros((4, 44, 44), np.uint8)
    images[:, 10:30, 10:30] = 120  # the garment, inside the black border
    marked = with_marker(images, np.array([0, 1, 2, -1]))
    assert (marked != images).any(axis=(1, 2)).tolist() == [True, True, True, False]
    np.testing.assert_array_equal(without_marker(marked), images)


def test_fix_and_keep_rates_on_a_planted_case(demo):
    ds = demo_dataset()
    ds.relies = np.array([True, True, False, False, False])
    ds.clean = ds.pixels
    clean = clean_predictions(demo, ds, list(range(5)))
    before = (clean + 1) % 10  # what the model said with the shortcut
    other = (clean + 2) % 10
    # alpha 0: fixes both relying images, keeps one of three others; alpha 1: nothing moves
    top = {i: np.array([[clean[i] if i < 2 else (before[i] if i == 2 else other[i]),
                         before[i]]] * 2) for i in range(5)}
    reads = {"prompt": {i: {"top": top[i]} for i in range(5)},
             "spurious": {i: {"top_before": before[i], "top_after": clean[i]} for i in range(5)}}
    params = PROMPT.params(alphas=(0.0, 1.0))
    arrays = build(demo, ds, reads, params, lambda *_: None)
    np.testing.assert_allclose(arrays["fix"], [[1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(arrays["keep"], [[1 / 3, 1.0], [1 / 3, 1.0]])
    assert float(arrays["pixel_fix"]) == 1.0 and float(arrays["pixel_keep"]) == 0.0
    assert best_alpha(arrays) == 0  # the only prompt (alpha 1 is the model as it is)
    three = {"alphas": np.array([0.0, 0.5, 1.0]), "fix": np.array([[1.0, 0.6, 0.0]])}
    assert best_alpha(three | {"keep": np.array([[0.3, 0.95, 1.0]])}) == 1  # keeps 90%
    assert best_alpha(three | {"keep": np.array([[0.3, 0.5, 1.0]])}) == 0  # most fix + keep
    assert best_alpha({"alphas": np.array([1.0]), "fix": np.zeros((1, 1)),
                       "keep": np.ones((1, 1))}) == 0
    assert in_words(arrays, 0, 0) == (
        "With the outside weighted 0 (the object as the inside), the prompt corrects 2 of "
        "the 2 images that relied on the marker and leaves 1 of the 3 others unchanged.")


def test_a_set_without_a_known_shortcut_is_refused_in_words_before_any_work(demo, tmp_path):
    from core.dataset import PROMPT_RATES
    from core.engine import run_step
    cache = ArrayCache(tmp_path)
    with pytest.raises(ValueError, match="records no known shortcut"):
        run_step(demo, demo_dataset(), PROMPT_RATES, cache=cache)
    assert len(cache) == 0  # nothing read or computed first


def test_the_keypoints_page_shows_the_prompt_and_its_rates_in_words(tmp_path, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    import ui.resources
    from ui.pages import by_name

    def small_watermark(spec: str, class_names: list[str]):
        ds = builtin_dataset("demo-watermark", class_names)
        keep = list(range(12))
        return dataclasses.replace(ds, records=[ds.records[i] for i in keep],
                                   pixels=ds.pixels[keep], masks=ds.masks[keep],
                                   relies=ds.relies[keep], clean=ds.clean[keep])

    monkeypatch.setenv("VIT_EXPLORER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(ui.resources, "load_dataset", small_watermark)
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "app.py"),
                           default_timeout=600)
    at.query_params.update({"model": "demo-watermark", "images": "demo-watermark"})
    at.run()
    at.switch_page(by_name("keypoints").path).run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    table = next(d.value for d in at.dataframe if "top-1" in d.value.columns)
    assert list(table.index[:2]) == ["as is", "outside filled grey"]
    assert "prompt, inside = object, outside weight 0" in table.index
    at.button(key="prompt_rates_compute").click().run()
    assert not at.exception and not at.error
    said = " ".join(m.value for m in at.markdown)
    assert re.search(r"the prompt corrects \d+ of the \d+ images that relied on the marker "
                     r"and leaves \d+ of the \d+ others unchanged", said), said
    assert any("Weight of the patches outside" in c.proto.spec
               for c in at.get("vega_lite_chart"))
    training = next(d.value for d in at.dataframe if "which tokens" in d.value.columns)
    assert len(training) == 5 and set(training["share of patch tokens kept in training"]) == {
        0.25, 0.5, 1.0}  # the measured comparison shipped with the demo
    assert "Training on half of each image's patches, those with the most keypoints" in said


def test_the_report_carries_the_rates_and_the_training_comparison(tmp_path):
    from core.dataset import PROMPT_RATES
    from core.engine import run_step
    from core.model import load_model
    from ui.report import image_report
    lm = load_model("demo-watermark")
    full = builtin_dataset("demo-watermark", lm.class_names)
    keep = list(range(8))
    ds = dataclasses.replace(full, records=[full.records[i] for i in keep],
                             pixels=full.pixels[keep], masks=full.masks[keep],
                             relies=full.relies[keep], clean=full.clean[keep])
    cache = ArrayCache(tmp_path)
    page = image_report(lm, ds, 0, layer=0, head=0, cache=cache)
    assert "How often the attention prompt fixes the shortcut: not computed" in page
    assert "Training on the keypoint patches only, measured on the built-in demo" in page
    assert "<th>which tokens</th>" in page and page.count("most keypoints first") == 2
    run_step(lm, ds, PROMPT_RATES, cache=cache)
    page = image_report(lm, ds, 0, layer=0, head=0, cache=cache)
    assert re.search(r"the prompt corrects \d+ of the \d+ images that relied on the marker", page)
