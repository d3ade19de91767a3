"""The per-image analysis ``objects``: the patches of each image's object (its mask,
else its keypoint patches; SPEC "Keypoints and spurious correlations") and where it
came from, without the explanation maps and the counterfactual of
``core.analyses.spurious`` (which cost patch ablation's forwards): what the Keypoints
page draws over the selected image."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from core.analyses.base import Analysis, Output, per_image
from core.analyses.spurious import SpuriousParams, objects_of
from core.model import LoadedModel
from core.model.targets import Targets
from core.storage.cache import Arrays


def compute(lm: LoadedModel, images: torch.Tensor, targets: Targets, params: SpuriousParams,
            objects: Sequence[torch.Tensor | None] | None = None) -> list[Arrays]:
    """Per image: ``inside`` (patch, bool) and ``object_source`` (code of
    ``spurious.OBJECT_SOURCES``)."""
    inside, source = objects_of(lm, images, objects, params.min_side)
    return per_image({"inside": inside.cpu().numpy(),
                      "object_source": np.asarray(source, dtype=np.int64)}, len(images))


OBJECTS = Analysis(
    name="objects", params=SpuriousParams, compute=compute, reads_objects=True,
    outputs={"inside": Output("bool", "patch"), "object_source": Output("int64")},
    precompute=False)  # the spurious analysis stores the same flags in the precompute
