"""A fast estimate of head importance from one backward pass (Michel et al. 2019,
"Are Sixteen Heads Really Better than One?", section 4.1), beside the exact
leave-one-out of SPEC "Head pruning".

Michel et al. put a gate ``xi_h`` on each head's output and take
``I_h = |dL/dxi_h|`` at ``xi = 1``, the first-order change of the loss when the head
is removed. With the gate on the attention matrix (pruning sets ``A`` to zero, as in
the SPEC) that is ``|sum over query, key of A[l, h] * dL/dA[l, h]|``. ``L`` is the
cross-entropy of the image's target, ``-log P[y]`` (``y``: the true label, else the
prediction, as ``prob``); for a model without classes ``-s``, so that ``signed``
estimates the ``sim`` drop ``s - s'`` (SPEC "Models without class scores").

Two outputs: ``estimate``, Michel et al.'s ``I_h`` (a magnitude: how much pruning
moves the loss, either way), and ``signed``, ``-sum A * dL/dA``, the first-order
estimate of ``log P[y] - log P'[y]`` (pruning at ``xi = 0`` is one step of -1 in
the gate), which has the sign of the exact ``prob`` drop ``P[y] - P'[y]``. On the
demo the signed one ranks heads like ``prob`` (mean Spearman 0.89 over 32 images)
where the magnitude does not (0.11: heads whose pruning *raises* P[y] rank high),
and the magnitude ranks them like ``jsd`` (0.76). Dataset level: Michel et al.
average the per-image absolute values; how well the estimate ranks heads against
the exact values is the step ``core.dataset.estimate_agreement``.

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


def signed_estimate(lm: LoadedModel, x: torch.Tensor, targets: Targets) -> torch.Tensor:
    """``-sum A * dL/dA`` per head: image x layer x head (float64); its absolute value is
    Michel et al.'s importance."""
    attention, grads, _ = attention_and_gradients(lm, x, targets, of="loss")
    per_layer = [(a * g).sum(dim=(-2, -1), dtype=torch.float64)  # one layer's product at
                 for a, g in zip(attention.unbind(1), grads.unbind(1))]  # a time
    return -torch.stack(per_layer, dim=1).cpu()


def compute(lm: LoadedModel, images: torch.Tensor, targets: Targets,
            params: NoParams) -> list[Arrays]:
    """Per image: ``estimate`` and ``signed`` (layer head, float32)."""
    signed = signed_estimate(lm, images, targets).numpy()
    return [{"estimate": np.abs(v).astype(np.float32), "signed": v.astype(np.float32)}
            for v in signed]


IMPORTANCE_ESTIMATE = Analysis(
    name="importance_estimate", params=NoParams, compute=compute, target="label",
    outputs={"estimate": Output("float32", "layer head"),
             "signed": Output("float32", "layer head")}, batch_size=16,
    forwards=lambda lm, params: 3.0)  # one forward and its backward (about two)


def estimate_label_of(output: str, lm: LoadedModel) -> str:
    """The axis title of estimate output `output` (``signed`` or ``estimate``)."""
    if output == "estimate":
        return "Estimated importance |dL/dgate| (Michel et al. 2019)"
    if lm.has_classes:
        return "Estimated log-probability drop of the true class (first order)"
    return "Estimated score drop s - s' (first order)"


def compared_with(metric: str) -> str:
    """The estimate output ranked against an exact metric: ``signed`` for the signed
    ``prob`` drop, the magnitude ``estimate`` for the others (all >= 0)."""
    return "signed" if metric in ("prob", "sim") else "estimate"
