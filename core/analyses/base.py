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

Its parameters, schema version and the image's resolved target make its cache key
(``core.storage.keys.cache_key``).
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
    Axis names with a size known from the model are checked (:data:`AXES`)."""

    dtype: str
    axes: str = ""


AXES: dict[str, Callable[[LoadedModel], int]] = {
    "layer": lambda lm: lm.num_layers,
    "head": lambda lm: lm.num_heads,
    "token": lambda lm: lm.num_tokens,
    "patch": lambda lm: lm.grid[0] * lm.grid[1],
    "output": lambda lm: lm.num_outputs,  # classes, or the embedding's width
    "hop": lambda lm: max(lm.grid),
}


@dataclass(frozen=True)
class Analysis(Generic[P]):
    """A per-image analysis; see the module docstring."""

    name: str
    params: type[P]
    outputs: dict[str, Output]
    compute: Callable[..., list[Arrays]]  # (lm, images, targets, params[, objects])
    target: Literal["label", "prediction"] | None = None  # default target; None: the
    # results do not depend on a class (targets are then all None and not in the key)
    batch_size: int = 64
    version: int = 1  # bump when the outputs or their meaning change
    precompute: bool = True  # run by the batch precompute with default parameters
    reads_objects: bool = False  # compute takes the images' object masks (``objects``)

    @property
    def class_specific(self) -> bool:
        return self.target is not None

    def images_per_batch(self, lm: LoadedModel) -> int:
        """`batch_size`, or fewer images where one batch's attention matrices (every
        layer and head, float32) would pass ATTENTION_BYTES_PER_BATCH: one image of a
        DINOv2-S/14 at 518 px holds 540 MB of them."""
        per_image = 4 * lm.num_layers * lm.num_heads * lm.num_tokens ** 2
        return max(1, min(self.batch_size, ATTENTION_BYTES_PER_BATCH // per_image))

    def problems(self, arrays: Arrays, lm: LoadedModel) -> list[str]:
        """How `arrays` differ from the declared outputs (empty when they match)."""
        found = []
        for name, out in self.outputs.items():
            value = arrays.get(name)
            if value is None:
                found.append(f"{name}: missing")
                continue
            axes = out.axes.split()
            if value.dtype != np.dtype(out.dtype) or value.ndim != len(axes):
                found.append(f"{name}: {value.dtype} {value.shape}, declared {out.dtype} "
                             f"({out.axes})")
                continue
            for axis, size in zip(axes, value.shape):
                if axis in AXES and AXES[axis](lm) != size:
                    found.append(f"{name}: axis {axis} has {size}, the model {AXES[axis](lm)}")
        return found


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


def params_of(analysis: Analysis[P], params: P | None) -> P:
    """`params`, or the analysis's defaults; refuses the parameters of another analysis."""
    if params is None:
        return analysis.params()
    if not isinstance(params, analysis.params):
        raise TypeError(f"{analysis.name} takes {analysis.params.__name__}, "
                        f"not {type(params).__name__}")
    return params


def per_image(arrays: dict[str, Any], count: int) -> list[Arrays]:
    """Split batch-first arrays into one dict per image."""
    return [{name: np.asarray(value[b]) for name, value in arrays.items()}
            for b in range(count)]
