"""Attention rollout and gradient rollout (SPEC "Attention aggregation";
seed paper 003 sec. 3.5-3.6; Abnar and Zuidema 2020).

Both methods build one T x T matrix per layer (heads fused) and then share one
step, :func:`roll`: discard the lowest values, ``(D + I) / 2``, renormalise
each row to sum 1 (row sums kept as a column, ``keepdim=True``, so each row is
divided by its own sum), and multiply from the start layer to the last,
``R = N_last @ ... @ N_start``. The explanation is the CLS row of ``R`` over the
patch tokens.

Discard (a choice where the SPEC says "never the CLS entries"): entries in a
prefix-token row or column (CLS, distillation, registers) are never discarded;
``discard_ratio`` is the fraction of the G x G patches -> patches entries of
each fused matrix (per image, per layer) set to zero, the lowest first
(``floor(ratio * G * G)`` entries; ties broken by position).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from core.explain.gradients import Pass, one_pass
from core.model import LoadedModel, capture
from core.model.capture import cls_attention
from core.model.targets import Targets

FUSIONS = ("mean", "max", "min")


@dataclass(frozen=True)
class GradientRolloutParams:
    discard_ratio: float = 0.0  # share of the lowest patch->patch values zeroed per layer
    start_layer: int = 0  # roll out from this layer to the last


@dataclass(frozen=True)
class RolloutParams(GradientRolloutParams):
    fusion: str = "mean"  # how the heads of a layer are fused: mean, max or min

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"Unknown head fusion {self.fusion!r}; use one of "
                             f"{', '.join(FUSIONS)}.")


def fuse_heads(attention: torch.Tensor, fusion: str = "mean") -> torch.Tensor:
    """(..., H, T, T) -> (..., T, T) by the mean, max or min over heads."""
    if fusion == "mean":
        return attention.mean(dim=-3)
    if fusion == "max":
        return attention.amax(dim=-3)
    if fusion == "min":
        return attention.amin(dim=-3)
    raise ValueError(f"Unknown head fusion {fusion!r}; use one of {', '.join(FUSIONS)}.")


def discard_lowest(fused: torch.Tensor, ratio: float, num_prefix_tokens: int) -> torch.Tensor:
    """Zero the lowest `ratio` of the patches -> patches entries of each T x T
    matrix in `fused` (..., T, T); prefix rows and columns are kept."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"discard_ratio must be in [0, 1), got {ratio}.")
    p = num_prefix_tokens
    block = fused[..., p:, p:]
    flat = block.reshape(-1, block.shape[-2] * block.shape[-1])
    k = int(ratio * flat.shape[-1])
    if k == 0:
        return fused
    lowest = flat.topk(k, dim=-1, largest=False).indices
    kept = torch.ones_like(flat).scatter_(-1, lowest, 0.0).reshape(block.shape)
    out = fused.clone()
    out[..., p:, p:] = block * kept
    return out


def roll(fused: torch.Tensor, num_prefix_tokens: int, discard_ratio: float = 0.0,
         start_layer: int = 0) -> torch.Tensor:
    """The shared rollout step on per-layer fused matrices B x L x T x T -> B x T x T."""
    num_layers = fused.shape[1]
    if not 0 <= start_layer < num_layers:
        raise ValueError(f"start_layer must be in 0..{num_layers - 1}, got {start_layer}.")
    t = fused.shape[-1]
    eye = torch.eye(t, dtype=fused.dtype, device=fused.device)
    result = eye.expand(fused.shape[0], t, t)
    for layer in range(start_layer, num_layers):
        d = discard_lowest(fused[:, layer], discard_ratio, num_prefix_tokens)
        a = (d + eye) / 2
        a = a / a.sum(dim=-1, keepdim=True)
        result = a @ result
    return result


def rollout_map(fused: torch.Tensor, num_prefix_tokens: int, discard_ratio: float = 0.0,
                start_layer: int = 0) -> torch.Tensor:
    """B x G: the CLS row over the patches of :func:`roll` of `fused` (B x L x T x T)."""
    return cls_attention(roll(fused, num_prefix_tokens, discard_ratio, start_layer),
                         num_prefix_tokens)


def rollout_of(lm: LoadedModel, attention: torch.Tensor, params: RolloutParams
               ) -> torch.Tensor:
    """batch x patch attention rollout of `attention` (batch x layer x head x query x key)."""
    return rollout_map(fuse_heads(attention, params.fusion), lm.num_prefix_tokens,
                       params.discard_ratio, params.start_layer)


def attention_rollout(lm: LoadedModel, x: torch.Tensor, targets: Targets | None,
                      params: RolloutParams) -> torch.Tensor:
    """batch x patch attention rollout (class-agnostic: `targets` are ignored)."""
    return rollout_of(lm, capture.forward(lm, x).attention, params)


def rollout_of_pass(lm: LoadedModel, shared: Pass, params: RolloutParams) -> torch.Tensor:
    """:func:`attention_rollout` from a shared pass."""
    return rollout_of(lm, shared.attention, params)


def gradient_fused(attention: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """``mean_h(A * dY/dA)`` with negatives set to zero: batch x layer x head x T x T ->
    batch x layer x T x T, one layer's product at a time."""
    return torch.stack([(a * g).mean(dim=-3).clamp(min=0)
                        for a, g in zip(attention.unbind(1), grads.unbind(1))], dim=1)


def gradient_rollout_of_pass(lm: LoadedModel, shared: Pass, params: GradientRolloutParams
                             ) -> torch.Tensor:
    """batch x patch gradient rollout from a shared pass."""
    return rollout_map(gradient_fused(shared.attention, shared.grads), lm.num_prefix_tokens,
                       params.discard_ratio, params.start_layer)


def gradient_rollout(lm: LoadedModel, x: torch.Tensor, targets: Targets | None,
                     params: GradientRolloutParams) -> torch.Tensor:
    """batch x patch gradient rollout for the images' targets (None: the prediction)."""
    return gradient_rollout_of_pass(lm, one_pass(lm, x, targets), params)
