"""Hugging Face ``transformers`` checkpoints (a local folder, or a hub id written
``transformers:ORG/NAME``) converted to the equivalent timm Vision Transformer.

The conversion needs no ``transformers``: ``config.json`` gives the architecture and
its sizes, ``preprocessor_config.json`` the preprocessing, ``model.safetensors`` (or
``pytorch_model.bin``) the weights, renamed to timm's (query, key and value joined
into ``qkv``). Converted, and proven equal to ``transformers``' forward in
``tests/unit/test_hf_checkpoints.py``:

- ``ViTForImageClassification``, ``DeiTForImageClassification`` (timm's ViT; DeiT's
  distillation token is a register token its head does not read) and
  ``DeiTForImageClassificationWithTeacher`` (timm's distilled DeiT): class scores,
  class names from ``config.id2label``.
- ``Dinov2ForImageClassification``, ``Dinov2WithRegistersForImageClassification``:
  timm's ViT with their head (CLS and mean patch token side by side, ClsAndMeanViT);
  refused without classes (``num_labels`` 0), whose backbone opens as ``Dinov2Model``.
- ``ViTModel``, ``Dinov2Model``, ``Dinov2WithRegistersModel``: no classes
  (``num_classes=0``). The embedding is the layer-normed CLS token,
  ``last_hidden_state[:, 0]``: DINOv2's ``pooler_output``, and for ``ViTModel``
  what ``ViTForImageClassification``'s head reads, not its tanh pooler (a layer
  outside the ViT; SPEC "Models without class scores": what its head receives).

DINOv2 resizes its position embeddings to the input as ``transformers`` does
(bicubic, with antialiasing for the register models), once, at the crop size of its
preprocessor config; the timm model then has a fixed grid. Other architectures are
refused with the reason. The allow-list (matched against the spec, the folder's
resolved path for folders) and the parameter budget are checked on a ``meta``
skeleton built from ``config.json`` before the weights are read or downloaded.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from timm.models.deit import VisionTransformerDistilled
from timm.models.vision_transformer import VisionTransformer

from core.data.paths import allowed_path
from core.model.architecture import check_vit
from core.model.checkpoints import read_checkpoint
from core.model.errors import ModelLoadError
from core.model.limits import check_budget, check_listed
from core.model.mismatch import load_state
from core.model.probe import check_reachable

HUB_PREFIX = "transformers:"
CONFIG_FILES = ["config.json", "preprocessor_config.json"]
WEIGHT_FILES = ["model.safetensors", "pytorch_model.bin"]
# the architectures converted -> the prefix of their backbone's keys
ARCHITECTURES = {
    "ViTForImageClassification": "vit.", "ViTModel": "vit.",
    "DeiTForImageClassification": "deit.", "DeiTForImageClassificationWithTeacher": "deit.",
    "Dinov2Model": "dinov2.", "Dinov2ForImageClassification": "dinov2.",
    "Dinov2WithRegistersModel": "dinov2_with_registers.",
    "Dinov2WithRegistersForImageClassification": "dinov2_with_registers.",
}
HEADLESS = {"ViTModel", "Dinov2Model", "Dinov2WithRegistersModel"}
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
               "quick_gelu": "quick_gelu", "relu": "relu", "silu": "silu", "swish": "silu"}
RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
RENAMES = [  # transformers key (backbone prefix removed) -> timm key
    (r"embeddings\.cls_token", "cls_token"),
    (r"embeddings\.register_tokens", "reg_token"),
    (r"embeddings\.position_embeddings", "pos_embed"),
    (r"embeddings\.patch_embeddings\.projection\.(\w+)", r"patch_embed.proj.\1"),
    (r"encoder\.layer\.(\d+)\.(?:layernorm_before|norm1)\.(\w+)", r"blocks.\1.norm1.\2"),
    (r"encoder\.layer\.(\d+)\.(?:layernorm_after|norm2)\.(\w+)", r"blocks.\1.norm2.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.output\.dense\.(\w+)", r"blocks.\1.attn.proj.\2"),
    (r"encoder\.layer\.(\d+)\.(?:intermediate\.dense|mlp\.fc1)\.(\w+)", r"blocks.\1.mlp.fc1.\2"),
    (r"encoder\.layer\.(\d+)\.(?:output\.dense|mlp\.fc2)\.(\w+)", r"blocks.\1.mlp.fc2.\2"),
    (r"encoder\.layer\.(\d+)\.layer_scale(\d)\.lambda1", r"blocks.\1.ls\2.gamma"),
    (r"layernorm\.(\w+)", r"norm.\1"),
    (r"(?:classifier|cls_classifier)\.(\w+)", r"head.\1"),
    (r"distillation_classifier\.(\w+)", r"head_dist.\1"),
]
QKV = re.compile(r"encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(\w+)")
DROPPED = re.compile(r"embeddings\.mask_token|pooler\..*")  # unused by the forward


def is_spec(spec: str) -> bool:
    """Whether `spec` names a Hugging Face model: ``transformers:ORG/NAME`` or a folder
    path (holding a ``/``, or starting with ``.`` or ``~``; timm names never do)."""
    return spec.startswith(HUB_PREFIX) or "/" in spec or spec.startswith((".", "~"))


@dataclass
class Source:
    """A Hugging Face model read from its config (weights not read yet)."""

    spec: str
    name: str  # as messages name it: the hub spec, or the folder's last part
    folder: Path
    config: dict
    arch: str
    class_names: list[str]
    size: tuple[int, int]  # the input (height, width)
    data_config: dict  # timm's pretrained config: the preprocessing

    def build(self) -> nn.Module:
        """The timm ViT of this config (random init, on the default device)."""
        model = timm_vit(self.config, self.arch, len(self.class_names), self.size)
        model.pretrained_cfg = dict(self.data_config)
        return model


def create(spec: str) -> tuple[nn.Module, list[str]]:
    """The timm model of `spec` with its converted weights, and its class names; the
    allow-list and budget are checked before any weight is read or downloaded."""
    source = read_source(spec)
    model = source.build()
    state = convert(read_checkpoint(weights(source)), source, model)
    load_state(model, state, source.name, advice="Its config.json does not describe these "
               "weights; save the folder again with save_pretrained.")
    return model, source.class_names


def architecture(spec: str) -> tuple[nn.Module, list[str]]:
    """The timm model of `spec` without its weights (``core.model.loading.from_state``)."""
    source = read_source(spec)
    return source.build(), source.class_names


def read_source(spec: str) -> Source:
    """`spec` allowed, its config read (downloaded for a hub id), its architecture
    supported and its size within the budget (on a ``meta`` skeleton)."""
    if spec.startswith(HUB_PREFIX):
        check_listed(spec)
        folder = download(spec, CONFIG_FILES)
    else:
        folder = allowed_path(spec)
        check_listed(str(folder))
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{spec} is not a Hugging Face model folder (no config.json "
                             "in it); give a folder saved with save_pretrained, or a timm "
                             "model name.")
    name = spec if spec.startswith(HUB_PREFIX) else folder.name
    config = read_json(folder / "config.json", name)
    path = folder / "preprocessor_config.json"
    preprocessor = read_json(path, name) if path.is_file() else {}
    arch = supported(config, name)
    class_names = [] if arch in HEADLESS else labels(config)
    size = input_size(config, preprocessor, arch)
    preprocessing = data_config(preprocessor, size, config.get("num_channels", 3))
    source = Source(spec, name, folder, config, arch, class_names, size, preprocessing)
    with torch.device("meta"):
        skeleton = source.build()
    check_budget(skeleton, name)
    check_vit(skeleton, name)
    return source


def labels(config: dict) -> list[str]:
    """The class names of a classifier's config: ``id2label``, else transformers'
    defaults (``LABEL_0``, ... for ``num_labels``, 2 when not written)."""
    if isinstance(config.get("id2label"), dict):
        return [config["id2label"][k] for k in sorted(config["id2label"], key=int)]
    return [f"LABEL_{i}" for i in range(config.get("num_labels", 2))]


def read_json(path: Path, name: str) -> dict:
    """A JSON object from `path`, or ModelLoadError naming the file."""
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"{path.name} of {name} could not be read ({err}).") from err
    if not isinstance(value, dict):
        raise ModelLoadError(f"{path.name} of {name} is not a JSON object.")
    return value


def supported(config: dict, name: str) -> str:
    """The architecture `config` names, or ModelLoadError saying why it is refused."""
    arch = (config.get("architectures") or [config.get("model_type", "unknown")])[0]
    if arch not in ARCHITECTURES:
        raise ModelLoadError(
            f"Hugging Face model {name} is a {arch}, which the explorer cannot open: only "
            "plain ViT, DeiT and DINOv2 models are converted (ViTModel, "
            "ViTForImageClassification, DeiTForImageClassification[WithTeacher], "
            "Dinov2[WithRegisters]Model or ...ForImageClassification). Other ViT families "
            "load by their timm name with a checkpoint.")
    sizes = ["hidden_size", "num_hidden_layers", "num_attention_heads",
             "mlp_ratio" if arch.startswith("Dinov2") else "intermediate_size"]
    if absent := [key for key in sizes if not isinstance(config.get(key), (int, float))]:
        raise ModelLoadError(f"The config.json of {name} lacks {', '.join(absent)}.")
    act = config.get("hidden_act", "gelu")
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    problems = []
    if act not in ACTIVATIONS:
        problems.append(f"activation {act!r}")
    if config.get("use_swiglu_ffn"):
        problems.append("a SwiGLU MLP")
    if hidden % heads or config.get("head_dim", hidden // heads) != hidden // heads:
        problems.append(f"heads of another width than {hidden} / {heads}")
    if "intermediate_size" in sizes and int(hidden * mlp_ratio(config)) != config[
            "intermediate_size"]:
        problems.append(f"an MLP width {config['intermediate_size']} timm cannot build")
    if arch.startswith("Dinov2") and arch.endswith("ForImageClassification") and not labels(
            config):  # its "logits" would be CLS and mean patch token side by side
        problems.append("no classifier (num_labels 0; open it as a "
                        f"{arch.replace('ForImageClassification', 'Model')})")
    if problems:
        raise ModelLoadError(f"Hugging Face model {name} ({arch}) has {', '.join(problems)}, "
                             "which the conversion to timm does not support.")
    return arch


def mlp_ratio(config: dict) -> float:
    """MLP width / width (timm builds int(width * ratio) features)."""
    return config.get("mlp_ratio") or config["intermediate_size"] / config["hidden_size"]


def pair(value: int | list[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def input_size(config: dict, preprocessor: dict, arch: str) -> tuple[int, int]:
    """The model's input (height, width): ViT and DeiT take their config's image size
    (``transformers`` refuses any other); DINOv2 its preprocessor's crop."""
    if arch.startswith("Dinov2"):
        for key in ("crop_size", "size"):
            value = preprocessor.get(key) or {}
            if "height" in value:
                return int(value["height"]), int(value["width"])
    return pair(config.get("image_size", 224))


