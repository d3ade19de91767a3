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

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Protocol

import numpy as np
import torch

from core.analyses import axes
from core.analyses.base import Analysis, TargetChoice, resolve_targets
from core.analyses.forward import FORWARD
from core.data.inputs import load_batch
from core.data.records import Dataset
from core.data.objects import image_objects
from core.dataset.base import DatasetStep, Stage, no_stage
from core.model import LoadedModel
from core.model.targets import Reference, Target
from core.failures import Failure
from core.parameters import parameters
from core.storage.cache import ArrayCache, Arrays
from core.storage.keys import cache_key, digest, image_set_hash, params_json, target_part
from core.timing import COSTS

Progress = Callable[[int, int], None]  # (images done, images total)


@dataclass(frozen=True)
class Job:
    """One analysis to compute on a batch: its parameters, its images (positions in the
    batch; None: all of them) with each one's target, and the stored results it reads
    (analysis name -> per image of the job; what is not given is computed in memory)."""

    analysis: Analysis
    params: Any
    targets: list[Target]
    positions: list[int] | None = None
    given: dict[str, list[Arrays]] = field(default_factory=dict)


@dataclass
class Batch:
    """Decoded images of one engine call: set indices, model inputs (batch, channel,
    H, W), the analyses to compute on them and object flags (None where no analysis
    reads them)."""

    indices: list[int]
    images: torch.Tensor
    jobs: list[Job]
    objects: list[torch.Tensor | None] | None = None

    def compute(self, lm: LoadedModel) -> list[list[Arrays]]:
        """Every job's results on its images (per job, one dict per image). What a job
        reads in memory (the capture) is computed once on the whole batch and shared."""
        shared: dict[str, Any] = {}
        return [self._run(lm, job, shared) for job in self.jobs]

    def _run(self, lm: LoadedModel, job: Job, shared: dict[str, Any]) -> Any:
        if job.positions == []:
            return []
        everything = job.positions is None or len(job.positions) == len(self.indices)
        positions = list(range(len(self.indices))) if job.positions is None else job.positions
        images = self.images if everything else self.images[positions]
        objects = [self.objects[p] if self.objects else None for p in positions]
        extra: dict[str, Any] = {}
        if job.analysis.reads_objects:
            extra["objects"] = objects
        if job.analysis.reads:
            extra["reads"] = {}
        for r in job.analysis.reads:
            params = r.params_for(job.params)
            if r.analysis.stored:
                value = job.given.get(r.analysis.name)
                if value is None:
                    value = self._run(lm, Job(r.analysis, params, _read_targets(
                        r.analysis, job.targets), job.positions), shared)
            else:
                whole = Job(r.analysis, params, [None] * len(self.indices))
                name = node_name(r.analysis, params, whole.targets)
                if name not in shared:
                    shared[name] = self._run(lm, whole, shared)
                value = shared[name] if everything else _select(shared[name], positions)
            extra["reads"][r.analysis.name] = value
        return job.analysis.compute(lm, images, job.targets, job.params, **extra)


def _select(value: Any, positions: list[int]) -> Any:
    """Some images' part of an in-memory result on a batch."""
    return value.select(positions) if hasattr(value, "select") else [value[p] for p in positions]


def node_name(analysis: Analysis, params: Any, targets: Iterable[Target]) -> str:
    """What identifies one analysis's results on some images: name, parameters, targets."""
    parts = ",".join(target_part(t, analysis.class_specific) for t in targets)
    return f"{analysis.name}|{params_json(params)}|{parts}"


def _read_targets(read: Analysis, targets: list[Target]) -> list[Target]:
    """A class-specific read explains the reader's targets; others take none."""
    return list(targets) if read.class_specific else [None] * len(targets)


def compute_images(lm: LoadedModel, images: torch.Tensor, analysis: Analysis,
                   targets: list[Target] | None = None, params: Any = None,
                   objects: list[torch.Tensor | None] | None = None) -> list[Arrays]:
    """`analysis` on model inputs `images` (batch, channel, H, W) with everything it
    reads, in memory (no image set, no cache): a notebook's or a test's call."""
    targets = targets if targets is not None else [None] * len(images)
    job = Job(analysis, parameters(analysis.params, params, analysis.name), list(targets))
    return Batch(list(range(len(images))), images, [job], objects=objects).compute(lm)[0]


class Executor(Protocol):
    """Where batches are computed: here (:class:`LocalExecutor`) or on a cluster
    (``core.ray_executor.RayExecutor``)."""

    def map(self, batches: Iterable[Batch]
            ) -> Iterator[tuple[Batch, list[list[Arrays]] | str]]:
        """Each batch with its jobs' results, in any order, or with the reason (text) it
        could not be computed."""


