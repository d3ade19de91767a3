"""Maps over the patches as images (SPEC "Notation", "Attention aggregation").

A map is a vector over the G patch tokens reshaped to the gh x gw grid, then
upsampled to the displayed image's size so it can be overlaid on the image.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from core.model import LoadedModel


def to_grid(values: np.ndarray | torch.Tensor, lm: LoadedModel) -> np.ndarray:
    """(..., patch) -> (..., grid row, grid column), row-major like timm's patch order."""
    values = np.asarray(values)
    return values.reshape(*values.shape[:-1], *lm.grid)


def upsample(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A gh x gw map -> H x W by bilinear interpolation (align_corners=False)."""
    t = torch.as_tensor(np.asarray(grid, dtype=np.float32))[None, None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def normalise(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] (a constant map becomes all zeros)."""
    lo, hi = float(values.min()), float(values.max())
    return (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)


def heat_map(values: np.ndarray | torch.Tensor, lm: LoadedModel,
             size: tuple[int, int]) -> np.ndarray:
    """A map over the patches as a height x width heat map in [0, 1], ready to overlay."""
    return normalise(upsample(to_grid(values, lm), size))


def patch_table(values: np.ndarray | torch.Tensor, lm: LoadedModel) -> pd.DataFrame:
    """A map over the patches as a table for CSV: a row per patch (row-major) with its
    grid row, grid column and value."""
    grid = to_grid(values, lm)
    rows, columns = np.divmod(np.arange(grid.size), grid.shape[1])
    return pd.DataFrame({"patch_row": rows, "patch_column": columns, "value": grid.ravel()})
