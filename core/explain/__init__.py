"""Explanation methods (SPEC "Attention aggregation", "Faithfulness of explanations"):
one registry and one call, captum style::

    explain(lm, x, method, targets=None, params=None) -> batch x patch map

`targets` holds one class per image (None, or None entries: the predicted class);
class-agnostic methods ignore it. `params` is the method's frozen parameter dataclass
(None: its defaults). Adding a method is one function plus one line in METHODS.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from core.explain.ablation import AblationParams, patch_ablation
from core.explain.attention import (random_map, random_of_pass, raw_attention,
                                    raw_attention_of_pass)
from core.explain.gradients import Pass, one_pass
from core.explain.relevance import relevance, relevance_of_pass
from core.explain.rollout import (GradientRolloutParams, RolloutParams, attention_rollout,
                                  gradient_rollout, gradient_rollout_of_pass, rollout_of_pass)
from core.model import LoadedModel
from core.model.targets import Targets
from core.parameters import parameters


@dataclass(frozen=True)
class Method:
    """An explanation method: its display name, the call, its parameters' dataclass
    (None: it has no parameters), whether the map depends on the class explained, and
    the map from one shared forward and backward (:class:`Pass`)."""

    label: str
    explain: Callable[[LoadedModel, torch.Tensor, Targets | None, Any], torch.Tensor]
    params: type | None
    class_specific: bool
    label_without_classes: str = ""  # the label for a model without classes, where the
    # label names a probability ("": the same label)
    from_pass: Callable[[LoadedModel, Pass, Any], torch.Tensor] | None = None  # None: the
    # method needs forwards of its own, many per image (drawn on request for large models)

    @property
    def costly(self) -> bool:
        return self.from_pass is None

    def label_for(self, lm: LoadedModel) -> str:
        """The display name for model `lm`."""
        return self.label if lm.has_classes else (self.label_without_classes or self.label)


METHODS: dict[str, Method] = {
    "rollout": Method("Attention rollout", attention_rollout, RolloutParams, False,
                      from_pass=rollout_of_pass),
    "gradient_rollout": Method("Gradient rollout", gradient_rollout, GradientRolloutParams,
                               True, from_pass=gradient_rollout_of_pass),
    "relevance": Method("Gradient-weighted relevance", relevance, None, True,
                        from_pass=relevance_of_pass),
    "raw_attention": Method("Last-layer raw attention", raw_attention, None, False,
                            from_pass=raw_attention_of_pass),
    "ablation": Method("Patch ablation (probability drop)", patch_ablation, AblationParams,
                       True, "Patch ablation (score drop)"),
    "random": Method("Random map (baseline)", random_map, None, False,
                     from_pass=random_of_pass),
}


def explain(lm: LoadedModel, x: torch.Tensor, method: str, targets: Targets | None = None,
            params: Any = None) -> torch.Tensor:
    """The batch x patch map of `method` for the batch `x` (float32, detached)."""
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; use one of {', '.join(METHODS)}.")
    chosen = METHODS[method]
    if chosen.params is None:
        if params is not None:
            raise TypeError(f"{method} takes no parameters")
    else:
        params = parameters(chosen.params, params, method)
    return chosen.explain(lm, x, targets, params).detach().float()


__all__ = ["AblationParams", "GradientRolloutParams", "METHODS", "Method", "Pass",
           "RolloutParams", "explain", "one_pass"]
