"""Partial pruning of one head (SPEC "Head pruning", modes 0-5; paper 001, section 5.2.3).

For a chosen head ``(l, h)`` each pruning mode zeroes some regions of its attention
matrix (``core.model.PRUNING_MODES``); per mode we report the four importance metrics
of ``core.analyses.importance`` and the logits (for the top-5 predictions under that
mode). The five pruned variants of each image run as one batch from the unpruned input
of layer ``l``; mode 0 is the unpruned model itself (metrics exactly 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from core.analyses.base import Analysis, Output
from core.model.targets import Explained, Targets
from core.analyses.importance import METRICS, metrics
from core.model import PRUNING_MODES, LoadedModel, head_mask
from core.model._rerun import forward_from, states
from core.storage.cache import Arrays

MODES = tuple(sorted(PRUNING_MODES))  # 0 (none) .. 5


@dataclass(frozen=True)
class PartialPruningParams:
    layer: int = 0  # the pruned head's layer (0 = first block)
    head: int = 0


@torch.no_grad()
def modes_of_head(lm: LoadedModel, x: torch.Tensor, layer: int, head: int,
                  targets: Targets) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image of `x`: metrics (image x mode x metric, float64) and logits
    (image x mode x output: classes, or the embedding)."""
    if not (0 <= layer < lm.num_layers and 0 <= head < lm.num_heads):
        raise ValueError(f"Head ({layer}, {head}) does not exist: the model has "
                         f"{lm.num_layers} layers x {lm.num_heads} heads.")
    base = states(lm, x)
    explained = Explained.of(base.logits, targets, lm.has_classes)
    pruned = MODES[1:]
    n_img, k = len(x), len(pruned)
    masks = torch.stack([head_mask(lm, [head], mode) for mode in pruned])
    logits, z = forward_from(lm, base.inputs[layer].repeat_interleave(k, dim=0), layer,
                             mask=masks.repeat(n_img, 1, 1, 1))
    values = metrics(explained.repeat(k), base.logits.repeat_interleave(k, dim=0), logits,
                     base.outputs[layer].repeat_interleave(k, dim=0), z, lm.num_prefix_tokens)
    zero = torch.zeros(n_img, 1, len(METRICS), dtype=values.dtype)
    all_metrics = torch.cat([zero, values.view(n_img, k, -1).cpu()], dim=1)
    all_logits = torch.cat([base.logits[:, None], logits.view(n_img, k, -1)], dim=1).cpu()
    return all_metrics, all_logits


def compute(lm: LoadedModel, images: torch.Tensor, targets: Targets,
            params: PartialPruningParams) -> list[Arrays]:
    """Per image: ``metrics`` (mode metric, ``metric_names`` order) and ``logits`` (mode
    output), float32."""
    values, logits = modes_of_head(lm, images, params.layer, params.head, targets)
    return [{"metrics": v.float().numpy(), "logits": z.float().numpy()}
            for v, z in zip(values, logits)]


PARTIAL_PRUNING = Analysis(
    name="partial_pruning", params=PartialPruningParams, compute=compute, target="label",
    outputs={"metrics": Output("float32", "mode metric"),
             "logits": Output("float32", "mode output")},
    batch_size=16, precompute=False)
