"""What the pages' report sections are written with: the image being reported
(:class:`Report`, with its analyses read from the engine and its cache) and the HTML
pieces (embedded PNG, a row of figures, a section). A section computes nothing its
page would ask the user about first: those parts say :data:`NOT_COMPUTED` instead."""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from core.analyses.base import Analysis
from core.data.records import Dataset
from core.dataset.base import DatasetStep
from core.display.maps import heat_map
from core.engine import run, run_step
from core.model import LoadedModel
from core.storage.cache import ArrayCache, Arrays
from ui.charts import overlay
from ui.downloads import image_png

NOT_COMPUTED = "not computed: open the page and press Compute now"


@dataclass
class Report:
    """One image and head of a report, with the model input and display image."""

    lm: LoadedModel
    ds: Dataset
    index: int
    layer: int
    head: int
    cache: ArrayCache | None
    batch: torch.Tensor  # the model input, image x channel x height x width
    image: np.ndarray  # as displayed (enlarged), height x width x channel in [0, 1]

    def arrays(self, analysis: Analysis, params: Any = None) -> Arrays:
        """The image's results of `analysis`, default target (computed when missing:
        for what its page computes without asking)."""
        result = run(self.lm, self.ds, [self.index], analysis, params, cache=self.cache)
        if self.index not in result.arrays:
            raise ValueError(f"Image {self.ds.records[self.index].id}: {next(iter(result.skipped.values()))}")
        return result.arrays[self.index]

    def cached(self, analysis: Analysis, params: Any = None) -> Arrays | None:
        """The image's results of `analysis` when the cache holds them, else None."""
        return run(self.lm, self.ds, [self.index], analysis, params, cache=self.cache,
                   compute=False).arrays.get(self.index)

    def cached_set(self, analysis: Analysis) -> dict[int, Arrays]:
        """The results of `analysis` for every image of the set the cache holds."""
        return run(self.lm, self.ds, list(range(len(self.ds))), analysis, cache=self.cache,
                   compute=False).arrays

    def cached_step(self, step: DatasetStep, params: Any = None) -> Arrays | None:
        """Dataset step `step`'s result when the cache holds it, else None."""
        return run_step(self.lm, self.ds, step, params, cache=self.cache,
                        compute=False).arrays

    def heat(self, values: np.ndarray) -> bytes:
        """A map over the patches as a PNG over the image."""
        return image_png(overlay(self.image, heat_map(values, self.lm, self.image.shape[:2])))


def img_tag(png: bytes, alt: str) -> str:
    return (f'<img alt="{html.escape(alt)}" '
            f'src="data:image/png;base64,{base64.b64encode(png).decode()}">')


def figure_row(items: list[tuple[bytes, str]]) -> str:
    return '<div class="row">' + "".join(
        f"<figure>{img_tag(png, caption)}<figcaption>{html.escape(caption)}</figcaption></figure>"
        for png, caption in items) + "</div>"


def paragraph(text: str, muted: bool = False) -> str:
    return ('<p class="muted">' if muted else "<p>") + html.escape(text) + "</p>"


def table_html(frame: pd.DataFrame) -> str:
    """A table, its cells escaped, without the index."""
    return frame.to_html(index=False, escape=True, border=0)


def section(title: str, intro: str, body: str) -> str:
    return (f"<section><h2>{html.escape(title)}</h2><p>{html.escape(intro)}</p>{body}"
            "</section>")
