"""Attention matrices and their gradients for the class being explained
(SPEC "Attention aggregation": gradient rollout and relevance).

One instrumented forward keeps the graph (``capture.forward(..., grad=True)``);
the logit of each image's chosen class (or its score ``s``) is summed over the batch and
differentiated with respect to every captured ``A`` with
``torch.autograd.grad``. Images are independent in eval mode, so the sum gives
each image its own ``dY_c / dA``. The gradients come back in the order of the
``inputs`` given, which is the forward (layer) order of ``per_layer``: pairing
is by layer index, never by the order in which backward hooks fire. Forward and
backward run under the model's lock.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from core.model import LoadedModel, capture
from core.model.targets import Explained, Targets


def attention_and_gradients(lm: LoadedModel, x: torch.Tensor, targets: Targets | None = None,
                            of: Literal["logit", "loss"] = "logit"
                            ) -> tuple[torch.Tensor, torch.Tensor, Explained]:
    """(A, dY/dA, explained): A and its gradient, each batch x layer x head x query x
    key, and what each image is explained on. Y is the logit of class c (`of` =
    "logit") or the cross-entropy loss -log P[c] (`of` = "loss", Michel et al. 2019);
    for a model without classes the score s, or -s (SPEC "Models without class
    scores")."""
    with lm.lock, torch.enable_grad():
        out = capture.forward(lm, x, grad=True)
        explained = Explained.of(out.logits, targets, lm.has_classes)
        scores = explained.logit(out.logits) if of == "logit" else explained.loss(out.logits)
        grads = list(torch.autograd.grad(scores.sum(), out.per_layer))
    return consumed(out.per_layer), consumed(grads), explained


@dataclass(frozen=True)
class Pass:
    """One instrumented forward and backward of a batch, read by every one-pass method
    of ``core.explain.METHODS`` (SPEC "Attention aggregation")."""

    x: torch.Tensor  # batch x channel x height x width
    attention: torch.Tensor  # batch x layer x head x query x key
    grads: torch.Tensor  # dY/dA, the same shape
    explained: Explained


def one_pass(lm: LoadedModel, x: torch.Tensor, targets: Targets | None = None) -> Pass:
    """The :class:`Pass` of batch `x`, Y the logit of each image's target (None: the
    prediction; the score s for a model without classes)."""
    attention, grads, explained = attention_and_gradients(lm, x, targets)
    return Pass(x, attention, grads, explained)


def consumed(per_layer: list[torch.Tensor]) -> torch.Tensor:
    """Layers of batch x head x query x key stacked into batch x layer x ..., detached,
    each entry of `per_layer` dropped once copied (so that both are never held whole)."""
    out = per_layer[0].new_empty(per_layer[0].shape[0], len(per_layer), *per_layer[0].shape[1:])
    for i in range(len(per_layer)):
        out[:, i] = per_layer[i].detach()
        per_layer[i] = None
    return out
