"""Top-k predictions from logits, or the most similar images of the set for a model
without classes."""
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


@dataclass
class Similar:
    index: int  # in the image set
    cosine: float  # cosine similarity of the embeddings, in [-1, 1]


def most_similar(embeddings: dict[int, np.ndarray], index: int, k: int = 5) -> list[Similar]:
    """In place of the top-k classes for a model without classes (SPEC "Models without
    class scores"): the `k` other images whose embeddings (image -> (width,)) are most
    similar to image `index`'s, by cosine, most similar first."""
    others = [i for i in sorted(embeddings) if i != index]
    if not others:
        return []
    e = np.stack([embeddings[i] for i in others]).astype(np.float64)
    q = np.asarray(embeddings[index], dtype=np.float64)
    cos = e @ q / np.maximum(np.linalg.norm(e, axis=1) * np.linalg.norm(q), 1e-12)
    order = np.argsort(-cos, kind="stable")[:k]
    return [Similar(others[i], float(cos[i])) for i in order]


def explained_name(class_names: list[str], explained: int) -> str:
    """What an explanation is of: the class `explained`, or (a model without classes,
    -1) the similarity to the reference embedding."""
    if explained < 0 or not class_names:
        return "the similarity to the reference"
    return class_names[explained]
