"""Faithfulness scores (SPEC "Faithfulness of explanations") against naive
loops that perturb one patch at a time with the capture's explicit forward."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core import precompute
from core.model import capture
from core.storage.cache import ArrayCache
from core.data.builtin import demo_dataset
from core.data.inputs import load_batch
from core.engine import run
from core.model.targets import Explained
from core.analyses.base import NoParams
from core.analyses.faithfulness import (FAITHFULNESS, METHOD_NAMES, METRICS, blurred, compute,
                                        deletion_counts, evaluate, localisation,
                                        object_patches, perturbation_counts, step_states,
                                        trapezoid)
from core.dataset.faithfulness_table import build, describe, shown_metrics
from core.dataset.base import no_stage
from testing.reference import naive_curve, per_method_faithfulness


@pytest.fixture(scope="module")
def images(demo):
    batch, _, _ = load_batch(demo, demo_dataset(), [0, 1])
    return batch


@pytest.fixture(scope="module")
def out(demo, images):
    return compute(demo, images, [None, None], NoParams())


def test_curves_match_a_naive_patch_loop(demo, images, out):
    g = 49
    for b in range(2):
        cls = int(out[b]["class"])
        assert cls == int(capture.forward(demo, images[b:b + 1]).logits.argmax())
        for m, name in enumerate(METHOD_NAMES):
            maps = out[b]["maps"][m]
            most_first = sorted(range(g), key=lambda j: (-maps[j], j))
            least_first = sorted(range(g), key=lambda j: (maps[j], j))
            x, zeros = images[b], torch.zeros_like(images[b])
            deletion, _ = naive_curve(demo, x, most_first, deletion_counts(g), x, zeros, cls)
            np.testing.assert_allclose(out[b]["deletion_curve"][m], deletion, atol=2e-4, err_msg=name)
            _, positive = naive_curve(demo, x, most_first, perturbation_counts(g), x, zeros, cls)
            np.testing.assert_array_equal(out[b]["positive_curve"][m], positive)
            _, negative = naive_curve(demo, x, least_first, perturbation_counts(g), x, zeros, cls)
            np.testing.assert_array_equal(out[b]["negative_curve"][m], negative)
            blur = blurred(demo, images[b:b + 1])[0]
            insertion, _ = naive_curve(demo, blur, most_first, deletion_counts(g), blur, x, cls)
            np.testing.assert_allclose(out[b]["insertion_curve"][m], insertion, atol=2e-4)
            x_del = np.array(deletion_counts(g)) / g
            assert out[b]["deletion"][m] == pytest.approx(np.trapezoid(deletion, x_del), abs=1e-4)
            assert out[b]["insertion"][m] == pytest.approx(np.trapezoid(insertion, x_del), abs=1e-4)
            assert out[b]["negative"][m] == pytest.approx(
                np.trapezoid(negative, np.arange(10) / 10), abs=1e-6)


def test_fast_logits_match_the_capture_forward(demo, images):
    got = capture.logits(demo, images)
    torch.testing.assert_close(got, capture.forward(demo, images).logits, rtol=1e-5, atol=1e-5)
    assert not any(attn.fused_attn for attn in demo.attention_modules)  # switched back off


def test_step_counts_and_trapezoid():
    assert deletion_counts(49)[:4] == [0, 2, 5, 7] and deletion_counts(49)[-1] == 49
    assert deletion_counts(4) == [0, 1, 2, 3, 4]  # small grids: every patch
    assert len(deletion_counts(196)) == 21 and deletion_counts(196)[1] == 10  # 5% steps
    assert perturbation_counts(49) == [0, 5, 10, 15, 20, 24, 29, 34, 39, 44]
    # 1 -> 0.5 -> 0 over x = 0, 0.25, 1: 0.25 * 0.75 + 0.75 * 0.25 = 0.375
    assert trapezoid(np.array([1.0, 0.5, 0.0]), np.array([0.0, 0.25, 1.0])) == pytest.approx(0.375)


def test_localisation_by_hand():
    maps = torch.tensor([[0.1, 0.9, 0.3, 0.5], [0.7, 0.1, 0.1, 0.1]])
    on_object = torch.tensor([[False, True, True, False], [False, True, True, True]])
    pointing, iou = localisation(maps, on_object)
    # image 0: max at patch 1 (object); above the mean 0.45: {1, 3}; object {1, 2}: 1 / 3
    # image 1: max at patch 0 (background); above the mean 0.25: {0}; object {1, 2, 3}: 0 / 4
    torch.testing.assert_close(pointing, torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(iou, torch.tensor([1 / 3, 0.0]))


def test_object_patches_are_the_non_background_pixels(demo, images):
    raw = demo_dataset().pixels[:2]  # uint8, black background
    on = object_patches(demo, images)
    for b in range(2):
        fraction = (raw[b] > 0).reshape(7, 4, 7, 4).mean(axis=(1, 3)).reshape(49)
        np.testing.assert_array_equal(on[b].numpy(), fraction >= 0.5)
    assert 0 < on.sum() < on.numel()


def test_dataset_table_means_per_method_and_hides_localisation_without_masks(demo, out,
                                                                            tmp_path):
    table = build(demo, demo_dataset(), {"faithfulness": dict(enumerate(out))}, NoParams(),
                  no_stage)
    assert set(METRICS) <= set(table) and int(table["images"]) == 2
    np.testing.assert_allclose(table["deletion"], (out[0]["deletion"] + out[1]["deletion"]) / 2)
    assert table["iou"].shape == (len(METHOD_NAMES),)
    assert "pointing" in describe(demo, demo_dataset(), table)
    folder = precompute.load_dataset(str(tmp_path), demo.class_names)  # no object masks
    assert "pointing" not in shown_metrics(folder)
    assert "pointing" not in describe(demo, folder, table)


def test_batched_equals_one_image_at_a_time(demo, images, out):
    alone = compute(demo, images[1:2], [None], NoParams())[0]
    for key, value in alone.items():
        np.testing.assert_allclose(out[1][key], value, atol=2e-4, err_msg=key)


def test_precompute_caches_faithfulness_for_a_folder(tmp_path, capsys):
    from PIL import Image
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(demo_dataset().pixels[i]).save(folder / f"{i}.png")
    assert precompute.main(["--model", "demo", "--images", str(folder),
                            "--cache", str(tmp_path / "c"), "--device", "cpu"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("precompute: 2 images")
    lm = precompute.load_model("demo", device="cpu")
    ds = precompute.load_dataset(str(folder), lm.class_names)
    cached = run(lm, ds, [0, 1], FAITHFULNESS, cache=ArrayCache(tmp_path / "c"))
    assert cached.from_cache == 2
    assert cached.arrays[0]["maps"].shape == (len(METHOD_NAMES), 49)


def test_stacked_methods_equal_one_series_per_method_and_curve(demo):
    """All methods' steps in shared forwards, each distinct input once: the curves of
    the per-method series to 1e-6 (random maps with ties, a constant map, and two
    methods with the same map, so that inputs repeat across methods)."""
    x, _, _ = load_batch(demo, demo_dataset(), list(range(12)))
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(12, 5, 49, generator=g).round(decimals=1)  # many ties
    maps[:, 3] = 0.0
    maps[:, 4] = maps[:, 0]
    classes = torch.randint(0, 10, (12,), generator=g)
    got = evaluate(demo, x, maps, Explained(classes=classes))
    want = per_method_faithfulness(demo, x, maps, classes)
    for key, value in want.items():
        assert got[key].shape == value.shape == (12, 5, len(value[0, 0]))
        np.testing.assert_allclose(got[key], value, rtol=0, atol=1e-6, err_msg=key)


def test_step_states_start_with_the_clean_image_and_count_the_patches_changed():
    maps = torch.tensor([[0.2, 0.9, 0.5, 0.1]])  # ranks 2, 0, 1, 3
    states, counts = step_states(maps)
    assert counts == {"removed": [0, 1, 2, 3, 4], "inserted": [0, 1, 2, 3, 4],
                      "kept_least": [0, 0, 1, 1, 2, 2, 2, 3, 3, 4]}
    removed, inserted = states[0, :5], states[0, 5:10]
    assert removed[2].tolist() == [0, 1, 1, 0]  # the two most relevant removed
    assert inserted[0].tolist() == [2, 2, 2, 2] and inserted[-1].tolist() == [0] * 4
    assert inserted[1].tolist() == [2, 0, 2, 2]  # the most relevant revealed first
    assert states[0, 10 + 4].tolist() == [1, 0, 0, 1]  # the two least relevant removed
