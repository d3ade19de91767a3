"""The analysis contract (DESIGN "One contract").

A per-image analysis is one module with:

- a frozen parameter dataclass (typed fields with the defaults a page shows);
- the outputs it declares (name -> dtype and named axes), checked when a cached
  entry is read;
- one ``compute(lm, images, targets, params)`` returning one dict of arrays per
  image, where ``targets`` holds one class per image (``None``: the predicted class),
  resolved by the engine from a :data:`TargetChoice` (``core.model.targets``: a class, or a
  reference embedding for a model without class scores). An analysis that reads object
  masks (``reads_objects``) also takes ``objects``: per image its (patch,) object
  flags or None (``core.data.objects.image_objects``); the mask is then part of the
  image's cache key.
- the analyses it reads (``reads``): the engine computes them first (through the cache,
  once per image) and hands ``compute`` their results as ``reads``: analysis name ->
  per image its arrays. A read that is not ``stored`` (the capturing forward,
  ``core.analyses.capture``) is computed per batch in memory and shared by every reader
  of that batch.

Its parameters, schema version, the image's resolved target, the keys of what it reads
and the names of its registry-sized axes (``core.analyses.axes``) make its cache key
(``core.engine``, ``core.storage.keys.cache_key``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, Literal, Sequence, TypeVar

import numpy as np

from core.model.loaded import LoadedModel
from core.model.targets import Reference, Target
from core.storage.cache import Arrays

P = TypeVar("P")
TargetChoice = Literal["label", "prediction"] | int | Reference  # the true label (the
# prediction when an image has none), the predicted class, one chosen class for every
# image, or (a model without classes) one reference embedding for every image


ATTENTION_BYTES_PER_BATCH = 512 * 2**20  # the most attention one batch may hold


@dataclass(frozen=True)
class NoParams:
    """Parameters of an analysis that has none."""


@dataclass(frozen=True)
class Output:
    """A declared output array: its dtype and its named axes (``"layer head patch"``).
    Axes sized by the model or by a registry are checked (``core.analyses.axes``)."""

    dtype: str
    axes: str = ""


@dataclass(frozen=True)
class Read:
    """An analysis that another reads, at the parameters `params` gives from the
    reader's (None: its defaults). A class-specific read explains the reader's target."""

    analysis: "Analysis"
    params: Callable[[Any], Any] | None = None

    def params_for(self, reader_params: Any) -> Any:
        return self.analysis.params() if self.params is None else self.params(reader_params)


@dataclass(frozen=True)
class Analysis(Generic[P]):
    """A per-image analysis; see the module docstring."""

    name: str
    params: type[P]
    outputs: dict[str, Output]
    compute: Callable[..., Any]  # (lm, images, targets, params[, objects][, reads]) -> one
    # dict of arrays per image (not stored: any value its readers take)
    target: Literal["label", "prediction"] | None = None  # default target; None: the
    # results do not depend on a class (targets are then all None and not in the key)
    batch_size: int = 64
    version: int = 1  # bump when the outputs or their meaning change
    precompute: bool = True  # run by the batch precompute with default parameters
    reads_objects: bool = False  # compute takes the images' object masks (``objects``)
    reads: tuple[Read, ...] = ()  # the analyses whose results compute takes (``reads``)
    stored: bool = True  # False: computed per batch for its readers, never cached
    forwards: Callable[[LoadedModel, Any], float] | None = None  # forward passes of the
    # model one image costs (None: one), for the estimate before this server measured it

    @property
    def class_specific(self) -> bool:
        return self.target is not None

    def images_per_batch(self, lm: LoadedModel) -> int:
        """`batch_size`, or fewer images where one batch's attention matrices (every
        layer and head, float32) would pass ATTENTION_BYTES_PER_BATCH: one image of a
        DINOv2-S/14 at 518 px holds 540 MB of them."""
        per_image = 4 * lm.num_layers * lm.num_heads * lm.num_tokens ** 2
        return max(1, min(self.batch_size, ATTENTION_BYTES_PER_BATCH // per_image))


def resolve_targets(choice: TargetChoice, labels: Sequence[int | None],
                    lm: LoadedModel) -> list[Target]:
    """Per-image targets from a choice: ``"label"`` gives each image's label (None, the
    prediction, where it has none), ``"prediction"`` None for all, an int that class.
    For a model without classes ``"label"`` and ``"prediction"`` give None (each image
    its own embedding) and a :class:`Reference` is every image's reference."""
    if not lm.has_classes:
        if choice in ("label", "prediction"):
            return [None] * len(labels)
        if isinstance(choice, Reference):
            return [choice] * len(labels)
        raise ValueError(f"Target {choice!r}: this model has no classes; measure each "
                         "image on its own embedding or on a reference image's.")
    if choice == "label":
        return list(labels)
    if choice == "prediction":
        return [None] * len(labels)
    num_classes = len(lm.class_names)
    if isinstance(choice, (int, np.integer)) and 0 <= int(choice) < num_classes:
        return [int(choice)] * len(labels)
    raise ValueError(f"Target {choice!r} is not 'label', 'prediction' or a class index "
                     f"in 0..{num_classes - 1}.")


def per_image(arrays: dict[str, Any], count: int) -> list[Arrays]:
    """Split batch-first arrays into one dict per image."""
    return [{name: np.asarray(value[b]) for name, value in arrays.items()}
            for b in range(count)]
