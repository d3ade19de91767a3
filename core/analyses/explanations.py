"""The per-image analysis ``explanations`` (SPEC "Attention aggregation"): the map of
every attention method with the Rollout page's settings (one forward and one backward
each; the costly patch ablation is ``core.analyses.ablation_map``), and the per-layer
maps.
Its target is the class the gradient methods explain (default: the prediction)."""
from __future__ import annotations

import torch

from core.analyses.base import Analysis, Output, per_image
from core.explain import METHODS, GradientRolloutParams, RolloutParams, explain
from core.explain.attention import layer_maps
from core.model import LoadedModel, logits
from core.model.targets import Explained, Targets
from core.storage.cache import Arrays

MAP_METHODS = tuple(name for name, m in METHODS.items()
                    if name != "random" and not m.costly)  # maps drawn side by side, at
# the cost of one forward and one backward (patch ablation: ``core.analyses.ablation_map``)


def method_params(method: str, params: RolloutParams) -> object | None:
    """The parameters of `method` taken from the page's rollout settings."""
    if METHODS[method].params is RolloutParams:
        return params
    if METHODS[method].params is GradientRolloutParams:
        return GradientRolloutParams(params.discard_ratio, params.start_layer)
    return None


def compute(lm: LoadedModel, images: torch.Tensor, targets: Targets,
            params: RolloutParams) -> list[Arrays]:
    """Per image: ``maps`` (method patch) in MAP_METHODS order, ``layer_cls`` and
    ``layer_score`` (layer patch) and ``class`` (the class explained; -1 for a model
    without classes)."""
    x = images.to(lm.device)
    explained = Explained.of(logits(lm, x), targets, lm.has_classes)
    maps = torch.stack([explain(lm, x, m, explained.resolved(targets), method_params(m, params))
                        for m in MAP_METHODS], dim=1)
    layers = layer_maps(lm, x)
    return per_image({"maps": maps.cpu().numpy(),
                      "layer_cls": layers["cls"].float().cpu().numpy(),
                      "layer_score": layers["score"].float().cpu().numpy(),
                      "class": explained.stored()}, len(x))


EXPLANATIONS = Analysis(
    name="explanations", params=RolloutParams, compute=compute, target="prediction",
    version=3,  # 3: patch ablation left for its own analysis
    outputs={"maps": Output("float32", "method patch"),
             "layer_cls": Output("float32", "layer patch"),
             "layer_score": Output("float32", "layer patch"),
             "class": Output("int64")},
    batch_size=16, precompute=False)
