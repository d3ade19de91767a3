"""The engine: per-image analyses over the images of a set, batched and cached per
image, and dataset-level steps over the whole set, cached per set.

:func:`run` resolves the per-image targets from one choice (true label, prediction
or one class), builds every key with ``core.storage.keys.cache_key``, checks cached
entries against the analysis's declared outputs (a stale or corrupt entry is
recomputed), decodes images in batches and lists the ones it could not use. A file
that is not an image is remembered as such (by its content), so that it is listed
again without being counted as missing work.
:func:`run_step` gives a dataset step the per-image results it reads.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Protocol

import numpy as np
import torch

from core.analyses.base import Analysis, TargetChoice, params_of, resolve_targets
from core.analyses.forward import FORWARD
from core.data.inputs import NOT_AN_IMAGE, load_batch
from core.data.records import Dataset
from core.data.objects import image_objects
from core.dataset.base import DatasetStep, Stage, no_stage
from core.model import LoadedModel
from core.model.targets import Reference
from core.storage.cache import ArrayCache, Arrays
from core.storage.keys import cache_key, image_set_hash, target_part

Progress = Callable[[int, int], None]  # (images done, images total)


@dataclass
class Batch:
    """Decoded images of one analysis call: set indices, model inputs (batch, channel,
    H, W), resolved targets, and object flags (``reads_objects`` analyses, else None)."""

    indices: list[int]
    images: torch.Tensor
    targets: list[int | None]
    objects: list[torch.Tensor | None] | None = None

    def compute(self, lm: LoadedModel, analysis: Analysis, params: Any) -> list[Arrays]:
        """`analysis` on this batch with model `lm`."""
        extra = {"objects": self.objects} if self.objects is not None else {}
        return analysis.compute(lm, self.images, self.targets, params, **extra)


class Executor(Protocol):
    """Where batches are computed: here (:class:`LocalExecutor`) or on a cluster
    (``core.ray_executor.RayExecutor``)."""

    def map(self, analysis: Analysis, params: Any, batches: Iterable[Batch]
            ) -> Iterator[tuple[Batch, list[Arrays] | str]]:
        """Each batch with its results, in any order, or with the reason (text) it
        could not be computed."""


@dataclass
class LocalExecutor:
    """Computes each batch in this process, one after the other."""

    lm: LoadedModel

    def map(self, analysis: Analysis, params: Any, batches: Iterable[Batch]
            ) -> Iterator[tuple[Batch, list[Arrays] | str]]:
        for batch in batches:
            yield batch, batch.compute(self.lm, analysis, params)


@dataclass
class RunResult:
    arrays: dict[int, Arrays] = field(default_factory=dict)  # image index -> arrays
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image id, reason)
    missing: list[int] = field(default_factory=list)  # not cached, left (compute=False)
    from_cache: int = 0


def run(lm: LoadedModel, ds: Dataset, indices: list[int], analysis: Analysis,
        params: Any = None, *, target: TargetChoice | None = None,
        cache: ArrayCache | None = None, progress: Progress | None = None,
        compute: bool = True, executor: Executor | None = None) -> RunResult:
    """`analysis` for every image in `indices`, from the cache where possible.

    target: the class each image is measured on, for class-specific analyses
        (default: the analysis's own, ``"label"`` or ``"prediction"``).
    compute: False returns what the cache holds and lists the rest in ``missing``.
    executor: where the missing images are computed (default: here, batch by batch);
        results are written to the cache as each batch arrives.
    """
    params = params_of(analysis, params)
    choice = target if target is not None else analysis.target
    labels = [ds.records[i].label for i in indices]
    targets = (resolve_targets(choice, labels, lm) if analysis.class_specific
               else [None] * len(indices))
    result = RunResult()
    keys: dict[int, str] = {}
    contents: dict[int, str] = {}
    wanted: dict[int, int | None] = {}
    for i, t in zip(indices, targets):
        try:
            contents[i] = ds.content_hash(i)
        except OSError as err:  # unreadable file (permissions, vanished)
            result.skipped.append((ds.records[i].id, f"could not be opened ({err})"))
            continue
        content = contents[i] + (f"+mask:{ds.mask_hash(i)}" if analysis.reads_objects else "")
        keys[i] = cache_key(lm.identity, content, analysis.name, analysis.version, params,
                            target_part(t, analysis.class_specific))
        found = cache.get(keys[i]) if cache is not None else None
        known_bad = (cache.get(_not_an_image_key(lm, contents[i]))
                     if cache is not None and found is None else None)
        if found is not None and not analysis.problems(found, lm):
            result.arrays[i] = found
            result.from_cache += 1
        elif known_bad is not None:
            result.skipped.append((ds.records[i].id, str(known_bad["reason"])))
        else:
            wanted[i] = t
    todo = list(wanted)
    if not compute:
        result.missing = todo
        return result
    done = len(indices) - len(todo)
    if progress:
        progress(done, len(indices))

    def batches() -> Iterator[Batch]:
        """The images to compute, decoded in batches; the ones that cannot be used are
        listed (and counted as done) as they are met."""
        nonlocal done
        size = analysis.images_per_batch(lm)
        for start in range(0, len(todo), size):
            chunk = todo[start:start + size]
            batch, kept, failures = load_batch(lm, ds, chunk)
            result.skipped += failures
            failed = [i for i in chunk if i not in set(kept)]  # in the order of `failures`
            for i, (_, reason) in zip(failed, failures):
                if cache is not None and reason.startswith(NOT_AN_IMAGE):
                    cache.set(_not_an_image_key(lm, contents[i]), {"reason": np.array(reason)})
            done += len(failed)
            if batch is not None:
                yield Batch(kept, batch, [wanted[i] for i in kept],
                            image_objects(lm, ds, kept, batch) if analysis.reads_objects
                            else None)

    for batch, computed in (executor or LocalExecutor(lm)).map(analysis, params, batches()):
        if isinstance(computed, str):  # the batch failed where it ran
            result.skipped += [(ds.records[i].id, computed) for i in batch.indices]
        else:
            for i, arrays in zip(batch.indices, computed):
                result.arrays[i] = arrays
                if cache is not None:
                    cache.set(keys[i], arrays)
        done += len(batch.indices)
        if progress:
            progress(done, len(indices))
    return result


def reference(lm: LoadedModel, ds: Dataset, index: int, cache: ArrayCache | None = None
              ) -> Reference:
    """Image `index`'s embedding as the reference of a model without classes (SPEC
    "Models without class scores"): "what makes an image look like this one". Raises
    ValueError when the model has classes or the image cannot be used."""
    if lm.has_classes:
        raise ValueError(f"Model {lm.name} has classes; a reference image is for models "
                         "without class scores.")
    result = run(lm, ds, [index], FORWARD, cache=cache)
    if index not in result.arrays:
        raise ValueError(f"Reference image {ds.records[index].id} could not be used: "
                         f"{result.skipped[0][1] if result.skipped else 'unknown reason'}")
    return Reference(result.arrays[index]["logits"], ds.content_hash(index))


def _not_an_image_key(lm: LoadedModel, content: str) -> str:
    """Where the engine remembers that a file's content is not an image this model can
    read (a file that could not be opened is not remembered: that may pass)."""
    return cache_key(lm.identity, content, "not_an_image", 1)


@dataclass
class StepResult:
    arrays: Arrays | None  # None: not in the cache and not computed (compute=False)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    missing: int = 0  # images whose per-image results the step still needs


def step_key(lm: LoadedModel, ds: Dataset, step: DatasetStep, params: Any) -> str:
    """The cache key of a step's result on the whole image set."""
    targets = ",".join((str(a.target) if a.class_specific else "-") + f"@{a.version}"
                       for a in step.reads)
    return cache_key(lm.identity, image_set_hash(ds, list(range(len(ds)))), step.name,
                     step.version, params, targets)


