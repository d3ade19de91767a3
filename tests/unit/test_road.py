"""ROAD (SPEC "ROAD"): the noisy linear imputation on hand-computed 3 x 3 cases, and
the ROAD curves of the faithfulness analysis against a naive loop that removes one
patch at a time and runs one explicit forward per step."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.analyses import ABLATION_MAP, EXPLANATIONS
from core.analyses.explanations import every_map
from core.analyses.faithfulness import FAITHFULNESS, METHOD_NAMES, perturbation_counts
from core.analyses.road import impute
from core.data.builtin import demo_dataset
from core.data.inputs import load_batch
from core.data.objects import image_objects
from core.engine import compute_images
from core.model import capture

GRID = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])


def test_a_removed_centre_takes_the_weighted_mean_of_its_eight_neighbours():
    removed = np.zeros((3, 3), bool)
    removed[1, 1] = True
    image = np.stack([GRID, 10 * GRID])  # two channels, solved together
    got = impute(image, removed, noise=0.0)
    # (2 + 4 + 6 + 8) / 6 + (1 + 3 + 7 + 9) / 12 = 20/6 + 20/12 = 5
    np.testing.assert_allclose(got[:, 1, 1], [5.0, 50.0])
    np.testing.assert_array_equal(got[:, ~removed], image[:, ~removed])  # the rest kept


def test_two_removed_neighbours_solve_one_linear_system():
    removed = np.zeros((3, 3), bool)
    removed[0, :2] = True  # a = (0, 0) and b = (0, 1), each a neighbour of the other
    got = impute(GRID[None], removed, noise=0.0)[0]
    # a: (4 + b)/6 + 5/12 = (5/12) a  ->  5a - 2b = 13
    # b: (a + 3 + 5)/6 + (4 + 6)/12 = (2/3) b  ->  4b - a = 13;  a = b = 13/3
    np.testing.assert_allclose(got[0, :2], [13 / 3, 13 / 3])


def test_the_noise_is_small_fixed_and_only_on_removed_pixels():
    removed = np.zeros((40, 40), bool)
    removed[10:30, 10:30] = True
    image = np.ones((1, 40, 40))
    clean, noisy = impute(image, removed, noise=0.0), impute(image, removed)
    np.testing.assert_allclose(clean, image)  # a constant image imputes to itself
    assert np.std(noisy[0][removed] - 1) == pytest.approx(0.01, rel=0.1)
    np.testing.assert_array_equal(noisy, impute(image, removed))  # a fixed seed
    np.testing.assert_array_equal(noisy[0][~removed], 1.0)


def test_road_curves_match_a_naive_patch_loop(demo):
    ds = demo_dataset()
    images, _, _ = load_batch(demo, ds, [0, 1])
    out = compute_images(demo, images, FAITHFULNESS,
                         objects=image_objects(demo, ds, [0, 1], images))
    maps = np.stack([every_map(e, a) for e, a in zip(compute_images(demo, images, EXPLANATIONS),
                                                     compute_images(demo, images,
                                                                    ABLATION_MAP))])
    g, gw, (ph, pw) = 49, demo.grid[1], demo.patch_size
    for b in range(2):
        cls = int(out[b]["class"])
        for m, name in enumerate(METHOD_NAMES):
            values = maps[b, m]
            for key, order in (("road_most", sorted(range(g), key=lambda j: (-values[j], j))),
                               ("road_least", sorted(range(g), key=lambda j: (values[j], j)))):
                inputs = []
                for k in perturbation_counts(g):
                    removed = np.zeros(demo.data_config["input_size"][1:], bool)
                    for patch in order[:k]:
                        r, c = divmod(patch, gw)
                        removed[r * ph:(r + 1) * ph, c * pw:(c + 1) * pw] = True
                    inputs.append(torch.from_numpy(impute(images[b].numpy(), removed)))
                probs = capture.forward(demo, torch.stack(inputs)).logits.softmax(-1)[:, cls]
                np.testing.assert_allclose(out[b][f"{key}_curve"][m], probs.numpy(),
                                           atol=2e-5, err_msg=f"{name} {key}")
                assert out[b][key][m] == pytest.approx(
                    np.trapezoid(probs.numpy(), np.arange(10) / 10), abs=1e-5)
    random = METHOD_NAMES.index("random")  # the random map's baseline is scored too
    assert np.isfinite(out[0]["road_most"][random])
