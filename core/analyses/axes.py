"""The named axes of every declared output (``core.analyses.base.Output``), in one
table: each axis's size from the model (layer, head, patch...) or its names from a
registry (method, metric, mode, bin...). The engine checks every entry it reads against
this table (:func:`problems`) and puts the registry names an analysis's outputs use
into its cache key (:func:`registry_part`), so that adding an explanation method, a
metric or a pruning mode recomputes every entry that holds one row per item: no
version bump by hand."""
from __future__ import annotations

from typing import Callable

import numpy as np

from core.analyses.base import Analysis
from core.analyses.importance import metric_names
from core.analyses.keypoints import BINS
from core.analyses.pattern_labels import LABELS
from core.analyses.prompt import PROMPT_OBJECTS
from core.analyses.sift import FIELDS
from core.explain import METHODS
from core.model import PRUNING_MODES, LoadedModel
from core.storage.cache import Arrays

SIZED: dict[str, Callable[[LoadedModel], int]] = {  # axes sized by the model
    "layer": lambda lm: lm.num_layers,
    "head": lambda lm: lm.num_heads,
    "token": lambda lm: lm.num_tokens,
    "patch": lambda lm: lm.grid[0] * lm.grid[1],
    "output": lambda lm: lm.num_outputs,  # classes, or the embedding's width
    "hop": lambda lm: max(lm.grid),
    "cls_entry": lambda lm: lm.num_tokens + lm.grid[0] * lm.grid[1],
}
NAMED: dict[str, Callable[[LoadedModel], tuple[str, ...]]] = {  # axes with a row per item
    "method": lambda lm: tuple(METHODS),
    "cheap_method": lambda lm: tuple(n for n, m in METHODS.items() if not m.costly),
    "metric": metric_names,
    "mode": lambda lm: tuple(str(m) for m in PRUNING_MODES),
    "bin": lambda lm: BINS,
    "label": lambda lm: LABELS,
    "field": lambda lm: FIELDS,
    "prompt_object": lambda lm: PROMPT_OBJECTS,
}


def size(axis: str, lm: LoadedModel) -> int | None:
    """The size `axis` must have for model `lm` (None: free, e.g. keypoint, step)."""
    if axis in SIZED:
        return SIZED[axis](lm)
    return len(NAMED[axis](lm)) if axis in NAMED else None


def problems(analysis: Analysis, arrays: Arrays, lm: LoadedModel) -> list[str]:
    """How `arrays` differ from `analysis`'s declared outputs (empty when they match)."""
    found = []
    for name, out in analysis.outputs.items():
        value = arrays.get(name)
        if value is None:
            found.append(f"{name}: missing")
            continue
        axes = out.axes.split()
        if value.dtype != np.dtype(out.dtype) or value.ndim != len(axes):
            found.append(f"{name}: {value.dtype} {value.shape}, declared {out.dtype} "
                         f"({out.axes})")
            continue
        for axis, length in zip(axes, value.shape):
            want = size(axis, lm)
            if want is not None and want != length:
                found.append(f"{name}: axis {axis} has {length}, the model {want}")
    return found


def registry_part(analysis: Analysis, lm: LoadedModel) -> str:
    """The registry names behind `analysis`'s outputs, as a cache-key part."""
    used = sorted({axis for out in analysis.outputs.values() for axis in out.axes.split()
                   if axis in NAMED})
    return ";".join(f"{axis}={','.join(NAMED[axis](lm))}" for axis in used)
