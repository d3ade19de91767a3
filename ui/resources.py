"""Cached engine objects for the app (one per process, shared by sessions)."""
from __future__ import annotations

import streamlit as st

from core.cache import ArrayCache, Arrays, make_key
from core.datasets import Dataset, load_dataset
from core.engine import Analysis, RunResult, run
from core.models import LoadedModel, load_model


@st.cache_resource(show_spinner="Loading the model...")
def model(spec: str, checkpoint: str) -> LoadedModel:
    return load_model(spec, checkpoint or None)


@st.cache_resource(show_spinner="Reading the image set...")
def dataset(spec: str, model_identity: str, class_names: tuple[str, ...]) -> Dataset:
    return load_dataset(spec, list(class_names))


@st.cache_resource
def cache() -> ArrayCache:
    return ArrayCache()


def analyse(lm: LoadedModel, ds: Dataset, indices: list[int], analysis: Analysis,
            params: dict | None = None) -> RunResult:
    """Run an analysis with a progress bar when more than a few images need work."""
    bar = st.progress(0.0, text=f"Computing {analysis.name}...") if len(indices) > 8 else None

    def report(done: int, total: int) -> None:
        if bar is not None:
            bar.progress(done / max(total, 1), text=f"{analysis.name}: {done}/{total} images")

    result = run(lm, ds, indices, analysis, params, cache=cache(), progress=report)
    if bar is not None:
        bar.empty()
    return result


def cached_only(lm: LoadedModel, ds: Dataset, indices: list[int], analysis: Analysis,
                params: dict | None = None) -> dict[int, Arrays]:
    """The results already in the disk cache (nothing is computed): image index -> arrays."""
    found: dict[int, Arrays] = {}
    for i in indices:
        try:
            arrays = cache().get(make_key(lm.identity, ds.content_hash(i), analysis.name,
                                          params or {}))
        except OSError:  # unreadable file: the full run reports it
            continue
        if arrays is not None:
            found[i] = arrays
    return found


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
