"""The server's limits on models: its allow-list (``$VIT_EXPLORER_MODELS``,
comma-separated patterns such as ``demo*,deit_*``) and its parameter budget
(``$VIT_EXPLORER_MAX_PARAMS``, default DEFAULT_MAX_PARAMS)."""
from __future__ import annotations

import fnmatch
import os

import torch

from core.model.errors import ModelLoadError

DEFAULT_MAX_PARAMS = 400_000_000  # ViT-L (304 M) fits; ViT-H, giant and 7B models do not


def check_listed(name: str) -> None:
    """Refuse `name` when it is off the server's allow-list ($VIT_EXPLORER_MODELS)."""
    patterns = [p.strip() for p in os.environ.get("VIT_EXPLORER_MODELS", "").split(",")
                if p.strip()]
    if patterns and not any(fnmatch.fnmatchcase(name, p) for p in patterns):
        raise ModelLoadError(f"Model {name!r} is not among the models this server accepts "
                             f"({', '.join(patterns)}); choose one of those, or ask the "
                             "administrator to change VIT_EXPLORER_MODELS.")


def check_budget(skeleton: torch.nn.Module, name: str) -> None:
    """Refuse a model (its ``meta`` skeleton) over the parameter budget."""
    budget = int(os.environ.get("VIT_EXPLORER_MAX_PARAMS") or DEFAULT_MAX_PARAMS)
    count = sum(p.numel() for p in skeleton.parameters())
    if count > budget:
        raise ModelLoadError(f"Model {name!r} has {count:,} parameters, above this server's "
                             f"budget of {budget:,} (VIT_EXPLORER_MAX_PARAMS); choose a "
                             "smaller model.")
