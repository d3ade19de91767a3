"""The per-image analysis ``ablation_map``: the patch ablation map of
``core.explain.ablation`` for the image's target (default: the prediction), on its
own because it costs one forward per patch group where the other maps of
``core.analyses.explanations`` cost one forward and one backward (SPEC "Attention
aggregation", "Faithfulness of explanations")."""
from __future__ import annotations

import torch

from core.analyses.base import Analysis, Output, per_image
from core.explain import AblationParams, explain
from core.explain.ablation import group_side, patch_groups
from core.model import LoadedModel, logits
from core.model.targets import Explained, Targets
from core.storage.cache import Arrays


def ablation_forwards(lm: LoadedModel, params: AblationParams = AblationParams()) -> int:
    """Patch ablation of one image: a forward without each group of patches."""
    return len(patch_groups(lm.grid, group_side(lm.grid, params.group)))


def compute(lm: LoadedModel, images: torch.Tensor, targets: Targets,
            params: AblationParams) -> list[Arrays]:
    """Per image: ``map`` (patch, float32: the drop when the patch is removed) and
    ``class`` (the class explained; -1 for a model without classes)."""
    x = images.to(lm.device)
    explained = Explained.of(logits(lm, x), targets, lm.has_classes)
    drop = explain(lm, x, "ablation", explained.resolved(targets), params)
    return per_image({"map": drop.cpu().numpy(), "class": explained.stored()}, len(x))


ABLATION_MAP = Analysis(
    name="ablation_map", params=AblationParams, compute=compute, target="prediction",
    outputs={"map": Output("float32", "patch"), "class": Output("int64")},
    forwards=ablation_forwards, batch_size=16,
    precompute=False)  # the faithfulness analysis computes it in the precompute (its maps
    # hold every method's)
