"""Pairwise head interactions: what leave-one-out misses (paper 001, section 7: "one
head could be important only if another head is pruned"; SPEC "Head pruning" for the
pruning and the four metrics).

For the `k` most important heads of an image (leave-one-out, ranked by one metric,
ties by position) every pair is pruned together. The interaction of a pair is the
pair's effect minus the sum of the two single effects, for each metric:
positive when pruning both hurts more than the two apart (the heads back each other
up), negative when the second pruning adds less than it does alone (they do the
same work).

Choices where the SPEC is silent:

- ``prob`` and ``jsd`` compare the model's output; ``cls_dist`` and ``patch_dist``
  compare the attention output ``z`` of the *later* layer of the pair (for heads of
  one layer, that layer), where both prunings have acted. The single effects of a
  pair are measured at that same layer, so a head of an earlier layer has a
  single effect at every later layer (its effect on ``z`` there). The ``single``
  output keeps each head's effect at its own layer (the leave-one-out values).
- The diagonal of ``interaction`` is 0; ``pair`` holds the single effects there.

Batched like leave-one-out: one unmasked forward keeps every block's input; the
single prunings of all images run as one batch per starting layer, and so do the
pairs grouped by their earlier layer (``core.model._rerun.forward_from`` with masks
on one or two layers). ``testing.reference.naive_pairs`` is the pair-by-pair
reference it is tested against.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import torch

from core.analyses.base import Analysis, Output
from core.analyses.importance import METRICS, leave_one_out, metric_slot, metrics
from core.model import TOKENS_PER_FORWARD, LoadedModel, head_mask
from core.model._kernels import onednn
from core.model._rerun import States, forward_from, states
from core.model.targets import Explained, Targets
from core.storage.cache import Arrays


def top_heads(values: np.ndarray, k: int) -> np.ndarray:
    """The k largest entries of a layer x head array, largest first (ties: the earlier
    head first): k x 2 (layer, head). The heads this analysis pairs, and the ones the
    pages and the report name as the most important."""
    order = np.argsort(-np.asarray(values).reshape(-1), kind="stable")[:k]
    return np.stack(np.divmod(order, values.shape[1]), axis=1)


@dataclass(frozen=True)
class InteractionParams:
    k: int = 8  # heads: the k most important of each image (capped at the model's)
    rank_by: str = "prob"  # the importance metric that picks them (its slot: "prob" is
    # "sim" for a model without classes)

    def __post_init__(self) -> None:
        if self.k < 2:
            raise ValueError(f"Head interactions need at least 2 heads, not k={self.k}.")
        metric_slot(self.rank_by)


def _pruning(lm: LoadedModel, heads: list[tuple[int, int]]) -> dict[int, torch.Tensor]:
    """Masks (layer -> head x query x key) pruning whole `heads`."""
    layers = sorted({layer for layer, _ in heads})
    return {layer: head_mask(lm, [h for lay, h in heads if lay == layer]) for layer in layers}


def _stacked(masks: list[dict[int, torch.Tensor]], lm: LoadedModel
             ) -> dict[int, torch.Tensor]:
    """Per-variant masks (one dict each) as one batch mask per layer (ones elsewhere)."""
    layers = sorted({layer for m in masks for layer in m})
    ones = torch.ones(lm.num_heads, lm.num_tokens, lm.num_tokens)
    return {layer: torch.stack([m.get(layer, ones) for m in masks]) for layer in layers}


Variant = tuple[int, list[tuple[int, int]]]  # (image, the heads it prunes)


@torch.no_grad()
def pair_effects(lm: LoadedModel, x: torch.Tensor, targets: Targets, heads: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """For the heads of each image (image x k x 2, (layer, head)): ``pair`` (image x
    metric x k x k, the effect of pruning heads i and j together; single effects on the
    diagonal) and ``interaction`` (the same minus both single effects measured at the
    pair's later layer; diagonal 0), float64. Holds the model's lock throughout."""
    n, k = heads.shape[:2]
    hs = [[(int(layer), int(head)) for layer, head in heads[b]] for b in range(n)]
    pairs = list(combinations(range(k), 2))
    with lm.lock, onednn(lm):
        base = states(lm, x)
        singles = _effects(lm, targets, base, [(b, [hs[b][i]]) for b in range(n)
                                                    for i in range(k)])
        both = _effects(lm, targets, base, [(b, [hs[b][i], hs[b][j]]) for b in range(n)
                                                 for i, j in pairs])
    pair = np.zeros((n, len(METRICS), k, k))
    interaction = np.zeros_like(pair)
    for b in range(n):
        for i in range(k):
            pair[b, :, i, i] = singles[b * k + i][hs[b][i][0]]
        for v, (i, j) in enumerate(pairs):
            at = max(hs[b][i][0], hs[b][j][0])
            effect = both[b * len(pairs) + v][at]
            pair[b, :, i, j] = pair[b, :, j, i] = effect
            alone = singles[b * k + i][at] + singles[b * k + j][at]
            interaction[b, :, i, j] = interaction[b, :, j, i] = effect - alone
    return pair, interaction


def _effects(lm: LoadedModel, targets: Targets, base: States,
             variants: list[Variant]) -> list[dict[int, np.ndarray]]:
    """Per variant, the metrics (metric,) of pruning its heads of its image, with ``z``
    compared at each layer from its first pruned layer on where a listed head lives
    (layer -> metrics). Variants starting at one layer run as batches of at most
    TOKENS_PER_FORWARD tokens."""
    explained = Explained.of(base.logits, targets, lm.has_classes)
    layers_of_heads = sorted({layer for _, heads in variants for layer, _ in heads})
    out: list[dict[int, np.ndarray]] = [{} for _ in variants]
    step = max(1, TOKENS_PER_FORWARD // lm.num_tokens)
    for start in layers_of_heads:
        chosen = [v for v, (_, heads) in enumerate(variants)
                  if min(layer for layer, _ in heads) == start]
        keep = [layer for layer in layers_of_heads if layer >= start]
        for begin in range(0, len(chosen), step):
            part = chosen[begin:begin + step]
            image = torch.tensor([variants[v][0] for v in part])
            logits, z = forward_from(lm, base.inputs[start][image], start, keep=keep,
                                     masks=_stacked([_pruning(lm, variants[v][1])
                                                     for v in part], lm))
            for at, layer in enumerate(keep):
                values = metrics(explained.select(image), base.logits[image], logits,
                                 base.outputs[layer][image], z[at],
                                 lm.num_prefix_tokens).cpu().numpy()
                for row, v in enumerate(part):
                    out[v][layer] = values[row]
    return out


def compute(lm: LoadedModel, images: torch.Tensor, targets: Targets,
            params: InteractionParams) -> list[Arrays]:
    """Per image: ``heads`` (rank 2: layer, head; most important first), ``single``
    (metric rank: leave-one-out effects), ``pair`` and ``interaction`` (metric rank
    rank), float32."""
    k = min(params.k, lm.num_layers * lm.num_heads)
    loo = leave_one_out(lm, images, targets)
    ranked = loo[:, metric_slot(params.rank_by)]
    heads = np.stack([top_heads(values, k) for values in ranked])
    pair, interaction = pair_effects(lm, images, targets, heads)
    return [{"heads": heads[b].astype(np.int64),
             "single": loo[b][:, heads[b, :, 0], heads[b, :, 1]].astype(np.float32),
             "pair": pair[b].astype(np.float32),
             "interaction": interaction[b].astype(np.float32)}
            for b in range(len(images))]


INTERACTIONS = Analysis(
    name="interactions", params=InteractionParams, compute=compute, target="label",
    outputs={"heads": Output("int64", "rank pair"),
             "single": Output("float32", "metric rank"),
             "pair": Output("float32", "metric rank rank"),
             "interaction": Output("float32", "metric rank rank")},
    batch_size=16, precompute=False)  # one image's view, computed when it is opened
    # (0.2 s for a demo image); no dataset step reads it
