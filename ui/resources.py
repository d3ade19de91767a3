"""Engine objects for the app (one per process, shared by sessions), the engine
calls of the pages, with progress bars and the question asked before any computation
over the whole image set, and the decoded model inputs and head matrices, kept
across reruns (a rerun decodes no image and runs no forward it ran before)."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
import torch

from core.analyses.base import Analysis, TargetChoice
from core.analyses.cost import automatic
from core.data.datasets import load_dataset
from core.data.inputs import load_batch
from core.data.paths import allowed_path
from core.data.records import Dataset
from core.dataset.base import DatasetStep
from core.display import head_detail
from core.engine import RunResult, reference, run, run_step
from core.model import LoadedModel, ModelLoadError, load_model
from core.storage.cache import ArrayCache, Arrays, cache_folder
from core.failures import Failure
from core.parameters import parameters
from core.waiting import Estimate, analysis_estimate, duration, step_estimate
from ui.plain import plain

log = logging.getLogger(__name__)


DEFAULT_MAX_MODELS = 2  # $VIT_EXPLORER_MAX_MODELS: models held in memory at once


def model(spec: str, checkpoint: str) -> LoadedModel:
    """The loaded model, held once per normalised name (spaces around it dropped) and
    resolved checkpoint path (``./x`` and ``a/../x`` are one file), at most
    ``$VIT_EXPLORER_MAX_MODELS`` at once, the least recently used unloaded first."""
    path = str(allowed_path(checkpoint.strip())) if checkpoint.strip() else ""
    return _model(spec.strip(), path)


@st.cache_resource(show_spinner="Loading the model...",
                   max_entries=int(os.environ.get("VIT_EXPLORER_MAX_MODELS")
                                   or DEFAULT_MAX_MODELS))
def _model(spec: str, checkpoint: str) -> LoadedModel:
    """`model`, loaded; a failure that is not a refusal is logged here with its
    traceback and raised as a short ModelLoadError (no server details on the page)."""
    try:
        return load_model(spec, checkpoint or None)
    except (ValueError, OSError):
        raise
    except Exception as err:
        log.exception("Loading model %r (checkpoint %r) failed", spec, checkpoint)
        raise ModelLoadError(f"The model {spec!r} could not be loaded "
                             f"({type(err).__name__}); the details are in the server "
                             "log.") from None


@st.cache_resource(show_spinner="Reading the image set...")
def dataset(spec: str, model_identity: str, class_names: tuple[str, ...]) -> Dataset:
    return load_dataset(spec, list(class_names))


def cache() -> ArrayCache:
    """The server's cache, one per folder (the folder read again on every call)."""
    return _cache_at(cache_folder())


@st.cache_resource
def _cache_at(folder: Path) -> ArrayCache:
    return ArrayCache(folder)


class Unavailable(Exception):
    """The selected model or image set cannot be used; the message says why."""


def current() -> tuple[LoadedModel, Dataset]:
    """The selected model and image set (raises Unavailable with the reason)."""
    from ui.state import selection
    sel = selection()
    try:
        lm = model(sel["model"], sel["checkpoint"])
        ds = dataset(sel["images"], lm.identity, tuple(lm.class_names))
    except (ValueError, OSError) as err:
        raise Unavailable(str(err)) from err
    if len(ds) == 0:
        raise Unavailable(f"The image set {sel['images']!r} holds no images "
                          "(.png, .jpg, .bmp, .gif, .webp, .tif).")
    return lm, ds


def file_key(ds: Dataset, index: int) -> str:
    """What identifies the content of image `index` without reading it: its file's path,
    size and modification time (the demo's pixels: their hash). Raises OSError."""
    record = ds.records[index]
    if record.path is None:
        return ds.content_hash(index)
    stat = record.path.stat()
    return f"{record.path}|{stat.st_size}|{stat.st_mtime_ns}"


@st.cache_data(max_entries=64, show_spinner=False)
def _model_input(model_identity: str, key: str, _lm: LoadedModel, _ds: Dataset,
                 _index: int) -> tuple[torch.Tensor | None, str]:
    batch, _, failures = load_batch(_lm, _ds, [_index])
    return (None, str(next(iter(failures.values())))) if batch is None else (batch[0], "")


def model_input(lm: LoadedModel, ds: Dataset, index: int) -> tuple[torch.Tensor | None, str]:
    """Image `index` decoded and preprocessed for `lm` (channel x height x width), once
    per file version and model; or None and why it cannot be used."""
    try:
        key = file_key(ds, index)
    except OSError as err:
        return None, f"could not be opened: {err.strerror or err}"
    return _model_input(lm.identity, key, lm, ds, index)


@st.cache_data(max_entries=32, show_spinner=False)
def _head_matrix(model_identity: str, key: str, layer: int, head: int, _lm: LoadedModel,
                 _image: torch.Tensor) -> np.ndarray:
    return head_detail.head_matrix(_lm, _image, layer, head)


def head_matrix(lm: LoadedModel, ds: Dataset, index: int, layer: int, head: int
                ) -> tuple[np.ndarray | None, str]:
    """One head's query x key attention matrix for image `index`, one forward per
    file version, model and head; or None and why the image cannot be used."""
    image, why = model_input(lm, ds, index)
    if image is None:
        return None, why
    return _head_matrix(lm.identity, file_key(ds, index), layer, head, lm, image), ""


