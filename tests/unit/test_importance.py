"""Head importance (SPEC "Head pruning"): the fast leave-one-out equals a naive
one-head-at-a-time loop, re-running from a layer equals the untouched model, partial
pruning agrees with masked full forwards, each image is measured on its own label,
the overview layout is cached per metric."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from core.analyses import IMPORTANCE, importance, partial_pruning
from core.data.datasets import load_dataset
from core.dataset import importance_overview
from core.dataset.importance_overview import IMPORTANCE_OVERVIEW, OverviewParams
from core.dataset.statistics import mean_and_std, stack
from core.model.targets import Explained
from core.engine import run, run_step
from core.model import capture
from core.model._rerun import forward_from, states
from core.storage.cache import ArrayCache
from core.data.builtin import demo_dataset
from core.data.inputs import load_batch
from core.model.loaded import LoadedModel
from testing.images import demo_class_folder
from testing.models import odd_vit, random_input, random_vit, small_deit
from testing.reference import check_forward_from, naive_leave_one_out


CASES = {
    "deit_tiny": lambda: small_deit("deit_tiny_patch16_224"),
    "deit_tiny_distilled": lambda: small_deit("deit_tiny_distilled_patch16_224"),  # 2 prefix
    "registers": lambda: random_vit("registers"),  # 5 prefix tokens
    "odd": odd_vit,
}


@pytest.fixture(scope="module", params=["demo", *CASES])
def case(request) -> tuple[LoadedModel, torch.nn.Module]:
    if request.param == "demo":
        lm = request.getfixturevalue("demo")
        untouched = copy.deepcopy(lm.model)
        for block in untouched.blocks:
            block.attn.fused_attn = True
        return lm, untouched
    return CASES[request.param]()


@pytest.mark.slow
def test_forward_from_any_layer_equals_the_untouched_model(case):
    lm, untouched = case
    check_forward_from(lm, untouched, random_input(lm))


def test_forward_from_with_a_mask_equals_a_masked_full_forward(case):
    lm, _ = case
    x = random_input(lm)
    base = states(lm, x)
    for layer in (0, lm.num_layers - 1):
        mask = capture.head_mask(lm, [1], mode=3)
        expected = capture.forward(lm, x, masks={layer: mask}, layers=()).logits
        logits, _ = forward_from(lm, base.inputs[layer], layer, mask=mask)
        torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(logits, base.logits, rtol=0, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["deit_tiny", "odd"])
def test_leave_one_out_equals_the_naive_loop(name):
    lm, _ = CASES[name]()
    images = 2
    x = random_input(lm, batch=images)
    targets = [2, None]
    fast = importance.leave_one_out(lm, x, targets)
    naive = naive_leave_one_out(lm, x, targets)
    assert fast.shape == (images, 4, lm.num_layers, lm.num_heads)
    np.testing.assert_allclose(fast, naive, rtol=0, atol=1e-6)
    for metric in range(4):  # every metric moves for some head: the comparison has teeth
        assert np.abs(naive[:, metric]).max() > 1e-6


def test_demo_images_leave_one_out_equals_the_naive_loop(demo):
    ds = demo_dataset()
    x, kept, _ = load_batch(demo, ds, [0, 1, 2, 3])
    labels = [ds.records[i].label for i in kept]
    fast = importance.leave_one_out(demo, x, labels)
    np.testing.assert_allclose(fast, naive_leave_one_out(demo, x, labels),
                               rtol=0, atol=1e-6)


def test_metrics_on_a_hand_computed_case():
    p = torch.tensor([[0.5, 0.5]])
    q = torch.tensor([[1.0, 0.0]])
    z = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])  # CLS, two patches
    pruned_z = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]])
    explained = Explained(classes=torch.tensor([1]))  # the metrics read logits: log p
    got = importance.metrics(explained, p.log(), q.log(), z, pruned_z, num_prefix_tokens=1)[0]
    jsd = 0.5 * (0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)) \
        + 0.5 * math.log(1 / 0.75)
    patch = (0.0 + (1 - 1 / math.sqrt(2))) / 2  # patch 1 unchanged, patch 2 at 45 degrees
    np.testing.assert_allclose(got.numpy(), [0.5 - 0.0, jsd, 1.0, patch], atol=1e-12)
    same = importance.metrics(Explained(classes=torch.tensor([0])), p.log(), p.log(), z, z,
                              num_prefix_tokens=1)[0]
    np.testing.assert_allclose(same.numpy(), 0.0, atol=1e-12)


def test_embedding_metrics_on_a_hand_computed_case():
    e = torch.tensor([[2.0, 0.0]])  # the reference: the image's own embedding
    pruned = torch.tensor([[1.0, 1.0]])
    z = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    got = importance.metrics(Explained(references=e), e, pruned, z, z, num_prefix_tokens=1)[0]
    # s(x') = <(1, 1), (2, 0)> / <(2, 0), (2, 0)> = 0.5; cosine of 45 degrees
    np.testing.assert_allclose(got.numpy(), [1.0 - 0.5, 1 - 1 / math.sqrt(2), 0.0, 0.0],
                               atol=1e-12)


def test_prob_uses_the_label_or_else_the_prediction(demo):
    x = random_input(demo, batch=1)
    predicted = int(capture.forward(demo, x, layers=()).logits.argmax())
    other = (predicted + 1) % 10
    by_prediction = importance.leave_one_out(demo, x, [None])
    by_label = importance.leave_one_out(demo, x, [other])
    np.testing.assert_allclose(by_prediction, importance.leave_one_out(demo, x, [predicted]))
    np.testing.assert_allclose(by_label[:, 1:], by_prediction[:, 1:])  # only prob depends on y
    assert not np.allclose(by_label[:, 0], by_prediction[:, 0])


@pytest.mark.parametrize("layer,head", [(0, 2), (5, 3)])
def test_partial_pruning_modes_equal_masked_full_forwards(demo, layer, head):
    x = random_input(demo, batch=2)
    values, logits = partial_pruning.modes_of_head(demo, x, layer, head, [None, 4])
    probs = logits.softmax(-1)
    assert values.shape == (2, 6, 4) and probs.shape == (2, 6, 10)
    plain = capture.forward(demo, x, layers=()).logits.softmax(-1)
    torch.testing.assert_close(probs[:, 0], plain, rtol=1e-5, atol=1e-6)
    assert (values[:, 0] == 0).all()
    for mode in partial_pruning.MODES[1:]:
        masked = capture.forward(demo, x, masks={layer: capture.head_mask(demo, [head], mode)},
                                 layers=()).logits.softmax(-1)
        torch.testing.assert_close(probs[:, mode], masked, rtol=1e-5, atol=1e-6)
    whole = importance.leave_one_out(demo, x, [None, 4])[:, :, layer, head]
    np.testing.assert_allclose(values[:, 1].numpy(), whole, atol=1e-6)  # mode 1 = whole head


def test_partial_pruning_refuses_a_head_that_does_not_exist(demo):
    with pytest.raises(ValueError, match="6 layers x 4 heads"):
        partial_pruning.modes_of_head(demo, random_input(demo, 1), 6, 0, [None])


def test_each_image_is_measured_on_its_own_label_in_one_batch_and_cached(demo, tmp_path):
    ds = demo_dataset()
    indices = [0, 1, 100, 101, 500]  # three classes, one engine batch
    seen = []
    result = run(demo, ds, indices, IMPORTANCE, cache=ArrayCache(tmp_path),
                 progress=lambda done, total: seen.append((done, total)))
    assert sorted(result.arrays) == indices and seen[-1] == (5, 5)
    x, _, _ = load_batch(demo, ds, indices)
    labels = [ds.records[i].label for i in indices]
    direct = importance.leave_one_out(demo, x, labels)
    values = stack(result.arrays, "importance")
    np.testing.assert_allclose(values, direct, atol=1e-6)
    again = run(demo, ds, indices, IMPORTANCE, cache=ArrayCache(tmp_path))
    assert again.from_cache == 5
    predicted = run(demo, ds, indices, IMPORTANCE, target="prediction",
                    cache=ArrayCache(tmp_path))  # another target: other keys
    assert predicted.from_cache == 0
    mean, std = mean_and_std(values)
    np.testing.assert_allclose(mean, direct.mean(0), atol=1e-6)
    np.testing.assert_allclose(std, direct.std(0), atol=1e-6)


def test_overview_layout_is_cached_per_metric(demo, tmp_path, monkeypatch):
    ds = load_dataset(str(demo_class_folder(tmp_path, demo.class_names, per_class=7)),
                      demo.class_names)  # 21 images of three classes
    cache = ArrayCache(tmp_path / "cache")
    jsd = OverviewParams("jsd")
    xy = run_step(demo, ds, IMPORTANCE_OVERVIEW, jsd, cache=cache).arrays["xy"]
    assert xy.shape == (21, 2) and np.isfinite(xy).all() and xy.std(0).min() > 0
    other = run_step(demo, ds, IMPORTANCE_OVERVIEW, OverviewParams("cls_dist"), cache=cache)
    assert not np.allclose(xy, other.arrays["xy"])  # the metric chooses the vectors laid out
    monkeypatch.setattr(importance_overview, "tsne", lambda _v: pytest.fail("not cached"))
    np.testing.assert_array_equal(
        run_step(demo, ds, IMPORTANCE_OVERVIEW, jsd, cache=cache).arrays["xy"], xy)
    with pytest.raises(ValueError, match="Unknown importance metric"):
        OverviewParams("accuracy")
