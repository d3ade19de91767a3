"""Shared fixtures: the demo model and small random-init timm ViTs."""
from __future__ import annotations

import copy

import pytest
import timm
import torch

from core.models import LoadedModel, from_module, load_model

# name -> (timm name, keyword overrides, expected prefix tokens, expected grid)
TIMM_CASES = {
    "deit_tiny_distilled": ("deit_tiny_distilled_patch16_224", {}, 2, (14, 14)),
    "registers": ("vit_small_patch14_reg4_dinov2", {"img_size": 56, "depth": 3}, 5, (4, 4)),
    "patch32": ("vit_base_patch32_224", {"depth": 2}, 1, (7, 7)),
    "patch8_nonsquare": ("vit_tiny_patch16_224", {"patch_size": 8, "img_size": (32, 48)},
                         1, (4, 6)),
}


@pytest.fixture(scope="session")
def demo() -> LoadedModel:
    return load_model("demo", device="cpu")


def random_vit(case: str) -> tuple[LoadedModel, torch.nn.Module]:
    """A random-init timm ViT prepared for capture, and an untouched deep copy."""
    name, kwargs, _, _ = TIMM_CASES[case]
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    untouched = copy.deepcopy(model)
    return from_module(model, name, device="cpu"), untouched


@pytest.fixture(scope="session")
def deit_tiny() -> tuple[LoadedModel, torch.nn.Module]:
    return random_vit("deit_tiny_distilled")


def random_input(lm: LoadedModel, batch: int = 2) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(batch, *lm.data_config["input_size"])
