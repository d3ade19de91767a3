"""The rollout page's per-image analysis ``explanations`` (SPEC "Attention
aggregation"): every method's map with the page's settings, and the per-layer
maps, for one image or a batch, through the engine's cache."""
from __future__ import annotations

import numpy as np
import torch

from core import capture
from core.attention_gradients import explained_classes
from core.cache import Arrays
from core.engine import Analysis
from core.explain import explain
from core.layer_maps import layer_maps
from core.models import LoadedModel

MAP_METHODS = ("rollout", "gradient_rollout", "relevance", "raw_attention")
DEFAULTS = {"fusion": "mean", "discard_ratio": 0.0, "start_layer": 0, "target": None}


def compute(lm: LoadedModel, batch: torch.Tensor, params: dict) -> list[Arrays]:
    """Per image: ``maps`` (4, G) in MAP_METHODS order, ``layer_cls`` and
    ``layer_score`` (L, G), ``class`` (the class explained).

    params: ``fusion``, ``discard_ratio``, ``start_layer`` (rollout; the last two
    also for gradient rollout) and ``target``: a class index explained for every
    image of the batch, or None for each image's prediction.
    """
    p = {**DEFAULTS, **params}
    x = batch.to(lm.device)
    target = None if p["target"] is None else torch.full((len(x),), int(p["target"]))
    classes = explained_classes(capture.logits(lm, x), target)
    rolled = {"discard_ratio": float(p["discard_ratio"]), "start_layer": int(p["start_layer"])}
    settings = {"rollout": {**rolled, "fusion": p["fusion"]}, "gradient_rollout": rolled}
    maps = torch.stack([explain(lm, x, m, classes, **settings.get(m, {})) for m in MAP_METHODS],
                       dim=1).cpu().numpy()
    layers = {k: v.float().cpu().numpy() for k, v in layer_maps(lm, x).items()}
    return [{"maps": maps[b], "layer_cls": layers["cls"][b], "layer_score": layers["score"][b],
             "class": np.asarray(int(classes[b]))} for b in range(len(x))]


EXPLANATIONS = Analysis(name="explanations", compute=compute, batch_size=16)
