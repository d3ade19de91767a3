"""Partial pruning of one head (SPEC "Head pruning", modes 0-5; paper 001, section 5.2.3).

For a chosen head ``(l, h)`` each pruning mode zeroes some regions of its attention
matrix (``core.capture.PRUNING_MODES``); per mode we report the four importance metrics
of ``core.importance`` and the logits (for the top-5 predictions under that mode).
The five pruned variants of each image run as one batch from the unpruned input of
layer ``l``; mode 0 is the unpruned model itself (metrics exactly 0).
"""
from __future__ import annotations

import torch

from core import capture
from core.cache import Arrays
from core.engine import Analysis
from core.importance import METRICS, metrics, targets_of
from core.models import LoadedModel

MODES = tuple(sorted(capture.PRUNING_MODES))  # 0 (none) .. 5


@torch.no_grad()
def modes_of_head(lm: LoadedModel, x: torch.Tensor, layer: int, head: int,
                  targets: list[int | None]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image of `x`: metrics (modes x 4, float64) and logits (modes x classes)."""
    if not (0 <= layer < lm.num_layers and 0 <= head < lm.num_heads):
        raise ValueError(f"Head ({layer}, {head}) does not exist: the model has "
                         f"{lm.num_layers} layers x {lm.num_heads} heads.")
    base = capture.states(lm, x)
    probs = base.logits.softmax(-1)
    target = targets_of(base.logits, targets)
    pruned = MODES[1:]
    n_img, k = len(x), len(pruned)
    masks = torch.stack([capture.head_mask(lm, [head], mode) for mode in pruned])
    logits, z = capture.forward_from(lm, base.inputs[layer].repeat_interleave(k, dim=0), layer,
                                     mask=masks.repeat(n_img, 1, 1, 1))
    values = metrics(probs.repeat_interleave(k, dim=0), logits.softmax(-1),
                     base.outputs[layer].repeat_interleave(k, dim=0), z,
                     target.repeat_interleave(k), lm.num_prefix_tokens)
    zero = torch.zeros(n_img, 1, len(METRICS), dtype=values.dtype)
    all_metrics = torch.cat([zero, values.view(n_img, k, -1).cpu()], dim=1)
    all_logits = torch.cat([base.logits[:, None], logits.view(n_img, k, -1)], dim=1).cpu()
    return all_metrics, all_logits


def compute(lm: LoadedModel, batch: torch.Tensor, params: dict) -> list[Arrays]:
    """Per image: ``metrics`` (6 modes x 4, in METRICS order) and ``logits`` (6 modes x
    classes), float32. params: ``{"layer", "head", "target"}`` (target None: predicted)."""
    values, logits = modes_of_head(lm, batch, int(params["layer"]), int(params["head"]),
                                  [params.get("target")] * len(batch))
    return [{"metrics": v.float().numpy(), "logits": z.float().numpy()}
            for v, z in zip(values, logits)]


PARTIAL_PRUNING = Analysis(name="partial_pruning", compute=compute, batch_size=16)