@dataclass
class LocalExecutor:
    """Computes each batch in this process, one after the other."""

    lm: LoadedModel

    def map(self, batches: Iterable[Batch]
            ) -> Iterator[tuple[Batch, list[list[Arrays]] | str]]:
        for batch in batches:
            yield batch, batch.compute(self.lm)


@dataclass
class RunResult:
    arrays: dict[int, Arrays] = field(default_factory=dict)  # image index -> arrays
    skipped: dict[str, Failure] = field(default_factory=dict)  # image id -> why
    missing: list[int] = field(default_factory=list)  # not cached, left (compute=False)
    from_cache: int = 0


@dataclass(frozen=True)
class Request:
    """One analysis the engine is asked for: its parameters (None: the defaults) and
    the target choice (None: the analysis's own)."""

    analysis: Analysis
    params: Any = None
    target: TargetChoice | None = None


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
    return run_many(lm, ds, indices, [Request(analysis, params, target)], cache=cache,
                    progress=progress, compute=compute, executor=executor)[0]


@dataclass
class _Node:
    """A request resolved for an image set: parameters, per-image targets and keys."""

    analysis: Analysis
    params: Any
    choice: TargetChoice | None
    targets: dict[int, Target]
    reads: str = ""  # the key part of what it reads (digest of its signature)
    masks: bool = False  # whether it or what it reads takes the object masks
    keys: dict[int, str] = field(default_factory=dict)  # image index -> cache key
    wanted: list[int] = field(default_factory=list)
    given: dict[str, RunResult] = field(default_factory=dict)  # its stored reads' results


def signature(analysis: Analysis, params: Any, lm: LoadedModel) -> str:
    """Everything an analysis's results depend on besides the image and its target: its
    name, version, parameters, the registry names of its axes (``core.analyses.axes``)
    and, recursively, the signatures of what it reads (so that a new version or
    parameter of a read recomputes its readers)."""
    reads = ",".join(signature(r.analysis, r.params_for(params), lm) for r in analysis.reads)
    return (f"{analysis.name}@{analysis.version}:{params_json(params)}:"
            f"{axes.registry_part(analysis, lm)}[{reads}]")


def _reads_masks(analysis: Analysis) -> bool:
    """Whether `analysis` or anything it reads takes the object masks."""
    return analysis.reads_objects or any(_reads_masks(r.analysis) for r in analysis.reads)


def _node(lm: LoadedModel, ds: Dataset, request: Request, indices: list[int]) -> "_Node":
    """`request` resolved on images `indices`: its parameters, each image's target and
    the parts of its keys that do not depend on the image."""
    analysis = request.analysis
    params = parameters(analysis.params, request.params, analysis.name)
    choice = request.target if request.target is not None else analysis.target
    targets = (resolve_targets(choice, [ds.records[i].label for i in indices], lm)
               if analysis.class_specific else [None] * len(indices))
    return _Node(analysis, params, choice, dict(zip(indices, targets)),
                 digest(signature(analysis, params, lm)), _reads_masks(analysis))


def _key(lm: LoadedModel, ds: Dataset, node: "_Node", i: int, content: str) -> str:
    """The cache key of `node`'s result on image `i` (content hash `content`)."""
    if node.masks:
        content += f"+mask:{ds.mask_hash(i)}"
    return cache_key(lm.identity, content, node.analysis.name, node.analysis.version,
                     node.params, target_part(node.targets[i], node.analysis.class_specific),
                     reads=node.reads)


def entry_key(lm: LoadedModel, ds: Dataset, analysis: Analysis, index: int,
              params: Any = None, target: TargetChoice | None = None) -> str:
    """The cache key under which :func:`run` stores `analysis` on image `index`."""
    node = _node(lm, ds, Request(analysis, params, target), [index])
    return _key(lm, ds, node, index, ds.content_hash(index))


