"""The capturing forward as an analysis that is never stored (SPEC "Capturing
attention"): one instrumented forward per batch (``core.model.capture.forward``), whose
logits and attention every analysis that reads it (``forward``, ``strength``,
``patterns``, ``keypoints``) takes from memory, so that one batch is captured once
however many of them the engine runs together."""
from __future__ import annotations

import torch

from core.analyses.base import Analysis, NoParams
from core.model import LoadedModel, capture
from core.model.targets import Targets


def compute(lm: LoadedModel, images: torch.Tensor, targets: Targets,
            params: NoParams) -> capture.Capture:
    """The batch's capture: logits (batch output) and attention (batch layer head query
    key)."""
    return capture.forward(lm, images)


CAPTURE = Analysis(name="capture", params=NoParams, compute=compute, outputs={},
                   stored=False, precompute=False)
