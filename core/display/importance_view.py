"""The numbers of the Importance page's views: the exact values over an image set
(mean and standard deviation per head) and how the one-backward estimate ranks the
heads against the exact values."""
from __future__ import annotations

import numpy as np

from core.analyses.importance import metric_slot
from core.analyses.importance_estimate import compared_with
from core.dataset.statistics import mean_and_std, spearman, stack
from core.storage.cache import Arrays


def importance_over_set(arrays: dict[int, Arrays]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over the images of their ``importance`` (metric x
    layer x head each)."""
    return mean_and_std(stack(arrays, "importance"))


def estimate_agreement(estimate: Arrays, exact: np.ndarray, metric: str) -> float:
    """Spearman rank correlation over the heads of the estimate output compared with
    `metric` and the exact values of `metric` (`exact`: metric x layer x head)."""
    return spearman(estimate[compared_with(metric)], exact[metric_slot(metric)])
