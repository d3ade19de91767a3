"""The contract of dataset-level steps (DESIGN "One contract"): results over a whole
image set (layouts, tables), built from the results of one or more per-image analyses,
which the engine reads or computes through its cache (``core.engine.run_step``); a
step never recomputes them itself.

Every step has one signature, ``build(lm, ds, per_image, params, stage) -> arrays``,
where ``per_image`` maps each analysis it reads to its results (analysis name ->
image index -> arrays; only the images every one of them could use), a frozen
parameter dataclass and one line of text for the batch precompute.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from core.analyses.base import Analysis
from core.data.records import Dataset
from core.model import LoadedModel
from core.storage.cache import Arrays

P = TypeVar("P")
Stage = Callable[[str, float], None]  # (what is being done, fraction done)
Reads = dict[str, dict[int, Arrays]]  # analysis name -> image index -> its results


def no_stage(text: str, fraction: float) -> None:
    """A Stage that reports nothing."""


@dataclass(frozen=True)
class DatasetStep(Generic[P]):
    """A dataset-level step; see the module docstring."""

    name: str
    params: type[P]
    reads: tuple[Analysis, ...]  # the per-image analyses it is built from (their default
    # targets)
    reads_params: Callable[[P], tuple[Any, ...]]  # their parameters, from the step's
    build: Callable[[LoadedModel, Dataset, Reads, P, Stage], Arrays]
    describe: Callable[[LoadedModel, Dataset, Arrays], str]  # a line for the precompute
    version: int = 1
    images: Callable[[Dataset, P], list[int]] | None = None  # the images it reads (a
    # sample, in the order of the set); None: every image
    unavailable: Callable[[LoadedModel, Dataset], str] | None = None  # why it cannot
    # run on a set ("" or None: it can), checked before anything is read

    def indices(self, ds: Dataset, params: P) -> list[int]:
        """The images of `ds` this step reads with `params`."""
        return self.images(ds, params) if self.images is not None else list(range(len(ds)))
