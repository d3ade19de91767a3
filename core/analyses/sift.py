"""The per-image analysis ``sift``: the SIFT keypoints of the image as the model sees it
(SPEC "Keypoints and spurious correlations", ``core.data.keypoints``), detected once
per image and read by ``keypoints`` (attention against them) and ``objects`` (the
keypoint patches that stand in for a missing mask)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.analyses.base import Analysis, Output
from core.data.keypoints import MIN_SIDE, Keypoints, detect_input
from core.model import LoadedModel
from core.model.targets import Targets
from core.storage.cache import Arrays

FIELDS = ("x", "y", "response", "size")  # the columns of a stored keypoint


@dataclass(frozen=True)
class SiftParams:
    min_side: int = MIN_SIDE  # SIFT runs on the image upsampled to at least this short side


def compute(lm: LoadedModel, images: torch.Tensor, targets: Targets,
            params: SiftParams) -> list[Arrays]:
    """Per image: ``keypoints`` (keypoint field: x, y in input pixels, response, size),
    float32."""
    found = []
    for x in images:
        points = detect_input(lm, x, params.min_side)
        found.append({"keypoints": np.column_stack([points.xy, points.response, points.size])
                      .astype(np.float32).reshape(-1, len(FIELDS))})
    return found


def keypoints_of(arrays: Arrays) -> Keypoints:
    """The stored keypoints of one image as :class:`core.data.keypoints.Keypoints`."""
    rows = arrays["keypoints"]
    return Keypoints(xy=rows[:, :2], response=rows[:, 2], size=rows[:, 3])


SIFT = Analysis(name="sift", params=SiftParams, compute=compute, batch_size=64,
                outputs={"keypoints": Output("float32", "keypoint field")})
