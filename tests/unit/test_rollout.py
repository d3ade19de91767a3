"""Rollout, gradient rollout, relevance and per-layer maps (SPEC "Attention
aggregation") against hand-computed cases and an independent gradient path."""
from __future__ import annotations

import pytest
import torch

from core.model import capture
from core.explain.gradients import attention_and_gradients
from core.explain import METHODS, GradientRolloutParams, RolloutParams, explain
from core.analyses import EXPLANATIONS
from core.analyses.explanations import CHEAP_METHODS, method_params
from core.engine import compute_images
from core.explain.attention import cls_map, score_map
from core.explain.relevance import relevance_map
from core.explain.rollout import discard_lowest, fuse_heads, gradient_fused, rollout_map
from testing.models import random_input, random_vit
from testing.reference import mask_gradients

# One layer, two heads, T = 1 CLS + a 2 x 2 patch grid (rows = queries, sum 1).
HEAD0 = [[0.4, 0.3, 0.1, 0.1, 0.1],
         [0.1, 0.6, 0.1, 0.1, 0.1],
         [0.2, 0.2, 0.2, 0.2, 0.2],
         [0.1, 0.1, 0.1, 0.6, 0.1],
         [0.3, 0.1, 0.1, 0.1, 0.4]]
HEAD1 = [[0.2, 0.1, 0.5, 0.1, 0.1],
         [0.2, 0.2, 0.2, 0.2, 0.2],
         [0.1, 0.1, 0.7, 0.0, 0.1],
         [0.4, 0.1, 0.1, 0.3, 0.1],
         [0.1, 0.1, 0.1, 0.1, 0.6]]
LAYER = torch.tensor([HEAD0, HEAD1])  # H x T x T
# A second layer whose CLS row attends half to itself, half to patch 1.
SECOND = torch.tensor([[[0.5, 0.5, 0.0, 0.0, 0.0]] + [[0.2] * 5] * 4] * 2)


def one_image(*layers: torch.Tensor) -> torch.Tensor:
    return torch.stack(layers)[None]  # 1 x L x H x T x T


def test_rollout_one_layer_by_hand_for_each_fusion():
    # mean: CLS row [.3 .2 .3 .1 .1]; (F + I) / 2 -> [.65 .1 .15 .05 .05], already sums to 1.
    # max:  CLS row [.4 .3 .5 .1 .1] (sum 1.4); (F + I) / 2 -> [.7 .15 .25 .05 .05] / 1.2.
    # min:  CLS row [.2 .1 .1 .1 .1] (sum 0.6); (F + I) / 2 -> [.6 .05 .05 .05 .05] / 0.8.
    expected = {"mean": [0.1, 0.15, 0.05, 0.05],
                "max": [0.15 / 1.2, 0.25 / 1.2, 0.05 / 1.2, 0.05 / 1.2],
                "min": [0.0625] * 4}
    for fusion, want in expected.items():
        got = rollout_map(fuse_heads(one_image(LAYER), fusion), num_prefix_tokens=1)
        torch.testing.assert_close(got, torch.tensor([want]), msg=fusion)


def test_rollout_renormalises_each_row_by_its_own_sum():
    # The max-fused rows sum to 1.4, 1.4, 1.5, 1.3, 1.2 ((F + I) / 2: 1.2, 1.2, 1.25, 1.15,
    # 1.1): dividing by the sums without keepdim would divide column j by row j's sum.
    fused = fuse_heads(one_image(LAYER), "max")
    a = (fused[0, 0] + torch.eye(5)) / 2
    wrong = (a / a.sum(dim=-1))[0, 1:]
    got = rollout_map(fused, 1)[0]
    assert not torch.allclose(got, wrong)
    torch.testing.assert_close(got, a[0, 1:] / a[0].sum())


def test_rollout_multiplies_from_first_layer_to_last():
    # N1 (max fusion, as above): CLS row [.7 .15 .25 .05 .05] / 1.2, patch-1 row
    # [.1 .8 .1 .1 .1] / 1.2. N2's CLS row: ([.5 .5 0 0 0] + e0) / 2 = [.75 .25 0 0 0].
    # CLS row of N2 @ N1 = .75 N1[cls] + .25 N1[patch 1]
    #   = ([.1125 .1875 .0375 .0375] + [.2 .025 .025 .025]) / 1.2 over the patches.
    fused = fuse_heads(one_image(LAYER, SECOND), "max")
    want = torch.tensor([[0.3125, 0.2125, 0.0625, 0.0625]]) / 1.2
    torch.testing.assert_close(rollout_map(fused, 1), want)
    # from start layer 1 only N2 counts: [.25 0 0 0] over the patches
    torch.testing.assert_close(rollout_map(fused, 1, start_layer=1),
                               torch.tensor([[0.25, 0.0, 0.0, 0.0]]))


