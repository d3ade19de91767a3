"""Head interactions (paper 001, section 7): the batched pair pruning equals a naive
loop of full masked forwards, re-running from a layer with masks on several layers
equals a masked full forward, the top heads follow leave-one-out."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.analyses import INTERACTIONS
from core.analyses.axes import problems
from core.analyses.importance import METRICS, leave_one_out
from core.analyses.interactions import InteractionParams, top_heads
from core.data.builtin import demo_dataset
from core.data.inputs import load_batch
from core.model import capture
from core.model._rerun import forward_from, states
from core.engine import compute_images
from testing.models import odd_vit, random_input, small_deit
from testing.reference import masked_run, naive_pairs

CASES = {"deit_tiny": lambda: small_deit("deit_tiny_patch16_224"), "odd": odd_vit}


def test_top_heads_are_the_largest_first_ties_by_position():
    values = np.array([[0.1, 0.5], [0.5, -1.0], [0.3, 0.0]])
    np.testing.assert_array_equal(top_heads(values, 3), [[0, 1], [1, 0], [2, 0]])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_forward_from_with_masks_on_two_layers_keeps_each_layers_output(name):
    lm, _ = CASES[name]()
    x = random_input(lm)
    base = states(lm, x)
    last = lm.num_layers - 1
    masks = {1: capture.head_mask(lm, [0]), last: capture.head_mask(lm, [1, 2])}
    logits, z = forward_from(lm, base.inputs[1], 1, masks=masks, keep=[1, last])
    expected_logits, expected_z = masked_run(lm, x, masks)
    torch.testing.assert_close(logits, expected_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(z[0], expected_z[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(z[1], expected_z[last], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="layer 1 or later"):
        forward_from(lm, base.inputs[1], 1, masks={0: masks[1]})


def check_against_naive(lm, x, targets, k):
    out = compute_images(lm, x, INTERACTIONS, targets, InteractionParams(k=k))
    loo = leave_one_out(lm, x, targets)
    for b, arrays in enumerate(out):
        heads = [tuple(int(v) for v in h) for h in arrays["heads"]]
        expected = top_heads(loo[b, METRICS.index("prob")], k)
        assert heads == [tuple(h) for h in expected.tolist()]
        pair, interaction = naive_pairs(lm, x[b:b + 1], [targets[b]], heads)
        np.testing.assert_allclose(arrays["pair"], pair, rtol=0, atol=1e-6)
        np.testing.assert_allclose(arrays["interaction"], interaction, rtol=0, atol=1e-6)
        np.testing.assert_allclose(arrays["single"], loo[b][:, [h[0] for h in heads],
                                                            [h[1] for h in heads]], atol=1e-6)
        assert np.all(np.diagonal(arrays["interaction"], axis1=1, axis2=2) == 0)
        np.testing.assert_array_equal(arrays["interaction"],
                                      arrays["interaction"].transpose(0, 2, 1))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_interactions_equal_a_naive_loop_of_masked_forwards(name):
    lm, _ = CASES[name]()
    out = check_against_naive(lm, random_input(lm), [2, None], k=5)
    for m in range(len(METRICS)):  # every metric interacts somewhere: the test has teeth
        assert max(np.abs(a["interaction"][m]).max() for a in out) > 1e-6


def test_demo_interactions_equal_the_naive_loop_and_are_not_additive(demo):
    ds = demo_dataset()
    x, kept, _ = load_batch(demo, ds, [0, 1, 2])
    out = check_against_naive(demo, x, [ds.records[i].label for i in kept], k=4)
    prob = METRICS.index("prob")
    assert max(np.abs(a["interaction"][prob]).max() for a in out) > 1e-3


def test_k_is_capped_at_the_model_and_bad_params_are_refused(demo):
    x = random_input(demo, batch=1)
    out = compute_images(demo, x, INTERACTIONS, [None], InteractionParams(k=100))
    assert out[0]["heads"].shape == (demo.num_layers * demo.num_heads, 2)
    assert not problems(INTERACTIONS, out[0], demo)
    with pytest.raises(ValueError, match="at least 2"):
        InteractionParams(k=1)
    with pytest.raises(ValueError, match="Unknown importance metric"):
        InteractionParams(rank_by="accuracy")
