"""Model loading: one spec string (a built-in model, ``demo`` or ``demo-watermark``,
a timm name, or a timm name plus a local checkpoint) becomes a :class:`LoadedModel` ready for attention capture.

Only timm ViT-family models whose blocks hold timm's ``Attention``, BEiT's or
EVA's are accepted (SPEC "Notation"; ``core.model._families``); the prefix-token
count and the patch grid are read from the model, never assumed. Every spec is first built on PyTorch's ``meta``
device (nothing allocated, nothing downloaded) to refuse it early: a model off the
server's allow-list (``$VIT_EXPLORER_MODELS``, comma-separated patterns such as
``demo*,deit_*``), over its parameter budget (``$VIT_EXPLORER_MAX_PARAMS``, default
DEFAULT_MAX_PARAMS), or not a ViT. A pretrained download first checks, within
PROBE_TIMEOUT seconds, that the weights are cached or their server answers.

A Hugging Face ``transformers`` folder or hub id (``transformers:ORG/NAME``) is a
spec too: ``core.model.hf`` converts it to the equivalent timm ViT, with the same
checks before any weight is read.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import timm
import torch
from timm.data import create_transform, resolve_data_config

from core.data.paths import BUILTIN_DIRS, allowed_path
from core.model._families import ATTENTION_TYPES, windowed

if TYPE_CHECKING:
    from core.model._kernels import KernelChoice

CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
DEFAULT_MAX_PARAMS = 400_000_000  # ViT-L (304 M) fits; ViT-H, giant and 7B models do not
PROBE_TIMEOUT = 5.0  # seconds to reach the server of pretrained weights
NAMED_TENSORS = 3  # a checkpoint mismatch names at most this many tensors
MESSAGE_LIMIT = 400  # ... in a message under this many characters
SIZE_NAMES = {192: "tiny", 384: "small", 768: "base", 1024: "large", 1280: "huge",
              1408: "giant"}  # timm's ViT sizes by width


class ModelLoadError(ValueError):
    """A model spec that cannot be loaded; the message says why and what to do."""


@dataclass
class LoadedModel:
    """A ready model and everything the analyses need to know about it.

    One loaded model serves every session of the app. Whatever installs taps or
    hooks on it, swaps its modules or kernels, or reads what they captured holds
    `lock` for the whole call (``core.model.capture``) and undoes itself on exit.
    """

    model: torch.nn.Module
    name: str
    identity: str  # name + weights hash: the cache key part for this model
    num_prefix_tokens: int
    grid: tuple[int, int]  # (gh, gw)
    patch_size: tuple[int, int]
    num_layers: int
    num_heads: int
    class_names: list[str]  # empty: a model without class scores (SPEC "Models without
    # class scores"); its outputs are then embeddings
    num_outputs: int  # classes, or the embedding's width
    data_config: dict
    device: torch.device
    transform: Callable = field(repr=False)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    kernels: "KernelChoice | None" = field(default=None, repr=False, compare=False)  # the
    # measured kernel choice of its no-capture forwards (``core.model._kernels``), set on
    # the first such forward

    @property
    def has_classes(self) -> bool:
        return bool(self.class_names)

    @property
    def num_tokens(self) -> int:
        return self.num_prefix_tokens + self.grid[0] * self.grid[1]

    @property
    def attention_modules(self) -> list[torch.nn.Module]:
        """Each block's attention module (of a family in ``core.model._families``)."""
        return [block.attn for block in self.model.blocks]

    def to_display(self, x: torch.Tensor) -> np.ndarray:
        """Undo normalisation of one input tensor (C x H x W): H x W x C in [0, 1]."""
        mean = torch.tensor(self.data_config["mean"]).view(-1, 1, 1)
        std = torch.tensor(self.data_config["std"]).view(-1, 1, 1)
        img = (x.detach().cpu().float() * std + mean).clamp(0, 1)
        return img.permute(1, 2, 0).numpy()


