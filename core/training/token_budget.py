"""Keypoint-guided training (SPEC "Keypoint-guided training"; seed paper 002, "guided
model pre-training acceleration"): with a token budget ``rho`` in (0, 1], each training
image keeps ``ceil(rho * G)`` of its ``G`` patch tokens, removed from the sequence after
the patch and position embeddings; the kept ones are those of the highest keypoint
concentration ``c_j`` (ties broken at random) or, the baseline, uniformly random ones.
Evaluation always uses every token.

:class:`TokenBudget` takes the place of timm's ``patch_drop`` in a
``VisionTransformer``, which sits exactly there in ``forward_features`` (after
``_pos_embed``, before the blocks); like timm's ``PatchDropout`` it acts in training
mode only. Both rules go through the same module, so they differ only in the scores.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from core.data.keypoints import detect

Select = Literal["keypoints", "random"]
SELECTS: tuple[Select, ...] = ("keypoints", "random")


def kept_tokens(budget: float, patches: int) -> int:
    """``ceil(rho * G)``: the patch tokens an image keeps under token budget `budget`."""
    if not 0 < budget <= 1:
        raise ValueError(f"token budget {budget!r}: give a share of the patch tokens in "
                         "(0, 1], for example 0.5")
    return math.ceil(budget * patches - 1e-9)


def keep_order(scores: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(batch, patch) scores -> (batch, patch) patch indices, highest score first, ties
    in a random order (all scores equal: a uniformly random order)."""
    shuffle = torch.rand(scores.shape, generator=generator).argsort(dim=-1)
    order = scores.gather(-1, shuffle).argsort(dim=-1, descending=True, stable=True)
    return shuffle.gather(-1, order)


class TokenBudget(torch.nn.Module):
    """Keeps the prefix tokens and ``ceil(budget * G)`` patch tokens of every training
    image: those of the highest :attr:`scores` (batch, patch), set before each training
    forward, or random ones when :attr:`scores` is None. The identity in eval mode."""

    def __init__(self, budget: float, num_prefix_tokens: int, seed: int = 0) -> None:
        super().__init__()
        kept_tokens(budget, 1)
        self.budget, self.num_prefix_tokens = budget, num_prefix_tokens
        self.scores: torch.Tensor | None = None
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, prefix + patch, dim) -> (batch, prefix + kept, dim)."""
        if not self.training or self.budget == 1:
            return x
        prefix, patches = x[:, :self.num_prefix_tokens], x[:, self.num_prefix_tokens:]
        scores = (torch.zeros(patches.shape[:2]) if self.scores is None
                  else self.scores.to(torch.float32))
        if scores.shape != patches.shape[:2]:
            raise ValueError(f"keypoint scores of shape {tuple(scores.shape)} for "
                             f"{tuple(patches.shape[:2])} (image, patch) tokens")
        keep = keep_order(scores, self.generator)[:, :kept_tokens(self.budget,
                                                                 patches.shape[1])]
        keep = keep.to(x.device)[..., None].expand(-1, -1, x.shape[-1])
        return torch.cat([prefix, patches.gather(1, keep)], dim=1)


def keypoint_maps(images: np.ndarray) -> np.ndarray:
    """(image, H, W) uint8 grey images, as the model sees them -> (image, H, W) float32:
    per pixel the number of its SIFT keypoints (``core.data.keypoints.detect``), so that
    the training's flips and shifts move them with the pixels."""
    maps = np.zeros(images.shape, dtype=np.float32)
    h, w = images.shape[1:]
    with ThreadPoolExecutor(os.cpu_count()) as pool:  # OpenCV lets go of the GIL
        for n, points in enumerate(pool.map(detect, images, chunksize=256)):
            rows = np.clip(points.xy[:, 1].astype(int), 0, h - 1)
            cols = np.clip(points.xy[:, 0].astype(int), 0, w - 1)
            np.add.at(maps[n], (rows, cols), 1)
    return maps


def patch_concentration(maps: torch.Tensor, patch: int) -> torch.Tensor:
    """(batch, H, W) keypoints per pixel -> (batch, patch) ``c_j``, the keypoints of each
    patch in row-major order (SPEC "Keypoints and spurious correlations")."""
    return (F.avg_pool2d(maps[:, None], patch) * patch * patch).flatten(1)
