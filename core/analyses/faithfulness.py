"""Faithfulness of explanations (SPEC "Faithfulness of explanations").

Every map ranks the G patches, most relevant first (stable: ties keep patch
order). Choices where the SPEC is silent:

- *Removed* patch: its pixels are set to the dataset mean, i.e. zero after
  normalisation. *Revealed* (insertion): the image starts as a Gaussian-blurred
  copy (sigma = half the patch size in pixels, kernel 2 * ceil(3 sigma) + 1)
  and the chosen patches take their original pixels back.
- Deletion and insertion steps: 20 steps of 5% of the patches (rounded; 21
  points with the unperturbed one), or one patch per step when G <= 20. One
  patch per step on the 7 x 7 demo would cost 2.1 times as many forward passes
  (110 instead of 52 per image and method), too slow for the CPU precompute
  of 1,000 images; the 5% counts contain the 10% counts of the perturbation
  tests, so positive perturbation reuses the deletion passes. The curve is the softmax
  probability of the explained class (for a model without classes, the score ``s`` on
  the reference embedding, SPEC "Models without class scores"), the AUC a trapezoid
  over x = fraction of patches in [0, 1].
- Positive and negative perturbation (Chefer et al. 2021): 0%, 10%, ..., 90% of
  the patches removed (rounded), most relevant first (positive) or least
  relevant first (negative). Without labels inside the engine, "top-1 accuracy"
  is whether the top-1 class is still the explained class (the prediction on
  the clean image by default), so both curves start at 1; per image it is 0 or
  1, and the dataset mean is the accuracy. A model without classes records the
  mean score ``s`` instead. AUC: trapezoid over the nominal
  fractions x = 0, 0.1, ..., 0.9 (at most 0.9).
- ROAD (SPEC "ROAD"): the perturbation fractions 0%, 10%, ..., 90% of the patches
  removed most relevant first (``road_most``) and least relevant first
  (``road_least``), their pixels filled by noisy linear imputation
  (``core.analyses.road``) instead of the mean; the curve is the explained class's
  probability (or ``s``), the AUC a trapezoid over the fractions. One imputation and
  one forward per step, method and order (the clean start included): 20 per method
  on the demo.
- Localisation (pointing game, IoU), where the image has an object mask (SPEC: "where
  the data has object masks"): the object is the one of ``core.analyses.objects`` (a
  user's mask, or the built-in sets' pixels); NaN for an image without one. Pointing:
  the map's maximum patch (the first on ties) is on the object; IoU: patches above the
  map's mean against the object patches.

The per-image analysis ``faithfulness`` reads the shared maps of each image's target (by
default its predicted class) for every method of the registry (``core.explain.METHODS``,
default parameters: ``core.analyses.explanations`` and ``ablation_map``) and stores the
curves and the per-image scores; the dataset table is the step
``core.dataset.faithfulness_table``.

Cost: the curves are forward passes, 52 inputs per image and method on the demo.
Every step of every method of every image of a batch is one perturbed input, and
each distinct input runs once (the clean image starts every removal series and
ends every insertion series; methods that rank the first patches alike share
those steps): 276 forwards per demo image instead of 312, stacked into batched
no-capture forwards (``core.model.logits``). ``testing.reference.per_method_faithfulness``
is the one-series-per-method-and-curve computation it replaced and is tested
against (same curves to 1e-6).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torchvision.transforms.functional import gaussian_blur

from core.analyses.ablation_map import ABLATION_MAP
from core.analyses.base import Analysis, NoParams, Output, Read, per_image
from core.analyses.explanations import EXPLANATIONS, read_maps
from core.analyses.objects import MASK, OBJECTS
from core.analyses.road import impute
from core.explain import METHODS
from core.model import TOKENS_PER_FORWARD, LoadedModel, logits
from core.model.targets import Explained, Targets
from core.storage.cache import Arrays

METHOD_NAMES = tuple(METHODS)  # every registered method, the random baseline included
CURVES = ("deletion", "insertion", "positive", "negative", "road_most", "road_least")
METRICS = {  # name -> (label, higher is better)
    "deletion": ("Deletion AUC", False),
    "insertion": ("Insertion AUC", True),
    "positive": ("Positive perturbation AUC", False),
    "negative": ("Negative perturbation AUC", True),
    "road_most": ("ROAD most-first AUC", False),  # most relevant patches imputed first
    "road_least": ("ROAD least-first AUC", True),
    "pointing": ("Pointing game", True),
    "iou": ("IoU", True),
}
LOCALISATION = ("pointing", "iou")
PERTURBATION_FRACTIONS = tuple(i / 10 for i in range(10))


def deletion_counts(num_patches: int) -> list[int]:
    """Patches removed (or revealed) after each step, starting with 0."""
    steps = min(num_patches, 20)
    return [round(i * num_patches / steps) for i in range(steps + 1)]


def perturbation_counts(num_patches: int) -> list[int]:
    return [round(f * num_patches) for f in PERTURBATION_FRACTIONS]


def curve_forwards(lm: LoadedModel, params: object = None) -> int:
    """Forwards of one image's curves: every step of every method's deletion,
    insertion, perturbation and ROAD curves (before the shared steps are merged: an upper
    bound)."""
    g = lm.grid[0] * lm.grid[1]
    return len(METHOD_NAMES) * (2 * len(deletion_counts(g)) + 3 * len(perturbation_counts(g)))


def curve_x(counts: list[int], num_patches: int) -> np.ndarray:
    return np.asarray(counts, dtype=np.float64) / num_patches


def trapezoid(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Area under y (..., S) over x (S,) by the trapezoid rule."""
    return ((y[..., 1:] + y[..., :-1]) / 2 * np.diff(x)).sum(axis=-1)


