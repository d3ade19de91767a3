"""The "strength" analysis (SPEC "Attention strength"): the paper's 5x5 example,
hand-built heads, and agreement with a per-patch loop on random attention."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from testing.reference import loop_strength
from core.model import capture
from core.storage.cache import ArrayCache
from core.data.builtin import demo_dataset
from core.data.inputs import load_batch
from core.engine import compute_images, run
from core.analyses import ANALYSES
from core.analyses.base import NoParams
from core.analyses.strength import STRENGTH, hop_distance, ring_sizes, strength
from core.dataset.statistics import density, layer_trend
from testing.models import random_input, random_vit


def test_ring_sizes_match_the_papers_5x5_example():
    sizes = ring_sizes((5, 5))
    assert sizes.shape == (25, 5)  # hops 0..4 for every patch
    assert sizes[0].tolist() == [1, 3, 5, 7, 9]  # patch (0, 0), Fig. 5
    assert sizes[2 * 5 + 2].tolist() == [1, 8, 16, 0, 0]  # (2, 2): no 3- or 4-hop ring
    assert (sizes.sum(axis=1) == 25).all()


def test_hop_distance_is_chebyshev_on_a_non_square_grid():
    hops = hop_distance((2, 4))  # 2 rows, 4 columns, row-major
    assert hops[0].tolist() == [0, 1, 2, 3, 1, 1, 2, 3]
    assert ring_sizes((2, 4)).shape == (8, 4)


def test_papers_averaging_skips_missing_rings():
    # On 5x5, put a value of 1 on every 4-hop target: only the corners have a 4-hop ring,
    # so s_4 must be 1 (averaged over those 4 patches only), not 4/25.
    hops = torch.from_numpy(hop_distance((5, 5)))
    result = strength((hops == 4).float(), (5, 5), (16, 16))
    assert result["s"].tolist() == pytest.approx([0, 0, 0, 0, 1])


def test_a_head_attending_only_to_itself():
    result = strength(torch.eye(25), (5, 5), (16, 16))
    assert result["s"].tolist() == pytest.approx([1, 0, 0, 0, 0])
    assert result["entropy"].item() == pytest.approx(0)
    assert result["mean_distance"].item() == pytest.approx(0)


@pytest.mark.parametrize("grid", [(5, 5), (3, 6)])
def test_uniform_attention_gives_a_flat_vector(grid):
    g, prefix = grid[0] * grid[1], 1
    full = torch.full((g + prefix, g + prefix), 1 / (g + prefix))  # rows sum to 1 over all tokens
    result = strength(full[prefix:, prefix:], grid, (16, 16))
    assert result["s"].tolist() == pytest.approx([1 / (g + prefix)] * max(grid))
    assert result["entropy"].item() == pytest.approx(1)


def test_a_head_attending_to_the_patch_above():
    grid, patch = (4, 6), (8, 4)  # non-square grid and non-square patches (pixels)
    g = grid[0] * grid[1]
    head = torch.zeros(g, g)
    for i in range(grid[1], g):  # the top row has nothing above: its attention goes to CLS
        head[i, i - grid[1]] = 1.0
    result = strength(head, grid, patch)
    s = result["s"].numpy()
    assert s.argmax() == 1 and s[1] > 0 and np.delete(s, 1) == pytest.approx(0)
    assert result["entropy"].item() == pytest.approx(0)
    assert result["mean_distance"].item() == pytest.approx(8)  # one patch height in pixels


@pytest.mark.parametrize("grid, patch", [((7, 7), (4, 4)), ((4, 6), (8, 8)), ((5, 3), (16, 8))])
def test_vectorised_matches_a_per_patch_loop(grid, patch):
    g = grid[0] * grid[1]
    torch.manual_seed(0)
    heads = torch.softmax(3 * torch.randn(2, 3, g + 1, g + 1), dim=-1)[..., 1:, 1:]
    result = strength(heads, grid, patch)
    for b in range(2):
        for h in range(3):
            s, entropy, distance = loop_strength(heads[b, h].numpy(), grid, patch)
            np.testing.assert_allclose(result["s"][b, h].numpy(), s, rtol=1e-5, atol=1e-8)
            assert result["entropy"][b, h].item() == pytest.approx(entropy, rel=1e-5)
            assert result["mean_distance"][b, h].item() == pytest.approx(distance, rel=1e-5)


def test_a_wrong_shape_is_refused_with_a_message():
    with pytest.raises(ValueError, match="expected \\(49, 49\\) for a 7x7 grid"):
        strength(torch.rand(2, 50, 50), (7, 7), (4, 4))


def test_analysis_on_a_non_square_timm_model_matches_the_loop():
    lm, _ = random_vit("patch8_nonsquare")  # 4 x 6 grid, 1 prefix token
    x = random_input(lm)
    arrays = compute_images(lm, x, STRENGTH, [None] * len(x), NoParams())
    attention = capture.forward(lm, x).attention[..., 1:, 1:]
    assert arrays[0]["s"].shape == (lm.num_layers, lm.num_heads, 6)
    for layer, head in [(0, 0), (lm.num_layers - 1, lm.num_heads - 1)]:
        s, entropy, distance = loop_strength(attention[1, layer, head].numpy(), lm.grid,
                                             lm.patch_size)
        np.testing.assert_allclose(arrays[1]["s"][layer, head], s, rtol=1e-4, atol=1e-7)
        assert arrays[1]["entropy"][layer, head] == pytest.approx(entropy, rel=1e-4)
        assert arrays[1]["mean_distance"][layer, head] == pytest.approx(distance, rel=1e-4)


def test_demo_strength_is_cached_and_part_of_the_precompute(demo, tmp_path):
    assert ANALYSES["strength"] is STRENGTH and STRENGTH.precompute
    ds = demo_dataset()
    result = run(demo, ds, [0, 11], STRENGTH, cache=ArrayCache(tmp_path))
    batch, _, _ = load_batch(demo, ds, [0, 11])
    direct = compute_images(demo, batch, STRENGTH, [None] * len(batch), NoParams())
    for b, i in enumerate([0, 11]):
        assert result.arrays[i]["entropy"].shape == (6, 4)
        assert ((result.arrays[i]["entropy"] >= 0) & (result.arrays[i]["entropy"] <= 1)).all()
        np.testing.assert_allclose(result.arrays[i]["s"], direct[b]["s"], rtol=1e-5)
    assert run(demo, ds, [0, 11], STRENGTH, cache=ArrayCache(tmp_path)).from_cache == 2


def test_layer_trend_pools_images_and_heads_per_layer():
    values = np.zeros((3, 2, 2))  # images x layers x heads
    values[:, 1, :] = np.arange(12).reshape(3, 2, 2)[:, 1, :]  # layer 1: 2, 3, 6, 7, 10, 11
    values[0, 0, 0] = np.nan  # ignored
    trend = layer_trend(values)
    assert trend["layer"].tolist() == [0, 1]
    assert trend["median"].tolist() == [0, 6.5]
    assert trend["q25"][1] == pytest.approx(np.percentile([2, 3, 6, 7, 10, 11], 25))


def test_density_is_a_normalised_peak_at_the_values():
    x, y = density(np.array([0.3, 0.3, 0.31, np.nan]))
    assert x[0] == 0 and x[-1] == 1 and abs(x[y.argmax()] - 0.3) <= 0.01
    assert np.trapezoid(y, x) == pytest.approx(1, abs=1e-3)
    assert not density(np.array([np.nan]))[1].any()


def test_the_entropy_density_is_drawn_over_the_values_not_all_of_0_to_1():
    """Issue 30: entropies between 0.95 and 1 were drawn on a 0-1 axis (a spike at the
    right edge); the density's points now span the values and their tails only."""
    from core.display.strength_view import strength_over_set

    rng = np.random.default_rng(0)
    arrays = {i: {"entropy": 0.95 + 0.05 * rng.random((2, 3)),
                  "mean_distance": rng.random((2, 3))} for i in range(200)}
    view = strength_over_set(arrays, 1, 2)
    assert 0.85 < view.entropy_x[0] < 0.95 and view.entropy_x[-1] == 1.0
    assert view.entropy_density[0] < 0.05 * view.entropy_density.max()  # the tail is in view
