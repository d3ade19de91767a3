"""Automatic pattern label of a head's patch attention (SPEC "Attention
patterns"; paper 001, section 6.3.1: every pattern mixes four basic ones).

Each source patch ``i`` (a row of ``A_patch``, renormalised to a distribution
``p_i`` over the target patches; empty rows of a binarised matrix are left out)
is scored, and the head's score is the mean over its sources. Each score is a
share of attention in [0, 1]:

- diagonal: the mass on one fixed offset, the best of self, left, right, up and
  down neighbour (sources whose neighbour falls off the grid are not counted,
  the paper's "gaps"). The winning offset is kept.
- horizontal: the mass on other patches of the source's own grid row, minus
  the largest single one of them (so a pure one-step shift, a diagonal, scores 0:
  horizontal means *several* patches before/after in the same row).
- vertical: many sources on the same targets. With ``q`` the mean of all
  rows, the mean Bhattacharyya overlap of ``p_i`` with ``q``, times how
  concentrated ``q`` is, ``1 - (n_eff(q) - 1) / (G - 1)`` (``n_eff`` = exp of
  the entropy). Uniform or diagonal attention has a flat ``q`` and scores 0.
- block: patches of a region attend to each other. For targets ``j`` in another
  grid row, ``sum_j (p_i[j] - q[j]) * BC(p_i, p_j)`` (BC: Bhattacharyya overlap of
  the two sources' target distributions): the targets of ``i`` attend where ``i``
  attends, more than an average source would. Zero when all sources share one
  target set (vertical) or for shifts.

Each score is then rescaled so that uniform attention scores 0 and a perfect
pattern 1: ``(s - s_uniform) / (1 - s_uniform)`` (uniform attention already puts
1/G on each offset and (gw - 2)/G on "horizontal").

The label is the largest score (ties: the order above); the confidence is its
margin over the runner-up. Below ``MIXED_MARGIN`` no pattern dominates and the
label is "mixed" (index ``MIXED``): on synthetic matrices of the paper's 13 patterns
(section 6.3.1, Fig. 13; ``tests/unit/test_patterns.py``) every definite label
agrees with the pattern drawn, and "multiple above and below" (13H) and the
horizontal patterns mixed with the diagonal (13J, K) come out "mixed". Heads that attend to several fixed offsets at once
(the paper's "multiple above/below", Fig. 13F-H) are local mutual attention and
tend to score as block with a small margin; a diffuse head scores low everywhere.
"""
from __future__ import annotations

import numpy as np
import torch

LABELS = ("diagonal", "horizontal", "vertical", "block")  # the four scored patterns
LABEL_NAMES = LABELS + ("mixed",)  # what a head is called: a pattern, or mixed
MIXED = len(LABELS)  # the label index of "mixed"
MIXED_MARGIN = 0.15  # a margin below this: no pattern dominates
OFFSETS = ("self", "left", "right", "up", "down")
_STEPS = ((0, 0), (0, -1), (0, 1), (-1, 0), (1, 0))  # (row, column) of target - source
_CHUNK_VALUES = 2**22  # matrix entries scored at once (16 MB per float32 temporary, of
# which scoring holds several: 2 heads of a 37 x 37 grid, every head of a small grid)


def offset_masks(grid: tuple[int, int]) -> torch.Tensor:
    """(5, G, G): 1 where target = source + offset (in grid rows and columns)."""
    gh, gw = grid
    r, c = np.divmod(np.arange(gh * gw), gw)
    masks = np.zeros((len(_STEPS), gh * gw, gh * gw), np.float32)
    for k, (dr, dc) in enumerate(_STEPS):
        tr, tc = r + dr, c + dc
        ok = (tr >= 0) & (tr < gh) & (tc >= 0) & (tc < gw)
        masks[k, np.flatnonzero(ok), (tr * gw + tc)[ok]] = 1.0
    return torch.from_numpy(masks)


def same_row(grid: tuple[int, int]) -> torch.Tensor:
    """(G, G): 1 where source and target lie in the same grid row."""
    row = torch.arange(grid[0] * grid[1]) // grid[1]
    return (row[:, None] == row[None, :]).float()


Scored = tuple[torch.Tensor, torch.Tensor]  # (scores, best diagonal offset)