def ranks(maps: torch.Tensor) -> torch.Tensor:
    """(..., patch) rank of each patch, 0 = largest value (stable on ties)."""
    order = torch.argsort(maps, dim=-1, descending=True, stable=True)
    positions = torch.arange(maps.shape[-1], device=maps.device).expand_as(order)
    return torch.empty_like(order).scatter_(-1, order, positions)


def patch_pixels(lm: LoadedModel, chosen: torch.Tensor) -> torch.Tensor:
    """(..., G) patch flags -> (..., 1, H, W) pixel flags."""
    (gh, gw), (ph, pw) = lm.grid, lm.patch_size
    grid = chosen.reshape(*chosen.shape[:-1], 1, gh, gw)
    return grid.repeat_interleave(ph, dim=-2).repeat_interleave(pw, dim=-1)


def blurred(lm: LoadedModel, x: torch.Tensor) -> torch.Tensor:
    """The insertion start: x blurred with sigma = half the patch size."""
    sigma = max(lm.patch_size) / 2
    return gaussian_blur(x, kernel_size=2 * math.ceil(3 * sigma) + 1, sigma=sigma)


# The state of a patch in a perturbed input: its own pixels, removed (zero after
# normalisation: the dataset mean), or taken from the blurred copy.
ORIGINAL, REMOVED, BLURRED = 0, 1, 2


def step_states(maps: torch.Tensor) -> tuple[torch.Tensor, dict[str, list[int]]]:
    """Every perturbed input of the three step series of maps (..., patch): (..., step,
    patch) patch states, the series one after the other along the step axis, and the
    patch counts of each series ("removed": most relevant removed first, the deletion
    and positive perturbation counts together; "inserted": most relevant revealed
    first on the blurred image; "kept_least": least relevant removed first)."""
    g = maps.shape[-1]
    del_counts, pert_counts = deletion_counts(g), perturbation_counts(g)
    counts = {"removed": sorted(set(del_counts) | set(pert_counts)),
              "inserted": del_counts, "kept_least": pert_counts}
    most, least = ranks(maps), ranks(-maps)

    def series(order: torch.Tensor, n: list[int], taken: int, left: int) -> torch.Tensor:
        first = order[..., None, :] < torch.as_tensor(n, device=maps.device)[:, None]
        return torch.where(first, taken, left).to(torch.int8)

    states = torch.cat([series(most, counts["removed"], REMOVED, ORIGINAL),
                        series(most, counts["inserted"], ORIGINAL, BLURRED),
                        series(least, counts["kept_least"], REMOVED, ORIGINAL)], dim=-2)
    return states, counts


