"""The "forward" analysis: logits and the CLS attention of every layer and head
(SPEC "Capturing attention"), the basis of the predictions and attention
overlays shown on every page."""
from __future__ import annotations

import torch

from core import capture
from core.cache import Arrays
from core.engine import Analysis
from core.maps import cls_attention
from core.models import LoadedModel


def compute(lm: LoadedModel, batch: torch.Tensor, params: dict) -> list[Arrays]:
    """Per image: ``logits`` (classes,) and ``cls_attention`` (L, H, G), float32."""
    out = capture.forward(lm, batch)
    cls = cls_attention(out.attention, lm.num_prefix_tokens).float().cpu().numpy()
    logits = out.logits.float().cpu().numpy()
    return [{"logits": logits[b], "cls_attention": cls[b]} for b in range(len(batch))]


FORWARD = Analysis(name="forward", compute=compute, batch_size=64)
