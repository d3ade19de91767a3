"""Patch ablation saliency: how much the explained class's probability drops when a
patch token is removed (an occlusion map at the token level; what the attention
methods of SPEC "Attention aggregation" try to predict, measured directly and scored
with the same faithfulness tests, SPEC "Faithfulness of explanations").

Removing a patch means leaving its token out of the sequence after the patch
embedding and the position embedding (the other tokens keep their positions), and
running every block and the head on the shorter sequence: no fill value, no
out-of-distribution pixels. Where attention is tied to the full grid (BEiT's relative
position bias, EVA's rotary embedding) the removed tokens are masked out as keys
instead, which gives every kept token the same computation at its own position
(``core.model._rerun.forward_from``, ``present``). Large grids remove square groups
of ``group x group`` patches (a setting; 0 picks the smallest side giving at most
``AUTO_GROUPS`` groups); every patch of a group gets the group's drop. The map is
``P[c] - P_without_group[c]`` for the class ``c`` explained (negative where removing
the patch raises it); for a model without classes the drop of the score ``s`` (SPEC
"Models without class scores").

All groups of all images of a batch run as batches of at most ``TOKENS_PER_FORWARD`` tokens
from the input of block 0 (``core.model._rerun``), under the model's lock.
``testing.reference.naive_patch_ablation`` is the patch-by-patch reference.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from core.model import TOKENS_PER_FORWARD, LoadedModel
from core.model._kernels import onednn
from core.model._rerun import forward_from, states
from core.model.targets import Explained, Targets

AUTO_GROUPS = 256  # groups at most when the group side is automatic


@dataclass(frozen=True)
class AblationParams:
    group: int = 0  # side of a removed square group of patches; 0: automatic

    def __post_init__(self) -> None:
        if self.group < 0:
            raise ValueError(f"The patch group side must be 0 (automatic) or more, "
                             f"not {self.group}.")


def group_side(grid: tuple[int, int], group: int) -> int:
    """The side of the removed groups: `group`, or the automatic one."""
    if group:
        return group
    side = 1
    while math.ceil(grid[0] / side) * math.ceil(grid[1] / side) > AUTO_GROUPS:
        side += 1
    return side


def patch_groups(grid: tuple[int, int], side: int) -> list[list[int]]:
    """The patch indices (row-major) of each square group, groups row-major; edge groups
    are smaller when the grid is not a multiple of `side`."""
    gh, gw = grid
    return [[r * gw + c for r in range(top, min(top + side, gh))
             for c in range(left, min(left + side, gw))]
            for top in range(0, gh, side) for left in range(0, gw, side)]


@torch.no_grad()
def patch_ablation(lm: LoadedModel, x: torch.Tensor, targets: Targets | None,
                   params: AblationParams) -> torch.Tensor:
    """batch x patch: the drop of P[c] (or of s) when the patch's group is removed."""
    groups = patch_groups(lm.grid, group_side(lm.grid, params.group))
    prefix = lm.num_prefix_tokens
    with lm.lock, onednn(lm):
        base = states(lm, x)
        explained = Explained.of(base.logits, targets, lm.has_classes)
        before = explained.score(base.logits)
        tokens = base.inputs[0]
        drop = torch.zeros(len(x), len(groups), device=tokens.device)
        by_size: dict[int, list[int]] = {}
        for g, members in enumerate(groups):
            by_size.setdefault(len(members), []).append(g)
        for chosen in by_size.values():  # one size per batch: equal kept counts
            present = torch.ones(len(chosen), tokens.shape[1], dtype=torch.bool)
            for row, g in enumerate(chosen):  # group x token: False where removed
                present[row, [prefix + p for p in groups[g]]] = False
            present = present.to(tokens.device)
            variants = [(b, i) for b in range(len(x)) for i in range(len(chosen))]
            step = max(1, TOKENS_PER_FORWARD // tokens.shape[1])
            for begin in range(0, len(variants), step):
                part = torch.tensor(variants[begin:begin + step], device=tokens.device)
                logits, _ = forward_from(lm, tokens[part[:, 0]], 0,
                                         present=present[part[:, 1]])
                after = explained.select(part[:, 0]).score(logits)
                columns = torch.tensor(chosen, device=tokens.device)[part[:, 1]]
                drop[part[:, 0], columns] = before[part[:, 0]] - after
    owner = torch.zeros(lm.grid[0] * lm.grid[1], dtype=torch.long)
    for g, members in enumerate(groups):
        owner[members] = g
    return drop[:, owner.to(drop.device)]