def run_step(lm: LoadedModel, ds: Dataset, step: DatasetStep, params: Any = None, *,
             cache: ArrayCache | None = None, progress: Progress | None = None,
             stage: Stage | None = None, compute: bool = True,
             per_image: dict[str, RunResult] | None = None) -> StepResult:
    """`step` on the whole image set, from the cache where possible.

    per_image: the per-image results the step reads (analysis name -> result) when the
        caller already has them (the batch precompute); the others come from :func:`run`.
    compute: False returns the cached result or None, with how many images still lack
        per-image results of some analysis the step reads.
    """
    params = params if params is not None else step.params()
    key = step_key(lm, ds, step, params)
    found = cache.get(key) if cache is not None else None
    if found is not None:
        return StepResult(found)
    everything = list(range(len(ds)))
    results = dict(per_image or {})
    for analysis, analysis_params in zip(step.reads, step.reads_params(params)):
        if analysis.name not in results:
            results[analysis.name] = run(lm, ds, everything, analysis, analysis_params,
                                         cache=cache, progress=progress, compute=compute)
    skipped = list(dict(s for r in results.values() for s in r.skipped).items())
    if not compute:
        missing = set().union(*(r.missing for r in results.values()))
        return StepResult(None, skipped, len(missing))
    usable = set.intersection(*(set(r.arrays) for r in results.values()))
    if not usable:
        raise ValueError("none of the images could be read; see the skipped list")
    reads = {name: {i: r.arrays[i] for i in sorted(usable)} for name, r in results.items()}
    arrays = step.build(lm, ds, reads, params, stage or no_stage)
    if cache is not None:
        cache.set(key, arrays)
    return StepResult(arrays, skipped)
