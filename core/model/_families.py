"""The model families whose attention the engine captures (SPEC "Notation",
"Capturing attention"), and what differs between them, as one small adapter.

Every accepted family computes ``softmax(q k^T * scale + bias) -> attn_drop -> @ v`` on
its explicit path, the seam ``core.model.capture`` taps:

- timm ViTs (``VisionTransformer`` and others whose blocks hold ``timm.layers.Attention``):
  blocks take the tokens alone;
- BEiT (``timm.models.beit.Beit``): relative position bias added to ``q k^T``, per block
  or shared, the shared one passed to every block as ``shared_rel_pos_bias``;
- EVA / EVA02 (``timm.models.eva.Eva``, ``EvaAttention`` or ``AttentionRope``): rotary
  embedding of the patch queries and keys, passed to every block as ``rope``; SwiGLU
  MLPs; optionally a sub-LN (``attn.norm``) and a gate between ``A @ V`` and ``proj``.

What the re-run and kernel paths need from a family: what block ``l`` takes beside the
tokens (:func:`block_kwargs`), where the head outputs are read (:func:`heads_module`) and
how the attention output ``z`` follows from them (:func:`output_from_heads`).
Windowed-attention models (Swin, SAM) are refused (:func:`windowed`): a token attends
only within its window, so there is no one T x T matrix over all patches.
"""
from __future__ import annotations

import torch
from timm.layers import Attention, AttentionRope
from timm.models.beit import Attention as BeitAttention, Beit
from timm.models.eva import Eva, EvaAttention
from timm.models.swin_transformer import SwinTransformer
from timm.models.swin_transformer_v2 import SwinTransformerV2
from timm.models.swin_transformer_v2_cr import SwinTransformerV2Cr
from timm.models.vision_transformer_sam import VisionTransformerSAM
from torch import nn

ATTENTION_TYPES: tuple[type[nn.Module], ...] = (Attention, BeitAttention, EvaAttention,
                                                AttentionRope)
WINDOWED_TYPES: tuple[type[nn.Module], ...] = (SwinTransformer, SwinTransformerV2,
                                               SwinTransformerV2Cr, VisionTransformerSAM)


def windowed(model: nn.Module) -> bool:
    """Whether `model` computes attention within local windows (Swin, SAM)."""
    return isinstance(model, WINDOWED_TYPES)


def family(model: nn.Module) -> str:
    """``beit``, ``eva`` or ``vit`` (any other model whose blocks hold timm's Attention)."""
    return "beit" if isinstance(model, Beit) else "eva" if isinstance(model, Eva) else "vit"


def positional_attention(model: nn.Module) -> bool:
    """Whether the attention of `model` depends on token positions beyond its input (a
    relative position bias or a rotary embedding over the full grid): then tokens cannot
    be left out of the sequence."""
    if isinstance(model, Beit):
        return model.rel_pos_bias is not None or any(
            block.attn.relative_position_bias_table is not None for block in model.blocks)
    return isinstance(model, Eva) and model.rope is not None


def block_kwargs(model: nn.Module, tokens: int, key_bias: torch.Tensor | None = None
                 ) -> list[dict[str, torch.Tensor]]:
    """Per layer, what the model's own forward passes to block ``l`` beside the tokens
    (batch x token x width, `tokens` long): BEiT's shared relative position bias
    (1 x head x token x token), EVA's rotary embedding (patch x 2 * head width; per layer
    for mixed rope), computed by the model's own modules. `key_bias` (batch x 1 x 1 x
    token, additive: -inf leaves a key out) joins BEiT's shared bias or becomes EVA's
    ``attn_mask``; only for models with :func:`positional_attention`. Call without
    gradients where none are wanted; raises ValueError for a shortened sequence of a
    model with positional attention."""
    grid = tuple(int(g) for g in model.patch_embed.grid_size)
    full = int(model.num_prefix_tokens) + grid[0] * grid[1]
    positional = positional_attention(model)
    if tokens != full and positional:
        raise ValueError(
            f"{type(model).__name__} adds a position-dependent term to every attention "
            f"(relative position bias or rotary embedding) over all {full} tokens, so its "
            f"blocks cannot run on {tokens} tokens: leave tokens out by masking them as keys.")
    if key_bias is not None and not positional:
        raise ValueError("a key bias is only passed to BEiT and EVA blocks with positional "
                         "attention; shorten the sequence instead")
    layers = len(model.blocks)
    if isinstance(model, Beit):
        bias = model.rel_pos_bias() if model.rel_pos_bias is not None else None
        if key_bias is not None:
            bias = key_bias if bias is None else bias + key_bias
        return [{} if bias is None else {"shared_rel_pos_bias": bias}] * layers
    if isinstance(model, Eva) and model.rope is not None:
        param = next(model.parameters())
        shape = (1, *grid, model.embed_dim) if model.dynamic_img_size else (
            1, grid[0] * grid[1], model.embed_dim)
        _, rope = model._pos_embed(torch.zeros(shape, device=param.device, dtype=param.dtype))
        mask = {} if key_bias is None else {"attn_mask": key_bias}
        if getattr(model, "rope_mixed", False):
            return [{"rope": rope[layer], **mask} for layer in range(layers)]
        return [{"rope": rope, **mask}] * layers
    return [{}] * layers


def heads_module(attn: nn.Module) -> nn.Module:
    """The submodule of attention module `attn` whose input holds the head outputs
    ``A @ V`` side by side (batch x token x head * head width), or a per-channel gate of
    them: the output projection, or the sub-norm before it where there is one (EVA02's
    sub-LN, ``scale_norm`` ViTs)."""
    norm = getattr(attn, "norm", None)
    return attn.proj if norm is None or isinstance(norm, nn.Identity) else norm


def output_from_heads(attn: nn.Module, heads: torch.Tensor) -> torch.Tensor | None:
    """The attention output z (batch x token x width) of `attn` from `heads`, the input
    of :func:`heads_module` (batch x token x head * head width); None where it is not a
    function of them alone (a gate, computed from the module's input, after a sub-norm)."""
    if heads_module(attn) is attn.proj:  # a gate here scales channels: already applied
        return attn.proj_drop(attn.proj(heads))
    if getattr(attn, "gate", None) is not None:
        return None
    return attn.proj_drop(attn.proj(attn.norm(heads)))
