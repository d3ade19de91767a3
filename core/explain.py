"""One uniform call for every explanation method (SPEC "Attention aggregation",
"Faithfulness of explanations"), captum style:

    explain(lm, x, method, target=None, **params) -> B x G map over the patches

`target` holds the class explained per image (None: the predicted class);
class-agnostic methods ignore it. `params` are the method's own settings.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import torch

from core.layer_maps import raw_attention
from core.models import LoadedModel
from core.relevance import relevance
from core.rollout import attention_rollout, gradient_rollout


def random_map(lm: LoadedModel, x: torch.Tensor, target: torch.Tensor | None = None
               ) -> torch.Tensor:
    """B x G uniform noise, seeded by each image's content (the same image gets
    the same map in any batch): the baseline of every faithfulness table."""
    maps = []
    for image in x.detach().cpu().float():
        seed = int.from_bytes(hashlib.blake2b(image.numpy().tobytes(), digest_size=8).digest())
        generator = torch.Generator().manual_seed(seed % 2**63)
        maps.append(torch.rand(lm.grid[0] * lm.grid[1], generator=generator))
    return torch.stack(maps).to(lm.device)


@dataclass(frozen=True)
class Method:
    label: str  # shown in tables and captions
    explain: Callable[..., torch.Tensor]  # (lm, x, target=None, **params) -> B x G
    class_specific: bool  # whether the map depends on the explained class


METHODS: dict[str, Method] = {
    "rollout": Method("Attention rollout", attention_rollout, False),
    "gradient_rollout": Method("Gradient rollout", gradient_rollout, True),
    "relevance": Method("Gradient-weighted relevance", relevance, True),
    "raw_attention": Method("Last-layer raw attention", raw_attention, False),
    "random": Method("Random map (baseline)", random_map, False),
}


def explain(lm: LoadedModel, x: torch.Tensor, method: str, target: torch.Tensor | None = None,
            **params) -> torch.Tensor:
    """The B x G map of `method` for the batch `x` (float32, detached)."""
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; use one of {', '.join(METHODS)}.")
    return METHODS[method].explain(lm, x, target, **params).detach().float()
