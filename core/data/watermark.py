"""The marker of ``demo-watermark`` (``core.cli.train_demo``): a white square one pixel
inside a corner of the black border, and its removal, which gives back the clean image
exactly (the border is black there)."""
from __future__ import annotations

import numpy as np

MARKER = 3  # the square's side, in pixels


def corner_box(corner: int, shape: tuple[int, int], size: int = MARKER
               ) -> tuple[slice, slice]:
    """Rows and columns of the marker in `corner` (0 top-left, 1 top-right, 2 bottom-left,
    3 bottom-right) of an image of `shape`."""
    h, w = shape
    top = 1 if corner < 2 else h - 1 - size
    left = 1 if corner % 2 == 0 else w - 1 - size
    return slice(top, top + size), slice(left, left + size)


def with_marker(images: np.ndarray, corners: np.ndarray, size: int = MARKER) -> np.ndarray:
    """A copy of N x H x W `images` with the marker in corner `corners[n]` (-1: none)."""
    out = images.copy()
    for n, corner in enumerate(corners):
        if corner >= 0:
            out[(n, *corner_box(int(corner), images.shape[1:], size))] = 255
    return out


def without_marker(images: np.ndarray, size: int = MARKER) -> np.ndarray:
    """A copy of N x H x W `images` with every corner's marker square black again."""
    out = images.copy()
    for corner in range(4):
        out[(slice(None), *corner_box(corner, images.shape[1:], size))] = 0
    return out