def test_discard_zeroes_the_lowest_patch_entries_and_never_the_cls_ones():
    fused = torch.tensor([[0.01, 0.02, 0.03, 0.04, 0.05],
                          [0.01, 0.90, 0.10, 0.11, 0.12],
                          [0.01, 0.13, 0.80, 0.14, 0.15],
                          [0.01, 0.16, 0.17, 0.70, 0.18],
                          [0.01, 0.19, 0.20, 0.21, 0.60]])
    got = discard_lowest(fused[None], 0.25, num_prefix_tokens=1)[0]  # 4 of 16 patch entries
    want = fused.clone()
    for r, c in [(1, 2), (1, 3), (1, 4), (2, 1)]:  # 0.10, 0.11, 0.12, 0.13
        want[r, c] = 0.0
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(discard_lowest(fused[None], 0.0, 1)[0], fused)


def test_gradient_rollout_by_hand():
    # dY/dA on the CLS rows; other rows 1 (they do not reach the CLS row with one layer).
    grads = torch.ones(2, 5, 5)
    grads[0, 0] = torch.tensor([1.0, 2.0, -1.0, 0.0, 1.0])
    grads[1, 0] = torch.tensor([0.0, 1.0, 1.0, -2.0, -1.0])
    # A * G CLS rows: [.4 .6 -.1 0 .1] and [0 .1 .5 -.2 -.1]; mean [.2 .35 .2 -.1 0];
    # negatives to zero -> [.2 .35 .2 0 0]; (F + I) / 2 = [.6 .175 .1 0 0], sum .875.
    fused = gradient_fused(one_image(LAYER), grads[None, None])
    got = rollout_map(fused, 1)
    torch.testing.assert_close(got, torch.tensor([[0.175, 0.1, 0.0, 0.0]]) / 0.875)


def test_relevance_by_hand_two_layers():
    grads1 = torch.ones(2, 5, 5)
    grads1[0, 0] = torch.tensor([1.0, 2.0, -1.0, 0.0, 1.0])
    grads1[1, 0] = torch.tensor([0.0, 1.0, 1.0, -2.0, -1.0])
    # Layer 1, negatives removed per head before the mean:
    #   C1[cls] = mean([.4 .6 0 0 .1], [0 .1 .5 0 0]) = [.2 .35 .25 0 .05]
    #   C1[patch 1] = mean(HEAD0[1], HEAD1[1]) = [.15 .4 .15 .15 .15]
    # Layer 2 (gradients 1): C2[cls] = [.5 .5 0 0 0].
    # R = (I + C2)(I + C1); CLS row = e0 + C1[cls] + C2[cls] + .5 C1[cls] + .5 C1[patch 1]
    # patches: [.35 .25 0 .05] + [.5 0 0 0] + [.175 .125 0 .025] + [.2 .075 .075 .075]
    attention = one_image(LAYER, SECOND)
    grads = torch.stack([grads1, torch.ones(2, 5, 5)])[None]
    want = torch.tensor([[1.225, 0.45, 0.075, 0.15]])
    torch.testing.assert_close(relevance_map(attention, grads, 1), want)
    # one layer: R = I + C1, the CLS row of C1 over the patches
    torch.testing.assert_close(relevance_map(attention[:, :1], grads[:, :1], 1),
                               torch.tensor([[0.35, 0.25, 0.0, 0.05]]))


def test_layer_maps_by_hand():
    # score: max over the patch rows of each patch column, then mean over heads
    # head 0 patch block columns max: [.6 .2 .6 .4]; head 1: [.2 .7 .3 .6]
    torch.testing.assert_close(score_map(LAYER, 1), torch.tensor([0.4, 0.45, 0.45, 0.5]))
    torch.testing.assert_close(cls_map(LAYER, 1), torch.tensor([0.2, 0.3, 0.1, 0.1]))


@pytest.fixture(scope="module")
def registers():
    return random_vit("registers")[0]  # 3 layers, 5 prefix tokens


