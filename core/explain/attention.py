"""Per-layer attention maps (SPEC "Attention aggregation", seed paper 003 sec. 3.4).

For every layer, two maps over the G patch tokens:

- ``cls``: the CLS -> patches attention averaged over heads;
- ``score``: the paper's score map: for each head, the maximum attention each
  patch receives from any patch token (max over the source rows of the
  patches -> patches block), then averaged over heads.

Also the last layer's head-averaged CLS attention as an explanation with the
uniform call of :mod:`core.explain` (the "raw attention" baseline of the
faithfulness table), and the random map, the baseline of every table.
"""
from __future__ import annotations

import hashlib

import torch

from core.explain.gradients import Pass
from core.model import LoadedModel, capture
from core.model.capture import cls_attention
from core.model.targets import Targets


def cls_map(attention: torch.Tensor, num_prefix_tokens: int) -> torch.Tensor:
    """(..., head, query, key) -> (..., patch): CLS -> patches, mean over heads."""
    return cls_attention(attention, num_prefix_tokens).mean(dim=-2)


def score_map(attention: torch.Tensor, num_prefix_tokens: int) -> torch.Tensor:
    """(..., head, query, key) -> (..., patch): max over patch sources of each patch column,
    mean over heads (the CLS row and column are excluded first)."""
    p = num_prefix_tokens
    return attention[..., p:, p:].amax(dim=-2).mean(dim=-2)


def raw_attention(lm: LoadedModel, x: torch.Tensor, targets: Targets | None,
                  params: None = None) -> torch.Tensor:
    """batch x patch: the last layer's CLS -> patches attention, mean over heads
    (class-agnostic: `targets` are ignored)."""
    last = lm.num_layers - 1
    return cls_map(capture.forward(lm, x, layers=(last,)).attention[:, 0], lm.num_prefix_tokens)


def raw_attention_of_pass(lm: LoadedModel, shared: Pass, params: None = None) -> torch.Tensor:
    """:func:`raw_attention` from a shared pass."""
    return cls_map(shared.attention[:, -1], lm.num_prefix_tokens)


def random_map(lm: LoadedModel, x: torch.Tensor, targets: Targets | None,
               params: None = None) -> torch.Tensor:
    """batch x patch uniform noise, seeded by each image's content (the same image gets
    the same map in any batch): the baseline of every faithfulness table."""
    maps = []
    for image in x.detach().cpu().float():
        seed = int.from_bytes(hashlib.blake2b(image.numpy().tobytes(), digest_size=8).digest())
        generator = torch.Generator().manual_seed(seed % 2**63)
        maps.append(torch.rand(lm.grid[0] * lm.grid[1], generator=generator))
    return torch.stack(maps).to(lm.device)


def random_of_pass(lm: LoadedModel, shared: Pass, params: None = None) -> torch.Tensor:
    """:func:`random_map` of a shared pass's images."""
    return random_map(lm, shared.x, None)
