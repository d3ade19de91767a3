"""Attention matrices and their gradients for the class being explained
(SPEC "Attention aggregation": gradient rollout and relevance).

One instrumented forward keeps the graph (``capture.forward(..., grad=True)``);
the logit of each image's chosen class is summed over the batch and
differentiated with respect to every captured ``A`` with
``torch.autograd.grad``. Images are independent in eval mode, so the sum gives
each image its own ``dY_c / dA``. The gradients come back in the order of the
``inputs`` given, which is the forward (layer) order of ``per_layer``: pairing
is by layer index, never by the order in which backward hooks fire.
"""
from __future__ import annotations

import torch

from core import capture
from core.models import LoadedModel


def explained_classes(logits: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """The class explained per image: `target` when given, else the prediction."""
    if target is None:
        return logits.detach().argmax(dim=-1)
    return torch.as_tensor(target, device=logits.device).long().reshape(len(logits))


def attention_and_gradients(lm: LoadedModel, x: torch.Tensor,
                            target: torch.Tensor | None = None
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A, dY_c/dA, c): A and its gradient B x L x H x T x T, c the classes (B,)."""
    with torch.enable_grad():
        out = capture.forward(lm, x, grad=True)
        classes = explained_classes(out.logits, target)
        chosen = out.logits.gather(1, classes[:, None]).sum()
        grads = torch.autograd.grad(chosen, out.per_layer)
    return out.attention, torch.stack(grads, dim=1).detach(), classes
