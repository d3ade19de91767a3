"""What work costs on this server: seconds per image of each analysis and dataset
step, measured by the engine as it computes (per model) and kept in the cache too, so
that the app reads what the batch precompute measured; and one plain forward of a
model, timed once, for the analyses not yet measured. ``core.waiting`` turns them into
the estimate a page states before a computation over the whole image set."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

from core.model.loaded import LoadedModel
from core.storage.cache import ArrayCache

FORWARD_IMAGES = 4  # images in the batch that times one plain forward


@dataclass
class Measure:
    """Seconds spent and images settled, summed over every measured batch."""

    seconds: float = 0.0
    images: int = 0


class Costs:
    """This process's measurements, keyed by (model identity, analysis or step name);
    shared by every session (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._measures: dict[tuple[str, str], Measure] = {}
        self._forward: dict[str, float] = {}

    def record(self, model: str, name: str, seconds: float, images: int) -> None:
        """Add `seconds` spent on `images` images of analysis or step `name`."""
        if images <= 0:
            return
        with self._lock:
            measure = self._measures.setdefault((model, name), Measure())
            measure.seconds += seconds
            measure.images += images

    def store(self, model: str, name: str, cache: ArrayCache | None) -> None:
        """Write this process's sums for `name` to `cache` (the last writer's stay), once
        a computation is done: not on every batch."""
        with self._lock:
            measure = self._measures.get((model, name))
            sums = None if measure is None else {"seconds": np.float64(measure.seconds),
                                                 "images": np.int64(measure.images)}
        if cache is not None and sums is not None:
            cache.set(_key(model, name), sums)

    def per_image(self, model: str, name: str, cache: ArrayCache | None = None
                  ) -> float | None:
        """Mean measured seconds per image (this process's, else those in `cache`), or
        None when never measured."""
        with self._lock:
            measure = self._measures.get((model, name))
        if measure is not None:
            return measure.seconds / measure.images
        stored = cache.get(_key(model, name)) if cache is not None else None
        if stored is None or int(stored["images"]) <= 0:
            return None
        return float(stored["seconds"]) / int(stored["images"])

    def forward(self, lm: LoadedModel) -> float:
        """Seconds of one plain forward of one image of `lm` (timed once per model, on a
        batch of FORWARD_IMAGES blank inputs, holding the model's lock so that no
        session's hooks run on it)."""
        with self._lock:
            known = self._forward.get(lm.identity)
        if known is not None:
            return known
        x = torch.zeros((FORWARD_IMAGES, *lm.data_config["input_size"]), device=lm.device)
        with lm.lock, torch.inference_mode():
            lm.model(x[:1])  # warm-up (first-call allocations)
            start = time.perf_counter()
            lm.model(x)
            seconds = (time.perf_counter() - start) / FORWARD_IMAGES
        with self._lock:
            self._forward[lm.identity] = seconds
        return seconds


def _key(model: str, name: str) -> str:
    return f"timing|{model}|{name}"


COSTS = Costs()  # the measurements of this process