@pytest.mark.parametrize("which", ["demo", "registers"])
def test_gradients_are_paired_with_their_own_layer(which, request):
    lm = request.getfixturevalue(which)
    x = random_input(lm, batch=2)
    attention, grads, explained = attention_and_gradients(lm, x)
    expected = mask_gradients(lm, x, explained.classes)  # A * dY/dA, layer by layer
    torch.testing.assert_close(attention * grads, expected, rtol=1e-4, atol=1e-7)
    # reversed pairing (the popular-implementation bug) would not match
    assert not torch.allclose(attention * grads.flip(1), expected, rtol=1e-4, atol=1e-7)
    # the methods' maps from the independent products (A = 1, dY/dA := A * dY/dA)
    p, ones = lm.num_prefix_tokens, torch.ones_like(expected)
    torch.testing.assert_close(explain(lm, x, "gradient_rollout"),
                               rollout_map(gradient_fused(ones, expected), p),
                               rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(explain(lm, x, "relevance"), relevance_map(ones, expected, p),
                               rtol=1e-4, atol=1e-7)


def test_true_label_target_changes_gradient_maps(demo):
    x = random_input(demo, batch=2)
    predicted = capture.forward(demo, x).logits.argmax(-1)
    other = (predicted + 1) % 10
    for method in ("gradient_rollout", "relevance"):
        default = explain(demo, x, method)
        torch.testing.assert_close(default, explain(demo, x, method, predicted.tolist()))
        torch.testing.assert_close(default, explain(demo, x, method, [None, None]))
        assert not torch.allclose(default, explain(demo, x, method, other.tolist()))
        mixed = explain(demo, x, method, [None, int(other[1])])  # per-image targets
        torch.testing.assert_close(mixed[0], default[0])
        assert not torch.allclose(mixed[1], default[1])


def test_the_shared_pass_gives_each_methods_own_map(demo):
    """The ``explanations`` analysis reads every one-pass method from one forward and
    backward; each row equals the method's own call (its own forwards), with
    non-default settings and a class other than the prediction for one image."""
    x = random_input(demo, batch=3)
    params = RolloutParams(fusion="max", discard_ratio=0.3, start_layer=1)
    other = int((capture.forward(demo, x[1:2]).logits.argmax(-1) + 1) % 10)
    targets = [None, other, None]
    arrays = compute_images(demo, x, EXPLANATIONS, targets, params)
    for row, method in enumerate(CHEAP_METHODS):
        own = explain(demo, x, method, targets, method_params(method, params))
        shared = torch.stack([torch.as_tensor(a["maps"][row]) for a in arrays])
        torch.testing.assert_close(shared, own, rtol=1e-4, atol=1e-6, msg=method)
    assert [int(a["class"]) for a in arrays][1] == other


@pytest.mark.parametrize("method", list(METHODS))
def test_batched_equals_one_image_at_a_time(demo, method):
    x = random_input(demo, batch=3)
    params = {"rollout": RolloutParams(fusion="max", discard_ratio=0.5, start_layer=1),
              "gradient_rollout": GradientRolloutParams(discard_ratio=0.3)}.get(method)
    batched = explain(demo, x, method, params=params)
    assert batched.shape == (3, 49)
    for b in range(3):
        torch.testing.assert_close(batched[b:b + 1], explain(demo, x[b:b + 1], method, params=params),
                                   rtol=1e-4, atol=1e-6)


def test_layer_maps_of_a_model_match_the_captured_attention(demo):
    x = random_input(demo, batch=2)
    arrays = compute_images(demo, x, EXPLANATIONS)
    maps = {name: torch.stack([torch.as_tensor(a[f"layer_{name}"]) for a in arrays])
            for name in ("cls", "score")}
    attention = capture.forward(demo, x).attention
    assert maps["cls"].shape == maps["score"].shape == (2, 6, 49)
    b, layer = 1, 4
    torch.testing.assert_close(maps["cls"][b, layer],
                               attention[b, layer, :, 0, 1:].mean(0))
    naive = torch.stack([torch.tensor([max(attention[b, layer, h, i, 1 + j].item()
                                           for i in range(1, 50)) for j in range(49)])
                         for h in range(4)]).mean(0)
    torch.testing.assert_close(maps["score"][b, layer], naive)


def test_bad_parameters_give_clear_messages(demo):
    x = random_input(demo, batch=1)
    with pytest.raises(ValueError, match="head fusion"):
        RolloutParams(fusion="median")
    with pytest.raises(ValueError, match="discard_ratio"):
        explain(demo, x, "rollout", params=RolloutParams(discard_ratio=1.0))
    with pytest.raises(ValueError, match="start_layer"):
        explain(demo, x, "rollout", params=RolloutParams(start_layer=6))
    with pytest.raises(ValueError, match="Unknown method"):
        explain(demo, x, "gradcam")
    with pytest.raises(TypeError, match="takes RolloutParams"):
        explain(demo, x, "rollout", params=GradientRolloutParams())
    with pytest.raises(TypeError, match="takes no parameters"):
        explain(demo, x, "relevance", params=RolloutParams())
