"""The per-image analysis ``objects``: the one definition of an image's object (SPEC
"Keypoints and spurious correlations", "Faithfulness of explanations"), read by the
pointing game and IoU (``faithfulness``), the spurious score (``spurious``) and the
Keypoints page.

- Its mask reduced to patches (``core.data.objects``: a user's ``masks/NAME.png``, or
  for the built-in sets their pixels above the black background dilated by one patch),
  given by the engine;
- where an image has none, its SIFT keypoint patches ``K`` (read from
  ``core.analyses.sift``) stand in;
- where SIFT finds no keypoint either, the object is empty (source "none").
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from core.analyses.base import Analysis, Output, Read, per_image
from core.analyses.sift import SIFT, SiftParams, keypoints_of
from core.data.keypoints import concentration
from core.model import LoadedModel
from core.model.targets import Targets
from core.storage.cache import Arrays

OBJECT_SOURCES = ("mask", "keypoints", "none")  # object_source codes 0, 1, 2
MASK = OBJECT_SOURCES.index("mask")


def compute(lm: LoadedModel, images: torch.Tensor, targets: Targets, params: SiftParams,
            objects: Sequence[torch.Tensor | None], reads: dict) -> list[Arrays]:
    """Per image: ``inside`` (patch, bool) and ``object_source`` (code of
    OBJECT_SOURCES). objects: per image its (patch,) mask flags, or None."""
    inside, source = [], []
    for given, found in zip(objects, reads[SIFT.name]):
        if given is None:
            c = concentration(keypoints_of(found), lm.grid, lm.patch_size)
            given = torch.from_numpy(c > 0)
            source.append(1 if bool(given.any()) else 2)
        else:
            source.append(MASK)
        inside.append(given.cpu())
    return per_image({"inside": torch.stack(inside).numpy(),
                      "object_source": np.asarray(source, dtype=np.int64)}, len(images))


OBJECTS = Analysis(
    name="objects", params=SiftParams, compute=compute, reads_objects=True,
    reads=(Read(SIFT, lambda params: params),), version=2,  # 2: read from sift
    outputs={"inside": Output("bool", "patch"), "object_source": Output("int64")})
