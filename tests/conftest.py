"""Shared fixtures: the demo model and a small random-init timm ViT."""
from __future__ import annotations

import pytest
import torch

from core.model import LoadedModel, load_model
from testing.models import random_vit


@pytest.fixture(scope="session")
def demo() -> LoadedModel:
    return load_model("demo", device="cpu")


@pytest.fixture(scope="session")
def deit_tiny() -> tuple[LoadedModel, torch.nn.Module]:
    return random_vit("deit_tiny_distilled")
