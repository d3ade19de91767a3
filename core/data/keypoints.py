"""SIFT keypoints of an image as the model sees it (SPEC "Keypoints and spurious
correlations", seed paper 002), with OpenCV's detector.

The image is the model's input after its own resize and crop, before normalisation,
in grey levels; it is upsampled by the smallest integer factor that brings its short
side to at least ``min_side`` pixels (SIFT finds little on 28 px images), detected,
and the positions are mapped back to input pixels. Positions are continuous: pixel
``(r, c)`` covers ``[c, c + 1) x [r, r + 1)``. SIFT reports a blob once per dominant
orientation; we count each position and scale once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np
import torch

if TYPE_CHECKING:
    from core.model.loaded import LoadedModel

Weight = Literal["count", "response"]
MIN_SIDE = 224  # the short side (pixels) an image is upsampled to before SIFT, by default


@dataclass(frozen=True)
class Keypoints:
    """Keypoints of one image: ``xy`` (keypoint, 2) x and y in input pixels, ``response``
    and ``size`` (diameter in input pixels), each (keypoint,), float32."""

    xy: np.ndarray
    response: np.ndarray
    size: np.ndarray

    def __len__(self) -> int:
        return len(self.xy)


def upsampling(shape: tuple[int, int], min_side: int) -> int:
    """The integer factor that brings the short side to at least `min_side` (>= 1)."""
    return max(1, math.ceil(min_side / min(shape)))


def detect(grey: np.ndarray, min_side: int = MIN_SIDE) -> Keypoints:
    """SIFT keypoints of an (H, W) uint8 image."""
    factor = upsampling(grey.shape, min_side)
    h, w = grey.shape
    big = cv2.resize(grey, (w * factor, h * factor), interpolation=cv2.INTER_LINEAR)
    found = {(k.pt, k.size): k.response for k in cv2.SIFT_create().detect(big, None)}
    # opencv's pixel centres are integers: input position = (centre + 0.5) / factor
    xy = np.array([[(x + 0.5) / factor, (y + 0.5) / factor] for (x, y), _ in found],
                  dtype=np.float32).reshape(-1, 2)
    size = np.array([s / factor for (_, s) in found], dtype=np.float32)
    response = np.array(list(found.values()), dtype=np.float32)
    return Keypoints(xy=xy, response=response, size=size)


def detect_input(lm: LoadedModel, x: torch.Tensor, min_side: int = MIN_SIDE) -> Keypoints:
    """SIFT keypoints of one model input (channel, H, W), as the model sees the image."""
    return detect(to_grey(lm.to_display(x)), min_side)


def concentration(keypoints: Keypoints, grid: tuple[int, int], patch_size: tuple[int, int],
                  weight: Weight = "count") -> np.ndarray:
    """``c_j`` per patch, (patch,) float32 in row-major order: the number of keypoints
    whose position lies in patch ``j`` (or the sum of their responses)."""
    (gh, gw), (ph, pw) = grid, patch_size
    rows = np.clip((keypoints.xy[:, 1] // ph).astype(int), 0, gh - 1)
    cols = np.clip((keypoints.xy[:, 0] // pw).astype(int), 0, gw - 1)
    weights = keypoints.response if weight == "response" else np.ones(len(keypoints))
    return np.bincount(rows * gw + cols, weights=weights, minlength=gh * gw).astype(np.float32)


def to_grey(display: np.ndarray) -> np.ndarray:
    """An (H, W, C) image in [0, 1] (``LoadedModel.to_display``) -> (H, W) uint8 grey."""
    pixels = np.round(display * 255).astype(np.uint8)
    return pixels[..., 0] if pixels.shape[-1] == 1 else cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
