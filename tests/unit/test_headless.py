"""Models without class scores (SPEC "Models without class scores"): recognised at load,
explained by the score ``s(x) = <e(x), r> / <r, r>``, each analysis checked against a
naive computation on the untouched timm model (DINOv2 with registers, a CLIP tower)."""
from __future__ import annotations

import re

import numpy as np
import pytest
import timm
import torch

from core.analyses import (EXPLANATIONS, FAITHFULNESS, FORWARD, IMPORTANCE,
                           IMPORTANCE_ESTIMATE, SPURIOUS)
from core.analyses.axes import problems
from core.analyses.explanations import CHEAP_METHODS
from core.analyses.base import resolve_targets
from core.analyses.faithfulness import METHOD_NAMES, deletion_counts, ranks
from core.analyses.importance import EMBEDDING_METRICS, metric_names
from core.cli.train_demo import CLASS_NAMES
from core.data.datasets import load_dataset
from core.dataset import DATASET_STEPS
from core.engine import compute_images
from core.precompute import precompute
from core.storage.cache import ArrayCache
from core.explain import explain
from core.explain.gradients import attention_and_gradients
from core.model import capture, from_module
from core.model.targets import Reference
from testing.images import demo_class_folder
from testing.models import HEADLESS_CASES, headless_vit, random_input
from testing.reference import zero_head_by_hand
from ui.report import image_report

pytestmark = pytest.mark.slow  # left out of `make check` (the inner loop)

@pytest.fixture(scope="module", params=list(HEADLESS_CASES))
def case(request):
    return headless_vit(request.param)


