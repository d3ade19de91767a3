"""SIFT keypoints, keypoint attention (lift, interrelation), object masks, spurious
scores and the counterfactual (SPEC "Keypoints and spurious correlations"), against
hand-made images, hand-computed cases and naive loops."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from core import ANALYSES, load_dataset, run
from core.analyses.faithfulness import METHOD_NAMES
from core.analyses.keypoints import BINS, attention_against, has_keypoints, keypoint_bins
from core.analyses.objects import OBJECT_SOURCES
from core.analyses.spurious import outside_share
from core.data.builtin import demo_dataset
from core.data.inputs import load_batch
from core.engine import compute_images
from core.data.keypoints import concentration, detect, upsampling
from core.data.objects import image_objects
from core.explain import explain
from core.storage.cache import ArrayCache
from testing.images import demo_flat_folder


def square(side: int = 28, lo: int = 2, hi: int = 26) -> np.ndarray:
    img = np.zeros((side, side), np.uint8)
    img[lo:hi, lo:hi] = 255
    return img


def test_sift_finds_the_corners_of_a_hand_made_square():
    points = detect(square())  # white square with corners at (2, 2), (2, 26), (26, 2), (26, 26)
    assert upsampling((28, 28), 224) == 8
    corners = np.array([[2, 2], [26, 2], [2, 26], [26, 26]], dtype=np.float32)
    distance = np.linalg.norm(points.xy[:, None] - corners[None], axis=-1)  # keypoint corner
    assert (distance.min(axis=0) < 3).all(), points.xy  # every corner has a keypoint
    c = concentration(points, (7, 7), (4, 4))
    # one keypoint per corner patch (each position counted once) and the square's centre
    assert np.flatnonzero(c).tolist() == [0, 6, 24, 42, 48]
    assert c.sum() == len(points) == 5
    weighted = concentration(points, (7, 7), (4, 4), "response")
    np.testing.assert_allclose(weighted.sum(), points.response.sum(), rtol=1e-6)


def test_positions_are_mapped_back_to_input_pixels():
    small = detect(square())
    # the image as the detector sees it, upsampled beforehand: found at factor 1
    big = detect(cv2.resize(square(), (224, 224), interpolation=cv2.INTER_LINEAR))
    assert upsampling((224, 224), 224) == 1
    order_small, order_big = np.lexsort(small.xy.T), np.lexsort(big.xy.T)
    np.testing.assert_allclose(small.xy[order_small], big.xy[order_big] / 8, rtol=1e-6)
    np.testing.assert_allclose(small.size[order_small], big.size[order_big] / 8, rtol=1e-6)


def test_a_flat_image_has_no_keypoints_and_an_explicit_result(demo):
    assert len(detect(np.full((28, 28), 128, np.uint8))) == 0
    flat = torch.zeros(1, 1, 28, 28)  # the dataset mean everywhere
    (arrays,) = compute_images(demo, flat, ANALYSES["keypoints"])
    assert not has_keypoints(arrays)
    assert compute_images(demo, flat, ANALYSES["sift"])[0]["keypoints"].shape == (0, 4)
    assert (arrays["lift"] == 0).all() and (arrays["share"] == 0).all()
    assert all(np.isfinite(v).all() for v in arrays.values())
    (spurious,) = compute_images(demo, flat, ANALYSES["spurious"])
    assert OBJECT_SOURCES[int(spurious["object_source"])] == "none"
    assert not spurious["inside"].any() and np.isfinite(spurious["score"]).all()


def test_lift_on_a_hand_computed_case():
    # one layer, one head, CLS + 4 patches; the CLS row gives 0.1 to itself, 0.225 to each
    # patch: renormalised over the patches 0.25 each. Keypoints in patches 1, 2, 3.
    attention = torch.full((1, 1, 1, 5, 5), 0.2)
    attention[0, 0, 0, 0] = torch.tensor([0.1, 0.225, 0.225, 0.225, 0.225])
    c = torch.tensor([[0.0, 1.0, 1.0, 3.0]])
    out = attention_against(attention, c, prefix=1)
    assert out["share"].item() == pytest.approx(0.75)
    assert out["chance"].item() == pytest.approx(0.75)
    assert out["lift"].item() == pytest.approx(1.0)
    assert keypoint_bins(c[0]).tolist() == [0, 1, 1, 2]  # median of 1, 1, 3 is 1
    np.testing.assert_allclose(out["bin_share"][0], [0.25, 0.5, 0.25])
    # patches->patches rows are uniform: every source bin sends each bin its patch share
    np.testing.assert_allclose(out["interrelation"][0, 0, 0], [[0.25, 0.5, 0.25]] * 3,
                               rtol=1e-6)


def naive(attention: np.ndarray, c: np.ndarray, prefix: int) -> dict[str, np.ndarray]:
    """Share, lift and the interrelation table with explicit loops."""
    b_, l_, h_, t, _ = attention.shape
    g = t - prefix
    share = np.zeros((b_, l_, h_))
    lift = np.zeros((b_, l_, h_))
    table = np.zeros((b_, l_, h_, 3, 3))
    for b in range(b_):
        keys = [j for j in range(g) if c[b, j] > 0]
        nonzero = sorted(c[b, j] for j in keys)
        median = float(np.median(nonzero)) if nonzero else 0.0
        bins = [0 if c[b, j] == 0 else 1 if c[b, j] <= median else 2 for j in range(g)]
        for l in range(l_):
            for h in range(h_):
                row = attention[b, l, h, 0, prefix:]
                share[b, l, h] = sum(row[j] for j in keys) / row.sum()
                lift[b, l, h] = share[b, l, h] / (len(keys) / g) if keys else 0.0
                for a in range(3):
                    sources = [i for i in range(g) if bins[i] == a]
                    for k in range(3):
                        masses = []
                        for i in sources:
                            row = attention[b, l, h, prefix + i, prefix:]
                            masses.append(sum(row[j] for j in range(g) if bins[j] == k)
                                          / row.sum())
                        table[b, l, h, a, k] = np.mean(masses) if masses else 0.0
    return {"share": share, "lift": lift, "interrelation": table}


def test_lift_and_interrelation_against_a_naive_loop():
    gen = torch.Generator().manual_seed(0)
    attention = torch.randn(3, 2, 3, 11, 11, generator=gen, dtype=torch.float64).softmax(-1)
    c = torch.tensor([[0, 2, 1, 0, 5, 1, 0, 3, 0, 1], [0] * 10, [1, 1, 1, 1, 0, 0, 2, 2, 2, 9]],
                     dtype=torch.float64)
    out = attention_against(attention, c, prefix=1)
    expected = naive(attention.numpy(), c.numpy(), prefix=1)
    for name, value in expected.items():
        np.testing.assert_allclose(out[name].numpy(), value, rtol=1e-9, atol=1e-12,
                                   err_msg=name)
    assert len(BINS) == 3


@pytest.mark.slow
def test_spurious_score_and_counterfactual_against_a_hand_masked_forward(demo):
    ds = demo_dataset()
    x, _, _ = load_batch(demo, ds, [0, 105])
    inside = torch.zeros(2, 49, dtype=torch.bool)
    inside[0, 10:30] = True
    inside[1, ::2] = True
    (first, second) = compute_images(demo, x, ANALYSES["spurious"], [None, 3],
                                     objects=[inside[0], inside[1]])
    untouched = demo.model  # the plain timm forward, nothing of the engine
    with torch.no_grad():
        before = untouched(x).softmax(-1)
    classes = [int(before[0].argmax()), 3]
    for b, arrays in enumerate((first, second)):
        assert OBJECT_SOURCES[int(arrays["object_source"])] == "mask"
        masked = x[b].clone()
        for j in range(49):
            if not inside[b, j]:
                r, col = divmod(j, 7)
                masked[:, 4 * r:4 * r + 4, 4 * col:4 * col + 4] = 0.0  # the dataset mean
        with torch.no_grad():
            after = untouched(masked[None]).softmax(-1)[0]
        assert int(arrays["class"]) == classes[b]
        assert arrays["probability_before"] == pytest.approx(float(before[b, classes[b]]),
                                                             abs=1e-5)
        assert arrays["probability_after"] == pytest.approx(float(after[classes[b]]), abs=1e-5)
        assert int(arrays["top_after"]) == int(after.argmax())
        for m, method in enumerate(METHOD_NAMES):
            values = explain(demo, x[b:b + 1], method, [classes[b]])[0].clamp_min(0)
            outside = sum(float(values[j]) for j in range(49) if not inside[b, j])
            expected = outside / float(values.sum()) if float(values.sum()) > 0 else 0.0
            assert arrays["score"][m] == pytest.approx(expected, abs=1e-5), method


def test_outside_share_ignores_negative_values():
    maps = torch.tensor([[2.0, -5.0, 1.0, 1.0], [-1.0, -1.0, -1.0, -1.0]])
    inside = torch.tensor([[True, True, False, False], [True, False, False, False]])
    torch.testing.assert_close(outside_share(maps, inside), torch.tensor([0.5, 0.0]))


def test_demo_objects_are_the_dilated_garment(demo):
    ds = demo_dataset()
    x, _, _ = load_batch(demo, ds, [0])
    (inside,) = image_objects(demo, ds, [0], x)
    on = ds.pixels[0] > 0
    for j in range(49):  # a patch with garment pixels is always inside (dilation)
        r, c = divmod(j, 7)
        if on[4 * r:4 * r + 4, 4 * c:4 * c + 4].any():
            assert inside[j], j


def write_masks(folder, names, broken: str | None = None) -> None:
    masks = folder / "masks"
    masks.mkdir()
    for name in names:
        mask = np.zeros((56, 56), np.uint8)
        mask[:, :24] = 255  # the left 3 of 7 patch columns at the model's 28 px
        Image.fromarray(mask).save(masks / name)
    if broken:
        (masks / broken).write_bytes(b"not a png")


@pytest.mark.slow
def test_mask_folder_missing_and_broken_masks_are_listed(demo, tmp_path):
    folder = demo_flat_folder(tmp_path, count=3, broken=False)
    write_masks(folder, ["img0.png"], broken="img1.png")
    ds = load_dataset(str(folder), demo.class_names)
    assert [r.id for r in ds.records] == ["img0.png", "img1.png", "img2.png"]
    assert list(ds.mask_files) == [0] and ds.has_objects
    problems = dict(ds.mask_problems)
    assert "could not be read" in problems["img1.png"] and "no mask" in problems["img2.png"]
    result = run(demo, ds, [0, 1, 2], ANALYSES["spurious"])
    assert not result.skipped
    sources = [OBJECT_SOURCES[int(result.arrays[i]["object_source"])] for i in range(3)]
    assert sources[0] == "mask" and sources[1] != "mask" and sources[2] != "mask"
    inside = result.arrays[0]["inside"].reshape(7, 7)
    assert inside[:, :3].all() and not inside[:, 3:].any()


def test_masks_folder_is_not_a_class_folder(demo, tmp_path):
    from testing.images import demo_class_folder
    folder = demo_class_folder(tmp_path, demo.class_names, per_class=1)
    (folder / "masks" / "Trouser").mkdir(parents=True)
    ds = load_dataset(str(folder), demo.class_names)
    assert not any(r.id.startswith("masks") for r in ds.records)
    assert not any("masks" in name for name, _ in ds.skipped)
    assert len(ds.mask_problems) == len(ds)  # a masks folder without the masks: listed


def test_a_changed_mask_is_a_new_cache_entry(demo, tmp_path):
    folder = demo_flat_folder(tmp_path, count=1, broken=False)
    write_masks(folder, ["img0.png"])
    cache = ArrayCache(tmp_path / "cache")
    first = run(demo, load_dataset(str(folder), demo.class_names), [0], ANALYSES["spurious"],
                cache=cache)
    Image.fromarray(np.full((56, 56), 255, np.uint8)).save(folder / "masks" / "img0.png")
    again = run(demo, load_dataset(str(folder), demo.class_names), [0], ANALYSES["spurious"],
                cache=cache)
    assert again.from_cache == 0 and again.arrays[0]["inside"].all()
    assert not first.arrays[0]["inside"].all()


def test_demo_watermark_ships_a_shortcut_model_and_an_honest_sample():
    from core import load_model
    from core.data.paths import BUILTIN_DIRS
    lm = load_model("demo-watermark", device="cpu")
    ds = load_dataset("demo-watermark", lm.class_names)
    data = np.load(BUILTIN_DIRS["demo-watermark"] / "images.npz")
    marked, relies, labels = data["marked"], data["relies"], data["labels"]
    assert len(ds) == 1000 and lm.grid == (11, 11) and ds.masks is not None
    assert 0.4 < marked.mean() < 0.6 and not relies[~marked].any()
    per_class = np.bincount(labels[marked], minlength=10)
    assert per_class.min() >= 30 and per_class.max() <= 70  # independent of the class
    corners = [(slice(0, 4), slice(0, 4)), (slice(0, 4), slice(40, 44)),
               (slice(40, 44), slice(0, 4)), (slice(40, 44), slice(40, 44))]
    for i in range(len(ds)):
        lit = [bool((ds.pixels[i][r, c] == 255).any()) for r, c in corners]
        assert sum(lit) == int(marked[i]), i  # one marked corner on marked images only
        assert not any(ds.masks[i][r, c].any() for r, c in corners)  # outside the object
    # the ground truth, again by hand: erase the marker and run the plain model
    chosen = np.flatnonzero(marked)[:64]
    x, _, _ = load_batch(lm, ds, chosen.tolist())
    erased = x.clone()
    for r, c in corners:
        erased[:, :, r, c] = x[0, 0, 20, 0]  # a background pixel (black)
    with torch.no_grad():
        changed = lm.model(x).argmax(-1) != lm.model(erased).argmax(-1)
    assert changed.numpy().tolist() == relies[chosen].tolist()
