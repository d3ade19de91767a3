"""A loaded model: the module and everything the analyses need to know about it (its
tokens, grid, classes, input preprocessing and its inverse, lock and kernel slot)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from core.model.kernel_choice import KernelChoice


@dataclass
class LoadedModel:
    """A ready model and everything the analyses need to know about it.

    One loaded model serves every session of the app. Whatever installs taps or
    hooks on it, swaps its modules or kernels, or reads what they captured holds
    `lock` for the whole call (``core.model.capture``) and undoes itself on exit.
    """

    model: torch.nn.Module
    name: str
    identity: str  # name + weights hash: the cache key part for this model
    num_prefix_tokens: int
    grid: tuple[int, int]  # (gh, gw)
    patch_size: tuple[int, int]
    num_layers: int
    num_heads: int
    class_names: list[str]  # empty: a model without class scores (SPEC "Models without
    # class scores"); its outputs are then embeddings
    num_outputs: int  # classes, or the embedding's width
    data_config: dict
    device: torch.device
    transform: Callable = field(repr=False)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    kernels: KernelChoice | None = field(default=None, repr=False, compare=False)  # the
    # measured kernel choice of its no-capture forwards (``core.model._kernels``), set on
    # the first such forward

    @property
    def has_classes(self) -> bool:
        return bool(self.class_names)

    @property
    def num_tokens(self) -> int:
        return self.num_prefix_tokens + self.grid[0] * self.grid[1]

    @property
    def attention_modules(self) -> list[torch.nn.Module]:
        """Each block's attention module (of a family in ``core.model._families``)."""
        return [block.attn for block in self.model.blocks]

    @property
    def image_mode(self) -> str:
        """The Pillow mode its inputs are decoded in: "L" (one channel) or "RGB"."""
        return "L" if self.data_config["input_size"][0] == 1 else "RGB"

    def to_display(self, x: torch.Tensor) -> np.ndarray:
        """Undo normalisation of one input tensor (C x H x W): H x W x C in [0, 1]."""
        return unnormalise(self, x.detach().cpu().float()).clamp(0, 1).permute(1, 2, 0).numpy()


def unnormalise(lm: LoadedModel, x: torch.Tensor) -> torch.Tensor:
    """Undo the model's input normalisation: (..., C, H, W) model inputs -> the same
    shape in pixel units (0..1 before normalisation; not clipped), on `x`'s device."""
    mean = torch.tensor(lm.data_config["mean"], device=x.device).view(-1, 1, 1)
    std = torch.tensor(lm.data_config["std"], device=x.device).view(-1, 1, 1)
    return x * std + mean
