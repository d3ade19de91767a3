"""The numbers of the Strength page's views over an image set: how one head's entropy
varies between the images, and the spread of every layer's heads."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.dataset.statistics import density, layer_trend, stack
from core.storage.cache import Arrays


@dataclass
class StrengthOverSet:
    images: int
    entropy_x: np.ndarray  # the selected head's entropy: points of its density (its range)
    entropy_density: np.ndarray
    entropy_trend: pd.DataFrame  # per layer, see core.dataset.statistics.layer_trend
    distance_trend: pd.DataFrame


def strength_over_set(arrays: dict[int, Arrays], layer: int, head: int) -> StrengthOverSet:
    """From every image's ``strength`` results: head (`layer`, `head`)'s entropy
    density and the per-layer trends of the entropy and the mean distance."""
    entropy = stack(arrays, "entropy")  # image x layer x head
    x, y = density(entropy[:, layer, head], fit=True)  # entropies often lie near 1
    return StrengthOverSet(len(entropy), x, y, layer_trend(entropy),
                           layer_trend(stack(arrays, "mean_distance")))
