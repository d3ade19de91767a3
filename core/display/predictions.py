"""Top-k predictions from logits."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Prediction:
    class_index: int
    class_name: str
    probability: float  # in [0, 1]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def top_k(logits: np.ndarray, class_names: list[str], k: int = 5) -> list[Prediction]:
    """The `k` most probable classes of one image, most probable first."""
    probs = softmax(logits)
    order = np.argsort(-probs, kind="stable")[:k]
    return [Prediction(int(i), class_names[i], float(probs[i])) for i in order]
