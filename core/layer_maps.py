"""Per-layer attention maps (SPEC "Attention aggregation", seed paper 003 sec. 3.4).

For every layer, two maps over the G patch tokens:

- ``cls``: the CLS -> patches attention averaged over heads;
- ``score``: the paper's score map: for each head, the maximum attention each
  patch receives from any patch token (max over the source rows of the
  patches -> patches block), then averaged over heads.

Also the last layer's head-averaged CLS attention as an explanation with the
uniform call of :mod:`core.explain` (the "raw attention" baseline of the
faithfulness table).
"""
from __future__ import annotations

import torch

from core import capture
from core.maps import cls_attention
from core.models import LoadedModel


def cls_map(attention: torch.Tensor, num_prefix_tokens: int) -> torch.Tensor:
    """(..., H, T, T) -> (..., G): CLS -> patches, mean over heads."""
    return cls_attention(attention, num_prefix_tokens).mean(dim=-2)


def score_map(attention: torch.Tensor, num_prefix_tokens: int) -> torch.Tensor:
    """(..., H, T, T) -> (..., G): max over patch sources of each patch column,
    mean over heads (the CLS row and column are excluded first)."""
    p = num_prefix_tokens
    return attention[..., p:, p:].amax(dim=-2).mean(dim=-2)


def layer_maps(lm: LoadedModel, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"cls": B x L x G, "score": B x L x G}`` for a batch `x`, every layer."""
    attention = capture.forward(lm, x).attention
    return {"cls": cls_map(attention, lm.num_prefix_tokens),
            "score": score_map(attention, lm.num_prefix_tokens)}


def raw_attention(lm: LoadedModel, x: torch.Tensor, target: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """B x G: the last layer's CLS -> patches attention, mean over heads
    (class-agnostic: `target` is accepted for the uniform call and ignored)."""
    last = lm.num_layers - 1
    return cls_map(capture.forward(lm, x, layers=(last,)).attention[:, 0], lm.num_prefix_tokens)
