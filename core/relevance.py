"""Gradient-weighted attention relevance (SPEC "Attention aggregation"; Chefer
et al., ICCV 2021, the LRP-free variant).

``R = I``; for each layer in forward order ``R = R + mean_h((dY_c/dA * A)+) @ R``;
the explanation is the CLS row of ``R`` over the patch tokens. Negatives are
removed per head before the head mean (gradient rollout removes them after).
"""
from __future__ import annotations

import torch

from core.attention_gradients import attention_and_gradients
from core.maps import cls_attention
from core.models import LoadedModel


def relevance_map(attention: torch.Tensor, grads: torch.Tensor, num_prefix_tokens: int
                  ) -> torch.Tensor:
    """B x L x H x T x T attention and gradients -> B x G (CLS row of R)."""
    t = attention.shape[-1]
    result = torch.eye(t, dtype=attention.dtype, device=attention.device)
    result = result.expand(attention.shape[0], t, t)
    for layer in range(attention.shape[1]):
        cam = (grads[:, layer] * attention[:, layer]).clamp(min=0).mean(dim=1)
        result = result + cam @ result
    return cls_attention(result, num_prefix_tokens)


def relevance(lm: LoadedModel, x: torch.Tensor, target: torch.Tensor | None = None
              ) -> torch.Tensor:
    """B x G relevance for `target` classes (default: the predicted ones)."""
    attention, grads, _ = attention_and_gradients(lm, x, target)
    return relevance_map(attention, grads, lm.num_prefix_tokens)