def run_many(lm: LoadedModel, ds: Dataset, indices: list[int], requests: list[Request], *,
             cache: ArrayCache | None = None, progress: Progress | None = None,
             compute: bool = True, executor: Executor | None = None) -> list[RunResult]:
    """Several analyses for every image in `indices` (one :class:`RunResult` per
    request), from the cache where possible. What they read is run first (through the
    cache, once per image); analyses that read only the capturing forward share its
    batches, so that each batch is decoded and captured once for all of them."""
    results = [RunResult() for _ in requests]
    contents: dict[int, str] = {}
    unreadable: dict[str, Failure] = {}
    for i in indices:
        try:
            contents[i] = ds.content_hash(i)
        except OSError as err:  # unreadable file (permissions, vanished)
            unreadable[ds.records[i].id] = Failure("unreadable", f"could not be opened ({err})")
    usable = [i for i in indices if i in contents]
    nodes = []
    for request, result in zip(requests, results):
        node = _node(lm, ds, request, usable)
        result.skipped.update(unreadable)
        for i in usable:
            node.keys[i] = _key(lm, ds, node, i, contents[i])
            found = cache.get(node.keys[i]) if cache is not None else None
            known_bad = (cache.get(_not_an_image_key(lm, contents[i]))
                         if cache is not None and found is None else None)
            if found is not None and not axes.problems(node.analysis, found, lm):
                result.arrays[i] = found
                result.from_cache += 1
            elif known_bad is not None:
                result.skipped[ds.records[i].id] = Failure("not_an_image",
                                                           str(known_bad["reason"]))
            else:
                node.wanted.append(i)
        nodes.append(node)
    if not compute:
        for node, result in zip(nodes, results):
            result.missing = node.wanted
        return results
    for node, result in zip(nodes, results):
        _read_first(lm, ds, node, result, cache, executor, progress)
    todo = sorted(set().union(*(n.wanted for n in nodes)))
    done = len(indices) - len(todo)
    if progress:
        progress(done, len(indices))
    pending = [(n, r) for n, r in zip(nodes, results) if n.wanted]
    for group in batch_groups([n.analysis for n, _ in pending]):
        for count in _compute_group(lm, ds, [pending[p] for p in group], contents, cache,
                                    executor):
            done += count
            if progress:
                progress(min(done, len(indices)), len(indices))
    return results


def _read_first(lm: LoadedModel, ds: Dataset, node: _Node, result: RunResult,
                cache: ArrayCache | None, executor: Executor | None,
                progress: Progress | None) -> None:
    """Run the stored analyses `node` reads on the images it lacks (each reporting its
    own progress); an image one of them cannot use is skipped by the reader too."""
    for read in node.analysis.reads:
        if not read.analysis.stored or not node.wanted:
            continue
        choice = node.choice if read.analysis.class_specific else None
        got = run(lm, ds, node.wanted, read.analysis, read.params_for(node.params),
                  target=choice, cache=cache, executor=executor, progress=progress)
        node.given[read.analysis.name] = got
        result.skipped.update({ds.records[i].id: got.skipped[ds.records[i].id]
                               for i in node.wanted if i not in got.arrays
                               and ds.records[i].id in got.skipped})
        node.wanted = [i for i in node.wanted if i in got.arrays]


def batch_groups(analyses: list[Analysis]) -> list[list[int]]:
    """Positions of `analyses` that share batches: those reading the same in-memory
    analyses (the capture) together, at the first one's place; the others alone."""
    groups: list[list[int]] = []
    shared: dict[str, list[int]] = {}
    for position, analysis in enumerate(analyses):
        in_memory = ",".join(sorted(r.analysis.name for r in analysis.reads
                                    if not r.analysis.stored))
        if not in_memory:
            groups.append([position])
        elif in_memory in shared:
            shared[in_memory].append(position)
        else:
            shared[in_memory] = [position]
            groups.append(shared[in_memory])
    return groups


def _compute_group(lm: LoadedModel, ds: Dataset, group: list[tuple[_Node, RunResult]],
                   contents: dict[int, str], cache: ArrayCache | None,
                   executor: Executor | None) -> Iterator[int]:
    """Compute the wanted images of a group of analyses in shared batches, storing each
    result as its batch arrives; yields how many images each batch settled."""
    todo = sorted(set().union(*(n.wanted for n, _ in group)))
    wants = [set(n.wanted) for n, _ in group]
    size = min(n.analysis.images_per_batch(lm) for n, _ in group)
    objects = any(n.analysis.reads_objects for n, _ in group)
    undecoded = 0  # images met that could not be decoded, not yet reported

    def batches() -> Iterator[Batch]:
        nonlocal undecoded
        for start in range(0, len(todo), size):
            chunk = todo[start:start + size]
            images, kept, failures = load_batch(lm, ds, chunk)
            for i, failure in failures.items():
                if cache is not None and failure.kind == "not_an_image":
                    cache.set(_not_an_image_key(lm, contents[i]),
                              {"reason": np.array(failure.message)})
            for (node, result), want in zip(group, wants):
                result.skipped.update({ds.records[i].id: f for i, f in failures.items()
                                       if i in want})
            undecoded += len(failures)
            if images is not None:
                jobs = []
                for (n, _), want in zip(group, wants):
                    mine = [p for p, i in enumerate(kept) if i in want]
                    jobs.append(Job(n.analysis, n.params, [n.targets[kept[p]] for p in mine],
                                    mine, {name: [r.arrays[kept[p]] for p in mine]
                                           for name, r in n.given.items()}))
                yield Batch(kept, images, jobs,
                            image_objects(lm, ds, kept, images) if objects else None)

    started = time.perf_counter()
    for batch, computed in (executor or LocalExecutor(lm)).map(batches()):
        now = time.perf_counter()
        for node, _ in group:  # the batch's time shared by the group's analyses
            COSTS.record(lm.identity, node.analysis.name, (now - started) / len(group),
                         len(batch.indices))
        started = now
        for (node, result), want, got in zip(group, wants, _per_job(computed, len(group))):
            if isinstance(got, str):  # the batch failed where it ran
                result.skipped.update({ds.records[i].id: Failure("not_computed", got)
                                       for i in batch.indices if i in want})
                continue
            for i, arrays in zip([i for i in batch.indices if i in want], got):
                result.arrays[i] = arrays
                if cache is not None:
                    cache.set(node.keys[i], arrays)
        settled, undecoded = len(batch.indices) + undecoded, 0
        yield settled
    for node, _ in group:
        COSTS.store(lm.identity, node.analysis.name, cache)
    yield undecoded


