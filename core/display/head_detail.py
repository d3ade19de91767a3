"""Numbers behind one head's detail view (SPEC "Attention patterns", head detail):
its full attention matrix, the "top x%" threshold, the histogram of its values, the
token pairs above the threshold and the tokens' names."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.analyses.patterns import kept_count
from core.model import LoadedModel, capture

HISTOGRAM_EDGES = np.linspace(-6, 0, 49)  # log10 of attention values, 1e-6 .. 1


def head_matrix(lm: LoadedModel, image: torch.Tensor, layer: int, head: int) -> np.ndarray:
    """The query x key attention matrix of one head for one preprocessed image
    (channel x height x width)."""
    out = capture.forward(lm, image[None], layers=[layer])
    return out.attention[0, 0, head].float().cpu().numpy()


def top_percent_threshold(values: np.ndarray, top_percent: float) -> float:
    """The smallest value among the top `top_percent` % of `values` (the "top x%" line)."""
    flat = np.sort(np.asarray(values, dtype=np.float64).ravel())
    return float(flat[-kept_count(flat.size, top_percent)])


def value_histogram(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts of the matrix's values on log10 bins: (bin edges, counts)."""
    counts, _ = np.histogram(np.log10(np.clip(matrix, 1e-6, 1)), bins=HISTOGRAM_EDGES)
    return HISTOGRAM_EDGES, counts


@dataclass
class Pairs:
    """Token pairs of one head's matrix at or above a threshold, strongest first."""

    source: np.ndarray  # row (query) token index
    target: np.ndarray  # column (key) token index
    value: np.ndarray
    cls_related: np.ndarray  # bool: a prefix token is the source or the target


def strong_pairs(matrix: np.ndarray, threshold: float, num_prefix_tokens: int,
                 limit: int | None = None) -> Pairs:
    """The pairs the two-axes view draws."""
    source, target = np.nonzero(matrix >= threshold)
    order = np.argsort(-matrix[source, target], kind="stable")[:limit]
    source, target = source[order], target[order]
    return Pairs(source, target, matrix[source, target],
                 (source < num_prefix_tokens) | (target < num_prefix_tokens))


def token_names(lm: LoadedModel) -> list[str]:
    """``CLS``, ``prefix 1``..., then ``patch (row, column)`` in timm's token order."""
    return [f"prefix {k}" if k else "CLS" for k in range(lm.num_prefix_tokens)] + [
        f"patch ({r}, {c})" for r in range(lm.grid[0]) for c in range(lm.grid[1])]
