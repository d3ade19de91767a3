"""Keypoint lift over an image set (SPEC "Keypoints and spurious correlations",
"Dataset level"): the mean and standard deviation over the images of each head's lift,
and of each layer's (the mean over its heads, per image). Images where SIFT found no
keypoint have no lift and are left out (counted in ``without_keypoints``). A dataset
step built from the per-image ``keypoints`` analysis."""
from __future__ import annotations

import numpy as np

from core.analyses.keypoints import KEYPOINTS, KeypointParams, has_keypoints
from core.data.records import Dataset
from core.dataset.base import DatasetStep, Reads, Stage
from core.dataset.statistics import mean_and_std
from core.model import LoadedModel
from core.storage.cache import Arrays


def build(lm: LoadedModel, ds: Dataset, reads: Reads, params: KeypointParams,
          stage: Stage) -> Arrays:
    """``head_mean``, ``head_std`` (layer head), ``layer_mean``, ``layer_std`` (layer),
    ``images`` (with keypoints) and ``without_keypoints``."""
    per_image = reads[KEYPOINTS.name]
    lifts = [per_image[i]["lift"] for i in sorted(per_image) if has_keypoints(per_image[i])]
    if not lifts:
        raise ValueError("SIFT found no keypoint in any image of the set")
    lift = np.stack(lifts).astype(np.float64)  # image layer head
    head_mean, head_std = mean_and_std(lift)
    layer_mean, layer_std = mean_and_std(lift.mean(axis=-1))
    return {"head_mean": head_mean, "head_std": head_std, "layer_mean": layer_mean,
            "layer_std": layer_std, "images": np.asarray(len(lifts)),
            "without_keypoints": np.asarray(len(per_image) - len(lifts))}


def describe(lm: LoadedModel, ds: Dataset, arrays: Arrays) -> str:
    layers = ", ".join(f"{m:.2f}" for m in arrays["layer_mean"])
    return (f"keypoints: lift of the CLS attention on keypoint patches over chance, per layer "
            f"[{layers}] over {int(arrays['images'])} images "
            f"({int(arrays['without_keypoints'])} without keypoints)")


KEYPOINT_LIFT = DatasetStep(
    name="keypoint_lift", params=KeypointParams, reads=(KEYPOINTS,),
    reads_params=lambda params: (params,), build=build, describe=describe)
