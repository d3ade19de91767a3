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
  depend on the cutoff (see :mod:`core.pattern_labels`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core import capture
from core.cache import Arrays
from core.engine import Analysis
from core.models import LoadedModel
from core.pattern_labels import label_scores

DEFAULT_TOP_PERCENT = 1.0


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
    """(..., G, G) -> uint8 (..., G, G) with the top `top_percent` % of each matrix set to 1."""
    flat = matrices.flatten(-2)
    k = kept_count(flat.shape[-1], top_percent)
    out = torch.zeros_like(flat, dtype=torch.uint8)
    out.scatter_(-1, flat.topk(k, dim=-1).indices, 1)
    return out.view(matrices.shape)


def top_percent_threshold(values: np.ndarray, top_percent: float) -> float:
    """The smallest value among the top `top_percent` % of `values` (the "top x%" line)."""
    flat = np.sort(np.asarray(values, dtype=np.float64).ravel())
    return float(flat[-kept_count(flat.size, top_percent)])


def pack(binary: np.ndarray) -> np.ndarray:
    """uint8 (..., G, G) of 0/1 -> packed bits (..., ceil(G * G / 8))."""
    return np.packbits(binary.reshape(*binary.shape[:-2], -1), axis=-1)


def unpack(packed: np.ndarray, num_patches: int) -> np.ndarray:
    """Inverse of :func:`pack`: (..., bytes) -> uint8 (..., G, G)."""
    bits = np.unpackbits(packed, axis=-1, count=num_patches * num_patches)
    return bits.reshape(*packed.shape[:-1], num_patches, num_patches)


@dataclass
class Pairs:
    """Token pairs of one head's T x T matrix at or above a threshold, strongest first."""

    source: np.ndarray  # row (query) token index
    target: np.ndarray  # column (key) token index
    value: np.ndarray
    cls_related: np.ndarray  # bool: a prefix token is the source or the target


def strong_pairs(matrix: np.ndarray, threshold: float, num_prefix_tokens: int,
                 limit: int | None = None) -> Pairs:
    """The pairs the two-axes view draws (SPEC "Attention patterns", head detail)."""
    source, target = np.nonzero(matrix >= threshold)
    order = np.argsort(-matrix[source, target], kind="stable")[:limit]
    source, target = source[order], target[order]
    return Pairs(source, target, matrix[source, target],
                 (source < num_prefix_tokens) | (target < num_prefix_tokens))


def compute(lm: LoadedModel, batch: torch.Tensor, params: dict) -> list[Arrays]:
    """Per image: ``cls_vectors`` (L, H, T + G) float16, ``patch_bits`` (L, H, bytes)
    uint8, ``label_scores`` (L, H, 4) float32 and ``diagonal_offset`` (L, H) int8."""
    top = float(params.get("top_percent", DEFAULT_TOP_PERCENT))
    attention = capture.forward(lm, batch).attention.float()
    p = lm.num_prefix_tokens
    cls = cls_vectors(attention, p).half().cpu().numpy()
    patches = patch_matrices(attention, p)
    bits = pack(binarise(patches, top).cpu().numpy())
    scores, offsets = label_scores(patches, lm.grid)
    scores, offsets = scores.cpu().numpy(), offsets.cpu().numpy().astype(np.int8)
    return [{"cls_vectors": cls[b], "patch_bits": bits[b], "label_scores": scores[b],
             "diagonal_offset": offsets[b]} for b in range(len(batch))]


def analysis_params(top_percent: float = DEFAULT_TOP_PERCENT) -> dict:
    """The analysis parameters for a cutoff: the default one is ``{}``, as the batch
    precompute runs it, so that its cache entries are the ones reused."""
    kept_count(1, top_percent)  # rejects a cutoff outside (0, 100]
    return {} if top_percent == DEFAULT_TOP_PERCENT else {"top_percent": float(top_percent)}


def head_matrix(lm: LoadedModel, image: torch.Tensor, layer: int, head: int) -> np.ndarray:
    """The full T x T attention matrix of one head for one preprocessed image (C x H x W)."""
    out = capture.forward(lm, image[None], layers=[layer])
    return out.attention[0, 0, head].float().cpu().numpy()


PATTERNS = Analysis(name="patterns", compute=compute, batch_size=32)
