"""Run an analysis over images of a dataset, batched and cached per image.

Every analysis has one uniform call, ``compute(lm, batch, params)`` returning
one dict of arrays per image; :func:`run` adds caching (key: model identity,
image content hash, analysis name, parameters, schema version), batching,
progress reporting and skipping of unreadable images.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from core.cache import Arrays, ArrayCache, make_key
from core.datasets import Dataset, load_batch
from core.models import LoadedModel

Progress = Callable[[int, int], None]  # (images done, images total)


@dataclass(frozen=True)
class Analysis:
    """A per-image analysis: `compute(lm, batch, params) -> [arrays per image]`."""

    name: str
    compute: Callable[[LoadedModel, torch.Tensor, dict], list[Arrays]]
    batch_size: int = 64


@dataclass
class RunResult:
    arrays: dict[int, Arrays] = field(default_factory=dict)  # image index -> arrays
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image id, reason)
    from_cache: int = 0


def run(lm: LoadedModel, ds: Dataset, indices: list[int], analysis: Analysis,
        params: dict | None = None, cache: ArrayCache | None = None,
        progress: Progress | None = None) -> RunResult:
    """`analysis` for every image in `indices`, from the cache where possible."""
    params = params or {}
    result = RunResult()
    keys: dict[int, str] = {}
    todo: list[int] = []
    for i in indices:
        try:
            keys[i] = make_key(lm.identity, ds.content_hash(i), analysis.name, params)
        except OSError as err:  # unreadable file (permissions, vanished)
            result.skipped.append((ds.records[i].id, f"could not be opened ({err})"))
            continue
        found = cache.get(keys[i]) if cache is not None else None
        if found is None:
            todo.append(i)
        else:
            result.arrays[i] = found
            result.from_cache += 1
    done = len(indices) - len(todo)
    if progress:
        progress(done, len(indices))
    for start in range(0, len(todo), analysis.batch_size):
        chunk = todo[start:start + analysis.batch_size]
        batch, kept, failures = load_batch(lm, ds, chunk)
        result.skipped += failures
        if batch is not None:
            for i, arrays in zip(kept, analysis.compute(lm, batch, params)):
                result.arrays[i] = arrays
                if cache is not None:
                    cache.set(keys[i], arrays)
        done += len(chunk)
        if progress:
            progress(done, len(indices))
    return result
