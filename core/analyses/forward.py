"""The "forward" analysis: logits and the CLS attention of every layer and head
(SPEC "Capturing attention"), the basis of the predictions and attention
overlays shown on every page. It reads the batch's capture (``core.analyses.capture``)."""
from __future__ import annotations

import torch

from core.analyses.base import Analysis, NoParams, Output, Read, per_image
from core.analyses.capture import CAPTURE
from core.model import LoadedModel, capture
from core.model.targets import Targets
from core.storage.cache import Arrays


def compute(lm: LoadedModel, images: torch.Tensor, targets: Targets,
            params: NoParams, reads: dict) -> list[Arrays]:
    """Per image: ``logits`` (output: class logits, or the embedding of a model without
    classes) and ``cls_attention`` (layer head patch), float32."""
    out = reads[CAPTURE.name]
    cls = capture.cls_attention(out.attention, lm.num_prefix_tokens)
    return per_image({"logits": out.logits.float().cpu().numpy(),
                      "cls_attention": cls.float().cpu().numpy()}, len(images))


FORWARD = Analysis(
    name="forward", params=NoParams, compute=compute, reads=(Read(CAPTURE),),
    version=2,  # 2: the output axis is the embedding for models without classes
    outputs={"logits": Output("float32", "output"),
             "cls_attention": Output("float32", "layer head patch")})
