"""A model's class names, or none: ImageNet descriptions from timm where it has them,
and whether it has no class scores at all (SPEC "Models without class scores")."""
from __future__ import annotations

import torch

EMBEDDING_TOWERS = ("clip", "siglip")  # name parts of image towers whose head is a
# projection into a shared embedding space, not a classifier


def imagenet_names(model: torch.nn.Module) -> list[str] | None:
    """ImageNet class descriptions from timm's class info, when the model has them."""
    from timm.data import ImageNetInfo, infer_imagenet_subset
    subset = infer_imagenet_subset(model)
    if subset is None:
        return None
    info = ImageNetInfo(subset)
    return [info.index_to_description(i) for i in range(model.num_classes)]


def headless(model: torch.nn.Module, name: str, class_names: list[str] | None) -> bool:
    """Whether `model` has no class scores (SPEC "Models without class scores"): no
    classifier (``num_classes == 0``, an identity head), or a projection head without
    class names in an embedding tower (CLIP, SigLIP)."""
    if getattr(model, "num_classes", 0) == 0 or isinstance(getattr(model, "head", None),
                                                             torch.nn.Identity):
        return True
    tower = any(part in name.lower() for part in EMBEDDING_TOWERS)
    return tower and not class_names and imagenet_names(model) is None