def pick_device(setting: str | None = None) -> torch.device:
    """CUDA when present, else CPU; `setting` or $VIT_EXPLORER_DEVICE overrides."""
    setting = setting or os.environ.get("VIT_EXPLORER_DEVICE")
    if setting:
        return torch.device(setting)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def weights_hash(model: torch.nn.Module) -> str:
    """A short hash of every parameter and buffer (names, shapes and values)."""
    digest = hashlib.blake2b(digest_size=12)
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_file(path: Path) -> None:
    """Refuse a checkpoint path of an unsupported type or that is not a file."""
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise ModelLoadError(f"Checkpoint {path}: unsupported file type {path.suffix!r}; "
                             f"use one of {', '.join(CHECKPOINT_SUFFIXES)}.")
    if not path.is_file():
        raise ModelLoadError(f"Checkpoint {path} does not exist.")


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors, or .pth/.pt/.bin read with weights_only."""
    check_file(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt or foreign files: say which file
        raise ModelLoadError(f"Checkpoint {path} could not be read: {err}") from err
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        kinds = (f"a dict with {sorted({type(k).__name__ for k in state})} keys and "
                 f"{sorted({type(v).__name__ for v in state.values()})} values"
                 if isinstance(state, dict) else f"a {type(state).__name__}")
        raise ModelLoadError(f"Checkpoint {path.name} is not a state dict (it holds {kinds}); "
                             "give a file saved from model.state_dict(): names to tensors.")
    return {k.removeprefix("module."): v for k, v in state.items()}


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


def check_listed(name: str) -> None:
    """Refuse `name` when it is off the server's allow-list ($VIT_EXPLORER_MODELS)."""
    patterns = [p.strip() for p in os.environ.get("VIT_EXPLORER_MODELS", "").split(",")
                if p.strip()]
    if patterns and not any(fnmatch.fnmatchcase(name, p) for p in patterns):
        raise ModelLoadError(f"Model {name!r} is not among the models this server accepts "
                             f"({', '.join(patterns)}); choose one of those, or ask the "
                             "administrator to change VIT_EXPLORER_MODELS.")


def check_budget(skeleton: torch.nn.Module, name: str) -> None:
    """Refuse a model (its ``meta`` skeleton) over the parameter budget."""
    budget = int(os.environ.get("VIT_EXPLORER_MAX_PARAMS") or DEFAULT_MAX_PARAMS)
    count = sum(p.numel() for p in skeleton.parameters())
    if count > budget:
        raise ModelLoadError(f"Model {name!r} has {count:,} parameters, above this server's "
                             f"budget of {budget:,} (VIT_EXPLORER_MAX_PARAMS); choose a "
                             "smaller model.")


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


def check_name(name: str) -> None:
    """Refuse a name that is neither built in nor a timm model."""
    if name not in BUILTIN_DIRS and not timm.is_model(name):
        raise ModelLoadError(f"Model {name!r} is not a timm model name; see "
                             "timm.list_models('vit_*') for the names timm knows.")


def create(name: str, checkpoint: Path | None) -> tuple[torch.nn.Module, list[str] | None]:
    """Build the model with its weights (a built-in's own file, a local checkpoint,
    timm's pretrained download, or a Hugging Face folder or hub id converted by
    ``core.model.hf``); class names when the spec gives them."""
    from core.model import hf
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
        return model, class_names
    try:
        check_reachable(skeleton.pretrained_cfg)
        return timm.create_model(name, pretrained=True), None
    except Exception as err:  # network and hub errors when pretrained weights are fetched
        raise ModelLoadError(
            f"Could not download the pretrained weights of {name!r} ({err}). Give a local "
            "checkpoint instead (.safetensors, .pth or .bin): its path in the sidebar's "
            "'Checkpoint file' field, or --checkpoint PATH on the command line.") from err


def check_reachable(cfg: dict) -> None:
    """Raise OSError unless the pretrained weights of `cfg` are cached, downloads are
    off (timm then fails at once) or their server answers within PROBE_TIMEOUT."""
    import huggingface_hub
    import requests
    from huggingface_hub import constants
    if constants.HF_HUB_OFFLINE:
        return
    if cfg.get("hf_hub_id"):
        repo = cfg["hf_hub_id"].split("@")[0]
        if any(isinstance(huggingface_hub.try_to_load_from_cache(repo, f), str)
               for f in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")):
            return
        address = constants.ENDPOINT
    elif cfg.get("url"):
        if (Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg["url"])).is_file():
            return
        parts = urllib.parse.urlsplit(cfg["url"])
        address = f"{parts.scheme}://{parts.netloc}"
    else:
        return
    try:
        requests.head(address, timeout=PROBE_TIMEOUT)
    except requests.RequestException as err:
        raise OSError(f"{address} could not be reached within {PROBE_TIMEOUT:g} s: "
                      f"{type(err).__name__}") from None


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], name: str,
               advice: str = "Give the name of the architecture it was trained as."
               ) -> None:
    """Load strictly; a mismatch leads with the model the checkpoint looks like, then
    counts the tensors of another shape, missing and unexpected, naming at most
    NAMED_TENSORS of them, and ends with `advice` (under MESSAGE_LIMIT characters)."""
    own = model.state_dict()
    shapes = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
              for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if not (missing or unexpected or shapes):
        model.load_state_dict(state)
        return
    counts = [f"{len(items)} {what}" for items, what in (
        (shapes, "of another shape"), (missing, "missing"), (unexpected, "unexpected"))
        if items]
    counts[0] = counts[0].replace(" ", " tensor " if counts[0].startswith("1 ") else " tensors ", 1)
    named = [*shapes, *(f"{k} missing" for k in missing),
             *(f"{k} unexpected" for k in unexpected)][:NAMED_TENSORS]
    lead = looks_like(state) or "The checkpoint is not a timm ViT. "

    def text(items: list[str]) -> str:
        return (f"{lead}It does not fit {name!r}: {', '.join(counts)} ({'; '.join(items)}). "
                f"{advice}")

    while len(named) > 1 and len(text(named)) >= MESSAGE_LIMIT:  # long names: fewer
        named.pop()
    raise ModelLoadError(text(named))