def timm_vit(config: dict, arch: str, num_classes: int, size: tuple[int, int]) -> nn.Module:
    """The timm ViT with the sizes of `config` (random init, on the default device)."""
    hidden = config["hidden_size"]
    dinov2 = arch.startswith("Dinov2")
    kwargs = dict(
        img_size=size, patch_size=pair(config.get("patch_size", 16)),
        in_chans=config.get("num_channels", 3), num_classes=num_classes, embed_dim=hidden,
        depth=config["num_hidden_layers"], num_heads=config["num_attention_heads"],
        mlp_ratio=mlp_ratio(config),
        qkv_bias=config.get("qkv_bias", True),
        init_values=config.get("layerscale_value", 1.0) if dinov2 else None,
        norm_layer=functools.partial(nn.LayerNorm, eps=config.get("layer_norm_eps", 1e-12)),
        act_layer=ACTIVATIONS[config.get("hidden_act", "gelu")],
        reg_tokens=config.get("num_register_tokens", 0) + (arch == "DeiTForImageClassification"),
        no_embed_class="WithRegisters" in arch)
    if arch == "DeiTForImageClassificationWithTeacher":
        return VisionTransformerDistilled(**kwargs)
    if arch.startswith("Dinov2") and arch.endswith("ForImageClassification"):
        return ClsAndMeanViT(**kwargs)
    return VisionTransformer(**kwargs)


