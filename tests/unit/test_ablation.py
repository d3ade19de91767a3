"""Patch ablation saliency: the batched token removal equals a patch-by-patch loop on
the untouched timm model, groups cover the grid, and it is scored like every method
(the registry's cross-cutting tests run it too)."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from core.data.builtin import demo_dataset
from core.data.inputs import load_batch
from core.explain import AblationParams, explain
from core.explain.ablation import group_side, patch_groups
from testing.models import odd_vit, random_input, random_vit, small_deit
from testing.reference import naive_patch_ablation

CASES = {"deit_tiny": lambda: small_deit("deit_tiny_patch16_224"), "odd": odd_vit,
         "registers": lambda: random_vit("registers"),
         "nonsquare": lambda: random_vit("patch8_nonsquare")}


def test_groups_cover_the_grid_once_and_the_automatic_side_bounds_their_number():
    for grid, side in [((7, 7), 1), ((7, 7), 3), ((4, 6), 4), ((24, 24), 2)]:
        groups = patch_groups(grid, side)
        assert sorted(p for g in groups for p in g) == list(range(grid[0] * grid[1]))
    assert group_side((14, 14), 0) == 1 and group_side((16, 16), 0) == 1
    assert group_side((24, 24), 0) == 2 and group_side((24, 24), 5) == 5
    assert [len(g) for g in patch_groups((7, 7), 3)] == [9, 9, 3, 9, 9, 3, 3, 3, 1]
    with pytest.raises(ValueError, match="group side"):
        AblationParams(-1)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("group", [0, 3])
def test_ablation_equals_a_patch_by_patch_loop_on_the_untouched_model(name, group):
    lm, untouched = CASES[name]()
    x = random_input(lm)
    maps = explain(lm, x, "ablation", [1, None], AblationParams(group)).numpy()
    classes = [1, int(untouched(x[1:2]).argmax())]
    groups = patch_groups(lm.grid, group_side(lm.grid, group))
    for b in range(2):
        expected = naive_patch_ablation(untouched, x[b:b + 1], classes[b], groups)
        np.testing.assert_allclose(maps[b], expected, rtol=1e-4, atol=1e-7)


def test_demo_ablation_equals_the_loop_and_finds_the_object(demo):
    ds = demo_dataset()
    x, kept, _ = load_batch(demo, ds, [0, 1, 2, 3])
    untouched = copy.deepcopy(demo.model)
    for block in untouched.blocks:
        block.attn.fused_attn = True
    maps = explain(demo, x, "ablation").numpy()
    groups = patch_groups(demo.grid, 1)
    for b in range(len(kept)):
        cls = int(untouched(x[b:b + 1]).argmax())
        expected = naive_patch_ablation(untouched, x[b:b + 1], cls, groups)
        np.testing.assert_allclose(maps[b], expected, rtol=1e-4, atol=1e-6)
        assert np.abs(expected).max() > 1e-3  # the comparison has teeth
        # removing a background corner patch matters less than the most useful patch
        assert maps[b].max() > abs(maps[b][0])
