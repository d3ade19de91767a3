"""Gradient-weighted attention relevance (SPEC "Attention aggregation"; Chefer
et al., ICCV 2021, the LRP-free variant).

``R = I``; for each layer in forward order ``R = R + mean_h((dY_c/dA * A)+) @ R``;
the explanation is the CLS row of ``R`` over the patch tokens. Negatives are
removed per head before the head mean (gradient rollout removes them after).
"""
from __future__ import annotations

import torch

from core.explain.gradients import Pass, one_pass
from core.model import LoadedModel
from core.model.capture import cls_attention
from core.model.targets import Targets


def relevance_map(attention: torch.Tensor, grads: torch.Tensor, num_prefix_tokens: int
                  ) -> torch.Tensor:
    """Attention and gradients (batch x layer x head x query x key) -> batch x patch
    (the CLS row of R)."""
    t = attention.shape[-1]
    result = torch.eye(t, dtype=attention.dtype, device=attention.device)
    result = result.expand(attention.shape[0], t, t)
    for layer in range(attention.shape[1]):
        cam = (grads[:, layer] * attention[:, layer]).clamp(min=0).mean(dim=1)
        result = result + cam @ result
    return cls_attention(result, num_prefix_tokens)


def relevance_of_pass(lm: LoadedModel, shared: Pass, params: None = None) -> torch.Tensor:
    """batch x patch relevance from a shared pass."""
    return relevance_map(shared.attention, shared.grads, lm.num_prefix_tokens)


def relevance(lm: LoadedModel, x: torch.Tensor, targets: Targets | None,
              params: None = None) -> torch.Tensor:
    """batch x patch relevance for the images' targets (None: the prediction)."""
    return relevance_of_pass(lm, one_pass(lm, x, targets))
