"""Keypoint-guided training (SPEC "Keypoint-guided training"): the kept share of
tokens, the keep order against a naive sort, the token budget in a timm ViT against its
forward written out with the kept tokens picked by hand, keypoints per pixel against
the per-patch concentration of the keypoints analysis, the augmentation moving the
keypoints with the pixels, a short training of each rule, the training script's
refusal of a bad budget and the saved comparison in words."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from core.cli import train_demo
from core.cli.train_demo import augment, train, training
from core.data.keypoints import concentration, detect
from core.training.guided_results import in_words, load, provenance, run_of, save, table
from core.training.token_budget import (TokenBudget, keep_order, kept_tokens, keypoint_maps,
                                        patch_concentration)

TINY = dict(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=16, depth=2,
            num_heads=2, mlp_ratio=2.0)


@pytest.mark.parametrize("budget, kept", [(0.25, 13), (0.5, 25), (1.0, 49), (1 / 49, 1),
                                          (0.02, 1)])
def test_an_image_keeps_the_ceiling_of_the_budget_times_its_patches(budget, kept):
    assert kept_tokens(budget, 49) == kept == max(1, math.ceil(round(budget * 49, 9)))


@pytest.mark.parametrize("budget", [0, -0.5, 1.5, float("nan")])
def test_a_budget_outside_zero_to_one_is_refused_with_its_value(budget):
    with pytest.raises(ValueError, match=rf"token budget {budget!r}: .*\(0, 1\]"):
        kept_tokens(budget, 49)


def test_the_keep_order_is_highest_score_first_with_ties_at_random():
    scores = torch.tensor([[3.0, 1.0, 1.0, 1.0, 0.0, 5.0]]).repeat(600, 1)
    order = keep_order(scores, torch.Generator().manual_seed(0))
    assert (order[:, 0] == 5).all() and (order[:, 1] == 0).all() and (order[:, 5] == 4).all()
    assert (order.sort(dim=1).values == torch.arange(6)).all()  # a permutation per row
    second = np.bincount(order[:, 2].numpy(), minlength=6)[1:4]  # one of the three ties
    assert second.sum() == 600 and second.min() > 150, second  # each about 200 times


def test_equal_scores_give_a_uniformly_random_order():
    order = keep_order(torch.zeros(4000, 5), torch.Generator().manual_seed(1))
    first = np.bincount(order[:, 0].numpy(), minlength=5)
    assert first.min() > 700 and first.max() < 900, first  # each about 800 times


def by_hand(model: VisionTransformer, x: torch.Tensor, keep: list[list[int]]) -> torch.Tensor:
    """The timm ViT's forward written out, with the patch tokens `keep` (per image)
    picked after the position embedding and put after the class token."""
    t = model._pos_embed(model.patch_embed(x))
    p = model.num_prefix_tokens
    t = torch.stack([torch.cat([t[b, :p], t[b, p:][idx]]) for b, idx in enumerate(keep)])
    return model.forward_head(model.norm(model.blocks(model.norm_pre(t))))


def test_the_budget_keeps_the_tokens_with_the_most_keypoints_in_a_timm_vit():
    torch.manual_seed(0)
    model = VisionTransformer(**TINY)
    x = torch.randn(3, 1, 28, 28)
    scores = torch.rand(3, 49)  # distinct: no ties
    model.patch_drop = TokenBudget(0.25, model.num_prefix_tokens)
    model.patch_drop.scores = scores
    model.train()
    with torch.no_grad():
        got = model(x)
        want = by_hand(model, x, [sorted(range(49), key=lambda j: -float(s[j]))[:13]
                                  for s in scores])
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_random_tokens_are_a_different_subset_per_image_of_the_right_size():
    budget = TokenBudget(0.5, 1)
    budget.train()
    tokens = torch.arange(2 * 50, dtype=torch.float32).reshape(2, 50, 1).repeat(1, 1, 3)
    kept = budget(tokens)
    assert kept.shape == (2, 1 + 25, 3)
    assert (kept[:, 0] == tokens[:, 0]).all()  # the class token first, as it was
    rows = [set(kept[b, 1:, 0].tolist()) for b in range(2)]
    assert all(len(r) == 25 and r <= set(tokens[b, 1:, 0].tolist()) for b, r in enumerate(rows))
    assert {v - 50 for v in rows[1]} != rows[0]


def test_the_budget_is_the_identity_in_eval_mode_and_the_untouched_model_is_unchanged():
    torch.manual_seed(0)
    model, x = VisionTransformer(**TINY).eval(), torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        want = model(x)
        model.patch_drop = TokenBudget(0.25, model.num_prefix_tokens)
        torch.testing.assert_close(model.eval()(x), want, rtol=0, atol=0)


def test_scores_of_the_wrong_shape_are_refused():
    budget = TokenBudget(0.5, 1)
    budget.scores = torch.zeros(2, 16)
    with pytest.raises(ValueError, match="keypoint scores of shape"):
        budget.train()(torch.zeros(2, 50, 4))


@pytest.fixture(scope="module")
def garments() -> tuple[np.ndarray, np.ndarray]:
    """80 synthetic 28 x 28 images: a bright block (class 0) or a ring (class 1) at
    varying places, and their labels."""
    rng = np.random.default_rng(0)
    images = np.zeros((80, 28, 28), dtype=np.uint8)
    labels = np.arange(80) % 2
    for n in range(80):
        r, c = rng.integers(3, 14, size=2)
        images[n, r:r + 10, c:c + 10] = 220
        if labels[n]:
            images[n, r + 3:r + 7, c + 3:c + 7] = 0
    return images, labels


def test_keypoints_per_pixel_sum_to_the_keypoints_analysis_concentration(garments):
    images = garments[0][:6]
    maps = keypoint_maps(images)
    got = patch_concentration(torch.from_numpy(maps), 4).numpy()
    want = np.stack([concentration(detect(image), (7, 7), (4, 4)) for image in images])
    np.testing.assert_array_equal(got, want)
    assert want.sum() > 0  # the blocks' corners have keypoints


def test_the_augmentation_moves_keypoints_with_the_pixels(garments):
    pixels = torch.from_numpy(garments[0][:8]).float().div(255).unsqueeze(1)
    moved = augment(torch.cat([pixels, pixels], 1), np.random.default_rng(3))
    assert torch.equal(moved[:, 0], moved[:, 1])
    assert not torch.equal(moved[:, :1], pixels)  # the draw flipped or shifted something


@pytest.mark.parametrize("select", ["keypoints", "random"])
def test_a_short_guided_training_sees_the_kept_tokens_only_and_ends_untouched(garments,
                                                                                select):
    images, labels = garments
    lengths: list[tuple[bool, int]] = []
    epochs = list(training(images, labels, 2, TINY, batch=4, token_budget=0.25,
                           keypoints=keypoint_maps(images) if select == "keypoints" else None))
    model = epochs[-1][1]
    assert [e for e, _, _ in epochs] == [1, 2] and 0 < epochs[0][2] < epochs[1][2]
    assert isinstance(model.patch_drop, torch.nn.Identity) and not model.training
    model.blocks[0].register_forward_pre_hook(
        lambda module, args: lengths.append((module.training, args[0].shape[1])))
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    assert lengths == [(False, 50)]  # evaluation: every token
    hooked = VisionTransformer(**TINY)
    hooked.patch_drop = TokenBudget(0.25, 1)
    hooked.blocks[0].register_forward_pre_hook(
        lambda module, args: lengths.append((module.training, args[0].shape[1])))
    hooked.train()(torch.zeros(2, 1, 28, 28))
    assert lengths[-1] == (True, 1 + 13)


def test_the_same_seed_trains_the_same_model_whatever_runs_in_between(garments):
    images, labels = garments
    alone = train(images, labels, 1, TINY, batch=4, token_budget=0.5)
    first = training(images, labels, 1, TINY, batch=4, token_budget=0.5)
    other = training(images, labels, 1, TINY, batch=4, token_budget=0.25)
    next(other)
    model = next(first)[1]
    for (name, a), b in zip(alone.state_dict().items(), model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("budget", ["0", "1.2"])
def test_the_training_script_refuses_a_bad_budget_before_reading_data(monkeypatch, capsys,
                                                                      budget):
    monkeypatch.setattr(sys, "argv", ["train_demo", "--token-budget", budget,
                                      "--data", "/nonexistent"])
    with pytest.raises(SystemExit) as stop:
        train_demo.main()
    assert stop.value.code == 2
    assert f"token budget {float(budget)!r}" in capsys.readouterr().err


def test_the_saved_comparison_reads_back_and_says_it_in_words(tmp_path):
    def run(budget, select, seconds, accuracies):
        return {"token_budget": budget, "select": select, "kept_tokens": kept_tokens(budget, 49),
                "seconds_per_epoch": seconds, "test_accuracy": accuracies[-1],
                "accuracy_per_epoch": accuracies,
                "seconds_after_epoch": [seconds * (k + 1) for k in range(len(accuracies))]}
    results = {"epochs": 3, "targets": [0.8, 0.85], "train_images": 60000, "threads": 2,
               "date": "2026-12-03", "machine": "x86_64, 2 CPUs, no GPU",
               "keypoint_detection_seconds": 212.4, "runs": [
                   run(1.0, "all", 100.0, [0.7, 0.85, 0.86]),
                   run(0.5, "keypoints", 50.0, [0.6, 0.8, 0.8]),
                   run(0.5, "random", 52.0, [0.6, 0.7, 0.84]),
                   run(0.25, "keypoints", 30.0, [0.5, 0.6, 0.7]),
                   run(0.25, "random", 31.0, [0.5, 0.6, 0.75])]}
    save(results, tmp_path / "g.json")
    assert load(tmp_path / "g.json") == results and load(tmp_path / "none.json") is None
    assert run_of(results, 1.0, "random")["select"] == "all"
    words = in_words(results)
    assert "50 s an epoch against 100 s" in words and "2.00 times as fast" in words
    assert "80.0% test accuracy after 3 epochs, 4.0 points below" in words
    frame = table(results)
    assert list(frame["training time to 85% test accuracy (s)"]) == [200] + ["not reached"] * 4
    assert list(frame["training time to 80% test accuracy (s)"]) == [
        200, 100, 156, "not reached", "not reached"]
    assert list(frame["test accuracy after 3 epochs (%)"]) == [86.0, 80.0, 84.0, 70.0, 75.0]
    assert ("3 epochs on 60,000 training images" in provenance(results)
            and "took 212 s once" in provenance(results))


def test_the_shipped_comparison_has_every_budget_and_rule_measured_in_one_run():
    results = load()
    assert results is not None, "demo/guided_training.json: run python -m bench.guided_training"
    assert {(r["token_budget"], r["select"]) for r in results["runs"]} == {
        (1.0, "all"), (0.5, "keypoints"), (0.5, "random"), (0.25, "keypoints"),
        (0.25, "random")}
    for r in results["runs"]:
        assert len(r["accuracy_per_epoch"]) == len(r["seconds_after_epoch"]) == results["epochs"]
        assert r["seconds_after_epoch"] == sorted(r["seconds_after_epoch"])
        assert r["test_accuracy"] == r["accuracy_per_epoch"][-1]
        assert r["kept_tokens"] == kept_tokens(r["token_budget"], 49)
        assert 0.1 < r["test_accuracy"] <= 1 and r["seconds_per_epoch"] > 0
