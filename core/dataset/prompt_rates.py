"""How well the attention prompt corrects a known shortcut (SPEC "Prompting at
inference"): on a set that records which predictions rely on it (``Dataset.relies``,
``demo-watermark``), per object of ``PROMPT_OBJECTS`` and per ``alpha``, the fix rate
(the share of relying images whose prompted top-1 equals the top-1 of the same image
without the marker, ``Dataset.clean``) and the keep rate (the share of the other images
whose top-1 the prompt leaves unchanged); the pixel counterfactual's two rates beside
them. A dataset step built from the per-image ``prompt`` and ``spurious`` analyses.

Arrays: ``fix``, ``keep`` (prompt_object alpha), ``alphas`` (alpha), ``pixel_fix``,
``pixel_keep``, ``relying``, ``others`` (counts).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from core.analyses.prompt import PROMPT, PROMPT_OBJECTS, PromptParams
from core.analyses.sift import SiftParams
from core.analyses.spurious import SPURIOUS
from core.data.inputs import load_batch
from core.data.records import Dataset
from core.dataset.base import DatasetStep, Reads, Stage
from core.model import LoadedModel, logits
from core.storage.cache import Arrays


def clean_predictions(lm: LoadedModel, ds: Dataset, indices: list[int]) -> np.ndarray:
    """The top-1 of each image of `indices` without its shortcut (``Dataset.clean``)."""
    clean = dataclasses.replace(ds, pixels=ds.clean)
    out = []
    for start in range(0, len(indices), 256):
        x, _, _ = load_batch(lm, clean, indices[start:start + 256])
        out.append(logits(lm, x).argmax(-1).cpu().numpy())
    return np.concatenate(out)


def unavailable(lm: LoadedModel, ds: Dataset) -> str:
    """Why the rates cannot be measured on `ds` ("" when they can)."""
    if ds.relies is None or ds.clean is None:
        return ("this image set records no known shortcut (which predictions rely on it), "
                "so there is no fix rate to measure; demo-watermark has one")
    return "" if lm.has_classes else "a model without classes has no top-1 to fix"


def build(lm: LoadedModel, ds: Dataset, reads: Reads, params: PromptParams,
          stage: Stage) -> Arrays:
    prompt, spurious = reads[PROMPT.name], reads[SPURIOUS.name]
    indices = sorted(prompt)
    relies = ds.relies[indices].astype(bool)
    top = np.stack([prompt[i]["top"] for i in indices])  # image prompt_object alpha
    before = np.array([int(spurious[i]["top_before"]) for i in indices])
    pixel = np.array([int(spurious[i]["top_after"]) for i in indices])
    clean = clean_predictions(lm, ds, indices)
    fixed = top[relies] == clean[relies, None, None]
    kept = top[~relies] == before[~relies, None, None]
    return {"fix": fixed.mean(axis=0), "keep": kept.mean(axis=0),
            "alphas": np.asarray(params.alphas, dtype=np.float64),
            "pixel_fix": np.asarray((pixel[relies] == clean[relies]).mean()),
            "pixel_keep": np.asarray((pixel[~relies] == before[~relies]).mean()),
            "relying": np.asarray(int(relies.sum())), "others": np.asarray(int((~relies).sum()))}


def best_alpha(arrays: Arrays, obj: int = 0) -> int:
    """The alpha (its position) of the best prompt: among the alphas below 1 (1 is the
    model unchanged), the highest fix rate of those that keep at least 90% of the other
    predictions, else the highest fix rate plus keep rate; alpha 1 when there is no
    other."""
    alphas, fix, keep = arrays["alphas"], arrays["fix"][obj], arrays["keep"][obj]
    prompts = np.flatnonzero(alphas < 1)
    if not len(prompts):
        return int(np.argmax(alphas))
    usable = prompts[keep[prompts] >= 0.9]
    if len(usable):
        return int(usable[np.argmax(fix[usable])])
    return int(prompts[np.argmax(fix[prompts] + keep[prompts])])


def in_words(arrays: Arrays, obj: int, a: int) -> str:
    """The rates at one alpha in the form a non-expert reads."""
    m, n = int(arrays["relying"]), int(arrays["others"])
    return (f"With the outside weighted {arrays['alphas'][a]:g} (the {PROMPT_OBJECTS[obj]} "
            f"as the inside), the prompt corrects {round(arrays['fix'][obj, a] * m)} of the "
            f"{m} images that relied on the marker and leaves "
            f"{round(arrays['keep'][obj, a] * n)} of the {n} others unchanged.")


def describe(lm: LoadedModel, ds: Dataset, arrays: Arrays) -> str:
    return "prompt: " + " ".join(in_words(arrays, o, best_alpha(arrays, o))
                                 for o in range(len(PROMPT_OBJECTS)))


PROMPT_RATES = DatasetStep(
    name="prompt_rates", params=PromptParams, reads=(PROMPT, SPURIOUS),
    reads_params=lambda params: (params, SiftParams()), build=build, describe=describe,
    unavailable=unavailable)
