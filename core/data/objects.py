"""Object masks (SPEC "Keypoints and spurious correlations", "Object").

An object mask is a binary image at the model's input size. The built-in sets'
masks come from their pixels (above a threshold, dilated by one patch); a user's
come from ``masks/NAME.png``. The analyses read them per patch: a patch is inside
the object when at least half of its pixels are.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from PIL import Image

from core.data.decode import ImageDecodeError
from core.data.keypoints import to_grey
from core.data.records import Dataset

if TYPE_CHECKING:
    from core.model.loaded import LoadedModel

THRESHOLD = 0  # a pixel above this grey level (0..255) is on the object (black background)


def pixel_object(pixels: np.ndarray, patch: int, threshold: int = THRESHOLD) -> np.ndarray:
    """(H, W) uint8 image -> (H, W) bool: pixels above `threshold`, dilated by `patch`
    pixels in every direction (a square of side 2 * patch + 1)."""
    on = (pixels > threshold).astype(np.uint8)
    kernel = np.ones((2 * patch + 1, 2 * patch + 1), np.uint8)
    return cv2.dilate(on, kernel).astype(bool)


def to_patches(mask: torch.Tensor, patch_size: tuple[int, int]) -> torch.Tensor:
    """(batch, H, W) pixel flags -> (batch, patch) flags: at least half of a patch's
    pixels set (row-major patch order)."""
    fraction = torch.nn.functional.avg_pool2d(mask[:, None].float(), patch_size)
    return (fraction >= 0.5).flatten(1)


def mask_at_input(lm: LoadedModel, mask: Image.Image) -> np.ndarray:
    """A 0/255 mask image through the model's own resize and crop: (H, W) bool at the
    model's input size (bilinear resize, then thresholded at half)."""
    return lm.to_display(lm.transform(mask.convert(lm.image_mode))).mean(-1) > 0.5


def image_objects(lm: LoadedModel, ds: Dataset, indices: list[int], images: torch.Tensor
                   ) -> list[torch.Tensor | None]:
    """Each image's object as (patch,) bool, or None where it has no mask (a mask that
    can no longer be read counts as none; ``Dataset.mask_problems`` lists bad ones).
    images: (batch, channel, H, W), the model inputs of `indices`."""
    found: list[torch.Tensor | None] = []
    for i, x in zip(indices, images):
        if ds.objects_from_pixels:
            mask = pixel_object(to_grey(lm.to_display(x)), max(lm.patch_size))
        else:
            try:
                image = ds.object_mask(i)
            except (ImageDecodeError, OSError):
                image = None
            if image is None:
                found.append(None)
                continue
            mask = mask_at_input(lm, image)
        found.append(to_patches(torch.from_numpy(mask)[None], lm.patch_size)[0])
    return found