def distinct_inputs(states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct perturbed inputs among patch states (image, input, patch): rows
    (distinct, 1 + patch) of the image index then the patch states, and for each
    (image, input) in order the row it is."""
    b, n, g = states.shape
    image = torch.arange(b, device=states.device)[:, None, None].expand(b, n, 1)
    keys = torch.cat([image, states.long()], dim=-1).reshape(b * n, g + 1)
    return torch.unique(keys, dim=0, return_inverse=True)


def perturbed_logits(lm: LoadedModel, x: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """Logits (image, input, class) of perturbed copies of the images x (image, channel,
    height, width), given as patch states (image, input, patch). Each distinct input of
    an image runs once (the clean image, for one, starts every series of every method),
    the distinct inputs of all images stacked into forwards of ``TOKENS_PER_FORWARD``
    tokens."""
    b, n, _ = states.shape
    distinct, which = distinct_inputs(states)
    blur = blurred(lm, x)
    outputs = []
    for rows in distinct.split(max(1, TOKENS_PER_FORWARD // lm.num_tokens)):
        pixels = patch_pixels(lm, rows[:, 1:])  # (row, 1, height, width)
        own, soft = x[rows[:, 0]], blur[rows[:, 0]]
        inputs = torch.where(pixels == ORIGINAL, own,
                             torch.where(pixels == BLURRED, soft, torch.zeros_like(own)))
        outputs.append(logits(lm, inputs))
    return torch.cat(outputs)[which].reshape(b, n, -1)


def road_logits(lm: LoadedModel, x: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """Logits (image, method, order, step, output) of the ROAD copies of the images x
    (image, channel, height, width) for maps (image, method, patch): the patches of
    ``perturbation_counts`` removed most relevant first (order 0) or least relevant
    first (order 1), their pixels imputed (``core.analyses.road.impute``, seeded: the
    same removal gives the same input). Each distinct removal of an image is imputed and
    run once (the clean image starts every series)."""
    counts = torch.as_tensor(perturbation_counts(maps.shape[-1]), device=maps.device)
    order = torch.stack([ranks(maps), ranks(-maps)], dim=2)  # (image, method, order, patch)
    chosen = order[..., None, :] < counts[:, None]  # (image, method, order, step, patch)
    b, series = chosen.shape[0], chosen.shape[1:4]
    distinct, which = distinct_inputs(chosen.reshape(b, -1, chosen.shape[-1]).to(torch.int8))
    removed = patch_pixels(lm, distinct[:, 1:])[:, 0].bool().cpu().numpy()
    images = x.detach().float().cpu().numpy()
    inputs = np.stack([impute(images[int(i)], r) for i, r in zip(distinct[:, 0], removed)])
    flat = torch.from_numpy(inputs).to(x.device, x.dtype)
    per_forward = max(1, TOKENS_PER_FORWARD // lm.num_tokens)
    outputs = torch.cat([logits(lm, chunk) for chunk in flat.split(per_forward)])
    return outputs[which].reshape(b, *series, -1)


def localisation(maps: torch.Tensor, on_object: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pointing hit (...,) and IoU (...,) of maps (..., patch) against object patches
    (..., patch)."""
    top = maps.argmax(dim=-1, keepdim=True)
    pointing = on_object.gather(-1, top)[..., 0].float()
    above = maps > maps.mean(dim=-1, keepdim=True)
    inter = (above & on_object).sum(-1).float()
    union = (above | on_object).sum(-1).float()
    return pointing, inter / union.clamp(min=1)


def evaluate(lm: LoadedModel, x: torch.Tensor, maps: torch.Tensor, explained: Explained
             ) -> dict[str, np.ndarray]:
    """Curves (image, method, step) and scores (image, method) of maps (image, method,
    patch) for what each image is explained on (its class, or its reference embedding);
    every step of every method in one :func:`perturbed_logits`."""
    g = maps.shape[-1]
    x = x.to(lm.device)
    states, counts = step_states(maps)
    b, m, s = states.shape[:3]
    out = perturbed_logits(lm, x, states.reshape(b, m * s, g)).reshape(b, m, s, -1)
    bounds = np.cumsum([0] + [len(c) for c in counts.values()])
    removed, inserted, kept_least = (out[:, :, lo:hi] for lo, hi in zip(bounds, bounds[1:]))

    def prob(outputs: torch.Tensor) -> np.ndarray:  # (image, method, step, output)
        return explained.score(outputs).cpu().numpy()

    def still_top1(outputs: torch.Tensor) -> np.ndarray:
        return explained.kept(outputs).float().cpu().numpy()

    at = {c: i for i, c in enumerate(counts["removed"])}
    deletion = prob(removed[:, :, [at[c] for c in counts["inserted"]]])
    positive = still_top1(removed[:, :, [at[c] for c in counts["kept_least"]]])
    negative = still_top1(kept_least)
    insertion = prob(inserted)
    x_del, x_pert = curve_x(counts["inserted"], g), np.asarray(PERTURBATION_FRACTIONS)
    return {"deletion_curve": deletion, "insertion_curve": insertion,
            "positive_curve": positive, "negative_curve": negative,
            "deletion": trapezoid(deletion, x_del), "insertion": trapezoid(insertion, x_del),
            "positive": trapezoid(positive, x_pert), "negative": trapezoid(negative, x_pert)}


def road(lm: LoadedModel, x: torch.Tensor, maps: torch.Tensor, explained: Explained
         ) -> dict[str, np.ndarray]:
    """ROAD curves (image, method, step) and AUCs (image, method) of maps (image,
    method, patch): the explained class's probability (or ``s``) as patches are removed
    most (``road_most``) or least (``road_least``) relevant first and imputed."""
    out = road_logits(lm, x.to(lm.device), maps)
    scores = explained.score(out.reshape(len(x), -1, out.shape[-1])).reshape(out.shape[:4])
    curves = scores.cpu().numpy()
    fractions = np.asarray(PERTURBATION_FRACTIONS)
    return {"road_most_curve": curves[:, :, 0], "road_least_curve": curves[:, :, 1],
            "road_most": trapezoid(curves[:, :, 0], fractions),
            "road_least": trapezoid(curves[:, :, 1], fractions)}


def compute(lm: LoadedModel, images: torch.Tensor, targets: Targets, params: NoParams,
            reads: dict) -> list[Arrays]:
    """Per image, for every method of the registry in order (M rows), from the shared
    maps: the four curves (method step) and the six scores (method; pointing and IoU NaN
    without a mask), float32, plus ``class`` (the class explained; -1 for a model
    without classes)."""
    x = images.to(lm.device)
    explained = Explained.of(logits(lm, x), targets, lm.has_classes)
    maps = read_maps(reads, lm.device)
    objects = reads[OBJECTS.name]
    on_object = torch.from_numpy(np.stack([o["inside"] for o in objects])).to(lm.device)
    results = {**evaluate(lm, x, maps, explained), **road(lm, x, maps, explained)}
    found = localisation(maps, on_object[:, None].expand_as(maps))
    masked = np.array([int(o["object_source"]) == MASK for o in objects])
    for name, values in zip(LOCALISATION, found):
        results[name] = np.where(masked[:, None], values.cpu().numpy(), np.nan)
    stacked = {k: v.astype(np.float32) for k, v in results.items()}
    stacked["class"] = explained.stored()
    return per_image(stacked, len(x))


FAITHFULNESS = Analysis(
    name="faithfulness", params=NoParams, compute=compute, target="prediction",
    reads=(Read(EXPLANATIONS), Read(ABLATION_MAP), Read(OBJECTS)), forwards=curve_forwards,
    version=4,  # 4: ROAD joined the curves
    precompute=False,  # the set's table reads a sample of the images (faithfulness_table)
    outputs={**{f"{m}_curve": Output("float32", "method step") for m in CURVES},
             **{m: Output("float32", "method") for m in METRICS},
             "class": Output("int64")})
