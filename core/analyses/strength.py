"""The "strength" analysis: how far each head looks (SPEC "Attention strength",
seed paper 001 section 5.3).

For every head, on the patches->patches region ``A[P:, P:]`` of the raw
post-softmax attention (not renormalised):

- Hop distance is the Chebyshev distance on the ``gh x gw`` grid; hop 0 is
  the patch itself, so ``s`` has ``max(gh, gw)`` entries, hops
  ``0 .. max(gh, gw) - 1`` (the paper's ``k in [0, p-1]``, Fig. 5: patch (0,0)
  of a 5x5 grid has rings of 1, 3, 5, 7, 9 patches).
- ``s_k(i)`` is the mean of ``A[i, j]`` over the ``k``-hop ring of patch
  ``i``; ``s_k`` averages ``s_k(i)`` over the patches that have such a ring
  (missing rings are not counted: the paper's smaller denominator).
- ``entropy`` is the Shannon entropy of ``s / sum(s)`` divided by
  ``log(len(s))``, in [0, 1]; 0 for a 1x1 grid (a single hop), NaN when the
  head gives the patches->patches region no attention at all.
- ``mean_distance`` (ViT paper): for each source patch the attention-weighted
  mean distance to the target patches, weights ``A[i, P:]`` renormalised to
  sum 1 over the patches (we chose a true weighted *mean*, so a head that
  sends most attention to CLS is not mistaken for a local one); then averaged
  over source patches (patches giving patches no attention are left out).
  Distances are Euclidean between patch centres in pixels, ``sqrt((dr * ph)^2
  + (dc * pw)^2)``, which is grid distance times patch size for square patches.

Everything is vectorised: the ring weights are one ``G^2 x K`` matrix per grid,
so ``s`` for all heads of all images is a single matrix product. Dataset-level
views (one head's entropy over all images, the trend over layers) are in
``core.dataset.statistics``.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from core.analyses.base import Analysis, NoParams, Output, Read, per_image
from core.analyses.capture import CAPTURE
from core.model import LoadedModel
from core.model.targets import Targets
from core.storage.cache import Arrays


def grid_offsets(grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column offsets ``target - source`` for every patch pair: two G x G arrays."""
    gh, gw = grid
    rows, cols = np.divmod(np.arange(gh * gw), gw)
    return rows[None, :] - rows[:, None], cols[None, :] - cols[:, None]


def hop_distance(grid: tuple[int, int]) -> np.ndarray:
    """G x G Chebyshev distance between patches (row-major, like timm's order)."""
    dr, dc = grid_offsets(grid)
    return np.maximum(np.abs(dr), np.abs(dc))


def ring_sizes(grid: tuple[int, int]) -> np.ndarray:
    """G x K: how many patches lie in each patch's k-hop ring (0 = no such ring)."""
    hops = hop_distance(grid)
    k = max(grid)
    return np.stack([(hops == h).sum(axis=1) for h in range(k)], axis=1)


@lru_cache(maxsize=16)
def _weights(grid: tuple[int, int], patch_size: tuple[int, int]
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per grid, for every patch pair (G^2, source-major): its ring (hop) and its weight
    in that ring's average; and the G x G pixel distances. (A dense G^2 x K averaging
    matrix would be 555 MB for a 37 x 37 grid.)"""
    hops = hop_distance(grid)
    sizes = ring_sizes(grid)  # G x K
    has_ring = (sizes > 0).sum(axis=0)  # K: patches that have each ring
    g = hops.shape[0]
    source = np.repeat(np.arange(g), g)
    flat_hops = hops.reshape(-1)
    weight = 1.0 / (sizes[source, flat_hops] * has_ring[flat_hops])
    dr, dc = grid_offsets(grid)
    pixels = np.hypot(dr * patch_size[0], dc * patch_size[1])
    return torch.from_numpy(flat_hops), torch.from_numpy(weight), torch.from_numpy(pixels)


def strength(patch_attention: torch.Tensor, grid: tuple[int, int],
             patch_size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """``s``, ``entropy`` and ``mean_distance`` for heads given as (..., G, G).

    patch_attention: the patches->patches region of any batch of heads.
    Returns ``s`` (..., K), ``entropy`` (...) and ``mean_distance`` (...) in pixels,
    float32 (relative error below 1e-5 against float64), on the input's device.
    """
    a = patch_attention.float()
    g = grid[0] * grid[1]
    if a.shape[-2:] != (g, g):
        raise ValueError(f"attention ends in {tuple(a.shape[-2:])}, expected {(g, g)} "
                         f"for a {grid[0]}x{grid[1]} grid")
    hops, weight, pixels = _weights(tuple(grid), tuple(patch_size))
    hops = hops.to(a.device)
    weight, pixels = weight.to(a.device, a.dtype), pixels.to(a.device, a.dtype)
    lead = a.shape[:-2]
    flat = a.reshape(-1, g * g) * weight
    s = flat.new_zeros(len(flat), max(grid)).index_add_(1, hops, flat).reshape(*lead, -1)
    return {"s": s, "entropy": normalised_entropy(s),
            "mean_distance": mean_distance(a, pixels)}


def evenly_spread(grid: tuple[int, int], patch_size: tuple[int, int]) -> tuple[float, float]:
    """The entropy and mean distance (pixels) of a head that spreads every patch's
    attention evenly over all patches: the reference a local head falls below."""
    g = grid[0] * grid[1]
    out = strength(torch.full((g, g), 1.0 / g, dtype=torch.float64), grid, patch_size)
    return float(out["entropy"]), float(out["mean_distance"])


def normalised_entropy(s: torch.Tensor) -> torch.Tensor:
    """Entropy of ``s / sum(s)`` over the last axis divided by ``log(len(s))``."""
    k = s.shape[-1]
    p = s / s.sum(dim=-1, keepdim=True)
    h = -torch.special.xlogy(p, p).sum(dim=-1)
    return h / np.log(k) if k > 1 else torch.zeros_like(h)


def mean_distance(a: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Attention-weighted mean distance (pixels) per source patch, averaged over sources."""
    per_source = torch.einsum("...ij,ij->...i", a, pixels) / a.sum(dim=-1)
    return torch.nanmean(per_source, dim=-1)


def compute(lm: LoadedModel, images: torch.Tensor, targets: Targets,
            params: NoParams, reads: dict) -> list[Arrays]:
    """Per image (from the batch's capture): ``s`` (layer head hop), ``entropy`` (layer head) and ``mean_distance``
    (layer head, pixels), float32."""
    p = lm.num_prefix_tokens
    out = reads[CAPTURE.name]
    per_layer = [strength(a[..., p:, p:].detach(), lm.grid, lm.patch_size)
                 for a in out.per_layer]  # one layer at a time: no batch x layer copy
    return per_image({name: torch.stack([r[name] for r in per_layer], dim=1).cpu().numpy()
                      for name in per_layer[0]}, len(images))


STRENGTH = Analysis(
    name="strength", params=NoParams, compute=compute, reads=(Read(CAPTURE),),
    outputs={"s": Output("float32", "layer head hop"),
             "entropy": Output("float32", "layer head"),
             "mean_distance": Output("float32", "layer head")})
