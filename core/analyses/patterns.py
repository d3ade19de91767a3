"""The per-image "patterns" analysis (SPEC "Attention patterns"): for every head,
the CLS vector ``A_CLS``, the binarised patch matrix ``A_patch`` and the
automatic pattern label.

- ``A_CLS = concat(A[0, :], A[P:, 0])``: the CLS row over all T tokens, then the
  patch entries of the CLS column (length T + G). Stored as float16 (values in
  [0, 1]; halves the cache for large models).
- ``A_patch = A[P:, P:]`` (G x G) binarised: its ``top_percent`` % largest
  values become 1, the rest 0. Exactly ``max(1, round(top_percent / 100 * G * G))``
  ones are kept (ties broken by position), so every head has the same number
  of ones (the paper's "top 1%": 24 of the 2,401 values of a 7 x 7 grid).
  Stored bit-packed per head (G * G bits).
- The label is computed on the raw (not binarised) ``A_patch``, so it does not
  depend on the cutoff (see :mod:`core.analyses.pattern_labels`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.analyses.base import Analysis, Output, Read, per_image
from core.analyses.capture import CAPTURE
from core.analyses.pattern_labels import label_scores
from core.model import LoadedModel
from core.model.targets import Targets
from core.storage.cache import Arrays

DEFAULT_TOP_PERCENT = 1.0
CHUNK_VALUES = 2**22  # matrix entries binarised at once


def cls_vectors(attention: torch.Tensor, num_prefix_tokens: int) -> torch.Tensor:
    """(..., T, T) -> (..., T + G): the CLS row, then the CLS column over the patches."""
    return torch.cat([attention[..., 0, :], attention[..., num_prefix_tokens:, 0]], dim=-1)


def patch_matrices(attention: torch.Tensor, num_prefix_tokens: int) -> torch.Tensor:
    """(..., T, T) -> (..., G, G): the patches->patches region."""
    return attention[..., num_prefix_tokens:, num_prefix_tokens:]


def kept_count(size: int, top_percent: float) -> int:
    """How many of `size` values the "top x%" cutoff keeps (at least one)."""
    if not 0 < top_percent <= 100:
        raise ValueError(f"top_percent must be in (0, 100], got {top_percent}")
    return max(1, min(size, round(top_percent / 100 * size)))


def binarise(matrices: torch.Tensor, top_percent: float) -> torch.Tensor:
    """(..., G, G) -> uint8 (..., G, G) with the top `top_percent` % of each matrix set to
    1, CHUNK_VALUES entries at a time (`matrices` may be a view of the whole attention)."""
    g = matrices.shape[-1]
    k = kept_count(g * g, top_percent)
    out = torch.zeros(matrices.shape, dtype=torch.uint8, device=matrices.device)
    flat_out = out.view(-1, g * g)
    flat = matrices.reshape(-1, g, g) if matrices.dim() < 4 else matrices.flatten(0, -3)
    step = max(1, CHUNK_VALUES // (g * g))
    for start in range(0, len(flat), step):
        chunk = flat[start:start + step].reshape(-1, g * g)  # a copy of these matrices only
        flat_out[start:start + step].scatter_(-1, chunk.topk(k, dim=-1).indices, 1)
    return out


def pack(binary: np.ndarray) -> np.ndarray:
    """uint8 (..., G, G) of 0/1 -> packed bits (..., ceil(G * G / 8))."""
    return np.packbits(binary.reshape(*binary.shape[:-2], -1), axis=-1)


def unpack(packed: np.ndarray, num_patches: int) -> np.ndarray:
    """Inverse of :func:`pack`: (..., bytes) -> uint8 (..., G, G)."""
    bits = np.unpackbits(packed, axis=-1, count=num_patches * num_patches)
    return bits.reshape(*packed.shape[:-1], num_patches, num_patches)


@dataclass(frozen=True)
class PatternParams:
    top_percent: float = DEFAULT_TOP_PERCENT  # share of A_patch values kept by the cutoff

    def __post_init__(self) -> None:
        kept_count(1, self.top_percent)  # rejects a cutoff outside (0, 100]


def compute(lm: LoadedModel, images: torch.Tensor, targets: Targets,
            params: PatternParams, reads: dict) -> list[Arrays]:
    """Per image (from the batch's capture): ``cls_vectors`` (layer head cls_entry) float16, ``patch_bits``
    (layer head byte) uint8, ``label_scores`` (layer head label) float32 and
    ``diagonal_offset`` (layer head) int8."""
    attention = reads[CAPTURE.name].attention.float()
    p = lm.num_prefix_tokens
    patches = patch_matrices(attention, p)
    scores, offsets = label_scores(patches, lm.grid)
    return per_image({
        "cls_vectors": cls_vectors(attention, p).half().cpu().numpy(),
        "patch_bits": pack(binarise(patches, params.top_percent).cpu().numpy()),
        "label_scores": scores.cpu().numpy(),
        "diagonal_offset": offsets.cpu().numpy().astype(np.int8)}, len(images))


PATTERNS = Analysis(
    name="patterns", params=PatternParams, compute=compute, batch_size=32,
    reads=(Read(CAPTURE),),
    outputs={"cls_vectors": Output("float16", "layer head cls_entry"),
             "patch_bits": Output("uint8", "layer head byte"),
             "label_scores": Output("float32", "layer head label"),
             "diagonal_offset": Output("int8", "layer head")})
