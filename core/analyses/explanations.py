"""The per-image analysis ``explanations`` (SPEC "Attention aggregation"): the shared
maps. It holds the map of every method of ``core.explain.METHODS`` read from one shared
forward and backward (``core.explain.one_pass``: the attention of every layer and its
gradient), the random baseline included, with the Rollout page's settings, and the
per-layer maps from the same attention. The costly patch ablation is
``core.analyses.ablation_map``; :func:`every_map` joins the two in METHODS order.
The faithfulness tests, the spurious score, the Rollout and Compare pages and the
report all read these maps rather than computing their own.
Its target is the class the gradient methods explain (default: the prediction)."""
from __future__ import annotations

import torch

import numpy as np

from core.analyses.ablation_map import ABLATION_MAP
from core.analyses.base import Analysis, Output, per_image
from core.explain import METHODS, GradientRolloutParams, RolloutParams, one_pass
from core.explain.attention import cls_map, score_map
from core.model import LoadedModel
from core.model.targets import Targets
from core.storage.cache import Arrays

CHEAP_METHODS = tuple(name for name, m in METHODS.items() if not m.costly)  # the rows of
# ``maps``: read from one shared pass (patch ablation: ``core.analyses.ablation_map``)
MAP_METHODS = tuple(name for name in CHEAP_METHODS if name != "random")  # drawn side by side


def method_params(method: str, params: RolloutParams) -> object | None:
    """The parameters of `method` taken from the page's rollout settings."""
    if METHODS[method].params is RolloutParams:
        return params
    if METHODS[method].params is GradientRolloutParams:
        return GradientRolloutParams(params.discard_ratio, params.start_layer)
    return None


def compute(lm: LoadedModel, images: torch.Tensor, targets: Targets,
            params: RolloutParams) -> list[Arrays]:
    """Per image: ``maps`` (cheap_method patch) in CHEAP_METHODS order, ``layer_cls`` and
    ``layer_score`` (layer patch) and ``class`` (the class explained; -1 for a model
    without classes)."""
    shared = one_pass(lm, images.to(lm.device), targets)
    maps = torch.stack([METHODS[m].from_pass(lm, shared, method_params(m, params))
                        for m in CHEAP_METHODS], dim=1)
    p = lm.num_prefix_tokens
    return per_image({"maps": maps.float().cpu().numpy(),
                      "layer_cls": cls_map(shared.attention, p).float().cpu().numpy(),
                      "layer_score": score_map(shared.attention, p).float().cpu().numpy(),
                      "class": shared.explained.stored()}, len(shared.x))


EXPLANATIONS = Analysis(
    name="explanations", params=RolloutParams, compute=compute, target="prediction",
    version=4,  # 4: the random baseline's map joined (the shared pass, later, gives the
    # same values as one forward per method: the entries stay)
    outputs={"maps": Output("float32", "cheap_method patch"),
             "layer_cls": Output("float32", "layer patch"),
             "layer_score": Output("float32", "layer patch"),
             "class": Output("int64")},
    forwards=lambda lm, params: 3.0,  # one forward and its backward (about two)
    batch_size=16, precompute=False)


def drawn(arrays: Arrays) -> np.ndarray:
    """(map_method patch): the rows of ``maps`` drawn side by side (MAP_METHODS)."""
    return arrays["maps"][[CHEAP_METHODS.index(m) for m in MAP_METHODS]]


def every_map(explained: Arrays, ablation: Arrays) -> np.ndarray:
    """(method patch) in ``core.explain.METHODS`` order from one image's
    ``explanations`` and ``ablation_map`` arrays."""
    rows = {name: row for name, row in zip(CHEAP_METHODS, explained["maps"])}
    rows["ablation"] = ablation["map"]
    return np.stack([rows[name] for name in METHODS])


def read_maps(reads: dict, device: torch.device) -> torch.Tensor:
    """(image, method, patch) in METHODS order from what a reader of ``explanations`` and
    ``ablation_map`` is given (``reads``), on `device`."""
    return torch.from_numpy(np.stack([every_map(e, a) for e, a in zip(
        reads[EXPLANATIONS.name], reads[ABLATION_MAP.name])])).to(device)
