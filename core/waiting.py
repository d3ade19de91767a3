"""How long a computation over an image set will take, said before it starts: the
images each analysis it needs still lacks (what it reads included, looked up in the
cache) times that analysis's seconds per image measured on this server and model
(``core.timing``), or, before any measure, its forward passes (``Analysis.forwards``)
times one timed forward of the model; a dataset step adds its own measured build."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.analyses.base import Analysis, TargetChoice
from core.data.records import Dataset
from core.dataset.base import DatasetStep
from core.engine import run
from core.model import LoadedModel
from core.parameters import parameters
from core.storage.cache import ArrayCache
from core.timing import COSTS


@dataclass(frozen=True)
class Estimate:
    """Seconds of work, and the parts not measured on this server yet: analyses
    estimated from forward passes, and a step whose build time is unknown."""

    seconds: float
    from_forwards: tuple[str, ...] = ()
    build_unknown: str = ""

    def words(self) -> str:
        """``about 4 min (measured on this server)`` and what was not measured."""
        unknown = f"building the {self.build_unknown} (not measured on this server yet)"
        if self.build_unknown and not self.seconds:
            return f"an unknown time: {unknown}"
        said = f"about {duration(self.seconds)}"
        if not self.from_forwards:
            said += " (measured on this server and model)"
        else:
            said += (f" ({', '.join(self.from_forwards)} not measured on this server yet: "
                     "counted in forward passes of the model, timed once)")
        return said + (f", plus {unknown}" if self.build_unknown else "")


def duration(seconds: float) -> str:
    """`seconds` in words at a useful precision: 40 s, 3 min, 1 h 20 min."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h" + (f" {minutes} min" if minutes else "")


def _missing(lm: LoadedModel, ds: Dataset, analysis: Analysis, params: Any,
             indices: list[int], target: TargetChoice | None, cache: ArrayCache | None,
             found: dict[str, tuple[Analysis, Any, int]]) -> None:
    """Add to `found` (name -> analysis, parameters, images) the images `analysis` and
    the stored analyses it reads lack among `indices`."""
    missing = run(lm, ds, indices, analysis, params, target=target, cache=cache,
                  compute=False).missing
    if not missing:
        return
    params = parameters(analysis.params, params, analysis.name)
    known = found.get(analysis.name, (analysis, params, 0))[2]
    found[analysis.name] = (analysis, params, max(known, len(missing)))
    for read in analysis.reads:
        if read.analysis.stored:
            _missing(lm, ds, read.analysis, read.params_for(params), missing,
                     target if read.analysis.class_specific else None, cache, found)


def _estimate(lm: LoadedModel, found: dict[str, tuple[Analysis, Any, int]],
              cache: ArrayCache | None) -> Estimate:
    seconds, from_forwards = 0.0, []
    for name, (analysis, params, images) in found.items():
        per_image = COSTS.per_image(lm.identity, name, cache)
        if per_image is None:
            forwards = analysis.forwards(lm, params) if analysis.forwards else 1.0
            per_image = forwards * COSTS.forward(lm)
            from_forwards.append(name)
        seconds += per_image * images
    return Estimate(seconds, tuple(from_forwards))


def analysis_estimate(lm: LoadedModel, ds: Dataset, indices: list[int], analysis: Analysis,
                      params: Any = None, target: TargetChoice | None = None,
                      cache: ArrayCache | None = None) -> Estimate:
    """The time `analysis` needs on the images `indices` (cached ones cost nothing)."""
    found: dict[str, tuple[Analysis, Any, int]] = {}
    _missing(lm, ds, analysis, params, indices, target, cache, found)
    return _estimate(lm, found, cache)


def step_estimate(lm: LoadedModel, ds: Dataset, step: DatasetStep, params: Any = None,
                  cache: ArrayCache | None = None) -> Estimate:
    """The time `step` needs: the per-image analyses it reads on its images, then its
    build (measured per image of an earlier build on this server, else unknown)."""
    params = parameters(step.params, params, step.name)
    indices = step.indices(ds, params)
    found: dict[str, tuple[Analysis, Any, int]] = {}
    for analysis, read_params in zip(step.reads, step.reads_params(params)):
        _missing(lm, ds, analysis, read_params, indices, None, cache, found)
    estimate = _estimate(lm, found, cache)
    build = COSTS.per_image(lm.identity, step.name, cache)
    if build is None:
        return Estimate(estimate.seconds, estimate.from_forwards, step.name.replace("_", " "))
    return Estimate(estimate.seconds + build * len(indices), estimate.from_forwards)
