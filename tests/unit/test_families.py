"""Every model family (``core.model._families``: timm ViT, BEiT, EVA/EVA02) through every
cross-cutting check, on small random-init classifiers (``testing.models.FAMILY_CASES``):
capture equals the untouched timm model, pruning equals zeroing the head by hand,
re-running from a layer equals the untouched model, leave-one-out, partial pruning and
pair interactions equal their naive loops, gradients equal an independent path, the
explanation maps run; which fast path applies is checked, not assumed. Windowed
models (Swin, SAM) are refused with the reason."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import timm
import torch
from timm.layers import Attention
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from core.analyses import ANALYSES, importance, partial_pruning
from core.analyses.axes import problems
from core.analyses.faithfulness import LOCALISATION
from core.analyses.interactions import pair_effects
from core.engine import compute_images
from core.explain import METHODS, AblationParams, explain
from core.explain.ablation import patch_groups
from core.explain.gradients import attention_and_gradients
from core.model import capture
from core.model import _kernels
from core.model._families import block_kwargs, output_from_heads, positional_attention
from core.model._final_rows import rows_read_by_head
from core.model.kernel_choice import KernelChoice
from core.model._rerun import forward_from, states
from core.model.architecture import check_allowed
from core.model.errors import ModelLoadError
from core.model.loaded import LoadedModel
from core.model.loading import from_module
from testing.models import FAMILY_CASES, model_state, random_family, random_input
from testing.reference import (check_forward_from, naive_leave_one_out, naive_pairs,
                               naive_patch_ablation, naive_positional_ablation)

pytestmark = pytest.mark.slow  # left out of `make check` (the inner loop)

ATTENTION = {"vit": "Attention", "beit": "Attention", "beit_shared_bias": "Attention",
             "eva02": "EvaAttention", "eva02_sub_ln": "EvaAttention",
             "rope_mixed": "AttentionRope"}
PREFIX = {"eva02_sub_ln": 3}  # CLS and two registers; 1 elsewhere


@pytest.fixture(scope="module", params=list(FAMILY_CASES))
def case(request) -> tuple[str, LoadedModel, nn.Module]:
    return request.param, *random_family(request.param)


def by_hand(model: nn.Module, layer: int, head: int, x: torch.Tensor) -> torch.Tensor:
    """Logits of the untouched timm model with head (layer, head) pruned by hand: its
    slice of ``A @ V`` zeroed where timm reads it next (the input of the attention's
    sub-norm, an identity in most models, else of its output projection)."""
    attn = model.blocks[layer].attn
    width = attn.proj.in_features // attn.num_heads

    def hook(_module, args):
        (inp,) = args
        inp = inp.clone()
        inp[..., head * width:(head + 1) * width] = 0
        return (inp,)

    handle = getattr(attn, "norm", attn.proj).register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            return model(x)
    finally:
        handle.remove()


class _Ones(nn.Module):
    """Multiplies A by a ones parameter: its gradient is ``A * dY/dA``."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.ones = nn.Parameter(torch.ones(shape))

    def forward(self, attn: torch.Tensor) -> torch.Tensor:
        return attn * self.ones


def gradients_by_hand(model: nn.Module, x: torch.Tensor, classes: torch.Tensor,
                      tokens: int) -> torch.Tensor:
    """``A * dY/dA`` (batch x layer x head x query x key) on a copy of the untouched timm
    model (explicit attention, a ones factor in place of each ``attn_drop``)."""
    model = copy.deepcopy(model)
    ones = []
    for block in model.blocks:
        block.attn.fused_attn = False
        block.attn.attn_drop = _Ones((len(x), block.attn.num_heads, tokens, tokens))
        ones.append(block.attn.attn_drop.ones)
    model(x).gather(1, classes[:, None]).sum().backward()
    return torch.stack([o.grad for o in ones], dim=1)


def test_loads_with_its_prefix_tokens_grid_and_attention(case):
    name, lm, _ = case
    assert (lm.num_layers, lm.num_heads, lm.num_prefix_tokens) == (2, 4, PREFIX.get(name, 1))
    assert lm.grid == (4, 4) and len(lm.class_names) == 10
    assert {type(a).__name__ for a in lm.attention_modules} == {ATTENTION[name]}
    assert not any(a.fused_attn for a in lm.attention_modules)


@pytest.mark.parametrize("name", ["beit_base_patch16_224", "eva02_tiny_patch14_224",
                                  "vit_small_patch16_rope_mixed_224"])
