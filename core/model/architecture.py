"""A model name to its architecture without weights, refused before anything is
allocated or downloaded: built on PyTorch's ``meta`` device, checked against the
server's limits (``core.model.limits``) and for a ViT of a supported family
(``core.model._families``: timm's ``Attention``, BEiT's or EVA's; SPEC "Notation")."""
from __future__ import annotations

import json

import timm
import torch

from core.data.paths import BUILTIN_DIRS
from core.model._families import ATTENTION_TYPES, windowed
from core.model.errors import ModelLoadError
from core.model.limits import check_budget, check_listed


def check_name(name: str) -> None:
    """Refuse a name that is neither built in nor a timm model."""
    if name not in BUILTIN_DIRS and not timm.is_model(name):
        raise ModelLoadError(f"Model {name!r} is not a timm model name; see "
                             "timm.list_models('vit_*') for the names timm knows.")


def check_vit(model: torch.nn.Module, name: str) -> None:
    """Refuse models whose blocks do not hold an attention module of a supported family
    (``core.model._families``: timm's Attention, BEiT, EVA/EVA02), with the reason;
    windowed-attention models (Swin, SAM) in particular."""
    if windowed(model):
        raise ModelLoadError(
            f"Model {name!r} ({type(model).__name__}) is not supported: it uses windowed "
            "attention (each token attends only to the tokens of its local window), so "
            "there is no single T x T attention matrix over all patches to capture, prune "
            "or roll out. Choose a ViT with global attention (vit_*, deit_*, beit_*, eva02_*).")
    blocks = getattr(model, "blocks", None)
    if not blocks or not all(isinstance(getattr(b, "attn", None), ATTENTION_TYPES)
                             for b in blocks):
        raise ModelLoadError(
            f"Model {name!r} ({type(model).__name__}) is not supported: the explorer needs a "
            "timm Vision Transformer whose blocks use timm's Attention (vit_*, deit_*, "
            "ViTs with register tokens...), BEiT's or EVA's (beit_*, eva02_*). "
            "Convolutional models such as resnet or convnext have no attention heads to "
            "explore.")
    if not hasattr(model, "patch_embed") or getattr(model.patch_embed, "grid_size", None) is None:
        raise ModelLoadError(f"Model {name!r} has no patch grid (patch_embed.grid_size).")


def build(name: str) -> tuple[torch.nn.Module, list[str] | None]:
    """The model `name` without its weights (random init, nothing downloaded) on the
    default device: a built-in from its config, or timm's; class names when the
    built-in gives them."""
    if name in BUILTIN_DIRS:
        config = json.loads((BUILTIN_DIRS[name] / "config.json").read_text())
        from timm.models.vision_transformer import VisionTransformer
        model = VisionTransformer(**config["vit_kwargs"])
        model.pretrained_cfg = dict(config["pretrained_cfg"])
        return model, config["class_names"]
    check_name(name)
    return timm.create_model(name, pretrained=False), None


def check_allowed(name: str) -> torch.nn.Module:
    """Refuse `name` before it is built when it is off the allow-list, over the
    parameter budget or not a ViT; returns its skeleton (built on ``meta``)."""
    check_listed(name)
    check_name(name)
    try:
        with torch.device("meta"):
            skeleton, _ = build(name)
    except Exception as err:  # a timm model that cannot be built from its name alone
        raise ModelLoadError(f"Model {name!r} could not be built ({type(err).__name__}: "
                             f"{err}).") from err
    check_budget(skeleton, name)
    check_vit(skeleton, name)
    return skeleton


def architecture(name: str) -> tuple[torch.nn.Module, list[str] | None]:
    """The model `name` without its weights, once the server accepts it."""
    check_allowed(name)
    return build(name)
