"""Sanity checks of explanations (SPEC "Sanity checks of explanations"; Adebayo et al.,
NeurIPS 2018): cascading model randomisation over a sample of the set. A copy of the
model (never the shared one: copied under its lock, so that no session's hooks come
along) is re-initialised from the top, the classifier first, then the last block, then
the one below, down to the first, each part with timm's ViT initialiser
(``init_weights_vit_timm``: truncated normal linear layers, normalisation layers reset)
drawing from its own generator with a fixed seed; after each step every method of ``core.explain.METHODS``
explains each image again, on the class the untouched model explained. Each map is
compared with the untouched model's: Spearman rank correlation of the patch values and
SSIM of the maps (min-max scaled to [0, 1] on the patch grid, a 7-patch window or the
grid's odd size below it). The floor is the same similarity between each method's map
and the random map of the image.

Choices where the SPEC is silent: the sample is the faithfulness table's stratified
sample (50 images by default, 0 for every image); a method *survives randomisation*
when its mean Spearman after the last step is above ``SURVIVES`` (0.5); the random map
is the baseline (seeded by the image's content, it survives by construction) and gets
no verdict.

Arrays: ``steps`` (step: "untouched", "classifier", "block 11", ...), ``spearman`` and
``ssim`` (step method, means over the images, METHODS order), ``spearman_floor`` and
``ssim_floor`` (method), ``images``.
"""
from __future__ import annotations

import copy
import dataclasses
import threading
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from skimage.metrics import structural_similarity

from core.analyses import ABLATION_MAP, EXPLANATIONS
from core.analyses.explanations import every_map
from core.data.inputs import load_batch
from core.data.records import Dataset
from core.dataset.base import DatasetStep, Reads, Stage
from core.dataset.faithfulness_table import SampleParams, sample_of
from core.dataset.statistics import spearman
from core.explain import METHODS
from core.model import LoadedModel
from core.storage.cache import Arrays

SEED = 0
SURVIVES = 0.5  # mean Spearman after full randomisation above which a method survives
BASELINE = "random"
BATCH = 16  # images explained together by a randomised copy
NORMS = (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.modules.batchnorm._BatchNorm,
         torch.nn.RMSNorm)


@dataclass(frozen=True)
class SanityParams(SampleParams):
    sample: int = 50  # images checked


def randomised(lm: LoadedModel) -> Iterator[tuple[str, LoadedModel]]:
    """The cascade: (what was re-initialised last, the copy so far), the classifier
    first (a model with classes), then the blocks from the last to the first."""
    with lm.lock:
        model = copy.deepcopy(lm.model)
    twin = dataclasses.replace(lm, model=model, identity=f"{lm.identity}|randomised",
                               lock=threading.RLock())
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    parts = [("classifier", head)] if lm.has_classes and head is not None else []
    parts += [(f"block {i}", block) for i, block in reversed(list(enumerate(model.blocks)))]
    for step, (name, module) in enumerate(parts, start=1):
        reinitialise(module, torch.Generator(lm.device).manual_seed(SEED + step))
        yield name, twin


def reinitialise(module: torch.nn.Module, generator: torch.Generator) -> None:
    """timm's ViT initialiser (``init_weights_vit_timm``) drawing from `generator`, not
    the process's random state (sessions share it): every linear layer truncated normal
    (std 0.02) with zero bias, every normalisation layer reset; other parameters (layer
    scales, relative position tables) are kept."""
    for part in module.modules():
        if isinstance(part, torch.nn.Linear):
            torch.nn.init.trunc_normal_(part.weight, std=0.02, generator=generator)
            if part.bias is not None:
                torch.nn.init.zeros_(part.bias)
        elif isinstance(part, NORMS):
            part.reset_parameters()


