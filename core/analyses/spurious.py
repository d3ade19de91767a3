"""The "spurious" analysis: how much of an explanation lies outside the object, and
what the model predicts without the outside (SPEC "Keypoints and spurious
correlations", seed paper 002).

- Object, per image: its mask reduced to patches (``core.data.objects``), given by
  the engine; where an image has none, its keypoint patches ``K`` stand in; where SIFT
  finds no keypoint either, the object is empty (``object_source`` "none": every
  patch is outside, the score is 1 and the counterfactual removes every patch).
- Spurious score, for every method of ``core.explain.METHODS`` (default parameters,
  explaining the target class, by default the prediction): ``sum of m outside the
  object / sum of m`` with negative values of ``m`` set to 0 first; 0 for a map with
  no positive value.
- Counterfactual ("prompting" in the paper): the outside patches are removed as in
  the faithfulness tests (pixels set to the dataset mean, zero after normalisation)
  and the model runs again: the explained class's probability before and after, and
  the top-1 class before and after.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from core.analyses.base import Analysis, Output, per_image
from core.analyses.faithfulness import METHOD_NAMES, patch_pixels
from core.data.keypoints import concentration, detect_input
from core.explain import explain
from core.model import LoadedModel, logits
from core.model.targets import Explained, Targets
from core.storage.cache import Arrays

OBJECT_SOURCES = ("mask", "keypoints", "none")  # object_source codes 0, 1, 2
DEFAULT_METHOD = "relevance"  # SPEC: gradient-weighted relevance by default


@dataclass(frozen=True)
class SpuriousParams:
    min_side: int = 224  # keypoint detection (where an image has no mask), as KeypointParams


def outside_share(maps: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """Spurious score: (..., patch) maps against (..., patch) object flags -> (...,)."""
    positive = maps.clamp_min(0)
    total = positive.sum(-1)
    outside = (positive * (~inside).to(positive.dtype)).sum(-1)
    return torch.where(total > 0, outside / total.clamp_min(1e-30), torch.zeros_like(total))


def keypoint_object(lm: LoadedModel, x: torch.Tensor, min_side: int) -> torch.Tensor:
    """(patch,) bool: the patches holding a SIFT keypoint of input `x` (channel, H, W)."""
    points = detect_input(lm, x, min_side)
    return torch.from_numpy(concentration(points, lm.grid, lm.patch_size) > 0)


def objects_of(lm: LoadedModel, x: torch.Tensor, objects: Sequence[torch.Tensor | None] | None,
               min_side: int) -> tuple[torch.Tensor, list[int]]:
    """Each image's object (batch x patch, bool): its mask, else its keypoint patches
    (SPEC "Keypoints and spurious correlations"), and where it came from (codes of
    OBJECT_SOURCES)."""
    objects = objects if objects is not None else [None] * len(x)
    inside, source = [], []
    for image, given in zip(x, objects):
        flags = given if given is not None else keypoint_object(lm, image.cpu(), min_side)
        inside.append(flags.to(x.device))
        source.append(0 if given is not None else 1 if bool(flags.any()) else 2)
    return torch.stack(inside), source


def compute(lm: LoadedModel, images: torch.Tensor, targets: Targets, params: SpuriousParams,
            objects: Sequence[torch.Tensor | None] | None = None) -> list[Arrays]:
    """Per image: ``score`` (method), ``inside`` (patch, bool), ``object_source`` (code of
    OBJECT_SOURCES), ``class``, ``probability_before`` and ``probability_after`` (of the
    explained class, in [0, 1]), ``top_before`` and ``top_after``. For a model without
    classes the probabilities are the score ``s`` and ``class``, ``top_*`` are -1.
    objects: per image its (patch,) object flags, or None (no mask; the default)."""
    x = images.to(lm.device)
    inside_t, source = objects_of(lm, x, objects, params.min_side)
    before = logits(lm, x)
    explained = Explained.of(before, targets, lm.has_classes)
    maps = torch.stack([explain(lm, x, name, explained.resolved(targets))
                        for name in METHOD_NAMES], 1)
    removed = patch_pixels(lm, ~inside_t).to(x.dtype)
    after = logits(lm, x * (1 - removed))

    def probability(values: torch.Tensor) -> np.ndarray:
        return explained.score(values).float().cpu().numpy()

    def top(values: torch.Tensor) -> np.ndarray:
        if not lm.has_classes:
            return np.full(len(values), -1, dtype=np.int64)
        return values.argmax(-1).cpu().numpy().astype(np.int64)

    arrays = {"score": outside_share(maps, inside_t[:, None]).float().cpu().numpy(),
              "inside": inside_t.cpu().numpy(),
              "object_source": np.asarray(source, dtype=np.int64),
              "class": explained.stored(),
              "probability_before": probability(before),
              "probability_after": probability(after),
              "top_before": top(before), "top_after": top(after)}
    return per_image(arrays, len(x))


SPURIOUS = Analysis(
    name="spurious", params=SpuriousParams, compute=compute, target="prediction",
    reads_objects=True, batch_size=32,
    version=2,  # 2: patch ablation joined the methods
    outputs={"score": Output("float32", "method"), "inside": Output("bool", "patch"),
             "object_source": Output("int64"), "class": Output("int64"),
             "probability_before": Output("float32"), "probability_after": Output("float32"),
             "top_before": Output("int64"), "top_after": Output("int64")})