class ClsAndMeanViT(VisionTransformer):
    """timm's ViT with the head of ``transformers``' DINOv2 classifiers: a linear layer
    on the final CLS token and the mean of the patch tokens, side by side. Its pooling
    is not ``token`` (the head reads every row), so no shortcut skips rows."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs, global_pool="avg", fc_norm=False)
        self.head_hidden_size = 2 * self.embed_dim
        self.head = nn.Linear(self.head_hidden_size, self.num_classes)

    def pool(self, x: torch.Tensor, pool_type: str | None = None) -> torch.Tensor:
        return torch.cat([x[:, 0], x[:, self.num_prefix_tokens:].mean(dim=1)], dim=1)


def data_config(preprocessor: dict, size: tuple[int, int], channels: int) -> dict:
    """timm's pretrained config (what ``resolve_data_config`` reads) from
    ``preprocessor_config.json``, the same steps: a resize to height x width is timm's
    ``squash``, a resize of the shortest edge its ``center`` mode, and a centre crop
    after either its ``crop_pct``. Without the file: ``transformers``' ViT defaults
    (mean and std 0.5, resize to the input)."""
    normalise = preprocessor.get("do_normalize", True)
    resample = RESAMPLE.get(preprocessor.get("resample", 2), "bilinear")
    mean = preprocessor.get("image_mean", [0.5] * channels) if normalise else [0.0] * channels
    std = preprocessor.get("image_std", [0.5] * channels) if normalise else [1.0] * channels
    cfg = {"input_size": (channels, *size), "interpolation": resample, "mean": tuple(mean),
           "std": tuple(std), "crop_pct": 1.0, "crop_mode": "squash"}
    resize = (preprocessor.get("size") or {}) if preprocessor.get("do_resize", True) else {}
    crop = (preprocessor.get("crop_size") or {}) if preprocessor.get("do_center_crop") else {}
    edge = resize.get("shortest_edge") or resize.get("height")
    if edge:
        cfg["crop_pct"] = (crop.get("height") or size[0]) / edge
        cfg["crop_mode"] = "center" if "shortest_edge" in resize else "squash"
    return cfg


def convert(state: dict[str, torch.Tensor], source: Source, model: nn.Module
            ) -> dict[str, torch.Tensor]:
    """A ``transformers`` state dict renamed to `model`'s (timm) keys; keys it does not
    know are kept as they are, so that loading names them."""
    prefix = ARCHITECTURES[source.arch]
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        key = key.removeprefix(prefix)
        if DROPPED.fullmatch(key):
            continue
        if match := QKV.fullmatch(key):
            qkv.setdefault((match[1], match[3]), {})[match[2]] = value
            continue
        for pattern, target in RENAMES:
            if re.fullmatch(pattern, key):
                key = re.sub(pattern, target, key)
                break
        if key == "embeddings.distillation_token":
            key = "dist_token" if hasattr(model, "dist_token") else "reg_token"
        out[key] = value
    for (layer, kind), parts in qkv.items():
        out[f"blocks.{layer}.attn.qkv.{kind}"] = torch.cat(
            [parts[p] for p in ("query", "key", "value") if p in parts])
    if "pos_embed" in out:
        positions(out, source, model)
    return out


def positions(out: dict[str, torch.Tensor], source: Source, model: nn.Module) -> None:
    """The position embeddings of `out` put on `model`'s grid, resized as
    ``transformers`` resizes them at run time (bicubic in float32, antialiased for
    DINOv2 with registers); where the model has no class-token position (DINOv2 with
    registers) the class token's is added to ``cls_token``."""
    pos = out["pos_embed"]
    patch = pair(source.config.get("patch_size", 16))
    stored = tuple(s // p for s, p in zip(pair(source.config.get("image_size", 224)), patch))
    prefix = pos.shape[1] - stored[0] * stored[1]
    if prefix < 1:  # not what config.json describes: load_state says so
        return
    head, patches = pos[:, :prefix], pos[:, prefix:]
    grid = tuple(int(g) for g in model.patch_embed.grid_size)
    if grid != stored:
        patches = nn.functional.interpolate(
            patches.reshape(1, *stored, -1).permute(0, 3, 1, 2).float(), size=grid,
            mode="bicubic", align_corners=False,
            antialias="WithRegisters" in source.arch).to(pos.dtype)
        patches = patches.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1)
    if getattr(model, "no_embed_class", False) and "cls_token" in out:
        out["cls_token"] = out["cls_token"] + head
        out["pos_embed"] = patches
    else:
        out["pos_embed"] = torch.cat([head, patches], dim=1)