@torch.no_grad()
def embedding(untouched: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What the untouched model's head receives (batch x width)."""
    return untouched.forward_head(untouched.forward_features(x), pre_logits=True)


def score(e: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return (e * r).sum(-1) / (r * r).sum(-1)


def test_recognised_without_classes_and_outputs_the_embedding(case):
    lm, untouched = case
    assert not lm.has_classes and lm.class_names == []
    assert untouched.num_classes == 0
    assert lm.num_outputs == untouched.num_features
    x = random_input(lm)
    out = compute_images(lm, x, FORWARD, [None, None])
    np.testing.assert_allclose(np.stack([o["logits"] for o in out]),
                               embedding(untouched, x).numpy(), rtol=1e-4, atol=1e-5)
    assert not problems(FORWARD, out[0], lm)
    assert metric_names(lm) == EMBEDDING_METRICS


def test_a_clip_tower_fine_tuned_on_imagenet_keeps_its_classes():
    torch.manual_seed(0)
    model = timm.create_model("vit_base_patch16_clip_224.openai_ft_in1k", pretrained=False,
                              img_size=32, depth=1, embed_dim=32, num_heads=2).eval()
    lm = from_module(model, "vit_base_patch16_clip_224.openai_ft_in1k", device="cpu")
    assert lm.has_classes and len(lm.class_names) == 1000


def test_a_class_target_is_refused_for_a_model_without_classes(case):
    lm, _ = case
    assert resolve_targets("label", [None, None], lm) == [None, None]
    with pytest.raises(ValueError, match="no classes"):
        resolve_targets(3, [None], lm)


def test_leave_one_out_against_pruning_the_untouched_model_by_hand(case):
    lm, untouched = case
    x = random_input(lm, batch=2)
    got = np.stack([a["importance"] for a in compute_images(lm, x, IMPORTANCE, [None, None])])
    e = embedding(untouched, x)
    for layer in range(lm.num_layers):
        for head in range(lm.num_heads):
            pruned = zero_head_by_hand(untouched, layer, head, x)  # the pruned embedding
            sim = 1.0 - score(pruned, e)  # s(x) = 1 on its own embedding
            dist = 1.0 - torch.nn.functional.cosine_similarity(e, pruned, dim=-1)
            np.testing.assert_allclose(got[:, 0, layer, head], sim.numpy(), atol=2e-5)
            np.testing.assert_allclose(got[:, 1, layer, head], dist.numpy(), atol=2e-5)
    assert np.abs(got[:, :2]).max() > 0  # pruning changes the embedding


def test_gradients_are_those_of_the_score(case):
    lm, _ = case
    x = random_input(lm, batch=2)
    attention, grads, explained = attention_and_gradients(lm, x)
    masks = {layer: torch.ones(len(x), lm.num_heads, lm.num_tokens, lm.num_tokens,
                               requires_grad=True) for layer in range(lm.num_layers)}
    with torch.enable_grad():
        e = capture.forward(lm, x, masks=masks, grad=True).logits
        score(e, e.detach()).sum().backward()  # r = the image's own embedding, held fixed
    expected = torch.stack([masks[layer].grad for layer in range(lm.num_layers)], dim=1)
    torch.testing.assert_close(attention * grads, expected, rtol=1e-4, atol=1e-7)
    assert explained.classes is None and expected.abs().max() > 0


def test_deletion_curve_is_the_score_after_removing_patches_by_hand(case):
    lm, untouched = case
    x = random_input(lm, batch=1)
    out = compute_images(lm, x, FAITHFULNESS, [None])[0]
    assert int(out["class"]) == -1
    e0 = embedding(untouched, x)
    counts = deletion_counts(lm.grid[0] * lm.grid[1])
    (ph, pw), gw = lm.patch_size, lm.grid[1]
    maps = compute_images(lm, x, EXPLANATIONS, [None])[0]["maps"]
    for name in ("rollout", "random"):
        m = METHOD_NAMES.index(name)
        order = ranks(torch.as_tensor(maps[CHEAP_METHODS.index(name)])[None])[0].argsort().tolist()
        expected = []
        for k in counts:
            y = x.clone()
            for patch in order[:k]:
                r, c = divmod(patch, gw)
                y[:, :, r * ph:(r + 1) * ph, c * pw:(c + 1) * pw] = 0.0
            expected.append(float(score(embedding(untouched, y), e0)[0]))
        np.testing.assert_allclose(out["deletion_curve"][m], expected, rtol=1e-4, atol=1e-5)
        assert out["deletion_curve"][m][0] == pytest.approx(1.0, abs=1e-5)
        # perturbation tests record the score, not a 0/1 top-1 flag
        assert out["positive_curve"][m][0] == pytest.approx(1.0, abs=1e-5)


def test_another_image_as_the_reference(case):
    lm, untouched = case
    x = random_input(lm, batch=2)
    e = embedding(untouched, x)
    ref = Reference(e[1].numpy(), "image-1")
    out = compute_images(lm, x, FAITHFULNESS, [ref, ref])
    expected = score(e, e[1:2].expand_as(e))
    for b in range(2):
        assert out[b]["deletion_curve"][0][0] == pytest.approx(float(expected[b]), abs=1e-4)
    maps_ref = explain(lm, x[:1], "relevance", [ref])
    maps_self = explain(lm, x[:1], "relevance", [None])
    assert not torch.allclose(maps_ref, maps_self)  # the target changes the explanation


def test_estimate_and_counterfactual_use_the_score(case):
    lm, _ = case
    x = random_input(lm, batch=2)
    est = compute_images(lm, x, IMPORTANCE_ESTIMATE, [None, None])
    assert np.isfinite(est[0]["signed"]).all() and np.abs(est[0]["signed"]).max() > 0
    spur = compute_images(lm, x, SPURIOUS, [None, None])
    for arrays in spur:
        assert arrays["probability_before"] == pytest.approx(1.0, abs=1e-5)
        assert int(arrays["top_before"]) == int(arrays["class"]) == -1


def test_the_report_says_no_classes_and_names_none(case):
    lm, _ = case
    text = image_report(lm, load_dataset("demo", lm.class_names), 0, 0, 0)  # no labels
    assert "The model has no classes" in text
    assert not re.search(r"probabilit|predicted class|top-5", text, re.I)


def test_the_batch_precompute_runs_every_step(case, tmp_path):
    lm, _ = case
    root = demo_class_folder(tmp_path / "images", CLASS_NAMES, per_class=3)
    ds = load_dataset(str(root), lm.class_names)
    assert len(ds.classes) > 1 and all(r.label is None for r in ds.records)
    summary = precompute(lm, ds, ArrayCache(tmp_path / "cache"))
    assert summary.done == set(range(len(ds)))
    assert {name for name, step in DATASET_STEPS.items()  # every step this set allows
            if not (step.unavailable and step.unavailable(lm, ds))} <= set(summary.seconds)