def maps_of(lm: LoadedModel, images: torch.Tensor, targets: list[int | None]) -> np.ndarray:
    """(image, method, patch) every method's map of `images` on `targets`."""
    maps = []
    for start in range(0, len(images), BATCH):
        x, t = images[start:start + BATCH], targets[start:start + BATCH]
        maps += [every_map(e, a) for e, a in zip(
            EXPLANATIONS.compute(lm, x, t, EXPLANATIONS.params()),
            ABLATION_MAP.compute(lm, x, t, ABLATION_MAP.params()))]  # neither reads others
    return np.stack(maps)


def ssim(a: np.ndarray, b: np.ndarray, grid: tuple[int, int]) -> float:
    """SSIM of two (patch,) maps on the patch grid, each min-max scaled to [0, 1]."""
    def scaled(m: np.ndarray) -> np.ndarray:
        span = np.ptp(m)
        return (m - m.min()) / span if span > 0 else np.zeros_like(m)

    side = min(7, *grid)
    return float(structural_similarity(scaled(a).reshape(grid), scaled(b).reshape(grid),
                                       data_range=1.0, win_size=side if side % 2 else side - 1))


def similarities(original: np.ndarray, other: np.ndarray, grid: tuple[int, int]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Mean Spearman and SSIM (method,) over the images of maps (image, method, patch)."""
    rho = np.array([[spearman(a, b) for a, b in zip(o, t)] for o, t in zip(original, other)])
    same = np.array([[ssim(a, b, grid) for a, b in zip(o, t)] for o, t in zip(original, other)])
    return np.nanmean(rho, axis=0), same.mean(axis=0)


def build(lm: LoadedModel, ds: Dataset, reads: Reads, params: SanityParams,
          stage: Stage) -> Arrays:
    explained, ablation = reads[EXPLANATIONS.name], reads[ABLATION_MAP.name]
    images, kept, _ = load_batch(lm, ds, sorted(explained))
    if images is None:
        raise ValueError("none of the sampled images could be read")
    original = np.stack([every_map(explained[i], ablation[i]) for i in kept])
    targets = [int(explained[i]["class"]) if lm.has_classes else None for i in kept]
    random = np.repeat(original[:, [list(METHODS).index(BASELINE)]], len(METHODS), axis=1)
    floor = similarities(original, random, lm.grid)
    names, rho, same = ["untouched"], [np.ones(len(METHODS))], [np.ones(len(METHODS))]
    steps = len(lm.model.blocks) + (1 if lm.has_classes else 0)
    for done, (name, twin) in enumerate(randomised(lm), start=1):
        stage(f"explaining {len(kept)} images with the {name} re-initialised", done / steps)
        r, s = similarities(original, maps_of(twin, images, targets), lm.grid)
        names.append(name)
        rho.append(r)
        same.append(s)
    return {"steps": np.array(names), "spearman": np.stack(rho).astype(np.float32),
            "ssim": np.stack(same).astype(np.float32),
            "spearman_floor": floor[0].astype(np.float32),
            "ssim_floor": floor[1].astype(np.float32), "images": np.asarray(len(kept))}


def verdicts(arrays: Arrays) -> dict[str, str]:
    """Per method but the baseline: whether its maps depend on the model, in words."""
    last = arrays["spearman"][-1]
    return {name: ("survives randomisation: read with care" if last[m] > SURVIVES
                   else "depends on the model")
            for m, name in enumerate(METHODS) if name != BASELINE}


def describe(lm: LoadedModel, ds: Dataset, arrays: Arrays) -> str:
    said = verdicts(arrays)
    floor = [arrays["spearman_floor"][m] for m, name in enumerate(METHODS) if name in said]
    return (f"sanity checks over {int(arrays['images'])} images (Spearman after "
            f"re-initialising every layer; a random map's {np.nanmean(floor):.2f}): "
            + "; ".join(f"{name} {arrays['spearman'][-1][m]:.2f}, {said[name]}"
                        for m, name in enumerate(METHODS) if name in said))


SANITY = DatasetStep(
    name="sanity_checks", params=SanityParams, reads=(EXPLANATIONS, ABLATION_MAP),
    reads_params=lambda params: (EXPLANATIONS.params(), ABLATION_MAP.params()),
    build=build, describe=describe,
    images=sample_of)
