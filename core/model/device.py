"""Which device a model runs on."""
from __future__ import annotations

import os

import torch


def pick_device(setting: str | None = None) -> torch.device:
    """CUDA when present, else CPU; `setting` or $VIT_EXPLORER_DEVICE overrides."""
    setting = setting or os.environ.get("VIT_EXPLORER_DEVICE")
    if setting:
        return torch.device(setting)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
