"""Model loading: one spec string (a built-in model, ``demo`` or ``demo-watermark``,
a timm name, or a timm name plus a local checkpoint) becomes a :class:`LoadedModel` ready for attention capture.

Only timm ViT-family models whose blocks hold timm's ``Attention``, BEiT's or
EVA's are accepted (SPEC "Notation"; ``core.model._families``); the prefix-token
count and the patch grid are read from the model, never assumed. Every spec is first
built on PyTorch's ``meta`` device (nothing allocated, nothing downloaded) to refuse
it early (``core.model.architecture``): a model off the server's allow-list or over
its parameter budget (``core.model.limits``), or not a ViT. A pretrained download
first checks that the weights are cached or their server answers
(``core.model.probe``); a local checkpoint is read by ``core.model.checkpoints`` and
a mismatch explained by ``core.model.mismatch``.

A Hugging Face ``transformers`` folder or hub id (``transformers:ORG/NAME``) is a
spec too: ``core.model.hf`` converts it to the equivalent timm ViT, with the same
checks before any weight is read.
"""
from __future__ import annotations

from pathlib import Path

import timm
import torch
from timm.data import create_transform, resolve_data_config

from core.data.paths import BUILTIN_DIRS, allowed_path
from core.model import hf
from core.model.architecture import architecture, build, check_allowed, check_vit
from core.model.checkpoints import check_file, check_values, read_checkpoint
from core.model.classes import headless, imagenet_names
from core.model.device import pick_device
from core.model.errors import ModelLoadError
from core.model.identity import weights_hash
from core.model.loaded import LoadedModel
from core.model.mismatch import load_state
from core.model.probe import check_reachable


def load_model(spec: str = "demo", checkpoint: str | Path | None = None,
               device: str | None = None) -> LoadedModel:
    """Load `spec` (a built-in model, a timm name, a Hugging Face ``transformers``
    folder or ``transformers:ORG/NAME``), a timm name optionally from a local checkpoint."""
    name = spec.strip()
    model, class_names = create(name, allowed_path(checkpoint) if checkpoint else None)
    return from_module(model, name, class_names, device)


def create(name: str, checkpoint: Path | None) -> tuple[torch.nn.Module, list[str] | None]:
    """Build the model with its weights (a built-in's own file, a local checkpoint,
    timm's pretrained download, or a Hugging Face folder or hub id converted by
    ``core.model.hf``); class names when the spec gives them."""
    if hf.is_spec(name):
        if checkpoint is not None:
            raise ModelLoadError(f"{name} holds its own weights; leave the checkpoint empty.")
        return hf.create(name)
    if checkpoint is not None:
        check_file(checkpoint)
    skeleton = check_allowed(name)  # before building, reading or downloading anything
    if name in BUILTIN_DIRS or checkpoint is not None:
        state = read_checkpoint(checkpoint or BUILTIN_DIRS[name] / "model.safetensors")
        model, class_names = build(name)
        load_state(model, state, name)
        check_values(state, model.state_dict(), name)
        return model, class_names
    try:
        check_reachable(skeleton.pretrained_cfg)
        return timm.create_model(name, pretrained=True), None
    except Exception as err:  # network and hub errors when pretrained weights are fetched
        raise ModelLoadError(
            f"Could not download the pretrained weights of {name!r} ({err}). Give a local "
            "checkpoint instead (.safetensors, .pth or .bin): its path in the sidebar's "
            "'Checkpoint file' field, or --checkpoint PATH on the command line.") from err


def from_state(name: str, state: dict[str, torch.Tensor], device: str | None = None
               ) -> LoadedModel:
    """Model `name` rebuilt from a state dict, without files or downloads (how the
    workers of ``core.ray_executor`` get the driver's model)."""
    model, class_names = hf.architecture(name) if hf.is_spec(name) else architecture(name)
    if headless(model, name, class_names):
        model.reset_classifier(0)  # as `from_module` left the driver's model
    load_state(model, state, name)
    return from_module(model, name, class_names, device)


def from_module(model: torch.nn.Module, name: str, class_names: list[str] | None = None,
                device: str | None = None) -> LoadedModel:
    """Prepare an already built timm ViT (for example from a notebook)."""
    check_vit(model, name)
    model.eval()
    if headless(model, name, class_names):
        model.reset_classifier(0)  # SPEC: the embedding is what the head receives
        class_names = []
    else:
        class_names = class_names or imagenet_names(model) or [
            f"class {i}" for i in range(model.num_classes)]
    for block in model.blocks:
        block.attn.fused_attn = False  # SPEC "Capturing attention": explicit path
    identity = f"{name}@{weights_hash(model)}"
    dev = pick_device(device)
    model.to(dev)
    data_config = resolve_data_config({}, model=model)
    # the model's own input size wins over its pretrained config's (img_size overrides)
    data_config["input_size"] = (data_config["input_size"][0],
                                 *(int(s) for s in model.patch_embed.img_size))
    patch = model.patch_embed.patch_size
    return LoadedModel(
        model=model, name=name, identity=identity,
        num_prefix_tokens=int(model.num_prefix_tokens),
        grid=tuple(int(g) for g in model.patch_embed.grid_size),
        patch_size=(int(patch[0]), int(patch[1])),
        num_layers=len(model.blocks), num_heads=int(model.blocks[0].attn.num_heads),
        class_names=list(class_names), num_outputs=len(class_names) or int(model.num_features),
        data_config=data_config, device=dev,
        transform=create_transform(**data_config, is_training=False))
