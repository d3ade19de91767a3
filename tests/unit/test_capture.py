"""Attention capture against the untouched timm model (SPEC "Capturing attention")."""
from __future__ import annotations

import copy

import pytest
import torch

from core.model import capture
from core.model.loaded import LoadedModel
from core.model.loading import load_model
from testing.models import TIMM_CASES, random_input, random_vit
from testing.reference import zero_head_by_hand


@pytest.fixture(scope="module", params=["demo", *TIMM_CASES])
def case(request) -> tuple[LoadedModel, torch.nn.Module]:
    if request.param == "demo":
        untouched = copy.deepcopy(load_model("demo", device="cpu").model)
        for block in untouched.blocks:  # the demo as timm builds it: fused attention on
            block.attn.fused_attn = True
        return request.getfixturevalue("demo"), untouched
    return random_vit(request.param)


def test_logits_equal_untouched_timm(case):
    lm, untouched = case
    assert all(b.attn.fused_attn for b in untouched.blocks)
    x = random_input(lm)
    with torch.no_grad():
        expected = untouched(x)
    got = capture.forward(lm, x)
    torch.testing.assert_close(got.logits, expected, rtol=1e-5, atol=1e-5)


def test_captures_every_layer_and_head_with_rows_summing_to_one(case):
    lm, _ = case
    out = capture.forward(lm, random_input(lm, batch=3))
    t = lm.num_prefix_tokens + lm.grid[0] * lm.grid[1]
    assert out.attention.shape == (3, lm.num_layers, lm.num_heads, t, t)
    torch.testing.assert_close(out.attention.sum(-1), torch.ones(3, lm.num_layers, lm.num_heads, t))


@pytest.mark.parametrize("case_name", list(TIMM_CASES))
def test_prefix_tokens_and_grid_read_from_model(case_name):
    lm, _ = random_vit(case_name)
    _, _, prefix, grid = TIMM_CASES[case_name]
    assert (lm.num_prefix_tokens, lm.grid) == (prefix, grid)
    assert lm.num_tokens == prefix + grid[0] * grid[1]


@pytest.mark.slow
@pytest.mark.parametrize("layer,head", [(0, 0), (1, 1), (-1, -1)])
def test_whole_head_mask_equals_zeroing_the_head_by_hand(case, layer, head):
    lm, untouched = case
    layer, head = layer % lm.num_layers, head % lm.num_heads
    x = random_input(lm)
    expected = zero_head_by_hand(untouched, layer, head, x)
    masked = capture.forward(lm, x, masks={layer: capture.head_mask(lm, [head])}, layers=())
    torch.testing.assert_close(masked.logits, expected, rtol=1e-5, atol=1e-5)
    plain = capture.forward(lm, x, layers=())
    assert not torch.allclose(plain.logits, expected)  # the pruning did change something


def test_region_masks_by_hand(deit_tiny):
    lm, _ = deit_tiny  # two prefix tokens: CLS and distillation
    p, t = 2, lm.num_tokens
    only_patches = capture.region_mask(lm, ["patch_patch"])
    assert only_patches[:p].eq(1).all() and only_patches[:, :p].eq(1).all()
    assert only_patches[p:, p:].eq(0).all()
    cls_related = capture.region_mask(lm, capture.PRUNING_MODES[5])
    assert cls_related[:p].eq(0).all() and cls_related[:, :p].eq(0).all()
    assert cls_related[p:, p:].eq(1).all()
    cls_cls = capture.region_mask(lm, capture.PRUNING_MODES[2])
    assert cls_cls.sum() == t * t - p * p
    # modes 2, 3 and 4 partition the matrix; together they are mode 1
    union = sum(1 - capture.region_mask(lm, capture.PRUNING_MODES[m]) for m in (2, 3, 4))
    torch.testing.assert_close(union, 1 - capture.region_mask(lm, capture.PRUNING_MODES[1]))


def test_region_mask_changes_only_that_region_of_the_pruned_head(demo):
    x = random_input(demo, batch=1)
    mask = capture.head_mask(demo, [2], mode=4)
    out = capture.forward(demo, x, masks={0: mask}, layers=[0])
    ref = capture.forward(demo, x, layers=[0])
    # the capture holds A before the mask; the layer's own A is unchanged by its mask
    torch.testing.assert_close(out.attention, ref.attention)
    assert not torch.allclose(out.logits, ref.logits)


def test_per_image_masks_in_one_batch(demo):
    x = random_input(demo, batch=1).repeat(4, 1, 1, 1)
    masks = torch.stack([capture.head_mask(demo, [h]) for h in range(4)])
    batched = capture.forward(demo, x, masks={3: masks}, layers=()).logits
    for h in range(4):
        single = capture.forward(demo, x[:1], masks={3: capture.head_mask(demo, [h])},
                                 layers=()).logits
        torch.testing.assert_close(batched[h:h + 1], single, rtol=1e-5, atol=1e-5)


def test_gradients_reach_the_captured_attention(demo):
    out = capture.forward(demo, random_input(demo, batch=1), grad=True)
    out.logits[0, 0].backward()
    assert all(a.grad is not None and a.grad.shape == a.shape for a in out.per_layer)
    assert out.per_layer[-1].grad.abs().sum() > 0