def looks_like(state: dict[str, torch.Tensor]) -> str:
    """What ViT-family model a state dict describes, read from its keys and shapes
    (family, blocks, width, patch, input size, heads where stored), with timm names of
    that shape; empty when it is none of timm's ViT, DeiT, BEiT or EVA models."""
    proj = state.get("patch_embed.proj.weight")
    if proj is None or proj.ndim != 4:
        return ""
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    width, patch = proj.shape[0], proj.shape[-1]
    family, kinds, side, heads = family_of(state, patch)
    text = f"The checkpoint looks like {family} with {depth} blocks, width {width}, patch {patch}"
    if side:
        text += f", {side} x {side} input"
        size = SIZE_NAMES.get(width)
        names = [n for kind in kinds if size and timm.is_model(
            n := f"{kind.format(size)}_patch{patch}_{side}")]
        text += f", for example {' or '.join(names)}" if names else ""
    return text + (f", {heads} heads. " if heads else " (heads not stored: often width / 64). ")


def family_of(state: dict[str, torch.Tensor], patch: int
              ) -> tuple[str, tuple[str, ...], int | None, int | None]:
    """The family of a timm ViT-like state dict (with an article), the timm name forms
    of that family, its input side and its number of heads when the shapes tell them."""
    tables = [v for k, v in state.items() if k.endswith("relative_position_bias_table")]
    if tables and tables[0].ndim == 2:  # BEiT: (2W - 1)^2 + 3 relative positions x heads
        window = (int(round((tables[0].shape[0] - 3) ** 0.5)) + 1) // 2
        return "a BEiT", ("beit_{}", "beitv2_{}"), window * patch, int(tables[0].shape[1])
    fc1, fc2 = state.get("blocks.0.mlp.fc1.weight"), state.get("blocks.0.mlp.fc2.weight")
    swiglu = "blocks.0.mlp.fc1_g.weight" in state or (
        fc1 is not None and fc2 is not None and fc1.shape[0] != fc2.shape[1])
    if swiglu:
        family, kinds = "an EVA-02", ("eva02_{}",)
    elif "blocks.0.attn.q_bias" in state:
        family, kinds = "an EVA", ("eva_{}",)
    elif "dist_token" in state:
        family, kinds = "a distilled DeiT", ("deit_{}_distilled",)
    else:
        family, kinds = "a ViT", ("vit_{}", "deit_{}")
    pos = state.get("pos_embed")
    if pos is None or pos.ndim != 3:
        return family, kinds, None, None
    prefix = sum(state[k].shape[1] for k in ("cls_token", "dist_token", "reg_token")
                 if k in state and state[k].ndim == 3)
    for count in (pos.shape[1] - prefix, pos.shape[1]):  # without prefix positions too
        if count > 0 and int(round(count ** 0.5)) ** 2 == count:
            return family, kinds, int(round(count ** 0.5)) * patch, None
    return family, kinds, None, None


def imagenet_names(model: torch.nn.Module) -> list[str] | None:
    """ImageNet class descriptions from timm's class info, when the model has them."""
    from timm.data import ImageNetInfo, infer_imagenet_subset
    subset = infer_imagenet_subset(model)
    if subset is None:
        return None
    info = ImageNetInfo(subset)
    return [info.index_to_description(i) for i in range(model.num_classes)]


EMBEDDING_TOWERS = ("clip", "siglip")  # name parts of image towers whose head is a
# projection into a shared embedding space, not a classifier


def headless(model: torch.nn.Module, name: str, class_names: list[str] | None) -> bool:
    """Whether `model` has no class scores (SPEC "Models without class scores"): no
    classifier (``num_classes == 0``, an identity head), or a projection head without
    class names in an embedding tower (CLIP, SigLIP)."""
    if getattr(model, "num_classes", 0) == 0 or isinstance(getattr(model, "head", None),
                                                             torch.nn.Identity):
        return True
    tower = any(part in name.lower() for part in EMBEDDING_TOWERS)
    return tower and not class_names and imagenet_names(model) is None


def load_model(spec: str = "demo", checkpoint: str | Path | None = None,
               device: str | None = None) -> LoadedModel:
    """Load `spec` (a built-in model, a timm name, a Hugging Face ``transformers``
    folder or ``transformers:ORG/NAME``), a timm name optionally from a local checkpoint."""
    name = spec.strip()
    model, class_names = create(name, allowed_path(checkpoint) if checkpoint else None)
    return from_module(model, name, class_names, device)


def from_state(name: str, state: dict[str, torch.Tensor], device: str | None = None
               ) -> LoadedModel:
    """Model `name` rebuilt from a state dict, without files or downloads (how the
    workers of ``core.ray_executor`` get the driver's model)."""
    from core.model import hf
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
