"""Small random-init timm ViTs with untouched copies, inputs, and a fingerprint of a
model's state (to check that a call left a shared model exactly as loaded)."""
from __future__ import annotations

import copy

import timm
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from core.model import LoadedModel, from_module
from core.model.identity import weights_hash

# name -> (timm name, keyword overrides, expected prefix tokens, expected grid)
TIMM_CASES = {
    "deit_tiny_distilled": ("deit_tiny_distilled_patch16_224", {}, 2, (14, 14)),
    "registers": ("vit_small_patch14_reg4_dinov2", {"img_size": 56, "depth": 3, "num_classes": 10},
                  5, (4, 4)),  # a DINOv2 with registers fine-tuned as a classifier
    "patch32": ("vit_base_patch32_224", {"depth": 2}, 1, (7, 7)),
    "patch8_nonsquare": ("vit_tiny_patch16_224", {"patch_size": 8, "img_size": (32, 48)},
                         1, (4, 6)),
}


# name -> (timm name, keyword overrides): small random-init classifiers of each family
# (``core.model._families``), a plain ViT as control
FAMILY_CASES = {
    "vit": ("vit_tiny_patch16_224", {"img_size": 64}),
    "beit": ("beit_base_patch16_224", {"img_size": 64}),  # a bias table per block
    "beit_shared_bias": ("beit_base_patch16_224", {"img_size": 64, "use_rel_pos_bias": False,
                                                   "use_shared_rel_pos_bias": True}),
    "eva02": ("eva02_tiny_patch14_224", {"img_size": 56}),  # rope, SwiGLU
    "eva02_sub_ln": ("eva02_tiny_patch14_224", {"img_size": 56, "scale_attn_inner": True,
                                               "scale_mlp": True, "num_reg_tokens": 2}),
    "rope_mixed": ("vit_small_patch16_rope_mixed_224", {"img_size": 64}),  # Eva, per-layer rope
}


def random_family(case: str) -> tuple[LoadedModel, nn.Module]:
    """A small random-init model of FAMILY_CASES (2 blocks x 4 heads, width 64, 10
    classes; every parameter shaken by normal noise so that pruning moves the
    prediction) prepared for capture, and an untouched deep copy (fused attention)."""
    name, kwargs = FAMILY_CASES[case]
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, depth=2, embed_dim=64, num_heads=4,
                              num_classes=10, **kwargs).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param), alpha=0.1)
    untouched = copy.deepcopy(model)
    return from_module(model, name, device="cpu"), untouched


def random_vit(case: str) -> tuple[LoadedModel, nn.Module]:
    """A random-init timm ViT prepared for capture, and an untouched deep copy."""
    name, kwargs, _, _ = TIMM_CASES[case]
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    untouched = copy.deepcopy(model)
    return from_module(model, name, device="cpu"), untouched


HEADLESS_CASES = {  # name -> (timm name, overrides): models without classes, as timm builds them
    "dinov2_registers": ("vit_small_patch14_reg4_dinov2", {"img_size": 56, "depth": 3}),
    "clip_tower": ("vit_base_patch16_clip_224.openai",  # its head: a projection (512)
                   {"img_size": 64, "depth": 2, "embed_dim": 64, "num_heads": 4}),
}


def headless_vit(case: str) -> tuple[LoadedModel, nn.Module]:
    """A random-init model without class scores prepared for capture, and an untouched
    deep copy with its head removed (its output is then the embedding, what the head
    receives: SPEC "Models without class scores")."""
    name, kwargs = HEADLESS_CASES[case]
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    untouched = copy.deepcopy(model)
    untouched.reset_classifier(0)
    return from_module(model, name, device="cpu"), untouched


def odd_vit() -> tuple[LoadedModel, torch.nn.Module]:
    """A random ViT off the common shortcuts: head outputs normalised before the
    projection (z is derived through that sub-norm, ``core.model._families``) and
    average pooling (the head reads every row)."""
    torch.manual_seed(2)
    model = VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=4,
                              num_classes=7, scale_attn_norm=True, global_pool="avg").eval()
    return from_module(copy.deepcopy(model), "odd_vit", device="cpu"), model


def small_deit(name: str) -> tuple[LoadedModel, torch.nn.Module]:
    """A random-init DeiT tiny (12 layers x 3 heads) at 112 x 112 to keep the tests fast."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, img_size=112).eval()
    return from_module(copy.deepcopy(model), name, device="cpu"), model


def random_input(lm: LoadedModel, batch: int = 2, seed: int = 1) -> torch.Tensor:
    """A batch of normal noise at the model's input size."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, *lm.data_config["input_size"], generator=generator)


def model_state(model: nn.Module) -> list[tuple]:
    """Everything a call could leave changed on a model: per module its class, an
    instance-level ``forward``, its hooks, its children's classes, its training flag and
    ``fused_attn``; and the weights' hash."""
    rows: list[tuple] = []
    for name, module in model.named_modules():
        hooks = tuple(len(getattr(module, attr)) for attr in (
            "_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
            "_backward_pre_hooks", "_state_dict_hooks", "_load_state_dict_pre_hooks"))
        rows.append((name, type(module).__name__, "forward" in vars(module), hooks,
                     module.training, getattr(module, "fused_attn", None),
                     tuple(type(c).__name__ for c in module.children())))
    rows.append(("weights", weights_hash(model)))
    return rows
