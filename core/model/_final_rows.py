"""The final block computed only for the token rows the classifier reads.

With token pooling the head reads the prefix tokens only (CLS, and the distillation
token of distilled DeiTs), so the last block's other output rows are never used:
queries, attention rows, output projection and MLP are needed for those rows alone
(keys and values still come from every token). Used by ``core.model._rerun.forward_from``
when re-running a model many times (SPEC "Head pruning", leave-one-out); exact, and
checked against the untouched timm model in the tests. Other block or pooling types
return None from :func:`rows_read_by_head` and run the full block.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import Attention
from timm.models.vision_transformer import Block, VisionTransformer

from core.model._kernels import linear


def rows_read_by_head(model: torch.nn.Module) -> int | None:
    """How many leading token rows of the final block the head reads (all prefix
    tokens), or None when the shortcut does not apply to this model."""
    final = model.blocks[-1]
    if (isinstance(model, VisionTransformer) and model.global_pool == "token"
            and model.attn_pool is None and type(final) is Block
            and type(final.attn) is Attention and not model.training):
        return int(model.num_prefix_tokens)
    return None


def query_rows_attention(attn: Attention, x: torch.Tensor, rows: int) -> torch.Tensor:
    """timm ``Attention.forward(x)[:, :rows]`` (eval), computing queries for those rows only."""
    batch, tokens, _ = x.shape
    width = attn.attn_dim
    weight, bias = attn.qkv.weight, attn.qkv.bias
    q = linear(x[:, :rows], weight[:width], None if bias is None else bias[:width])
    kv = linear(x, weight[width:], None if bias is None else bias[width:])
    q = q.reshape(batch, rows, attn.num_heads, attn.head_dim).transpose(1, 2)
    k, v = kv.reshape(batch, tokens, 2, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(attn.q_norm(q), attn.k_norm(k), v, scale=attn.scale)
    out = attn.norm(out.transpose(1, 2).reshape(batch, rows, width))
    if attn.gate is not None:
        out = out * attn.gate(x[:, :rows]).sigmoid()
    return attn.proj_drop(attn.proj(out))


def final_block_rows(block: Block, x: torch.Tensor, rows: int,
                     attn_output: torch.Tensor | None = None) -> torch.Tensor:
    """timm ``Block.forward(x)[:, :rows]`` (eval) for those rows only; `attn_output`,
    when given, stands in for the block's attention output (B x T x D)."""
    z = (query_rows_attention(block.attn, block.norm1(x), rows) if attn_output is None
         else attn_output[:, :rows])
    y = x[:, :rows] + block.ls1(z)
    return y + block.ls2(block.mlp(block.norm2(y)))
