"""Attention matrices and their gradients for the class being explained
(SPEC "Attention aggregation": gradient rollout and relevance).

One instrumented forward keeps the graph (``capture.forward(..., grad=True)``);
the logit of each image's chosen class is summed over the batch and
differentiated with respect to every captured ``A`` with
``torch.autograd.grad``. Images are independent in eval mode, so the sum gives
each image its own ``dY_c / dA``. The gradients come back in the order of the
``inputs`` given, which is the forward (layer) order of ``per_layer``: pairing
is by layer index, never by the order in which backward hooks fire. Forward and
backward run under the model's lock.
"""
from __future__ import annotations

from typing import Literal

import torch

from core.model import LoadedModel, capture
from core.model.targets import Targets, classes_of


def attention_and_gradients(lm: LoadedModel, x: torch.Tensor, targets: Targets | None = None,
                            of: Literal["logit", "loss"] = "logit"
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A, dY/dA, c): A and its gradient, each batch x layer x head x query x key, and
    c the classes explained (batch,). Y is the logit of class c (`of` = "logit") or the
    cross-entropy loss -log P[c] (`of` = "loss", Michel et al. 2019)."""
    with lm.lock, torch.enable_grad():
        out = capture.forward(lm, x, grad=True)
        classes = classes_of(out.logits, targets)
        scores = out.logits if of == "logit" else -out.logits.log_softmax(-1)
        chosen = scores.gather(1, classes[:, None]).sum()
        grads = torch.autograd.grad(chosen, out.per_layer)
    return out.attention, torch.stack(grads, dim=1).detach(), classes