def _bar(what: str, total: int):
    """A progress bar and its callback ``(done, total)``: images done, and the time
    left at the pace of the images computed so far."""
    bar = st.progress(0.0, text=f"Computing {what}...")
    first: tuple[int, int, float] | None = None  # (images done, of, time) at the first
    # report of this part (what an analysis reads reports first, as a part of its own)

    def report(done: int, count: int) -> None:
        nonlocal first
        now = time.monotonic()
        if first is None or first[1] != count or done < first[0]:
            first = (done, count, now)
        settled, seconds = done - first[0], now - first[2]
        left = (f", about {duration(seconds / settled * (count - done))} left"
                if settled > 0 and done < count else "")
        bar.progress(done / max(count, 1), text=f"{what}: {done:,} of {count:,} images{left}")

    return bar, report


def chosen_target(lm: LoadedModel, ds: Dataset, target: TargetChoice | None
                  ) -> TargetChoice | None:
    """A page's target for this model: for a model without classes, the selected
    reference image's embedding (the link's ``reference``) whatever the page asked;
    `target` when none is selected, the model has classes or the reference image cannot
    be used (the sidebar says so)."""
    from ui.state import selection
    ref_id = selection()["reference"]
    index = None if lm.has_classes or not ref_id else ds.index_of(ref_id)
    if index is None:
        return target
    try:
        return reference(lm, ds, index, cache())
    except (ValueError, OSError):
        return target


def analyse(lm: LoadedModel, ds: Dataset, indices: list[int], analysis: Analysis,
            params: Any = None, target: TargetChoice | None = None) -> RunResult:
    """Run an analysis on a few images (a progress bar when more than 8 need work)."""
    target = chosen_target(lm, ds, target)
    if len(indices) <= 8:
        return run(lm, ds, indices, analysis, params, target=target, cache=cache())
    bar, report = _bar(analysis.name, len(indices))
    result = run(lm, ds, indices, analysis, params, target=target, cache=cache(),
                 progress=report)
    bar.empty()
    return result


def cached(lm: LoadedModel, ds: Dataset, index: int, analysis: Analysis,
           params: Any = None) -> Arrays | None:
    """Image `index`'s results of `analysis` when the cache holds them, else None."""
    return run(lm, ds, [index], analysis, params, cache=cache(), compute=False,
               target=chosen_target(lm, ds, None)).arrays.get(index)


def _ask(what: str, missing: int, total: int, key: str, estimate: Estimate,
         reads: int | None = None) -> bool:
    """Ask before a computation over the whole image set (or `reads` of its `total`
    images, a sample), saying how long it will take: True once the user chose to compute
    it now (the question is then cleared); otherwise the page says how to precompute it
    instead."""
    needs = (f"{missing} of the {reads or total} images have no results in the cache yet"
             if missing else "it is not computed yet")
    which = ("every image of the set" if reads is None or reads >= total else
             f"a sample of {reads} of the set's {total} images")
    question = st.empty()
    with question.container():
        st.info(f"{what} needs {which}, and {needs}. Computing it now takes "
                f"{estimate.words()}; a progress bar shows how far it is and the time "
                "left. Or compute it for the whole set beforehand with "
                "`python -m core.precompute --model MODEL --images IMAGES`.")
        clicked = st.button("Compute now" + (f" ({missing} images)" if missing else ""),
                            key=key)
    if clicked:
        question.empty()
    return clicked


def on_request(lm: LoadedModel, what: str, forwards: int, key: str) -> bool:
    """Whether to compute a costly view of `forwards` full forwards now: at once when
    it is cheap for this model (``core.analyses.cost.automatic``), else once the user
    asked (remembered for the session)."""
    asked = f"{key}_asked"
    if automatic(lm, forwards) or st.session_state.get(asked):
        return True
    if st.button(f"Compute {what} ({forwards:,} forward passes of {lm.name})", key=key):
        st.session_state[asked] = True
        return True
    return False


def _skipped(skipped: dict[str, Failure]) -> None:
    if skipped:
        st.warning(f"{len(skipped)} image(s) could not be used and are left out: "
                   + plain("; ".join(f"{name}: {why}" for name, why in list(skipped.items())[:5])))


def whole_set(lm: LoadedModel, ds: Dataset, analysis: Analysis, what: str, key: str,
              params: Any = None) -> RunResult | None:
    """`analysis` for every image: from the cache, or computed when the user asks
    (None until then)."""
    everything = list(range(len(ds)))
    found = run(lm, ds, everything, analysis, params, cache=cache(), compute=False)
    if not found.missing:
        return found
    estimate = analysis_estimate(lm, ds, found.missing, analysis, params, cache=cache())
    if not _ask(what, len(found.missing), len(ds), key, estimate):
        return None
    bar, report = _bar(analysis.name, len(ds))
    result = run(lm, ds, everything, analysis, params, cache=cache(), progress=report)
    bar.empty()
    _skipped(result.skipped)
    return result


def whole_set_step(lm: LoadedModel, ds: Dataset, step: DatasetStep, what: str, key: str,
                   params: Any = None) -> Arrays | None:
    """A dataset step's result: from the cache, or computed when the user asks (None
    until then)."""
    found = run_step(lm, ds, step, params, cache=cache(), compute=False)
    if found.arrays is not None:
        return found.arrays
    reads = len(step.indices(ds, parameters(step.params, params, step.name)))
    estimate = step_estimate(lm, ds, step, params, cache())
    if not _ask(what, found.missing, len(ds), key, estimate, reads):
        return None
    bar, report = _bar(", ".join(a.name for a in step.reads), len(ds))
    try:
        result = run_step(lm, ds, step, params, cache=cache(), progress=report,
                          stage=lambda text, fraction: bar.progress(min(fraction, 1.0), text))
    except ValueError as err:
        st.error(plain(err))
        return None
    finally:
        bar.empty()  # not left full above a message
    _skipped(result.skipped)
    return result.arrays