def download(spec: str, files: list[str]) -> Path:
    """The snapshot folder holding `files` of hub model `spec` (cached, or downloaded
    once the hub answers within PROBE_TIMEOUT); ModelLoadError saying what to do."""
    import huggingface_hub
    from huggingface_hub import constants
    repo = spec.removeprefix(HUB_PREFIX)
    try:
        check_reachable({"hf_hub_id": repo})
        return Path(huggingface_hub.snapshot_download(repo, allow_patterns=files))
    except Exception as err:  # network, offline mode, unknown repo
        reason = ("downloads are off (HF_HUB_OFFLINE) and it is not cached"
                  if constants.HF_HUB_OFFLINE else f"{type(err).__name__}: {err}"[:160])
        raise ModelLoadError(
            f"Could not download {spec} ({reason}). Without a network, download it "
            f"elsewhere (hf download {repo} --local-dir DIR) and give that folder's path "
            "as the model.") from err


def weights(source: Source) -> Path:
    """The weights file of `source`: its folder's, or downloaded for a hub id."""
    folder = source.folder
    for name in WEIGHT_FILES:
        if source.spec.startswith(HUB_PREFIX) and not (folder / name).is_file():
            folder = download(source.spec, [name])
        if (folder / name).is_file():
            return folder / name
    raise ModelLoadError(f"{source.name} has no {' or '.join(WEIGHT_FILES)} (sharded "
                         "checkpoints are not supported).")