def _scores(p: torch.Tensor, w: torch.Tensor, grid: tuple[int, int]) -> Scored:
    """Scores of row-stochastic `p` (N, G, G) with source weights `w` (N, G)."""
    g = p.shape[-1]
    wsum = w.sum(-1).clamp_min(1)
    offsets = offset_masks(grid).to(p)  # (5, G, G)
    valid = offsets.sum(-1)  # (5, G): the source has this neighbour
    on_offset = torch.einsum("nij,kij->nki", p, offsets)  # (N, 5, G)
    diag = (on_offset * w[:, None]).sum(-1) / (w[:, None] * valid).sum(-1).clamp_min(1)
    diagonal, best_offset = diag.max(-1)

    row = same_row(grid).to(p)
    in_row = p * (row - torch.eye(g).to(p))
    horizontal = ((in_row.sum(-1) - in_row.amax(-1)) * w).sum(-1) / wsum

    q = (p * w[..., None]).sum(1) / wsum[:, None]  # (N, G): mean target distribution
    entropy = -(q * q.clamp_min(1e-12).log()).sum(-1)
    concentration = 1 - (entropy.exp() - 1) / max(g - 1, 1)
    sq = p.sqrt()
    overlap_q = (sq * q[:, None].sqrt()).sum(-1)  # (N, G)
    vertical = concentration * (overlap_q * w).sum(-1) / wsum

    bc = sq @ sq.transpose(-1, -2)  # (N, G, G): overlap of sources i and j
    mutual = (p * p.transpose(-1, -2)).sqrt() - 1.0 / g  # i -> j and j -> i, above chance
    block_i = (mutual.clamp_min(0) * bc * (1 - row)).sum(-1)
    block = (block_i * w).sum(-1) / wsum
    scores = torch.stack([diagonal, horizontal, vertical, block], -1)
    return scores, best_offset


def chance_scores(grid: tuple[int, int]) -> torch.Tensor:
    """(4,) the raw scores of uniform attention (every target 1/G)."""
    g = grid[0] * grid[1]
    return _scores(torch.full((1, g, g), 1.0 / g), torch.ones(1, g), grid)[0][0]


def label_scores(matrices: torch.Tensor, grid: tuple[int, int]) -> Scored:
    """Scores (..., 4) in LABELS order and the best diagonal offset (..., ) (index
    into OFFSETS) of patch matrices (..., G, G), raw attention or binarised."""
    lead = matrices.shape[:-2]
    g = matrices.shape[-1]
    if g != grid[0] * grid[1]:
        raise ValueError(f"matrices are {g} x {g} but the grid {grid} has "
                         f"{grid[0] * grid[1]} patches")
    flat = matrices.flatten(0, -3) if matrices.dim() > 3 else matrices.reshape(-1, g, g)
    # (a view where only the last two axes are sliced: each chunk is copied on its own)
    chance = chance_scores(grid).to(flat)
    scores, offsets = [], []
    chunk = max(1, _CHUNK_VALUES // (g * g))
    for start in range(0, len(flat), chunk):
        m = flat[start:start + chunk].float()
        mass = m.sum(-1)
        w = (mass > 0).float()
        p = m / mass.clamp_min(1e-12)[..., None]
        s, o = _scores(p, w, grid)
        scores.append(((s - chance) / (1 - chance)).clamp(0, 1))
        offsets.append(o)
    return (torch.cat(scores).reshape(*lead, len(LABELS)),
            torch.cat(offsets).reshape(lead))


def decide(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 4) scores -> label index into LABEL_NAMES (...; MIXED below MIXED_MARGIN)
    and confidence (...) = margin of the best score over the runner-up."""
    scores = np.asarray(scores, dtype=np.float32)
    order = np.sort(scores, axis=-1)
    margin = order[..., -1] - order[..., -2]
    return np.where(margin < MIXED_MARGIN, MIXED, scores.argmax(-1)), margin


def describe(scores: np.ndarray, offset: int) -> tuple[str, float]:
    """Plain name ("diagonal (left)", "block"...) and confidence of one head."""
    label, confidence = decide(scores)
    name = LABEL_NAMES[int(label)]
    if name == "diagonal":
        name = f"diagonal ({OFFSETS[int(offset)]})"
    return name, float(confidence)
