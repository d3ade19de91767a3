"""Shared fixtures: the demo model and a small random-init timm ViT."""
from __future__ import annotations

import os

import pytest
import torch

from core.model import LoadedModel, load_model
from testing.models import random_vit


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker takes its share of the cores for torch and for the
    processes it starts (N workers each running torch on every core oversubscribe the
    machine, and torch's waiting threads then slow every worker)."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        share = max(1, (os.cpu_count() or 1) // int(workers))
        torch.set_num_threads(share)
        os.environ["OMP_NUM_THREADS"] = str(share)


@pytest.fixture(scope="session")
def demo() -> LoadedModel:
    return load_model("demo", device="cpu")


@pytest.fixture(scope="session")
def deit_tiny() -> tuple[LoadedModel, torch.nn.Module]:
    return random_vit("deit_tiny_distilled")
