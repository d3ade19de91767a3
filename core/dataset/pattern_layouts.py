"""Dataset-level attention patterns (SPEC "Attention patterns"): every
(image, layer, head) of an image set as a point of two 2-D layouts, the CLS
layout (t-SNE of the ``A_CLS`` vectors) and the patch layout (t-SNE of the
autoencoder codes of the binarised ``A_patch``), with each head's pattern label.
A dataset step built from the per-image ``patterns`` analysis; the autoencoder's
loss curve is kept with the layouts.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, fields

import numpy as np

from core.analyses.pattern_labels import LABEL_NAMES, LABELS, decide
from core.analyses.patterns import DEFAULT_TOP_PERCENT, PATTERNS, PatternParams, unpack
from core.data.records import Dataset
from core.dataset import autoencoder
from core.dataset.base import DatasetStep, Reads, Stage
from core.dataset.embedding import tsne
from core.model import LoadedModel
from core.storage.cache import Arrays



@dataclass(frozen=True)
class LayoutParams:
    top_percent: float = DEFAULT_TOP_PERCENT  # the binarising cutoff of A_patch
    max_epochs: int = autoencoder.MAX_EPOCHS  # autoencoder training stops on a loss
    # plateau, at the latest after this many epochs


@dataclass
class Overview:
    """One row per (image, layer, head) point."""

    image: np.ndarray  # dataset index
    layer: np.ndarray
    head: np.ndarray
    cls_layout: np.ndarray  # (point, 2)
    patch_layout: np.ndarray  # (point, 2)
    label: np.ndarray  # index into pattern_labels.LABEL_NAMES
    confidence: np.ndarray
    ae_loss: np.ndarray  # mean training loss per epoch

    @classmethod
    def from_arrays(cls, arrays: Arrays) -> "Overview":
        return cls(**{f.name: arrays[f.name] for f in fields(cls)})

    def points_of(self, image: int) -> np.ndarray:
        """Row indices of one image's heads."""
        return np.flatnonzero(self.image == image)

    def label_shares(self, layer: int, head: int) -> np.ndarray:
        """The share of each pattern label (LABEL_NAMES order) of one head over all images."""
        here = (self.layer == layer) & (self.head == head)
        return np.bincount(self.label[here], minlength=len(LABEL_NAMES)) / max(here.sum(), 1)


@dataclass
class Gathered:
    """The per-image pattern results of an image set, one row per (image, layer, head)."""

    kept: list[int]  # dataset indices, sorted
    heads: tuple[int, int]  # (layer, head)
    cls_vectors: np.ndarray  # (point, cls_entry) float32
    binary: np.ndarray  # (point, row, column) uint8: the binarised patch matrices, pooled
    label_scores: np.ndarray  # (point, label)


AE_SIDE = 196  # the autoencoder's matrices have at most this many rows: larger ones
# (a DINOv2 at 518 px: 1,369 patches) are pooled (:func:`pooled`), 2.8 MB per image of
# 72 heads where the G x G bits would be 135 MB; ViT-B/16 at 224 px is not pooled


def pooled(binary: np.ndarray, side: int) -> np.ndarray:
    """uint8 (..., G, G) -> (..., n, n), n = ceil(G / k), k = ceil(G / side): the
    matrix in blocks of k x k entries (k consecutive source and target patches), a
    block 1 where any of its entries is 1 (the matrix itself when G <= side)."""
    g = binary.shape[-1]
    k = -(-g // side)
    if k == 1:
        return binary
    n = -(-g // k)
    padded = np.zeros((*binary.shape[:-2], n * k, n * k), dtype=binary.dtype)
    padded[..., :g, :g] = binary
    return padded.reshape(*binary.shape[:-2], n, k, n, k).max(axis=(-3, -1))


def gather(lm: LoadedModel, per_image: dict[int, Arrays]) -> Gathered:
    """Stack the per-image ``patterns`` results of the images that could be read (the
    binarised matrices pooled to at most AE_SIDE x AE_SIDE, one image at a time)."""
    kept = sorted(per_image)
    arrays = [per_image[i] for i in kept]
    g = lm.grid[0] * lm.grid[1]
    binary = np.stack([pooled(unpack(a["patch_bits"], g), AE_SIDE) for a in arrays])
    return Gathered(
        kept=kept, heads=arrays[0]["label_scores"].shape[:2],
        cls_vectors=np.stack([a["cls_vectors"] for a in arrays]).reshape(
            -1, lm.num_tokens + g).astype(np.float32),
        binary=binary.reshape(-1, *binary.shape[-2:]),
        label_scores=np.stack([a["label_scores"] for a in arrays]).reshape(-1, len(LABELS)))


def build(lm: LoadedModel, ds: Dataset, reads: Reads, params: LayoutParams,
          stage: Stage) -> Arrays:
    """The overview's arrays (see :class:`Overview`)."""
    data = gather(lm, reads[PATTERNS.name])
    start = time.perf_counter()
    model, loss = autoencoder.train(
        data.binary, autoencoder.Config(data.binary.shape[-1]), max_epochs=params.max_epochs,
        device=lm.device, progress=lambda e, n, value: stage(
            f"autoencoder epoch {e} (at most {n}), loss {value:.4f}", e / n / 3))
    codes = autoencoder.encode(model, data.binary)
    stage(f"autoencoder: {len(loss)} epochs in {time.perf_counter() - start:.1f} s; t-SNE of "
          "the CLS vectors", 1 / 3)
    start = time.perf_counter()
    cls_layout = tsne(data.cls_vectors)
    stage(f"t-SNE of the CLS vectors: {time.perf_counter() - start:.1f} s; t-SNE of the "
          "autoencoder codes", 2 / 3)
    start = time.perf_counter()
    patch_layout = tsne(codes)
    stage(f"t-SNE of the autoencoder codes: {time.perf_counter() - start:.1f} s", 1.0)
    label, confidence = decide(data.label_scores)
    image, layer, head = np.meshgrid(np.array(data.kept), np.arange(data.heads[0]),
                                     np.arange(data.heads[1]), indexing="ij")
    return {"image": image.ravel(), "layer": layer.ravel(), "head": head.ravel(),
            "cls_layout": cls_layout, "patch_layout": patch_layout, "label": label,
            "confidence": confidence, "ae_loss": loss}


def describe(lm: LoadedModel, ds: Dataset, arrays: Arrays) -> str:
    return (f"patterns: {len(arrays['image'])} heads laid out, autoencoder loss per epoch "
            f"{', '.join(f'{v:.4f}' for v in arrays['ae_loss'])}")


PATTERN_LAYOUTS = DatasetStep(
    name="pattern_layouts", params=LayoutParams, reads=(PATTERNS,), version=3,  # 3: the
    # autoencoder stops on a loss plateau, faster t-SNE settings; 2: mixed
    reads_params=lambda params: (PatternParams(params.top_percent),), build=build,
    describe=describe)
