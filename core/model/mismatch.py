"""Loading a state dict strictly, and saying why one does not fit: the ViT-family
model it looks like (from its keys and shapes) and the tensors that differ."""
from __future__ import annotations

import timm
import torch

from core.model.errors import ModelLoadError

NAMED_TENSORS = 3  # a checkpoint mismatch names at most this many tensors
MESSAGE_LIMIT = 400  # ... in a message under this many characters
SIZE_NAMES = {192: "tiny", 384: "small", 768: "base", 1024: "large", 1280: "huge",
              1408: "giant"}  # timm's ViT sizes by width


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
