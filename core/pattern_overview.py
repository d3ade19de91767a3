"""Dataset-level attention patterns (SPEC "Attention patterns"): every
(image, layer, head) of an image set as a point of two 2-D layouts, the CLS
layout (t-SNE of the ``A_CLS`` vectors) and the patch layout (t-SNE of the
autoencoder codes of the binarised ``A_patch``), with each head's pattern label.

The autoencoder is trained once per model identity + image set + cutoff +
training settings and kept in the cache as arrays with its loss curve; the
finished overview is cached under the same kind of key, so the page and the
precompute command share it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from typing import Callable

import numpy as np

from core import autoencoder, layout
from core.cache import ArrayCache, Arrays, make_key
from core.datasets import Dataset
from core.engine import run
from core.models import LoadedModel
from core.pattern_labels import decide
from core.pattern_vectors import DEFAULT_TOP_PERCENT, PATTERNS, analysis_params, unpack

AE_EPOCHS = 3  # demo: 24,000 matrices, about a minute on one CPU thread
Stage = Callable[[str, float], None]  # (what is being done, fraction done)


@dataclass
class Overview:
    """One row per (image, layer, head) point."""

    image: np.ndarray  # dataset index
    layer: np.ndarray
    head: np.ndarray
    cls_layout: np.ndarray  # (N, 2)
    patch_layout: np.ndarray  # (N, 2)
    label: np.ndarray  # index into pattern_labels.LABELS
    confidence: np.ndarray
    ae_loss: np.ndarray  # mean training loss per epoch

    def to_arrays(self) -> Arrays:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays: Arrays) -> "Overview":
        return cls(**{f.name: arrays[f.name] for f in fields(cls)})

    def points_of(self, image: int) -> np.ndarray:
        """Row indices of one image's heads."""
        return np.flatnonzero(self.image == image)


def images_key(ds: Dataset, indices: list[int]) -> str:
    """A hash of the content of the images used (the image-set part of a cache key)."""
    digest = hashlib.blake2b(digest_size=12)
    for i in indices:
        try:
            digest.update(ds.content_hash(i).encode())
        except OSError:  # unreadable: the engine skips it; its name still counts
            digest.update(f"unreadable:{ds.records[i].id}".encode())
    return digest.hexdigest()


def overview_key(lm: LoadedModel, ds: Dataset, top_percent: float, epochs: int) -> str:
    """Cache key of the overview of the whole image set."""
    return make_key(lm.identity, images_key(ds, list(range(len(ds)))), "pattern_overview",
                    _settings(top_percent, epochs))


def _settings(top_percent: float, epochs: int) -> dict:
    return {"top_percent": float(top_percent), "epochs": epochs,
            "fit_size": layout.FIT_SIZE, "perplexity": layout.PERPLEXITY}


def cached(lm: LoadedModel, ds: Dataset, cache: ArrayCache,
           top_percent: float = DEFAULT_TOP_PERCENT, epochs: int = AE_EPOCHS) -> Overview | None:
    """The overview of the whole image set if it is in the cache, else None."""
    found = cache.get(overview_key(lm, ds, top_percent, epochs))
    return None if found is None else Overview.from_arrays(found)


@dataclass
class Gathered:
    """The per-image pattern results of an image set, one row per (image, layer, head)."""

    kept: list[int]  # dataset indices that could be read
    heads: tuple[int, int]  # (L, H)
    cls_vectors: np.ndarray  # (N, T + G) float32
    binary: np.ndarray  # (N, G, G) uint8
    label_scores: np.ndarray  # (N, 4)


def gather(lm: LoadedModel, ds: Dataset, cache: ArrayCache, top_percent: float,
           stage: Stage) -> Gathered:
    """Run (or read from the cache) the per-image "patterns" analysis for every image."""
    result = run(lm, ds, list(range(len(ds))), PATTERNS, analysis_params(top_percent),
                 cache, progress=lambda done, total: stage(
                     f"attention of {done}/{total} images", done / max(total, 1)))
    kept = sorted(result.arrays)
    if not kept:
        raise ValueError("none of the images could be read; see the skipped list")
    arrays = [result.arrays[i] for i in kept]
    g = lm.grid[0] * lm.grid[1]
    return Gathered(
        kept=kept, heads=arrays[0]["label_scores"].shape[:2],
        cls_vectors=np.stack([a["cls_vectors"] for a in arrays]).reshape(
            -1, lm.num_tokens + g).astype(np.float32),
        binary=unpack(np.stack([a["patch_bits"] for a in arrays]), g).reshape(-1, g, g),
        label_scores=np.stack([a["label_scores"] for a in arrays]).reshape(-1, 4))


def trained_autoencoder(lm: LoadedModel, ds: Dataset, data: Gathered, cache: ArrayCache,
                        top_percent: float, epochs: int, stage: Stage) -> Arrays:
    """The autoencoder (as arrays, with its ``loss`` curve) from the cache or trained."""
    key = make_key(lm.identity, images_key(ds, data.kept), "pattern_autoencoder",
                   _settings(top_percent, epochs))
    stored = cache.get(key)
    if stored is None:
        model, loss = autoencoder.train(
            data.binary, autoencoder.Config(data.binary.shape[-1]), epochs=epochs,
            device=lm.device, progress=lambda e, n, value: stage(
                f"autoencoder epoch {e}/{n}, loss {value:.4f}", e / n))
        stored = {**autoencoder.to_arrays(model), "loss": loss}
        cache.set(key, stored)
    return stored


def build(lm: LoadedModel, ds: Dataset, cache: ArrayCache,
          top_percent: float = DEFAULT_TOP_PERCENT, epochs: int = AE_EPOCHS,
          stage: Stage | None = None) -> Overview:
    """The overview of the whole image set, from the cache or computed (and cached).
    Unreadable images are left out (the engine reports them)."""
    stage = stage or (lambda text, fraction: None)
    key = overview_key(lm, ds, top_percent, epochs)
    found = cache.get(key)
    if found is not None:
        return Overview.from_arrays(found)
    data = gather(lm, ds, cache, top_percent, stage)
    stored = trained_autoencoder(lm, ds, data, cache, top_percent, epochs, stage)
    codes = autoencoder.encode(autoencoder.from_arrays(stored), data.binary)
    stage("t-SNE of the CLS vectors", 0.0)
    cls_layout = layout.tsne(data.cls_vectors)
    stage("t-SNE of the autoencoder codes", 0.5)
    patch_layout = layout.tsne(codes)
    label, confidence = decide(data.label_scores)
    image, layer, head = np.meshgrid(np.array(data.kept), np.arange(data.heads[0]),
                                     np.arange(data.heads[1]), indexing="ij")
    overview = Overview(image=image.ravel(), layer=layer.ravel(), head=head.ravel(),
                        cls_layout=cls_layout, patch_layout=patch_layout, label=label,
                        confidence=confidence, ae_loss=stored["loss"])
    cache.set(key, overview.to_arrays())
    return overview
