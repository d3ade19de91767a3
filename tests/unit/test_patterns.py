"""Attention patterns (SPEC "Attention patterns"): the per-image vectors against
a direct capture, the top-x% binarisation, the pattern labels on synthetic
matrices of each basic kind, the autoencoder, the layout and the page."""
from __future__ import annotations

from pathlib import Path

import re

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from core.dataset import autoencoder, embedding as layout
from core.display.density import binned
from core.model import capture
from core.storage.cache import ArrayCache
from core.data.builtin import demo_dataset
from core.data.datasets import load_dataset
from core.data.inputs import load_batch
from core.analyses.pattern_labels import (LABELS, MIXED_MARGIN, OFFSETS, decide, describe,
                                          label_scores)
from core.analyses.patterns import PATTERNS, PatternParams, binarise, kept_count, pack, unpack
from core.dataset.pattern_layouts import AE_SIDE, PATTERN_LAYOUTS, LayoutParams, Overview, pooled
from core.display.head_detail import head_matrix, strong_pairs, top_percent_threshold
from core.engine import compute_images, run_step
from testing.images import demo_flat_folder
from testing.layout_quality import knn_preservation, same_group_neighbours
from testing.models import random_input, random_vit
from ui.pages import by_name

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture(autouse=True)
def one_thread():
    """These are tiny problems: one torch thread is faster (and far faster when
    other processes share the cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_vectors_match_a_direct_capture_with_several_prefix_tokens():
    lm, _ = random_vit("registers")  # 5 prefix tokens, 4 x 4 grid
    x = random_input(lm)
    out = compute_images(lm, x, PATTERNS, [None] * len(x), PatternParams(10.0))
    attention = capture.forward(lm, x).attention.numpy()
    p, g = lm.num_prefix_tokens, 16
    for b in range(len(x)):
        a = attention[b]
        expected_cls = np.concatenate([a[..., 0, :], a[..., p:, 0]], axis=-1)
        np.testing.assert_allclose(out[b]["cls_vectors"], expected_cls, atol=1e-3)
        assert out[b]["cls_vectors"].shape == (lm.num_layers, lm.num_heads, lm.num_tokens + g)
        binary = unpack(out[b]["patch_bits"], g)
        for layer in range(lm.num_layers):
            for head in range(lm.num_heads):
                patch = a[layer, head, p:, p:].ravel()
                top = set(np.argsort(-patch, kind="stable")[:kept_count(g * g, 10.0)])
                assert set(np.flatnonzero(binary[layer, head].ravel())) == top


def test_binarise_keeps_the_top_percent():
    values = torch.from_numpy(np.random.default_rng(0).permutation(2401).astype(np.float32))
    matrix = values.view(49, 49)
    for percent, ones in ((1.0, 24), (5.0, 120), (0.01, 1), (100.0, 2401)):
        binary = binarise(matrix, percent)
        assert int(binary.sum()) == ones
        assert binary.view(-1)[values >= 2401 - ones].all()  # exactly the largest values
        threshold = top_percent_threshold(matrix.numpy(), percent)
        assert int((matrix.numpy() >= threshold).sum()) == ones
    with pytest.raises(ValueError):
        binarise(matrix, 0.0)
    with pytest.raises(ValueError):
        PatternParams(top_percent=101.0)
    packed = pack(binarise(matrix, 3.0).numpy())
    assert packed.shape == (301,)
    np.testing.assert_array_equal(unpack(packed, 49), binarise(matrix, 3.0).numpy())


def synthetic(kind: str, grid: tuple[int, int], seed: int = 0, step=(0, 0)) -> torch.Tensor:
    """A softmax patch matrix of one basic pattern (logit 6 on the pattern, noise 0.5)."""
    gh, gw = grid
    g = gh * gw
    rng = np.random.default_rng(seed)
    r, c = np.divmod(np.arange(g), gw)
    logits = np.zeros((g, g))
    if kind == "diagonal":
        tr, tc = r + step[0], c + step[1]
        inside = (tr >= 0) & (tr < gh) & (tc >= 0) & (tc < gw)
        logits[np.arange(g), np.where(inside, tr * gw + tc, np.arange(g))] = 6
    elif kind == "horizontal":  # each patch attends along its own grid row
        logits[r[:, None] == r[None, :]] = 6
    elif kind == "vertical":  # every patch attends to the same three patches
        logits[:, rng.choice(g, 3, replace=False)] = 6
    elif kind == "block":  # object region and background each attend within themselves
        obj = (r >= 1) & (r <= gh - 2) & (c >= 1) & (c <= gw - 2)
        logits[obj[:, None] == obj[None, :]] = 6
    logits += rng.normal(0, 0.5, logits.shape)
    return torch.softmax(torch.tensor(logits, dtype=torch.float32), -1)


DIAGONALS = {"self": (0, 0), "left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}


@pytest.mark.parametrize("grid", [(7, 7), (4, 6), (14, 14)])
def test_labels_of_synthetic_basic_patterns(grid):
    for name, step in DIAGONALS.items():
        scores, offset = label_scores(synthetic("diagonal", grid, step=step), grid)
        label, confidence = describe(scores.numpy(), int(offset))
        assert label == f"diagonal ({name})" and confidence > 0.4, (name, scores)
        binary = binarise(synthetic("diagonal", grid, step=step), 1.0)
        scores, offset = label_scores(binary, grid)  # the binarised matrix agrees
        assert describe(scores.numpy(), int(offset))[0] == f"diagonal ({name})"
    for kind in ("horizontal", "vertical", "block"):
        for seed in range(3):
            scores, _ = label_scores(synthetic(kind, grid, seed), grid)
            label, confidence = decide(scores.numpy())
            assert LABELS[int(label)] == kind and confidence > 0.1, (kind, scores)


def test_diffuse_attention_gets_a_low_confidence():
    grid = (7, 7)
    uniform = torch.full((49, 49), 1 / 49)
    assert float(label_scores(uniform, grid)[0].max()) < 1e-6
    torch.manual_seed(0)
    diffuse = torch.softmax(torch.randn(8, 49, 49) * 0.3, -1)
    _, confidence = decide(label_scores(diffuse, grid)[0].numpy())
    sharp = decide(label_scores(synthetic("vertical", grid), grid)[0].numpy())[1]
    assert confidence.max() < 0.1 < sharp
    assert len(OFFSETS) == 5


@pytest.mark.parametrize("g", [24, 49, 196])
def test_autoencoder_shapes_for_any_grid(g):
    model = autoencoder.PatternAutoencoder(autoencoder.Config(g, code_dim=16))
    x = torch.zeros(3, g, g)
    assert model.encode(x).shape == (3, 16)
    assert model(x).shape == (3, g, g)


def test_autoencoder_training_reduces_the_loss_and_round_trips():
    rng = np.random.default_rng(0)
    eye, shift = np.eye(24, dtype=np.uint8), np.eye(24, k=1, dtype=np.uint8)
    data = np.stack([eye if i % 2 else shift for i in range(64)])
    data = data * (rng.random(data.shape) > 0.1)  # a few ones dropped at random
    model, loss = autoencoder.train(data.astype(np.uint8), autoencoder.Config(24, code_dim=8),
                                    max_epochs=12, batch_size=16, lr=5e-3, plateau=None)
    assert len(loss) == 12 and loss[-1] < 0.6 * loss[0]
    codes = autoencoder.encode(model, data.astype(np.uint8))
    same_seed, _ = autoencoder.train(data.astype(np.uint8), autoencoder.Config(24, code_dim=8),
                                     max_epochs=12, batch_size=16, lr=5e-3, plateau=None)
    np.testing.assert_allclose(autoencoder.encode(same_seed, data.astype(np.uint8)), codes,
                               atol=1e-5)  # seeded by its own generator: reproducible
    # the two kinds get different codes
    gap = np.linalg.norm(codes[0::2].mean(0) - codes[1::2].mean(0))
    assert gap > codes[0::2].std(0).mean() + codes[1::2].std(0).mean()


def test_autoencoder_training_stops_on_a_loss_plateau():
    data = np.zeros((64, 24, 24), np.uint8)
    data[:, 3, 5] = 1  # one pattern: learnt in a few epochs
    _, loss = autoencoder.train(data, autoencoder.Config(24, code_dim=8), max_epochs=60,
                                batch_size=16, lr=5e-3, plateau=0.02)
    assert 2 <= len(loss) < 60
    assert loss[-2] - loss[-1] < 0.02 * loss[-2]  # the last epoch gained less than 2%
    assert all(a - b >= 0.02 * a for a, b in zip(loss[:-2], loss[1:-1]))  # the others more


@pytest.mark.parametrize("fit_size", [1000, 150])  # full fit, and subsample + transform
def test_layout_keeps_two_separated_clusters_apart(fit_size):
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(0, 1, (200, 20)), rng.normal(8, 1, (200, 20))])
    groups = np.repeat([0, 1], 200)
    xy = layout.tsne(points, fit_size=fit_size, n_jobs=1)
    assert xy.shape == (400, 2) and np.isfinite(xy).all()
    assert same_group_neighbours(xy, groups, sample=400) == 1.0
    assert knn_preservation(points, xy, sample=200) > 0.2  # random would be ~0.02
    counts = binned(xy, bins=20).counts
    assert counts.shape == (20, 20) and counts.sum() == 400


def test_strong_pairs_and_head_matrix(demo):
    ds = demo_dataset()
    batch, _, _ = load_batch(demo, ds, [0])
    matrix = head_matrix(demo, batch[0], 2, 1)
    np.testing.assert_allclose(matrix, capture.forward(demo, batch).attention[0, 2, 1].numpy())
    threshold = top_percent_threshold(matrix, 2.0)
    pairs = strong_pairs(matrix, threshold, demo.num_prefix_tokens)
    assert len(pairs.source) == int((matrix >= threshold).sum())
    assert (matrix[pairs.source, pairs.target] == pairs.value).all()
    np.testing.assert_array_equal(pairs.cls_related, (pairs.source == 0) | (pairs.target == 0))


def test_overview_is_built_once_and_reused(demo, tmp_path):
    ds = load_dataset(str(demo_flat_folder(tmp_path)), demo.class_names)
    cache = ArrayCache(tmp_path / "cache")
    params = LayoutParams(max_epochs=1)
    assert run_step(demo, ds, PATTERN_LAYOUTS, params, cache=cache, compute=False).arrays is None
    stages = []
    result = run_step(demo, ds, PATTERN_LAYOUTS, params, cache=cache,
                      stage=lambda text, f: stages.append(text))
    overview = Overview.from_arrays(result.arrays)
    assert list(result.skipped) == ["broken.png"]
    heads = demo.num_layers * demo.num_heads
    assert len(overview.image) == 6 * heads  # the broken file is left out
    assert overview.cls_layout.shape == overview.patch_layout.shape == (6 * heads, 2)
    assert len(overview.ae_loss) == 1 and any("autoencoder" in s for s in stages)
    assert sorted(overview.points_of(ds.index_of("img2.png"))) == list(
        range(2 * heads, 3 * heads))
    again = run_step(demo, ds, PATTERN_LAYOUTS, params, cache=cache, compute=False).arrays
    np.testing.assert_array_equal(again["patch_layout"], overview.patch_layout)


def test_page_shows_the_layout_and_the_head_detail(tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_EXPLORER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VIT_EXPLORER_DEVICE", "cpu")
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update({"images": str(demo_flat_folder(tmp_path)), "image": "img0.png",
                            "layer": "1", "head": "2"})
    at.run()
    at.switch_page(by_name("patterns").path).run()
    assert not at.exception, at.exception
    at.button(key="pattern_compute").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    text = " ".join(m.value for m in at.markdown) + " ".join(c.value for c in at.caption)
    assert "autoencoder" in text
    # the head's label shares over the set stand in the page's text, not a grey caption
    assert any(re.match(r"\*\*Layer 1, head 2 \(ringed in red\) over all \d+ images:\*\* "
                        r"\w+ \d+%", m.value) for m in at.markdown)
    at.radio(key="pattern_layout_kind").set_value("CLS attention").run()
    at.radio(key="pattern_view").set_value("points").run()
    at.number_input(key="pattern_top").set_value(5.0).run()
    assert not at.exception, at.exception


def fig13(name: str, grid: tuple[int, int]) -> torch.Tensor:
    """A patch matrix of one of the paper's 13 patterns (section 6.3.1, Fig. 13): each
    source patch (r, c) attends evenly to the listed targets (uniformly where none fall
    on the grid, the paper's gaps)."""
    gh, gw = grid
    targets = {
        "A self": lambda r, c: [(r, c)], "B left": lambda r, c: [(r, c - 1)],
        "C right": lambda r, c: [(r, c + 1)], "D above": lambda r, c: [(r - 1, c)],
        "E below": lambda r, c: [(r + 1, c)],
        "F several above": lambda r, c: [(r - k, c) for k in (1, 2, 3)],
        "G several below": lambda r, c: [(r + k, c) for k in (1, 2, 3)],
        "H above and below": lambda r, c: [(r + k, c) for k in (-2, -1, 1, 2)],
        "I counter-diagonal": lambda r, c: [(r, gw - 1 - c)],
        "J horizontal before": lambda r, c: [(r, k) for k in range(c + 1)],
        "K horizontal after": lambda r, c: [(r, k) for k in range(c, gw)],
        "L vertical": lambda r, c: [(gh // 2, gw // 2), (gh // 2, gw // 2 + 1),
                                    (gh // 2 + 1, gw // 2)],
        "M block": lambda r, c: [(r2, c2) for r2 in range(r // 3 * 3, r // 3 * 3 + 3)
                                 for c2 in range(c // 3 * 3, c // 3 * 3 + 3)],
    }[name]
    a = torch.zeros(gh * gw, gh * gw)
    for r in range(gh):
        for c in range(gw):
            for r2, c2 in targets(r, c):
                if 0 <= r2 < gh and 0 <= c2 < gw:
                    a[r * gw + c, r2 * gw + c2] = 1.0
    a[a.sum(1) == 0] = 1.0
    return a / a.sum(1, keepdim=True)


# what the heatmap shows (Fig. 13A-K hold the diagonal pattern; J, K the horizontal one
# mixed with it; L vertical; M block), and the labels that agree with it
FIG13 = {"A self": {"diagonal"}, "B left": {"diagonal"}, "C right": {"diagonal"},
         "D above": {"diagonal"}, "E below": {"diagonal"}, "F several above": {"diagonal"},
         "G several below": {"diagonal"}, "H above and below": {"diagonal", "mixed"},
         "I counter-diagonal": {"diagonal", "mixed"},
         "J horizontal before": {"horizontal", "mixed"},
         "K horizontal after": {"horizontal", "mixed"},
         "L vertical": {"vertical"}, "M block": {"block"}}


@pytest.mark.parametrize("grid", [(7, 7), (14, 14)])
@pytest.mark.parametrize("name", list(FIG13))
def test_labels_agree_with_the_papers_13_patterns_or_say_mixed(name, grid):
    scores, offset = label_scores(fig13(name, grid), grid)
    label, confidence = describe(scores.numpy(), int(offset))
    assert label.split(" (")[0] in FIG13[name], (name, label, confidence, scores)
    if label == "mixed":
        assert confidence < MIXED_MARGIN


def test_large_matrices_are_pooled_in_blocks_for_the_autoencoder():
    binary = np.zeros((2, 5, 5), dtype=np.uint8)
    binary[0, 0, 4] = 1  # block (0, 2) of 2 x 2 blocks; the last row and column are padded
    binary[1, 3, 2] = binary[1, 2, 3] = 1  # both in block (1, 1)
    out = pooled(binary, side=3)  # k = 2, 3 x 3 blocks
    expected = np.zeros((2, 3, 3), dtype=np.uint8)
    expected[0, 0, 2] = expected[1, 1, 1] = 1
    np.testing.assert_array_equal(out, expected)
    assert pooled(binary, side=5) is binary  # small enough: untouched
    # a DINOv2-S/14 at 518 px: 1,369 patches -> blocks of 7 -> 196 x 196
    assert pooled(np.zeros((1, 1369, 1369), np.uint8), AE_SIDE).shape == (1, 196, 196)
