"""A fast estimate of head importance from one backward pass (Michel et al. 2019,
"Are Sixteen Heads Really Better than One?", section 4.1), beside the exact
leave-one-out of SPEC "Head pruning".

Michel et al. put a gate ``xi_h`` on each head's output and take
``I_h = |dL/dxi_h|`` at ``xi = 1``, the first-order change of the loss when the head
is removed. With the gate on the attention matrix (pruning sets ``A`` to zero, as in
the SPEC) that is ``|sum over query, key of A[l, h] * dL/dA[l, h]|``. ``L`` is the
cross-entropy of the image's target, ``-log P[y]`` (``y``: the true label, else the
prediction, as ``prob``), so the estimate is closest to the exact ``prob`` drop.
Dataset level: Michel et al. average the per-image absolute values; how well the
estimate ranks heads against the exact values is the step
``core.dataset.estimate_agreement`` (Spearman rank correlation).

One instrumented forward and one backward per batch
(``core.explain.gradients.attention_and_gradients``), under the model's lock.
"""
from __future__ import annotations

import numpy as np
import torch

from core.analyses.base import Analysis, NoParams, Output
from core.explain.gradients import attention_and_gradients
from core.model import LoadedModel
from core.model.targets import Targets
from core.storage.cache import Arrays


def head_estimate(lm: LoadedModel, x: torch.Tensor, targets: Targets) -> torch.Tensor:
    """``|sum A * dL/dA|`` per head: image x layer x head (float64)."""
    attention, grads, _ = attention_and_gradients(lm, x, targets, of="loss")
    return (attention.double() * grads.double()).sum(dim=(-2, -1)).abs().cpu()


def compute(lm: LoadedModel, images: torch.Tensor, targets: Targets,
            params: NoParams) -> list[Arrays]:
    """Per image: ``estimate`` (layer head, float32)."""
    values = head_estimate(lm, images, targets).numpy().astype(np.float32)
    return [{"estimate": v} for v in values]


IMPORTANCE_ESTIMATE = Analysis(
    name="importance_estimate", params=NoParams, compute=compute, target="label",
    outputs={"estimate": Output("float32", "layer head")}, batch_size=16)
