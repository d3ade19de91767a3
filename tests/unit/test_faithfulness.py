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
from core.data.objects import image_objects
from core.engine import compute_images, run
from core.model.targets import Explained
from core.analyses import ABLATION_MAP, EXPLANATIONS, OBJECTS
from core.analyses.explanations import every_map
from core.analyses.faithfulness import (FAITHFULNESS, METHOD_NAMES, METRICS, blurred,
                                        deletion_counts, evaluate, localisation,
                                        perturbation_counts, step_states, trapezoid)
from core.dataset.faithfulness_table import (TableParams, bootstrap_interval, build,
                                             describe, shown_metrics, stratified_sample)
from core.dataset.base import no_stage
from testing.reference import naive_curve, per_method_faithfulness


@pytest.fixture(scope="module")
def images(demo):
    batch, _, _ = load_batch(demo, demo_dataset(), [0, 1])
    return batch


def faithfulness(demo, images, indices):
    """The analysis on model inputs of demo images `indices`, with their objects."""
    return compute_images(demo, images, FAITHFULNESS,
                          objects=image_objects(demo, demo_dataset(), indices, images))


@pytest.fixture(scope="module")
def out(demo, images):
    return faithfulness(demo, images, [0, 1])


@pytest.fixture(scope="module")
def maps(demo, images):
    """(image, method, patch): the shared maps the analysis scores."""
    explained = compute_images(demo, images, EXPLANATIONS)
    ablation = compute_images(demo, images, ABLATION_MAP)
    return np.stack([every_map(e, a) for e, a in zip(explained, ablation)])


def test_curves_match_a_naive_patch_loop(demo, images, out, maps):
    g = 49
    for b in range(2):
        cls = int(out[b]["class"])
        assert cls == int(capture.forward(demo, images[b:b + 1]).logits.argmax())
        for m, name in enumerate(METHOD_NAMES):
            values = maps[b, m]
            most_first = sorted(range(g), key=lambda j: (-values[j], j))
            least_first = sorted(range(g), key=lambda j: (values[j], j))
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


def test_localisation_reads_the_one_object_and_needs_a_mask(demo, images, out, maps):
    """Pointing and IoU against the objects analysis (the demo's pixel masks, dilated by
    a patch); NaN for an image without a mask, whose object is its keypoints."""
    inside = np.stack([o["inside"] for o in compute_images(
        demo, images, OBJECTS, objects=image_objects(demo, demo_dataset(), [0, 1], images))])
    pointing, iou = localisation(torch.from_numpy(maps), torch.from_numpy(inside)[:, None]
                                 .expand(-1, maps.shape[1], -1))
    np.testing.assert_array_equal(np.stack([o["pointing"] for o in out]), pointing.numpy())
    np.testing.assert_allclose(np.stack([o["iou"] for o in out]), iou.numpy(), atol=1e-6)
    bare = compute_images(demo, images, FAITHFULNESS)  # no masks given: keypoint objects
    assert np.isnan(bare[0]["pointing"]).all() and np.isnan(bare[0]["iou"]).all()
    np.testing.assert_allclose(bare[0]["deletion"], out[0]["deletion"], atol=1e-6)


def test_dataset_table_means_per_method_and_hides_localisation_without_masks(demo, out):
    table = build(demo, demo_dataset(), {"faithfulness": dict(enumerate(out))}, TableParams(),
                  no_stage)
    assert set(METRICS) <= set(table) and int(table["images"]) == 2
    np.testing.assert_allclose(table["deletion"], (out[0]["deletion"] + out[1]["deletion"]) / 2)
    assert table["iou"].shape == (len(METHOD_NAMES),) and int(table["masked"]) == 2
    assert "pointing" in describe(demo, demo_dataset(), table)
    unmasked = [{**o, "pointing": np.full_like(o["pointing"], np.nan),
                 "iou": np.full_like(o["iou"], np.nan)} for o in out]
    bare = build(demo, demo_dataset(), {"faithfulness": dict(enumerate(unmasked))},
                 TableParams(), no_stage)
    assert int(bare["masked"]) == 0 and "pointing" not in shown_metrics(bare)
    assert "pointing" not in describe(demo, demo_dataset(), bare)


def test_bootstrap_interval_matches_a_naive_loop_and_covers_the_mean():
    rng = np.random.default_rng(1)
    scores = rng.random((40, 3))
    scores[::4, 2] = np.nan  # an image without a mask does not count
    low, high = bootstrap_interval(scores, resamples=200, seed=5)
    picks = np.random.default_rng(5).integers(0, 40, size=(200, 40))
    means = np.array([[np.nanmean(scores[p, m]) for m in range(3)] for p in picks])
    np.testing.assert_allclose(low, np.percentile(means, 2.5, axis=0))
    np.testing.assert_allclose(high, np.percentile(means, 97.5, axis=0))
    assert (low < np.nanmean(scores, 0)).all() and (np.nanmean(scores, 0) < high).all()


def test_stratified_sample_keeps_each_class_share():
    labels = [0] * 50 + [1] * 30 + [2] * 20 + [None] * 100
    chosen = stratified_sample(labels, 20)
    assert len(chosen) == 20 and chosen == sorted(set(chosen))
    counts = {k: sum(labels[i] == k for i in chosen) for k in (0, 1, 2, None)}
    assert counts == {0: 5, 1: 3, 2: 2, None: 10}
    assert stratified_sample(labels, 20) == chosen  # the same sample every time
    assert stratified_sample(labels, 0) == list(range(200))
    assert stratified_sample([0, 1, 1], 2) in ([0, 1], [0, 2])  # largest remainders


def test_batched_equals_one_image_at_a_time(demo, images, out):
    alone = faithfulness(demo, images[1:2], [1])[0]
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
    assert cached.arrays[0]["deletion_curve"].shape == (len(METHOD_NAMES), 21)


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
