"""The "spurious" analysis: how much of an explanation lies outside the object, and
what the model predicts without the outside (SPEC "Keypoints and spurious
correlations", seed paper 002).

- Object, per image: read from ``core.analyses.objects`` (its mask, else its keypoint
  patches, else empty: source "none", every patch is outside, the score is 1 and the
  counterfactual removes every patch).
- Spurious score, for every method of ``core.explain.METHODS`` (default parameters,
  explaining the target class, by default the prediction; the shared maps of
  ``core.analyses.explanations`` and ``ablation_map``): ``sum of m outside the object /
  sum of m`` with negative values of ``m`` set to 0 first; 0 for a map with no positive
  value.
- Counterfactual ("prompting" in the paper): the outside patches are removed as in
  the faithfulness tests (pixels set to the dataset mean, zero after normalisation)
  and the model runs again: the explained class's probability before and after, and
  the top-1 class before and after.
"""
from __future__ import annotations

import numpy as np
import torch

from core.analyses.ablation_map import ABLATION_MAP
from core.analyses.base import Analysis, Output, Read, per_image
from core.analyses.explanations import EXPLANATIONS, read_maps
from core.analyses.faithfulness import patch_pixels
from core.analyses.objects import OBJECTS
from core.analyses.sift import SiftParams
from core.model import LoadedModel, logits
from core.model.targets import Explained, Targets
from core.storage.cache import Arrays

DEFAULT_METHOD = "relevance"  # SPEC: gradient-weighted relevance by default


def outside_share(maps: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """Spurious score: (..., patch) maps against (..., patch) object flags -> (...,)."""
    positive = maps.clamp_min(0)
    total = positive.sum(-1)
    outside = (positive * (~inside).to(positive.dtype)).sum(-1)
    return torch.where(total > 0, outside / total.clamp_min(1e-30), torch.zeros_like(total))


def compute(lm: LoadedModel, images: torch.Tensor, targets: Targets, params: SiftParams,
            reads: dict) -> list[Arrays]:
    """Per image: ``score`` (method), ``inside`` (patch, bool) and ``object_source`` (as
    read from ``objects``), ``class``, ``probability_before`` and ``probability_after``
    (of the explained class, in [0, 1]), ``top_before`` and ``top_after``. For a model
    without classes the probabilities are the score ``s`` and ``class``, ``top_*`` are
    -1."""
    x = images.to(lm.device)
    objects = reads[OBJECTS.name]
    inside_t = torch.from_numpy(np.stack([o["inside"] for o in objects])).to(lm.device)
    before = logits(lm, x)
    explained = Explained.of(before, targets, lm.has_classes)
    maps = read_maps(reads, lm.device)
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
              "object_source": np.stack([o["object_source"] for o in objects]),
              "class": explained.stored(),
              "probability_before": probability(before),
              "probability_after": probability(after),
              "top_before": top(before), "top_after": top(after)}
    return per_image(arrays, len(x))


SPURIOUS = Analysis(
    name="spurious", params=SiftParams, compute=compute, target="prediction",
    batch_size=32, version=3,  # 3: the shared maps and objects
    reads=(Read(EXPLANATIONS), Read(ABLATION_MAP), Read(OBJECTS, lambda params: params)),
    outputs={"score": Output("float32", "method"), "inside": Output("bool", "patch"),
             "object_source": Output("int64"), "class": Output("int64"),
             "probability_before": Output("float32"), "probability_after": Output("float32"),
             "top_before": Output("int64"), "top_after": Output("int64")})
