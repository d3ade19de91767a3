"""Heads ranked by a layer x head array of values: the top k, most important first."""
from __future__ import annotations

import numpy as np


def top_heads(values: np.ndarray, k: int) -> np.ndarray:
    """The k largest entries of a layer x head array, largest first (ties: the earlier
    head first): k x 2 (layer, head)."""
    order = np.argsort(-np.asarray(values).reshape(-1), kind="stable")[:k]
    return np.stack(np.divmod(order, values.shape[1]), axis=1)