def _per_job(computed: list[list[Arrays]] | str, jobs: int) -> list[list[Arrays] | str]:
    return [computed] * jobs if isinstance(computed, str) else computed


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
                         f"{next(iter(result.skipped.values()), 'unknown reason')}")
    return Reference(result.arrays[index]["logits"], ds.content_hash(index))


def _not_an_image_key(lm: LoadedModel, content: str) -> str:
    """Where the engine remembers that a file's content is not an image this model can
    read (a file that could not be opened is not remembered: that may pass)."""
    return cache_key(lm.identity, content, "not_an_image", 1)


@dataclass
class StepResult:
    arrays: Arrays | None  # None: not in the cache and not computed (compute=False)
    skipped: dict[str, Failure] = field(default_factory=dict)  # image id -> why
    missing: int = 0  # images whose per-image results the step still needs


def step_key(lm: LoadedModel, ds: Dataset, step: DatasetStep, params: Any) -> str:
    """The cache key of a step's result on the whole image set."""
    reads = ",".join((str(a.target) if a.class_specific else "-") + ":"
                     + signature(a, parameters(a.params, p, a.name), lm)
                     for a, p in zip(step.reads, step.reads_params(params)))
    return cache_key(lm.identity, image_set_hash(ds, list(range(len(ds)))), step.name,
                     step.version, params, reads=digest(reads))


def _restricted(result: RunResult, indices: list[int]) -> RunResult:
    """`result` on the images `indices` only."""
    keep = set(indices)
    return RunResult({i: a for i, a in result.arrays.items() if i in keep}, result.skipped,
                     [i for i in result.missing if i in keep], result.from_cache)


def run_step(lm: LoadedModel, ds: Dataset, step: DatasetStep, params: Any = None, *,
             cache: ArrayCache | None = None, progress: Progress | None = None,
             stage: Stage | None = None, compute: bool = True,
             per_image: dict[str, RunResult] | None = None) -> StepResult:
    """`step` on the whole image set, from the cache where possible.

    per_image: the per-image results the step reads (analysis name -> result) when the
        caller already has them (the batch precompute); the others come from :func:`run`.
    compute: False returns the cached result or None, with how many images still lack
        per-image results of some analysis the step reads.
    Raises ValueError, before reading anything, on a set the step cannot run on.
    """
    params = parameters(step.params, params, step.name)
    why = step.unavailable(lm, ds) if step.unavailable else ""
    if why:
        raise ValueError(why)
    key = step_key(lm, ds, step, params)
    found = cache.get(key) if cache is not None else None
    if found is not None:
        return StepResult(found)
    chosen = step.indices(ds, params)
    given = {name: _restricted(r, chosen) for name, r in (per_image or {}).items()}
    asked = [(a, p) for a, p in zip(step.reads, step.reads_params(params))
             if a.name not in given]
    computed = run_many(lm, ds, chosen, [Request(a, p) for a, p in asked], cache=cache,
                        progress=progress, compute=compute)
    results = {**given, **{a.name: r for (a, _), r in zip(asked, computed)}}
    skipped = {name: f for r in results.values() for name, f in r.skipped.items()}
    if not compute:
        missing = set().union(*(r.missing for r in results.values()))
        return StepResult(None, skipped, len(missing))
    usable = set.intersection(*(set(r.arrays) for r in results.values()))
    if not usable:
        raise ValueError("none of the images could be read; see the skipped list")
    reads = {name: {i: r.arrays[i] for i in sorted(usable)} for name, r in results.items()}
    started = time.perf_counter()
    arrays = step.build(lm, ds, reads, params, stage or no_stage)
    COSTS.record(lm.identity, step.name, time.perf_counter() - started, len(usable))
    COSTS.store(lm.identity, step.name, cache)
    if cache is not None:
        cache.set(key, arrays)
    return StepResult(arrays, skipped)