def test_full_size_models_pass_the_loaders_checks(name):
    skeleton = check_allowed(name)  # built on meta: nothing allocated or downloaded
    assert len(skeleton.blocks) == 12


def test_capture_equals_the_untouched_timm_model(case):
    _, lm, untouched = case
    assert all(b.attn.fused_attn for b in untouched.blocks)
    x = random_input(lm, batch=3)
    with torch.no_grad():
        expected = untouched(x)
    out = capture.forward(lm, x)
    torch.testing.assert_close(out.logits, expected, rtol=1e-5, atol=1e-5)
    t = lm.num_tokens
    assert out.attention.shape == (3, lm.num_layers, lm.num_heads, t, t)
    torch.testing.assert_close(out.attention.sum(-1), torch.ones(3, lm.num_layers,
                                                                 lm.num_heads, t))
    torch.testing.assert_close(capture.logits(lm, x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer,head", [(0, 1), (1, 3)])
def test_whole_head_mask_equals_zeroing_the_head_by_hand(case, layer, head):
    _, lm, untouched = case
    x = random_input(lm)
    expected = by_hand(untouched, layer, head, x)
    masked = capture.forward(lm, x, masks={layer: capture.head_mask(lm, [head])}, layers=())
    torch.testing.assert_close(masked.logits, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(masked.logits, capture.forward(lm, x, layers=()).logits,
                              rtol=0, atol=1e-4)


def test_forward_from_any_layer_equals_the_untouched_model(case):
    _, lm, untouched = case
    x = random_input(lm)
    check_forward_from(lm, untouched, x)
    base = states(lm, x)
    for layer in range(lm.num_layers):
        mask = capture.head_mask(lm, [2], mode=3)
        masked, _ = forward_from(lm, base.inputs[layer], layer, mask=mask)
        torch.testing.assert_close(masked, capture.forward(lm, x, masks={layer: mask},
                                                           layers=()).logits,
                                   rtol=1e-5, atol=1e-5)


def test_leave_one_out_equals_the_naive_loop(case):
    _, lm, _ = case
    x = random_input(lm, batch=2)
    targets = [2, None]
    fast = importance.leave_one_out(lm, x, targets)
    naive = naive_leave_one_out(lm, x, targets)
    assert fast.shape == (2, 4, lm.num_layers, lm.num_heads)
    np.testing.assert_allclose(fast, naive, rtol=0, atol=1e-6)
    for metric in range(4):  # every metric moves for some head: the comparison has teeth
        assert np.abs(naive[:, metric]).max() > 1e-5


class GatedAttention(Attention):
    """timm's Attention with its sigmoid gate (computed from the module's input) on."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, gated=True, **kwargs)


def test_leave_one_out_falls_back_to_masks_where_a_gate_follows_the_sub_norm():
    torch.manual_seed(3)
    model = VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4,
                              num_classes=10, scale_attn_norm=True,
                              attn_layer=GatedAttention).eval()
    lm = from_module(model, "gated_vit", device="cpu")
    x = random_input(lm)
    heads = states(lm, x).heads[0]
    assert output_from_heads(lm.attention_modules[0], heads) is None
    naive = naive_leave_one_out(lm, x, [None, 1])
    np.testing.assert_allclose(importance.leave_one_out(lm, x, [None, 1]), naive,
                               rtol=0, atol=1e-6)
    assert np.abs(naive).max() > 1e-5


def test_which_fast_paths_apply(case):
    """The pruned attention output comes from the kept head outputs in every family
    (EVA02's sub-LN included); only the plain ViT computes just the final block's CLS
    row; the kernel measurement runs each family's block with what its model passes."""
    name, lm, _ = case
    x = random_input(lm, batch=1)
    base = states(lm, x)
    for layer, attn in enumerate(lm.attention_modules):
        derived = importance.without_each_head(attn, base.heads[layer])
        masked = forward_from(lm, base.inputs[layer].repeat(lm.num_heads, 1, 1), layer,
                              mask=(1.0 - torch.eye(lm.num_heads)).view(
                                  lm.num_heads, lm.num_heads, 1, 1))[1]
        torch.testing.assert_close(derived, masked, rtol=1e-5, atol=1e-6)
    assert (rows_read_by_head(lm.model) is not None) == (name == "vit")
    assert positional_attention(lm.model) == (name != "vit")
    choice = _kernels.measure(lm)
    assert choice.seconds and all(s > 0 and o > 0 for s, o in choice.seconds.values())


@torch.no_grad()
def test_onednn_kernels_match_the_stock_forward(case, monkeypatch):
    _, lm, untouched = case
    monkeypatch.setattr(lm, "kernels", KernelChoice(0, {}))  # oneDNN at every size
    x = random_input(lm)
    with _kernels.onednn(lm):
        fast = lm.model(x)
    torch.testing.assert_close(fast, untouched(x), rtol=1e-4, atol=1e-4)
    assert not any("forward" in vars(m) for m in lm.model.modules())


def test_partial_pruning_modes_equal_masked_full_forwards(case):
    _, lm, _ = case
    x = random_input(lm)
    layer, head = 1, 2
    values, logits = partial_pruning.modes_of_head(lm, x, layer, head, [None, 4])
    for mode in partial_pruning.MODES[1:]:
        masked = capture.forward(lm, x, masks={layer: capture.head_mask(lm, [head], mode)},
                                 layers=()).logits
        torch.testing.assert_close(logits[:, mode], masked, rtol=1e-5, atol=1e-5)
    whole = importance.leave_one_out(lm, x, [None, 4])[:, :, layer, head]
    np.testing.assert_allclose(values[:, 1].numpy(), whole, atol=1e-6)


def test_pair_interactions_equal_the_naive_loop(case):
    _, lm, _ = case
    x = random_input(lm, batch=1)
    heads = [(0, 1), (1, 0), (1, 3)]
    pair, interaction = pair_effects(lm, x, [None], np.array([heads]))
    naive_pair, naive_interaction = naive_pairs(lm, x, [None], heads)
    np.testing.assert_allclose(pair[0], naive_pair, atol=1e-6)
    np.testing.assert_allclose(interaction[0], naive_interaction, atol=1e-6)


def test_gradients_equal_an_independent_path_and_the_maps_run(case):
    _, lm, untouched = case
    x = random_input(lm)
    attention, grads, explained = attention_and_gradients(lm, x)
    expected = gradients_by_hand(untouched, x, explained.classes, lm.num_tokens)
    torch.testing.assert_close(attention * grads, expected, rtol=1e-4, atol=1e-7)
    assert expected.abs().amax(dim=(0, 2, 3, 4)).min() > 0  # every layer has gradients
    for method in METHODS:
        maps = explain(lm, x, method)
        assert maps.shape == (2, lm.grid[0] * lm.grid[1]) and torch.isfinite(maps).all()


@pytest.mark.parametrize("group", [1, 3])
def test_patch_ablation_equals_removing_the_patches_by_hand(case, group):
    name, lm, untouched = case
    x = random_input(lm)
    before = model_state(lm.model)
    maps = explain(lm, x, "ablation", [1, None], AblationParams(group)).numpy()
    assert model_state(lm.model) == before
    classes = [1, int(untouched(x[1:2]).argmax())]
    groups = patch_groups(lm.grid, group)
    naive = naive_patch_ablation if name == "vit" else naive_positional_ablation
    for b in range(2):
        expected = naive(untouched, x[b:b + 1], classes[b], groups)
        np.testing.assert_allclose(maps[b], expected, rtol=1e-4, atol=1e-6)
        assert np.abs(expected).max() > 1e-4  # the comparison has teeth


def test_a_shortened_sequence_is_refused_where_attention_is_positional(case):
    name, lm, _ = case
    if name == "vit":
        assert len(block_kwargs(lm.model, lm.num_tokens - 1)) == lm.num_layers
        return
    with pytest.raises(ValueError, match="position-dependent.*cannot run on"):
        block_kwargs(lm.model, lm.num_tokens - 1)


def test_every_analysis_gives_its_declared_outputs_finite(case):
    _, lm, _ = case
    x = random_input(lm)
    for analysis in ANALYSES.values():
        out = compute_images(lm, x, analysis, [1, None])
        assert len(out) == 2, analysis.name
        for arrays in out:
            assert not problems(analysis, arrays, lm), (analysis.name, problems(analysis, arrays, lm))
            for name, v in arrays.items():  # localisation needs a mask: NaN without one
                assert (np.isfinite(v.astype(float)) | (name in LOCALISATION)).all(), (
                    analysis.name, name)


@pytest.mark.parametrize("name", ["swin_tiny_patch4_window7_224",
                                  "swinv2_tiny_window8_256", "samvit_base_patch16"])
def test_windowed_models_are_refused_with_the_reason(name):
    with pytest.raises(ModelLoadError, match="windowed attention.*no single T x T"):
        check_allowed(name)
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    with pytest.raises(ModelLoadError, match="windowed attention"):
        from_module(model, name, device="meta")
