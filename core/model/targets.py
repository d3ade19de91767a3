"""The one target convention: the class an image is explained or measured on.

Analyses and explanation methods receive one target per image, an int class index
or None for the image's own predicted class (resolved here, from the logits of the
forward pass they run anyway). The engine turns a user's choice (true label,
prediction, one class) into these per-image targets.
"""
from __future__ import annotations

from typing import Sequence

import torch

Targets = Sequence[int | None]  # one class per image; None: the image's predicted class


def classes_of(logits: torch.Tensor, targets: Targets | None) -> torch.Tensor:
    """The class of each image (batch,): its target, else its prediction (`targets`
    None: every image's prediction)."""
    predicted = logits.detach().argmax(-1).tolist()
    targets = [None] * len(predicted) if targets is None else list(targets)
    if len(targets) != len(predicted):
        raise ValueError(f"{len(targets)} targets for {len(predicted)} images")
    return torch.tensor([p if t is None else int(t) for t, p in zip(targets, predicted)],
                        device=logits.device)
